"""Django ORM on a pool: the pooled ENGINE vs Django's own connections vs django-db-connection-pool.

    python -m benchmarks.django_bench [--quick] [--duration S] [--repeats N]
                                      [--servers gunicorn,uvicorn] [--subjects orm60,orm0,dbcp]

The example project (``example_apps/django_project``) serves two ORM views, 32 concurrent
clients, every request with ``Connection: close`` (with keep-alive one worker takes almost every
client):

- ``get``: ``Product.objects.get(pk=1)``; ``list``: ``Product.objects.values(...)[:20]`` (20 rows);

under gunicorn (2 workers x 4 threads, WSGI) and uvicorn (2 workers, ASGI; Django runs the sync
views in threads), each with four ORM backends (``SHOP_ENGINE``):

- ``pool``: ``ENGINE: "mysqlpool_ext.django.backend"``, ``OPTIONS["pool"]`` size = max_size = 4;
- ``orm0`` / ``orm60``: Django's MySQL backend (PyMySQL as MySQLdb), ``CONN_MAX_AGE`` 0 / 60;
- ``dbcp``: django-db-connection-pool (SQLAlchemy's QueuePool; PyMySQL as MySQLdb), pool_size 4,
  max_overflow 0 (skipped, and said so, when it is not installed).

Each backend has a MySQL account of its own (at most 40 connections, so that a backend that leaks
connections fails alone), and the server's process list tells how many connections each one
holds: the table shows the most seen during its cells (polled every 0.2 s).
All servers of one kind run at the same time and the cells are interleaved: a round runs every
cell once, every other round in reverse order (ABBA), so a noisy neighbour or a drifting load hurts
them alike; each figure is the median of its rounds. Every round starts its servers afresh: two
instances of one backend differ by a few per cent (their memory layout), which a single instance
per backend would have turned into a bias for the whole run. On a shared machine req/s swings
by a third between runs, so the ratio "ours ÷ this" is taken per round (our cell and that
row's cell run in the same round, next to each other for ``CONN_MAX_AGE=60``) and the table
shows the median of those ratios with their range. The load generator is ``wrk`` (``apt-get
install wrk``); without it, Python threads (slower; the rows say so).

For the CPU each backend spends per request (steadier than req/s), see ``benchmarks.django_cpu``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import pymysql

from benchmarks._http import _free_port, _get, _pyload, _wrk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = "example_apps.django_project.shopsite.settings"
WSGI = "example_apps.django_project.shopsite.wsgi:application"
ASGI = "example_apps.django_project.shopsite.asgi:application"
WORKERS, THREADS, CLIENTS, POOL = 2, 4, 32, 4
#: Per account: a backend that leaks connections (CONN_MAX_AGE under ASGI) hits its own limit
#: (its requests fail: counted as errors) instead of the server's max_connections, which would
#: fail every backend's requests.
MAX_USER_CONNECTIONS = 40

#: (key, label, path)
SCENARIOS = (
    ("get", "ORM get() by primary key", "/orm/products/1"),
    ("list", "ORM list of 20 rows", "/orm/products"),
)
#: (key, label, environment, ours)
SUBJECTS: tuple[tuple[str, str, dict[str, str], bool], ...] = (
    ("pool", "mysqlpool_ext ENGINE (pool 4)", {"SHOP_ENGINE": "pool"}, True),
    ("orm60", "Django CONN_MAX_AGE=60", {"SHOP_ENGINE": "stock", "SHOP_CONN_MAX_AGE": "60"}, False),
    ("orm0", "Django CONN_MAX_AGE=0", {"SHOP_ENGINE": "stock", "SHOP_CONN_MAX_AGE": "0"}, False),
    ("dbcp", "django-db-connection-pool (pool 4)", {"SHOP_ENGINE": "dbcp"}, False),
)
SERVERS = ("gunicorn", "uvicorn")


def _env(url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "MYSQLPOOL_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        MYSQLPOOL_URL=url,
        DJANGO_SETTINGS_MODULE=SETTINGS,
        SHOP_POOL_SIZE=str(POOL),
        SHOP_POOL_MAX_SIZE=str(POOL),
        PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
        **extra,
    )
    return env


def _manage(url: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "example_apps", "django_project", "manage.py"), *args],
        env=_env(url, {}), cwd=ROOT, check=True, capture_output=True, timeout=180,
    )  # fmt: skip


def _prepare(url: str, kwargs: dict[str, Any]) -> None:
    """The shop's tables (``init_shop``, ``migrate``) and 20 products for the list view."""
    _manage(url, "init_shop")
    _manage(url, "migrate", "--noinput")
    conn = pymysql.connect(**kwargs, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM shop_products")
            (have,) = cur.fetchone()
            cur.executemany(
                "INSERT INTO shop_products (name, price_cents, stock) VALUES (%s, %s, %s)",
                [(f"product {i}", 100 * i, 1000) for i in range(have, 25)],
            )
    finally:
        conn.close()


@contextmanager
def _accounts(kwargs: dict[str, Any], keys: list[str]) -> Iterator[dict[str, tuple[str, str]]]:
    """A MySQL account per subject: ``{key: (user, url)}`` (dropped afterwards)."""
    admin = pymysql.connect(**kwargs, autocommit=True)
    db = kwargs["database"]
    out: dict[str, tuple[str, str]] = {}
    try:
        with admin.cursor() as cur:
            for key in keys:
                user = f"bench_{key}_{secrets.token_hex(2)}"
                password = secrets.token_urlsafe(12)
                for host in ("127.0.0.1", "localhost"):
                    cur.execute(
                        "CREATE USER %s@%s IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS %s",
                        (user, host, password, MAX_USER_CONNECTIONS),
                    )
                    cur.execute(f"GRANT ALL PRIVILEGES ON `{db}`.* TO %s@%s", (user, host))
                out[key] = (
                    user,
                    f"mysql://{user}:{quote(password, safe='')}@{kwargs['host']}:"
                    f"{kwargs['port']}/{quote(db, safe='')}",
                )
        yield out
    finally:
        with admin.cursor() as cur:
            for user, _ in out.values():
                for host in ("127.0.0.1", "localhost"):
                    cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
        admin.close()


class _ConnCounter:
    """Polls the server's process list: the most connections each account held."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> dict[str, int]:
        conn = pymysql.connect(**self.kwargs, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT USER, COUNT(*) FROM information_schema.PROCESSLIST GROUP BY USER"
                )
                return {str(u): int(n) for u, n in cur.fetchall()}
        finally:
            conn.close()

    def __enter__(self) -> _ConnCounter:
        def poll() -> None:
            while not self._stop.wait(0.2):
                for user, n in self.now().items():
                    self.peak[user] = max(self.peak.get(user, 0), n)

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@contextmanager
def _server(kind: str, url: str, extra: dict[str, str]) -> Iterator[int]:
    port = _free_port()
    if kind == "gunicorn":
        cmd = [
            sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "--threads", str(THREADS),
            "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "--log-level", "warning", WSGI,
        ]  # fmt: skip
    else:
        cmd = [
            sys.executable, "-m", "uvicorn", "--workers", str(WORKERS), "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log", ASGI,
        ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(url, extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"{kind} exited with {proc.returncode}: {err[-2000:]}")
            try:
                if _get(port, "/", timeout=1) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not answer within 60 s")
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _drain(port: int, path: str, deadline_s: float = 15.0) -> None:
    """Wait until the server answers a lone request promptly again (its backlog is gone)."""
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        try:
            _get(port, path, timeout=deadline_s)
        except OSError:
            pass
        if time.perf_counter() - t0 < 0.05:
            break
    time.sleep(0.2)


def run(
    url: str | None = None,
    duration: float = 3.0,
    repeats: int = 3,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
    servers: tuple[str, ...] = SERVERS,
    subjects: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    """Measure every cell; one row per (server, scenario, subject): medians of ``repeats``,
    and the per-round ratios of our cell to each other cell (``ratio_rounds``)."""
    say = progress or (lambda msg: None)
    if url is None:
        from ._harness import bench_server

        with bench_server() as server:
            return run(server.url, duration, repeats, quick, progress, servers, subjects)
    from ._harness import url_kwargs

    kwargs = url_kwargs(url, ("host", "port", "user", "password", "database"))
    kwargs.setdefault("host", urlsplit(url).hostname or "127.0.0.1")
    kwargs.setdefault("port", 3306)
    duration = max(duration, 1.0 if quick else 3.0)
    repeats = 1 if quick else max(1, repeats)
    load = _wrk if shutil.which("wrk") else _pyload
    generator = "wrk" if load is _wrk else "Python threads (wrk not installed)"
    chosen = [s for s in SUBJECTS if s[3] or subjects is None or s[0] in subjects]
    if importlib.util.find_spec("dj_db_conn_pool") is None and any(s[0] == "dbcp" for s in chosen):
        say("[django] django-db-connection-pool is not installed: its rows are skipped")
        chosen = [s for s in chosen if s[0] != "dbcp"]
    _prepare(url, kwargs)
    rows: list[dict[str, Any]] = []
    with _accounts(kwargs, [s[0] for s in chosen]) as accounts:
        for kind in servers:
            samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
            with _ConnCounter(kwargs) as counter:
                for rep in range(repeats):
                    # Fresh servers every round: two instances of one backend differ by a few
                    # per cent (memory layout), as much as the backends do; a round's servers
                    # are its own, so the medians average that over the rounds.
                    with ExitStack() as stack:
                        ports = {
                            key: stack.enter_context(_server(kind, accounts[key][1], env))
                            for key, _, env, _ in chosen
                        }
                        for key, *_ in chosen:  # warm-up: workers import, pools fill
                            for _, _, path in SCENARIOS:
                                load(ports[key], path, 1.0)
                        # ABBA: every other round runs the cells in reverse order, so a
                        # drifting load favours no backend; ours sits next to CONN_MAX_AGE=60.
                        cells = [(s, sc) for sc in SCENARIOS for s in chosen]
                        if rep % 2:
                            cells.reverse()
                        for (key, label, _, _), (skey, slabel, path) in cells:
                            cell = load(ports[key], path, duration)
                            samples.setdefault((key, skey), []).append(cell)
                            say(f"[django] {kind:<8} {slabel:<26} {label:<36} rep {rep + 1}: "
                                f"{cell['ops_s']:8.0f} req/s")  # fmt: skip
                            _drain(ports[key], path)
                after = counter.now()
            ours_key = next(s[0] for s in chosen if s[3])
            for skey, slabel, path in SCENARIOS:
                for key, label, _, ours in chosen:
                    cells_ = samples[(key, skey)]
                    # Round r of ours against round r of this subject: the same pass over the
                    # cells, so the same neighbours.
                    ratio_rounds = [
                        round(a["ops_s"] / b["ops_s"], 3) if b["ops_s"] else None
                        for a, b in zip(samples[(ours_key, skey)], cells_)
                    ]
                    med = statistics.median(c["ops_s"] for c in cells_)
                    mid = min(cells_, key=lambda c: abs(c["ops_s"] - med))
                    user = accounts[key][0]
                    rows.append(
                        {
                            "suite": "django",
                            "scenario": f"{slabel}; {kind} "
                            + (f"{WORKERS} workers x {THREADS} threads" if kind == "gunicorn"
                               else f"{WORKERS} workers (ASGI)")
                            + f", {CLIENTS} clients",
                            "server_kind": kind,
                            "scenario_key": skey,
                            "subject_key": key,
                            "subject": label,
                            "ops_s": round(med, 1),
                            "p50_ms": mid["p50_ms"],
                            "p99_ms": mid["p99_ms"],
                            "errors": sum(c["errors"] for c in cells_),
                            "ops": sum(c["ops"] for c in cells_),
                            "server_conns_peak": counter.peak.get(user, 0),
                            "server_conns_after": after.get(user, 0),
                            "ours": ours,
                            "ratio_rounds": ratio_rounds,
                            "note": f"GET {path}, Connection: close, load by {generator}, "
                            f"{repeats} x {duration:g} s",
                        }
                    )  # fmt: skip
    return rows


def _ratio_cell(row: dict[str, Any], ours: dict[str, Any]) -> str:
    """Median of the per-round ratios, with their range; the ratio of medians for rows made
    before the rounds were kept."""
    rounds = [r for r in row.get("ratio_rounds") or () if r is not None]
    if not rounds:
        ratio = ours["ops_s"] / row["ops_s"] if row["ops_s"] else float("inf")
        return f"{ratio:.2f}×"
    med = statistics.median(rounds)
    if len(rounds) == 1:
        return f"{med:.2f}×"
    return f"{med:.2f}× ({min(rounds):.2f}–{max(rounds):.2f})"


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of BENCHMARKS.md and the README: "ours ÷ this" is the median of the
    per-round ratios (our req/s ÷ that row's, same round), with the lowest and highest."""
    lines = [
        "| server | view | ORM backend | req/s | ours ÷ this (per round: median, range) | "
        "p50 ms | p99 ms | errors | server conns (peak) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ours = next(
            r for r in rows
            if r["ours"] and r["server_kind"] == row["server_kind"]
            and r["scenario_key"] == row["scenario_key"]
        )  # fmt: skip
        p50, p99 = (f"{v:.1f}" if v is not None else "-" for v in (row["p50_ms"], row["p99_ms"]))
        view = "get() by pk" if row["scenario_key"] == "get" else "list of 20"
        lines.append(
            f"| {row['server_kind']} | {view} | {row['subject']} | {row['ops_s']:,.0f} | "
            f"{'–' if row['ours'] else _ratio_cell(row, ours)} | {p50} | {p99} | "
            f"{row['errors']} | {row['server_conns_peak']} |"
        )
    return "\n".join(lines)


def rounds_report(rows: list[dict[str, Any]]) -> str:
    """Every round's ratio, for the record (the table keeps the median and range)."""
    out = []
    for row in rows:
        if row["ours"] or not row.get("ratio_rounds"):
            continue
        view = "get()" if row["scenario_key"] == "get" else "list"
        out.append(
            f"{row['server_kind']:<8} {view:<5} ours ÷ {row['subject_key']:<5}: "
            + " ".join("–" if r is None else f"{r:.2f}" for r in row["ratio_rounds"])
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.django_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short cells (smoke run)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell")
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds: repeats per cell (median, paired ratios)"
    )
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help="comma-separated: gunicorn,uvicorn"
    )
    parser.add_argument(
        "--subjects",
        help="comma-separated subjects besides ours: " + ",".join(s[0] for s in SUBJECTS[1:]),
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows to FILE")
    args = parser.parse_args(argv)
    servers = tuple(x for x in args.servers.split(",") if x)
    if not servers or any(x not in SERVERS for x in servers):
        parser.error(f"--servers: choose from {', '.join(SERVERS)}")
    subjects = tuple(x for x in args.subjects.split(",") if x) if args.subjects else None
    load = os.getloadavg()
    rows = run(
        duration=args.duration,
        repeats=args.repeats,
        quick=args.quick,
        progress=lambda msg: print(msg, flush=True),
        servers=servers,
        subjects=subjects,
    )
    load_after = os.getloadavg()
    print()
    print(table(rows))
    print()
    print(rounds_report(rows))
    print(f"\nload average before {load[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"load_before": load, "load_after": load_after, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
