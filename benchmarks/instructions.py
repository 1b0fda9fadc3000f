"""Instructions per operation, counted by valgrind: a figure the shared machine's noise cannot move.

    python -m benchmarks.instructions [--cells async_select1,borrow,sync_select1,django_get]

Timed ratios on these 2-core VMs swing by 5-10 % from one run to the next, which is as large as
most single optimisations. Each cell here runs a small driver twice under ``valgrind
--tool=callgrind`` (user-space instructions of the whole process), once with ``short`` and once
with ``long`` operations after the same warm-up; the difference divided by the extra operations
is the cost of one operation, start-up and warm-up cancelling out. Repeated runs agree to within
about 1 %.

What it does not see: the kernel (system calls, the loopback network), and how fast the
instructions run (cache misses, which grow with the code and data a request touches). It tells
whether a change made the Python work smaller, not the CPU time; the timed benchmarks, ratios
against peers in the same run, stay the targets (BENCHMARKS.md).

Cells (each subject a separate process):

- ``async_select1``: ``pool.aexecute_query("SELECT 1")``, 64 tasks on 8 connections, against
  asyncmy's pool behind a fair semaphore (``benchmarks.async_bench``'s subjects);
- ``borrow``: ``pool.get_connection()`` + ``close()``, one thread;
- ``sync_select1``: one thread, ``SELECT 1`` through a cursor: raw PyMySQL, our ``Connection``
  unpooled, and borrowed from a pool per query;
- ``django_get``: a whole Django request (``GET /orm/products/1`` of the example project through
  its WSGI handler, as ``benchmarks.django_cpu``): the ENGINE against ``CONN_MAX_AGE=60``;
- ``django_gunicorn``: the same request through gunicorn (one worker, 4 threads, ``Connection:
  close``, 4 clients), counting the worker process only: HTTP parsing, gunicorn's threads and the
  request's lifecycle included, as ``benchmarks.django_bench`` runs it (there with 2 workers).

Needs valgrind (``apt-get install valgrind``) and a server (``MYSQLPOOL_TEST_URL``, else the
tests' throwaway MariaDB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: cell -> (subjects, operations of the short and the long run)
CELLS: dict[str, tuple[tuple[str, ...], int, int]] = {
    "async_select1": (("ours", "asyncmy"), 10, 60),  # per task: x 64 operations
    "borrow": (("ours",), 0, 5000),
    "sync_select1": (("raw", "conn", "pool"), 0, 3000),
    "django_get": (("pool", "orm60"), 100, 600),
    "django_gunicorn": (("pool", "orm60"), 200, 1200),
}
_TASKS = 64


# -- the drivers: one cell and subject, ``n`` operations after a warm-up ---------------------------


def _drive(cell: str, subject: str, n: int, url: str) -> None:
    from ._harness import url_kwargs

    kwargs = url_kwargs(url, ("host", "port", "user", "password", "database"))
    if cell == "async_select1":
        asyncio.run(_drive_async(subject, n, kwargs))
    elif cell == "borrow":
        from mysqlpool_ext import ConnectionPool

        pool = ConnectionPool(size=4, max_size=4, **kwargs)
        for count in (1000, n):
            for _ in range(count):
                pool.get_connection().close()
        pool.close()
    elif cell == "sync_select1":
        _drive_select1(subject, n, kwargs)
    elif cell == "django_get":
        from . import django_cpu
        from .django_bench import _env

        os.environ.update(_env(url, django_cpu.SUBJECTS[subject]))
        app = django_cpu._handler()
        django_cpu._requests(app, "/orm/products/1", 300)
        django_cpu._requests(app, "/orm/products/1", n)
    else:
        raise SystemExit(f"unknown cell {cell!r}")


async def _drive_async(subject: str, n: int, kwargs: dict[str, Any]) -> None:
    from . import async_bench

    factory = async_bench._ours_execute if subject == "ours" else async_bench._asyncmy
    op, close = await factory(kwargs, 8, "SELECT 1")

    async def worker(count: int) -> None:
        for _ in range(count):
            await op()

    await asyncio.gather(*(worker(20) for _ in range(_TASKS)))
    await asyncio.gather(*(worker(n) for _ in range(_TASKS)))
    await close()


def _drive_select1(subject: str, n: int, kwargs: dict[str, Any]) -> None:
    import pymysql

    from mysqlpool_ext import Connection, ConnectionPool

    def select1(conn: Any) -> None:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
        cur.close()

    if subject == "pool":
        pool = ConnectionPool(size=8, max_size=8, **kwargs)

        def op() -> None:
            conn = pool.get_connection()
            select1(conn)
            conn.close()

    else:
        conn = (pymysql.connect if subject == "raw" else Connection)(**kwargs)

        def op() -> None:
            select1(conn)

    for count in (500, n):
        for _ in range(count):
            op()


# -- the coordinator -------------------------------------------------------------------------------


def _count(cell: str, subject: str, n: int, url: str) -> int:
    if cell == "django_gunicorn":
        return _count_gunicorn(subject, n, url)
    env = dict(os.environ, MYSQLPOOL_TEST_URL=url, PYTHONHASHSEED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-m", "benchmarks.instructions", "--drive", cell, subject, str(n)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"{cell}/{subject}: valgrind run failed:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def _serve(port: int, path: str, count: int, subject: str) -> None:
    """``count`` requests from 4 client threads (the worker's 4 threads each busy)."""
    import threading

    from ._http import _get

    left = iter(range(count))
    lock = threading.Lock()
    failed: list[int] = []

    def client() -> None:
        while True:
            with lock:
                if next(left, None) is None:
                    return
            status = _get(port, path, timeout=300)
            if status != 200:
                failed.append(status)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise RuntimeError(f"django_gunicorn/{subject}: HTTP {failed[:5]}")


def _count_gunicorn(subject: str, n: int, url: str) -> int:
    """The worker's instructions: gunicorn runs under callgrind (which follows its fork), is
    warmed up, serves ``n`` more requests from 4 client threads and is stopped gracefully."""
    import signal

    from . import django_cpu
    from ._http import _free_port, _get
    from .django_bench import WSGI, _env

    port = _free_port()
    env = _env(url, django_cpu.SUBJECTS[subject])
    env["PYTHONHASHSEED"] = "1"
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-m", "gunicorn", "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{port}",
         "--timeout", "0", "--graceful-timeout", "300", "--log-level", "warning", WSGI],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    path = "/orm/products/1"
    try:
        deadline = time.monotonic() + 300
        while True:  # the worker imports Django under valgrind: a while
            try:
                _get(port, path, timeout=300)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        for count in (300, n):
            _serve(port, path, count, subject)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=600)
    counts = {
        int(pid): int(value) for pid, value in re.findall(r"==(\d+)== Collected : (\d+)", err)
    }
    workers = [value for pid, value in counts.items() if pid != proc.pid]
    if len(workers) != 1:
        raise RuntimeError(f"django_gunicorn/{subject}: no single worker in:\n{err[-2000:]}")
    return workers[0]


def run(url: str, cells: list[str], say: Any = print) -> list[dict[str, Any]]:
    rows = []
    for cell in cells:
        subjects, short, long = CELLS[cell]
        per = _TASKS if cell == "async_select1" else 1
        first = None
        for subject in subjects:
            extra = _count(cell, subject, long, url) - _count(cell, subject, short, url)
            value = extra / ((long - short) * per)
            first = first or value
            row = {"cell": cell, "subject": subject, "instructions_per_op": round(value),
                   "vs_first": round(value / first, 3)}  # fmt: skip
            rows.append(row)
            say(f"{cell:14} {subject:8} {value:12,.0f} instructions/op  ({row['vs_first']:.3f}x)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument(
        "--cells", default=",".join(CELLS), help="comma-separated, of: " + ", ".join(CELLS)
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows to FILE")
    parser.add_argument(
        "--drive", nargs=3, metavar=("CELL", "SUBJECT", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.drive:
        cell, subject, n = args.drive
        _drive(cell, subject, int(n), os.environ["MYSQLPOOL_TEST_URL"])
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("benchmarks.instructions needs valgrind: apt-get install valgrind")
    cells = [c for c in args.cells.split(",") if c]
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; choose from {list(CELLS)}")
    from ._harness import bench_server

    with bench_server() as server:
        if "django_get" in cells or "django_gunicorn" in cells:
            from ._harness import url_kwargs
            from .django_bench import _prepare

            _prepare(server.url, url_kwargs(server.url))
        rows = run(server.url, cells)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
