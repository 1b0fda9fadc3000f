"""Before and after, in the same run: this checkout against an earlier revision of the pool.

    python -m benchmarks.ab_bench [--before de1203f] [--rounds 3] [--seconds 3]

Why: a change to the pool's structure (issue 15's one core) must not make it slower, and on a
shared 2-core machine only a same-run comparison means anything. The earlier revision is checked
out with ``git worktree`` into a temporary directory; every cell runs in a fresh interpreter that
imports the package from one tree, against one shared server, the subjects alternating round by
round (their order rotating), and the figure kept is the process's CPU time per operation
(less moved by the neighbours than q/s), median over rounds, with the paired ratio
after ÷ before per round.

Subjects: ``before`` (the revision), ``after`` (this checkout, with the compiled row decoder when
``scripts/build_accel.py`` has built it) and ``after, pure decoder`` (``MYSQLPOOL_NO_ACCEL=1``).
Cells: ``async`` — 64 asyncio tasks on 8 connections, ``await pool.aexecute_query("SELECT 1")``;
``borrow`` — one thread, ``get_connection()`` + ``close()``; ``block`` — one thread, an empty
``with pool.connection():``; ``threads`` — 32 threads on 8 connections,
``pool.execute_query("SELECT 1")``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from ._harness import bench_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Runs one cell in a fresh interpreter; prints {"ops": n, "cpu_us": CPU µs per operation}.
CHILD = r"""
import asyncio, json, os, sys, time
from mysqlpool_ext import ConnectionPool
from mysqlpool_ext.config import parse_url

cell, seconds = sys.argv[1], float(sys.argv[2])
kw = {k: v for k, v in parse_url(os.environ["MYSQLPOOL_TEST_URL"]).items()
      if k in ("host", "port", "user", "password", "database")}

def timed(loop_body):
    c0 = time.process_time()
    n = loop_body()
    return n, (time.process_time() - c0) / n * 1e6

if cell == "async":
    async def main():
        pool = ConnectionPool(size=8, max_size=8, **kw)
        stop = time.perf_counter() + seconds
        count = [0]
        async def worker():
            while time.perf_counter() < stop:
                await pool.aexecute_query("SELECT 1")
                count[0] += 1
        await asyncio.gather(*(worker() for _ in range(64)))  # warm-up, connections opened
        stop = time.perf_counter() + seconds
        count[0] = 0
        c0 = time.process_time()
        await asyncio.gather(*(worker() for _ in range(64)))
        cpu = (time.process_time() - c0) / count[0] * 1e6
        pool.close()
        return count[0], cpu
    n, cpu = asyncio.run(main())
elif cell == "threads":
    import threading
    pool = ConnectionPool(size=8, max_size=8, timeout=30, **kw)
    count = [0] * 32
    def worker(i, until):
        while time.perf_counter() < until:
            pool.execute_query("SELECT 1")
            count[i] += 1
    def run_threads():
        until = time.perf_counter() + seconds
        threads = [threading.Thread(target=worker, args=(i, until)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    run_threads()  # warm-up
    count[:] = [0] * 32
    n, cpu = timed(lambda: (run_threads(), sum(count))[1])
    pool.close()
else:
    pool = ConnectionPool(size=2, max_size=2, **kw)
    if cell == "borrow":
        def op():
            pool.get_connection().close()
    else:
        def op():
            with pool.connection():
                pass
    for _ in range(2000):
        op()
    def body():
        n, stop = 0, time.perf_counter() + seconds
        while time.perf_counter() < stop:
            for _ in range(500):
                op()
            n += 500
        return n
    n, cpu = timed(body)
    pool.close()
print(json.dumps({"ops": n, "cpu_us": cpu}))
"""

CELLS = ("async", "borrow", "block", "threads")


def _run(tree: str, cell: str, seconds: float, url: str, source: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MYSQLPOOL_NO_ACCEL"}
    env["MYSQLPOOL_TEST_URL"] = url
    env["PYTHONPATH"] = tree
    if source:
        env["MYSQLPOOL_NO_ACCEL"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, cell, str(seconds)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 60,
    )
    if out.returncode != 0:
        raise SystemExit(f"[ab_bench] {cell} in {tree} failed:\n{out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["cpu_us"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_bench", description=__doc__)
    parser.add_argument("--before", default="de1203f", help="the earlier revision (git)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--cell", action="append", choices=CELLS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        before = os.path.join(tmp, "before")
        subprocess.run(
            ["git", "-C", ROOT, "worktree", "add", "--detach", before, args.before],
            check=True,
            capture_output=True,
        )
        try:
            with bench_server() as server:
                _compare(server.url, before, args)
        finally:
            subprocess.run(
                ["git", "-C", ROOT, "worktree", "remove", "--force", before], capture_output=True
            )
    return 0


def _compare(url: str, before: str, args: argparse.Namespace) -> None:
    subjects = [
        ("before", before, False),
        ("after", ROOT, False),
        ("after, pure decoder", ROOT, True),
    ]
    print(f"before = {args.before}; load average {os.getloadavg()}")
    for cell in args.cell or CELLS:
        cpu: dict[str, list[float]] = {name: [] for name, _, _ in subjects}
        for r in range(args.rounds):
            order = subjects[r % 3 :] + subjects[: r % 3]
            for name, tree, source in order:
                cpu[name].append(_run(tree, cell, args.seconds, url, source))
        base = cpu["before"]
        for name, _, _ in subjects:
            paired = [a / b for a, b in zip(cpu[name], base, strict=True)]
            print(
                f"{cell:7} {name:20} CPU µs/op median {statistics.median(cpu[name]):7.2f} "
                f"(rounds {', '.join(f'{x:.2f}' for x in cpu[name])}); "
                f"÷ before, paired median {statistics.median(paired):.3f}"
            )
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    sys.exit(main())
