"""asyncio: many tasks sharing a few connections, ``SELECT 1``, mysqlpool_ext against its peers.

    python -m benchmarks.async_bench [--tasks 64] [--conns 8] [--seconds 1.0] [--repeats 3]

Every variant runs in the same process against the same server, each cell in a fresh event loop,
the repeats interleaved (A B C D, A B C D, ...) and the median kept, so a noisy neighbour hurts
every subject alike. One operation = wait for a connection + ``SELECT 1`` + fetch + give back;
its latency therefore includes the wait in line, which is what a request handler feels.

- ``mysqlpool_ext aexecute_query``: ``await pool.aexecute_query("SELECT 1")`` (ours);
- ``mysqlpool_ext aconnection``: ``async with pool.aconnection() as c: await c.aexecute_query``;
- ``aiomysql pool``: ``async with pool.acquire()`` + cursor (its pool wakes waiters with an
  ``asyncio.Condition``: no FIFO guarantee);
- ``asyncmy pool + fair semaphore``: asyncmy's pool behind a FIFO semaphore of ``conns`` permits
  (asyncmy's own pool is not fair either);
- ``PyMySQL + to_thread``: ``conns`` PyMySQL connections in an ``asyncio.Queue``, each query run
  in a ``conns``-worker thread pool.

``worst_wait_ms`` is the longest single operation (the worst a task waited to be served);
``min_task_ops`` / ``max_task_ops`` show how evenly the tasks were served (starvation).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import math
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["run"]

SCENARIO = "SELECT 1, {tasks} tasks on {conns} connections"
#: What one operation runs: ``SELECT 1``, or the parse-bound read of issue 17 (the table is
#: ``benchmarks.core_bench.ROWS_TABLE``: 100 rows of INT, VARCHAR, DECIMAL, DATETIME).
WORKLOADS = {
    "select1": ("SELECT 1", SCENARIO),
    "rows100": (
        "SELECT id, name, amount, created FROM bench_rows ORDER BY id LIMIT 100",
        "100 rows x 4 columns (INT, VARCHAR, DECIMAL, DATETIME), {tasks} tasks on {conns} "
        "connections",
    ),
}
Op = Callable[[], Awaitable[Any]]


class FairSemaphore:
    """A FIFO semaphore: permits go to waiters strictly in arrival order, and a task that
    releases and re-acquires at once queues behind the others (no barging)."""

    def __init__(self, value: int) -> None:
        self._value = value
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> None:
        if self._value > 0 and not self._waiters:
            self._value -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # a permit handed over as we were cancelled: pass it on
            else:
                self._waiters.remove(fut)
            raise

    async def __aexit__(self, *exc_info: Any) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the permit passes directly to the first waiter
                return
        self._value += 1


def _kwargs(url_or_kwargs: str | dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(url_or_kwargs, dict):
        return dict(url_or_kwargs)
    from mysqlpool_ext.config import parse_url

    url = url_or_kwargs or os.environ.get("MYSQLPOOL_TEST_URL")
    if not url:
        raise SystemExit("async_bench: give a mysql:// URL, connect kwargs or MYSQLPOOL_TEST_URL")
    keep = ("host", "port", "user", "password", "database", "unix_socket")
    return {k: v for k, v in parse_url(url).items() if k in keep}


# -- subjects: each is an async context manager factory that yields one operation -------------


async def _ours_execute(
    kw: dict[str, Any], conns: int, sql: str
) -> tuple[Op, Callable[[], Awaitable[None]]]:
    from mysqlpool_ext import ConnectionPool

    _decoder(accelerated=True)
    pool = ConnectionPool(size=conns, max_size=conns, timeout=30, **kw)

    async def op() -> Any:
        return await pool.aexecute_query(sql)

    return op, pool.aclose


async def _ours_pure(
    kw: dict[str, Any], conns: int, sql: str
) -> tuple[Op, Callable[[], Awaitable[None]]]:
    """Ours with the pure-Python row decoder (as without a compiler, or MYSQLPOOL_NO_ACCEL=1)."""
    from mysqlpool_ext import ConnectionPool

    _decoder(accelerated=False)
    pool = ConnectionPool(size=conns, max_size=conns, timeout=30, **kw)

    async def op() -> Any:
        return await pool.aexecute_query(sql)

    async def close() -> None:
        await pool.aclose()
        _decoder(accelerated=True)

    return op, close


def _decoder(accelerated: bool) -> None:
    """Select our row decoder for the next cell (cells run one at a time)."""
    try:
        from mysqlpool_ext import _rows
    except ImportError:  # a tree without the result-set decoder
        return
    _rows.set_accelerated(accelerated)


async def _ours_block(
    kw: dict[str, Any], conns: int, sql: str
) -> tuple[Op, Callable[[], Awaitable[None]]]:
    from mysqlpool_ext import ConnectionPool

    _decoder(accelerated=True)
    pool = ConnectionPool(size=conns, max_size=conns, timeout=30, **kw)

    async def op() -> Any:
        async with pool.aconnection() as conn:
            return await conn.aexecute_query(sql)

    return op, pool.aclose


async def _aiomysql(
    kw: dict[str, Any], conns: int, sql: str
) -> tuple[Op, Callable[[], Awaitable[None]]]:
    import aiomysql

    args = {k: v for k, v in kw.items() if k != "database"}
    pool = await aiomysql.create_pool(
        minsize=conns, maxsize=conns, db=kw.get("database"), autocommit=True, **args
    )

    async def op() -> Any:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql)
            return await cur.fetchall()

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    return op, close


async def _asyncmy(
    kw: dict[str, Any], conns: int, sql: str
) -> tuple[Op, Callable[[], Awaitable[None]]]:
    import asyncmy

    pool = await asyncmy.create_pool(minsize=conns, maxsize=conns, autocommit=True, **kw)
    sem = FairSemaphore(conns)

    async def op() -> Any:
        async with sem, pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql)
            return await cur.fetchall()

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    return op, close


async def _to_thread(
    kw: dict[str, Any], conns: int, sql: str
) -> tuple[Op, Callable[[], Awaitable[None]]]:
    import pymysql

    loop = asyncio.get_running_loop()
    executor = concurrent.futures.ThreadPoolExecutor(conns)
    free: asyncio.Queue[Any] = asyncio.Queue()
    opened = await asyncio.gather(
        *(
            loop.run_in_executor(executor, lambda: pymysql.connect(autocommit=True, **kw))
            for _ in range(conns)
        )
    )
    for conn in opened:
        free.put_nowait(conn)

    def select1(conn: Any) -> Any:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    async def op() -> Any:
        conn = await free.get()
        try:
            return await loop.run_in_executor(executor, select1, conn)
        finally:
            free.put_nowait(conn)

    async def close() -> None:
        for conn in opened:
            conn.close()
        executor.shutdown(wait=False)

    return op, close


SUBJECTS: dict[str, tuple[Callable[..., Any], bool]] = {
    "mysqlpool_ext aexecute_query": (_ours_execute, True),
    "mysqlpool_ext aconnection": (_ours_block, True),
    "mysqlpool_ext, pure-Python decoder": (_ours_pure, True),
    "aiomysql pool": (_aiomysql, False),
    "asyncmy pool + fair semaphore": (_asyncmy, False),
    "PyMySQL + to_thread": (_to_thread, False),
}


# -- measuring --------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))]


async def _cell(
    factory: Callable[..., Any],
    kw: dict[str, Any],
    tasks: int,
    conns: int,
    seconds: float,
    sql: str = "SELECT 1",
) -> dict[str, Any]:
    op, close = await factory(kw, conns, sql)
    pc = time.perf_counter
    lat: list[float] = []
    per_task = [0] * tasks
    errors = 0
    first_error: str | None = None
    warm = 0.2
    t_start = pc()
    warm_end = t_start + warm
    stop = warm_end + seconds

    async def worker(i: int) -> None:
        nonlocal errors, first_error
        t = pc()
        while t < stop:
            try:
                await op()
            except Exception as exc:  # noqa: BLE001 - a failed operation is a result
                if first_error is None:
                    first_error = f"{type(exc).__name__}: {exc}"[:200]
                if t >= warm_end:
                    errors += 1
                t = pc()
                continue
            t2 = pc()
            if t >= warm_end:
                lat.append(t2 - t)
                per_task[i] += 1
            t = t2

    cpu0 = time.process_time()
    try:
        await asyncio.gather(*(worker(i) for i in range(tasks)))
        elapsed = pc() - warm_end
        cpu = time.process_time() - cpu0
    finally:
        await close()
    lat.sort()
    ms = 1000.0
    return {
        "qps": len(lat) / elapsed,
        "p50_ms": (_pct(lat, 50) or 0) * ms,
        "p99_ms": (_pct(lat, 99) or 0) * ms,
        "worst_wait_ms": (lat[-1] if lat else 0) * ms,
        "min_task_ops": min(per_task),
        "max_task_ops": max(per_task),
        "errors": errors,
        "first_error": first_error,
        # client CPU (user + system, all threads) per operation, warm-up included: robust to a
        # busy machine, unlike q/s
        "cpu_us_per_op": cpu / max(1, len(lat) + errors) * 1e6 * elapsed / (elapsed + warm),
    }


def run(
    url_or_kwargs: str | dict[str, Any] | None = None,
    tasks: int = 64,
    conns: int = 8,
    seconds: float | None = None,
    *,
    url: str | None = None,
    duration: float | None = None,
    repeats: int = 3,
    quick: bool = False,
    subjects: list[str] | None = None,
    workload: str = "all",
) -> list[dict[str, Any]]:
    """Measure every subject, interleaved, ``repeats`` times; one row (the medians) per subject.

    Rows carry the keys this module promises (``variant``, ``qps``, ``p50_ms``, ``p99_ms``,
    ``worst_wait_ms``, ``errors``) and those of the benchmarks runner (``suite``, ``scenario``,
    ``subject``, ``ops_s``, ``ours``), plus ``vs_aiomysql`` / ``vs_asyncmy`` throughput ratios.
    """
    if workload == "all":
        return [
            row
            for name in WORKLOADS
            for row in run(
                url_or_kwargs,
                tasks,
                conns,
                seconds,
                url=url,
                duration=duration,
                repeats=repeats,
                quick=quick,
                subjects=subjects,
                workload=name,
            )
        ]
    kw = _kwargs(url_or_kwargs if url_or_kwargs is not None else url)
    sql, scenario = WORKLOADS[workload]
    if workload == "rows100":
        _create_rows_table(kw)
    seconds = seconds or duration or (0.3 if quick else 1.0)
    if quick:
        repeats = 1
    names = subjects or list(SUBJECTS)
    cells: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for _ in range(max(1, repeats)):
        for name in names:
            factory = SUBJECTS[name][0]
            try:
                cells[name].append(asyncio.run(_cell(factory, kw, tasks, conns, seconds, sql)))
            except ImportError as exc:
                print(f"[async_bench] skip {name}: {exc}", file=sys.stderr)
                break
    rows = []
    for name in names:
        reps = cells[name]
        if not reps:
            continue
        row: dict[str, Any] = {
            key: statistics.median(r[key] for r in reps)
            for key in ("qps", "p50_ms", "p99_ms", "worst_wait_ms", "cpu_us_per_op")
        }
        # How evenly the tasks were served: the least even repeat (counts within one repeat).
        worst = max(reps, key=lambda r: r["max_task_ops"] / max(1, r["min_task_ops"]))
        row["min_task_ops"] = worst["min_task_ops"]
        row["max_task_ops"] = worst["max_task_ops"]
        row["errors"] = sum(r["errors"] for r in reps)
        first = next((r["first_error"] for r in reps if r["first_error"]), None)
        if first:
            row["first_error"] = first
        row.update(
            variant=name,
            subject=name,
            suite="async",
            scenario=scenario.format(tasks=tasks, conns=conns),
            workload=workload,
            ops_s=row["qps"],
            max_ms=row["worst_wait_ms"],
            ours=SUBJECTS[name][1],
            repeats_qps=[round(r["qps"]) for r in reps],
        )
        rows.append(row)
    by_name = {r["variant"]: r["qps"] for r in rows}
    for row in rows:
        # Paired: the median of per-round ratios (subjects of one round ran seconds apart), which
        # resists a machine whose load swings between rounds better than a ratio of medians.
        mine = cells[row["variant"]]
        for peer, key in (
            ("aiomysql pool", "paired_vs_aiomysql"),
            ("asyncmy pool + fair semaphore", "paired_vs_asyncmy"),
        ):
            theirs = cells.get(peer) or []
            pairs = [a["qps"] / b["qps"] for a, b in zip(mine, theirs) if b["qps"]]
            if pairs:
                row[key] = round(statistics.median(pairs), 2)
        for peer, key in (
            ("aiomysql pool", "vs_aiomysql"),
            ("asyncmy pool + fair semaphore", "vs_asyncmy"),
        ):
            if by_name.get(peer):
                row[key] = round(row["qps"] / by_name[peer], 2)
    return rows


def _create_rows_table(kw: dict[str, Any]) -> None:
    import pymysql

    from .core_bench import create_rows_table

    conn = pymysql.connect(autocommit=True, **kw)
    try:
        with conn.cursor() as cur:
            create_rows_table(cur)
    finally:
        conn.close()


def _print(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'variant':32} {'q/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'worst ms':>9} "
        f"{'tasks served':>13} {'err':>4} {'/aiomysql':>9} {'/asyncmy':>8} {'cpu us/op':>9}"
        f" {'paired /aiomysql /asyncmy':>26}"
    )
    print(head)
    for r in rows:
        served = f"{r['min_task_ops']}-{r['max_task_ops']}"
        print(
            f"{r['variant']:32} {r['qps']:8.0f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
            f"{r['worst_wait_ms']:9.1f} {served:>13} {r['errors']:4d} "
            f"{r.get('vs_aiomysql', float('nan')):9.2f} {r.get('vs_asyncmy', float('nan')):8.2f} "
            f"{r['cpu_us_per_op']:9.1f} "
            f"{r.get('paired_vs_aiomysql', float('nan')):17.2f} "
            f"{r.get('paired_vs_asyncmy', float('nan')):8.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.async_bench", description=__doc__)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", action="append", choices=list(SUBJECTS))
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    args = parser.parse_args(argv)
    url = os.environ.get("MYSQLPOOL_TEST_URL")
    if url:
        rows = run(
            url,
            args.tasks,
            args.conns,
            args.seconds,
            repeats=args.repeats,
            subjects=args.only,
            workload=args.workload,
        )
    else:
        from ._harness import bench_server

        with bench_server() as server:
            print(f"server: {server.version} ({server.source})")
            rows = run(
                server.kwargs,
                args.tasks,
                args.conns,
                args.seconds,
                repeats=args.repeats,
                subjects=args.only,
                workload=args.workload,
            )
    _print(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
