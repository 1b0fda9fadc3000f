"""What giving a connection back costs: clean, dirty, and the reset-every-time policies of others.

    python -m benchmarks.reset_bench [--rounds 5] [--ops 2000]

One thread, a pool of one connection, paired rounds (every cell once per round, in rotating
order; the median per cell is reported) so the machine's load swings hit all cells alike:

- ``raw DO 1``: PyMySQL on one connection, the floor for a statement;
- ``borrow+return, nothing run``: ``with pool.connection(): pass`` (reset="auto"): no round trip;
- ``DO 1 + clean return``: a statement that changes nothing, then give back (no reset);
- ``SET @x + auto reset``: a statement that changes the session, then give back: the pool sends
  COM_RESET_CONNECTION and the connect-time state, pipelined, one round trip;
- ``DO 1 + reset="session"``: the reset after every borrow (MariaDB Connector/J's
  ``useResetConnection``, the Node.js connector's ``resetAfterUse``);
- ``DO 1 + ROLLBACK``: SQLAlchemy's and DBUtils' reset-on-return (one round trip, every time).

It also counts the bytes the server received (``Bytes_received``) over the clean cycles: zero.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import pymysql

from mysqlpool_ext import ConnectionPool, config

from ._harness import bench_server


def _timed(fn: Callable[[], None], ops: int) -> tuple[float, float]:
    """(wall µs, CPU µs) per operation."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(ops):
        fn()
    return (
        (time.perf_counter() - wall) / ops * 1e6,
        (time.process_time() - cpu) / ops * 1e6,
    )


def run(url: str, rounds: int = 5, ops: int = 2000) -> dict[str, Any]:
    kw = config.parse_url(url)
    connect = {k: v for k, v in kw.items() if k in config.CONNECT_PARAMS}
    raw = pymysql.connect(**connect, autocommit=True)
    admin = pymysql.connect(**connect, autocommit=True)
    auto = ConnectionPool(size=1, max_size=1, name="bench-auto", **connect)
    session = ConnectionPool(size=1, max_size=1, name="bench-session", reset="session", **connect)

    def raw_do() -> None:
        raw.query("DO 1")

    def raw_do_rollback() -> None:
        raw.query("DO 1")
        raw.rollback()

    def clean() -> None:
        with auto.connection():
            pass

    def do_clean() -> None:
        with auto.connection() as c:
            c.query("DO 1")

    def dirty() -> None:
        with auto.connection() as c:
            c.query("SET @x = 1")

    def do_session() -> None:
        with session.connection() as c:
            c.query("DO 1")

    cells: dict[str, Callable[[], None]] = {
        "raw DO 1": raw_do,
        "borrow+return, nothing run": clean,
        "DO 1 + clean return": do_clean,
        "SET @x + auto reset": dirty,
        'DO 1 + reset="session"': do_session,
        "DO 1 + ROLLBACK (SQLAlchemy-style)": raw_do_rollback,
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cells}
    names = list(cells)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            results[name].append(_timed(cells[name], ops))

    def received() -> int:
        with admin.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Bytes_received'")
            return int(cur.fetchone()[1])

    first = received()
    control = received() - first  # what asking costs
    before = received()
    for _ in range(ops):
        clean()
    clean_bytes = received() - before - control

    table = {
        name: {
            "wall_us": round(statistics.median(w for w, _ in values), 2),
            "cpu_us": round(statistics.median(c for _, c in values), 2),
        }
        for name, values in results.items()
    }
    for pool in (auto, session):
        pool.close()
    raw.close()
    admin.close()
    return {"cells": table, "clean_cycles": ops, "clean_bytes_received": clean_bytes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args(argv)
    with bench_server() as server:
        out = run(server.url, args.rounds, args.ops)
    base = out["cells"]["raw DO 1"]["wall_us"]
    print("| cell | wall µs/op | CPU µs/op | vs raw DO 1 |")
    print("|---|---:|---:|---:|")
    for name, cell in out["cells"].items():
        print(f"| {name} | {cell['wall_us']} | {cell['cpu_us']} | {cell['wall_us'] / base:.2f}× |")
    print(
        f"\nBytes received by the server over {out['clean_cycles']} clean borrow+return cycles: "
        f"{out['clean_bytes_received']}"
    )


if __name__ == "__main__":
    main()
