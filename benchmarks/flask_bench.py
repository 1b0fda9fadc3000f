"""Flask: the example shop's ``GET /users/<id>`` under gunicorn, the extension vs its peers.

    python -m benchmarks.flask_bench [--quick] [--duration S] [--repeats N]

One endpoint, ``SELECT id, name FROM users WHERE id=%s`` returned as JSON, served by gunicorn
(2 workers x 4 threads, gthread), 32 concurrent clients, every request with ``Connection: close``
(with keep-alive one worker takes almost every client and the figures swing 2x):

- ``mysqlpool_ext``: ``example_apps/flask_app`` as a user would run it — ``MySQLPool`` +
  ``current_pool.execute_query`` (size 4 per worker, one connection per thread);
- ``Flask-SQLAlchemy pool_size=4``: ``db.session.execute(text(...))`` on SQLAlchemy's QueuePool;
- ``new PyMySQL connection per request``: ``pymysql.connect()`` in the view, default options
  (PyMySQL then builds a TLS context on every connect: the usual cost of doing this);
- ``... ssl_disabled=True``: the same without that cost (the fastest a connection per request gets);
- ``Flask, no database``: the same route returning a constant — the ceiling of the stack here.

All servers run at the same time and the cells are interleaved (repeat 1 of every subject, then
repeat 2...), so a noisy neighbour hurts them alike; each figure is the median of its repeats.
The load generator is ``wrk`` (``apt-get install wrk``); without it, a Python thread-pool client
(slower: it competes with the servers for the two cores; the rows say so).

The peer apps are the factories below (``sqlalchemy_app``, ``pymysql_app``, ``nodb_app``); gunicorn
imports them as ``benchmarks.flask_bench:sqlalchemy_app()``. Flask-SQLAlchemy is in the ``bench``
extra.
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
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, abort
from flask.typing import ResponseReturnValue

from benchmarks._http import _free_port, _get, _pyload, _wrk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS, THREADS, CLIENTS = 2, 4, 32
PATH = "/users/1"
BENCH_DB = "mysqlpool_flask_bench"
SCENARIO = (
    f"Flask view, 1 SELECT by primary key; gunicorn {WORKERS} workers x {THREADS} threads, "
    f"{CLIENTS} clients"
)
QUERY = "SELECT id, name FROM users WHERE id=%s"

#: (key, subject, gunicorn app, ours, needs)
SUBJECTS: tuple[tuple[str, str, str, bool, str | None], ...] = (
    ("pool", "mysqlpool_ext (MySQLPool + current_pool)", "example_apps.flask_app.app:create_app()",
     True, None),
    ("sqlalchemy", f"Flask-SQLAlchemy pool_size={THREADS}",
     "benchmarks.flask_bench:sqlalchemy_app()", False, "flask_sqlalchemy"),
    ("newconn", "new PyMySQL connection per request", "benchmarks.flask_bench:pymysql_app()",
     False, None),
    ("newconn_nossl", "new PyMySQL connection per request, ssl_disabled=True",
     "benchmarks.flask_bench:pymysql_app(ssl_disabled=True)", False, None),
    ("nodb", "Flask, no database (ceiling)", "benchmarks.flask_bench:nodb_app()", False, None),
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# The peer apps (imported by gunicorn in the worker processes)
# --------------------------------------------------------------------------------------------


def _connect_kwargs() -> dict[str, Any]:
    from mysqlpool_ext.config import parse_url

    params = parse_url(os.environ["MYSQLPOOL_URL"])
    keep = ("host", "port", "user", "password", "database", "unix_socket")
    return {k: v for k, v in params.items() if k in keep}


def sqlalchemy_app() -> Flask:
    """Flask-SQLAlchemy 3 with ``pool_size=4``, the same query through the session."""
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy import text

    parts = urlsplit(os.environ["MYSQLPOOL_URL"])
    app = Flask("bench_sqlalchemy")
    app.config["SQLALCHEMY_DATABASE_URI"] = urlunsplit(parts._replace(scheme="mysql+pymysql"))
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": THREADS}
    db = SQLAlchemy(app)
    query = text("SELECT id, name FROM users WHERE id=:id")

    @app.get("/users/<int:uid>")
    def user(uid: int) -> ResponseReturnValue:
        row = db.session.execute(query, {"id": uid}).mappings().first()
        if row is None:
            abort(404)
        return dict(row)

    return app


def pymysql_app(ssl_disabled: bool = False) -> Flask:
    """A new PyMySQL connection per request, closed at the end of the view."""
    import pymysql
    import pymysql.cursors

    kwargs = _connect_kwargs()
    if ssl_disabled:
        kwargs["ssl_disabled"] = True
    app = Flask("bench_pymysql")

    @app.get("/users/<int:uid>")
    def user(uid: int) -> ResponseReturnValue:
        conn = pymysql.connect(**kwargs, cursorclass=pymysql.cursors.DictCursor)
        try:
            with conn.cursor() as cur:
                cur.execute(QUERY, (uid,))
                row = cur.fetchone()
        finally:
            conn.close()
        if row is None:
            abort(404)
        return row  # type: ignore[no-any-return]

    return app


def nodb_app() -> Flask:
    """The same route with no database: what Flask + gunicorn serve here at most."""
    app = Flask("bench_nodb")

    @app.get("/users/<int:uid>")
    def user(uid: int) -> ResponseReturnValue:
        return {"id": uid, "name": "Ada"}

    return app


# --------------------------------------------------------------------------------------------
# Servers and load
# --------------------------------------------------------------------------------------------


def _bench_url(url: str) -> str:
    """A database of the benchmark's own, if the account may create one (else the URL's)."""
    import pymysql

    try:
        conn = pymysql.connect(**_kwargs_of(url), autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {BENCH_DB}")
        finally:
            conn.close()
    except pymysql.err.MySQLError:
        return url
    return urlunsplit(urlsplit(url)._replace(path=f"/{BENCH_DB}"))


def _kwargs_of(url: str) -> dict[str, Any]:
    from mysqlpool_ext.config import parse_url

    keep = ("host", "port", "user", "password", "unix_socket")
    return {k: v for k, v in parse_url(url).items() if k in keep}


def _env(url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MYSQLPOOL_", "FLASK_")) and k != "DATABASE_URL"
    }
    env.update(
        MYSQLPOOL_URL=url,
        FLASK_MYSQLPOOL_SIZE=str(THREADS),
        FLASK_SHOP_CREATE_SCHEMA="false",
        PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
    )
    return env


def _prepare(url: str) -> None:
    """Create the example shop's tables and rows once, as ``create_app()`` does at start-up."""
    code = "from example_apps.flask_app.app import create_app; create_app()"
    subprocess.run(
        [sys.executable, "-c", code],
        env={**_env(url), "FLASK_SHOP_CREATE_SCHEMA": "true"},
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(master: int) -> float | None:
    """CPU time (user + system) used so far by gunicorn's worker processes, from /proc (Linux).

    Throughput on a shared 2-core machine moves with the neighbours' load; the CPU each request
    costs the app does not, so the rows report both."""
    try:
        with open(f"/proc/{master}/task/{master}/children") as f:
            workers = [int(p) for p in f.read().split()]
        total = 0
        for pid in workers:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, ValueError, IndexError):
        return None
    return total / _TICK


@contextmanager
def _gunicorn(url: str, app: str) -> Iterator[tuple[int, int]]:
    port = _free_port()
    cmd = [
        sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "--threads", str(THREADS),
        "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "--log-level", "warning", app,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"gunicorn {app} exited with {proc.returncode}: {err[-2000:]}")
            try:
                if _get(port, PATH, timeout=2) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn {app} did not answer within 30 s")
            time.sleep(0.1)
        yield port, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _available(needs: str | None) -> bool:
    if needs is None:
        return True
    import importlib.util

    return importlib.util.find_spec(needs) is not None


def run(
    url: str | None = None,
    duration: float = 5.0,
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
    # Web cells need longer than the core's sub-second cells: a connection per request with TLS
    # set-up serves ~80 req/s.
    duration = max(duration, 1.0 if quick else 3.0)
    repeats = 1 if quick else max(1, min(repeats, 3))
    load = _wrk if shutil.which("wrk") else _pyload
    generator = "wrk" if load is _wrk else "Python threads (wrk not installed)"
    subjects = [s for s in SUBJECTS if _available(s[4])]
    for key, subject, _, _, needs in SUBJECTS:
        if (key, subject) not in {(s[0], s[1]) for s in subjects}:
            say(f"[flask] skip {subject}: {needs} is not installed (pip install -e '.[bench]')")
    url = _bench_url(url)
    _prepare(url)
    samples: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in subjects}
    with ExitStack() as stack:
        servers = {key: stack.enter_context(_gunicorn(url, app)) for key, _, app, _, _ in subjects}
        for key, *_ in subjects:  # warm-up: workers import, pools fill
            load(servers[key][0], PATH, 1.0)
        for rep in range(repeats):
            for key, subject, *_ in subjects:
                port, master = servers[key]
                cpu0 = _cpu_seconds(master)
                cell = load(port, PATH, duration)
                cpu1 = _cpu_seconds(master)
                if cpu0 is not None and cpu1 is not None and cell["ops"]:
                    cell["cpu_us"] = (cpu1 - cpu0) / cell["ops"] * 1e6
                samples[key].append(cell)
                cpu = f"{cell['cpu_us']:6.0f} us CPU/req" if "cpu_us" in cell else ""
                say(f"[flask] {subject:<54} rep {rep + 1}: {cell['ops_s']:8.0f} req/s {cpu}")
    rows = []
    for key, subject, _, ours, _ in subjects:
        cells = samples[key]
        med = statistics.median(c["ops_s"] for c in cells)
        mid = min(cells, key=lambda c: abs(c["ops_s"] - med))
        cpus = [c["cpu_us"] for c in cells if "cpu_us" in c]
        rows.append(
            {
                "suite": "flask",
                "scenario": SCENARIO,
                "subject": subject,
                "ops_s": round(med, 1),
                "p50_ms": mid["p50_ms"],
                "p99_ms": mid["p99_ms"],
                "errors": sum(c["errors"] for c in cells),
                "ops": sum(c["ops"] for c in cells),
                "ours": ours,
                # CPU the gunicorn workers spent per request (median): steadier than req/s
                # when other jobs share the machine.
                "app_cpu_us_per_req": round(statistics.median(cpus), 1) if cpus else None,
                "note": f"GET {PATH}, Connection: close, load by {generator}, "
                f"{repeats} x {duration:g} s",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flask_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short cells (smoke run)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
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
        cpu = row.get("app_cpu_us_per_req")
        ours_cpu = ours.get("app_cpu_us_per_req")
        cpu_text = ""
        if cpu and ours_cpu:
            cpu_text = f"  app CPU {cpu:5.0f} us/req (this/ours {cpu / ours_cpu:.2f}x)"
        print(
            f"{row['subject']:<54} {row['ops_s']:>8,.0f} req/s  p50 {p50} ms  p99 {p99} ms  "
            f"errors {row['errors']}  ours/this {ratio:.2f}x{cpu_text}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
