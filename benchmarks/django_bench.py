"""Django: the example shop's user lookup under gunicorn, pool vs Django's own connection.

    python -m benchmarks.django_bench [--quick] [--duration S] [--repeats N]

One view, ``SELECT id, name FROM shop_users WHERE id=%s``, served by
``example_apps/django_project`` under gunicorn (2 workers x 4 threads), 32 concurrent clients,
every request with ``Connection: close`` (with keep-alive one worker takes almost every client):

- ``mysqlpool_ext``: ``/users/1``, ``current_pool`` + ``MySQLPoolMiddleware`` (SIZE=MAX_SIZE=4
  per worker, one per thread);
- ``Django ORM CONN_MAX_AGE=0``: ``/orm/users/1``, ``django.db.connection`` through
  ``pymysql.install_as_MySQLdb()``, a new connection per request (Django's default);
- ``Django ORM CONN_MAX_AGE=60``: the same, with persistent per-thread connections;
- ``Django, no database``: ``/`` (a JSON index): the ceiling the stack allows here.

All servers run at the same time and the cells are interleaved (repeat 1 of every subject, then
repeat 2...), so a noisy neighbour hurts them alike; each figure is the median of its repeats.
The load generator is ``wrk`` (``apt-get install wrk``); without it, a Python thread-pool client
(slower: it competes with the server for the two cores; the rows say so).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from benchmarks._http import _free_port, _get, _pyload, _wrk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = "example_apps.django_project.shopsite.settings"
WSGI = "example_apps.django_project.shopsite.wsgi:application"
WORKERS, THREADS, CLIENTS = 2, 4, 32
SCENARIO = (
    f"Django view, 1 SELECT by primary key; gunicorn {WORKERS} workers x {THREADS} threads, "
    f"{CLIENTS} clients"
)

#: (key, subject, path, extra environment, ours)
SUBJECTS: tuple[tuple[str, str, str, dict[str, str], bool], ...] = (
    ("pool", "mysqlpool_ext (middleware + current_pool)", "/users/1", {}, True),
    ("orm0", "Django ORM CONN_MAX_AGE=0", "/orm/users/1", {"SHOP_CONN_MAX_AGE": "0"}, False),
    ("orm60", "Django ORM CONN_MAX_AGE=60", "/orm/users/1", {"SHOP_CONN_MAX_AGE": "60"}, False),
    ("nodb", "Django, no database (ceiling)", "/", {}, False),
)


def _env(url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "MYSQLPOOL_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        MYSQLPOOL_URL=url,
        DJANGO_SETTINGS_MODULE=SETTINGS,
        SHOP_POOL_SIZE=str(THREADS),
        SHOP_POOL_MAX_SIZE=str(THREADS),
        PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
        **extra,
    )
    return env


def _prepare(url: str) -> None:
    """Create the shop's tables through the example project's own command."""
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "example_apps", "django_project", "manage.py"),
         "init_shop"],
        env=_env(url, {}), cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


@contextmanager
def _gunicorn(url: str, extra: dict[str, str]) -> Iterator[int]:
    port = _free_port()
    cmd = [
        sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "--threads", str(THREADS),
        "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "--log-level", "warning", WSGI,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(url, extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"gunicorn exited with {proc.returncode}: {err[-2000:]}")
            try:
                if _get(port, "/", timeout=1) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer within 30 s")
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _drain(port: int, path: str, deadline_s: float = 10.0) -> None:
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
) -> list[dict[str, Any]]:
    """Measure every subject in the same run; one row per subject (medians of ``repeats``)."""
    say = progress or (lambda msg: None)
    if url is None:
        from ._harness import bench_server

        with bench_server() as server:
            return run(server.url, duration, repeats, quick, progress)
    # Web cells need longer than the core's sub-second cells: CONN_MAX_AGE=0 serves ~70 req/s.
    duration = max(duration, 1.0 if quick else 3.0)
    repeats = 1 if quick else max(1, repeats)
    load = _wrk if shutil.which("wrk") else _pyload
    generator = "wrk" if load is _wrk else "Python threads (wrk not installed)"
    _prepare(url)
    samples: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in SUBJECTS}
    with ExitStack() as stack:
        ports = {key: stack.enter_context(_gunicorn(url, env)) for key, _, _, env, _ in SUBJECTS}
        for key, _, path, _, _ in SUBJECTS:  # warm-up: workers import, pools fill
            load(ports[key], path, 1.0)
        for rep in range(repeats):
            # Rotate the order each repeat, and let each server drain before the next cell: a
            # CONN_MAX_AGE=0 server still works off its backlog (a connect per request) after
            # the load stops, and that CPU must not be charged to whoever runs next.
            order = SUBJECTS[rep % len(SUBJECTS) :] + SUBJECTS[: rep % len(SUBJECTS)]
            for key, subject, path, _, _ in order:
                cell = load(ports[key], path, duration)
                samples[key].append(cell)
                say(f"[django] {subject:<44} rep {rep + 1}: {cell['ops_s']:8.0f} req/s")
                _drain(ports[key], path)
    rows = []
    for key, subject, path, _, ours in SUBJECTS:
        cells = samples[key]
        med = statistics.median(c["ops_s"] for c in cells)
        mid = min(cells, key=lambda c: abs(c["ops_s"] - med))
        rows.append(
            {
                "suite": "django",
                "scenario": SCENARIO,
                "subject": subject,
                "ops_s": round(med, 1),
                "p50_ms": mid["p50_ms"],
                "p99_ms": mid["p99_ms"],
                "errors": sum(c["errors"] for c in cells),
                "ops": sum(c["ops"] for c in cells),
                "ours": ours,
                "note": f"GET {path}, Connection: close, load by {generator}, "
                f"{repeats} x {duration:g} s",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.django_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short cells (smoke run)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per cell (median)")
    args = parser.parse_args(argv)
    rows = run(
        duration=args.duration,
        repeats=args.repeats,
        quick=args.quick,
        progress=lambda msg: print(msg, flush=True),
    )
    ours = next(r for r in rows if r["ours"])
    print(f"\n{SCENARIO}")
    for row in rows:
        ratio = ours["ops_s"] / row["ops_s"] if row["ops_s"] else float("inf")
        p50, p99 = (f"{v:.2f}" if v is not None else "-" for v in (row["p50_ms"], row["p99_ms"]))
        print(
            f"{row['subject']:<44} {row['ops_s']:>8,.0f} req/s  p50 {p50} ms  p99 {p99} ms  "
            f"errors {row['errors']}  pool/this {ratio:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
