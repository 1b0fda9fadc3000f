"""Issue 11, "Beyond the list": a bounded chaos run over both faces at once.

Threads (blocking face) and asyncio tasks (async face) share one pool and do random operations:

- ``token``: ``SELECT <unique token>``: the answer must be the borrower's own token;
- ``block``: a transaction inserting N rows tagged with a unique block id; sometimes the block
  raises an exception of its own half-way (an ``Exception``, or a ``BaseException`` as an
  interrupt would), sometimes (async) the task is cancelled mid-block;

while a killer thread KILLs the pool's server connections, the (private) server restarts once,
and the pool is closed and replaced once. Afterwards:

- every token query that returned, returned its own token;
- a block that raised in its body committed nothing; a block that ended normally committed all
  of its rows; no block committed part of its rows (a block whose COMMIT itself failed is "in
  doubt": all or nothing, counted);
- ``stats()`` agrees with the server's process list, nothing is in use or waiting;
- no thread or task is still running.

The figures it saw are recorded (``figures``) and printed in the terminal summary.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest

from mysqlpool_ext import ConnectionPool
from mysqlpool_ext._server import ThrowawayServer

THREADS, TASKS = 4, 4
RUN_SECONDS = 16.0
RESTART_AT, REBUILD_AT = 5.0, 10.0
KILL_EVERY = 0.15
OP_BOUND = 8.0  # no single operation may take longer (the pool's timeout is 2 s)
POOL_OPTIONS: dict[str, Any] = {
    "size": 3,
    "max_size": 5,
    "timeout": 2,
    "connect_timeout": 2,
    "read_timeout": 5,
    "write_timeout": 5,
}


class Boom(Exception):
    """The borrower's own exception, raised inside a block."""


class Interrupt(BaseException):
    """An interrupt raised inside a block (what Ctrl-C or a signal handler's timeout is)."""


@dataclass
class Block:
    block_id: int
    rows: int
    outcome: str = "running"  # ok | raised-in-body | failed-at-commit | cancelled
    error: str = ""


@dataclass
class Chaos:
    """What every worker records, under one lock."""

    lock: threading.Lock
    stop: threading.Event
    pool_holder: list[ConnectionPool]
    blocks: list[Block]
    outcomes: Counter[str]
    wrong_tokens: list[str]
    slow_ops: list[str]

    def note(self, what: str) -> None:
        with self.lock:
            self.outcomes[what] += 1


_ids = itertools.count(1)


def next_id() -> int:
    return next(_ids)


def _error_name(exc: BaseException) -> str:
    code = exc.args[0] if isinstance(exc, pymysql.err.MySQLError) and exc.args else ""
    return f"{type(exc).__name__}{code and f'({code})'}"


# -- the blocking face ----------------------------------------------------------------------------


def thread_worker(chaos: Chaos, seed: int) -> None:
    rng = random.Random(seed)
    while not chaos.stop.is_set():
        pool = chaos.pool_holder[0]
        start = time.monotonic()
        kind = "token" if rng.random() < 0.6 else "block"
        try:
            if kind == "token":
                token = f"t{next_id()}"
                row = pool.execute_query("SELECT %s", (token,), return_one=True)
                if row != (token,):
                    with chaos.lock:
                        chaos.wrong_tokens.append(f"{token} -> {row!r}")
                chaos.note("sync token ok")
            else:
                sync_block(chaos, pool, rng)
        except (Exception, Interrupt) as exc:  # noqa: BLE001 - every failure is counted
            chaos.note(f"sync {kind} {_error_name(exc)}")
        took = time.monotonic() - start
        if took > OP_BOUND:
            with chaos.lock:
                chaos.slow_ops.append(f"sync {kind} took {took:.1f} s")


def sync_block(chaos: Chaos, pool: ConnectionPool, rng: random.Random) -> None:
    block = Block(next_id(), rng.randint(1, 4))
    with chaos.lock:
        chaos.blocks.append(block)
    raise_at = rng.randint(0, block.rows) if rng.random() < 0.3 else -1
    body_done = False
    try:
        with pool.transaction() as conn:
            for n in range(block.rows):
                if n == raise_at:
                    if rng.random() < 0.3:
                        raise Interrupt("interrupted inside the block")
                    raise Boom("the borrower's own error")
                conn.execute_query(
                    "INSERT INTO chaos_t (block, n) VALUES (%s, %s)", (block.block_id, n)
                )
            body_done = True
    except BaseException as exc:
        block.outcome = "failed-at-commit" if body_done else "raised-in-body"
        block.error = _error_name(exc)
        raise
    block.outcome = "ok"
    chaos.note("sync block ok")


# -- the async face -------------------------------------------------------------------------------


async def task_worker(chaos: Chaos, seed: int) -> None:
    rng = random.Random(seed)
    while not chaos.stop.is_set():
        pool = chaos.pool_holder[0]
        start = time.monotonic()
        roll = rng.random()
        kind = "token" if roll < 0.5 else "block" if roll < 0.85 else "cancel"
        try:
            if kind == "token":
                token = f"a{next_id()}"
                row = await asyncio.wait_for(
                    pool.aexecute_query("SELECT %s", (token,), return_one=True), OP_BOUND
                )
                if row != (token,):
                    with chaos.lock:
                        chaos.wrong_tokens.append(f"{token} -> {row!r}")
                chaos.note("async token ok")
            elif kind == "block":
                await asyncio.wait_for(async_block(chaos, pool, rng), OP_BOUND)
            else:
                task = asyncio.ensure_future(async_block(chaos, pool, rng))
                await asyncio.sleep(rng.random() * 0.01)
                task.cancel()
                done, _ = await asyncio.wait([task], timeout=OP_BOUND)
                if not done:
                    with chaos.lock:
                        chaos.slow_ops.append("a cancelled block did not end")
                elif not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
                chaos.note("async cancel done")
        except asyncio.TimeoutError:
            with chaos.lock:
                chaos.slow_ops.append(f"async {kind} still running after {OP_BOUND} s")
        except Exception as exc:  # noqa: BLE001 - every failure is an allowed, counted outcome
            chaos.note(f"async {kind} {_error_name(exc)}")
        took = time.monotonic() - start
        if took > OP_BOUND + 1:
            with chaos.lock:
                chaos.slow_ops.append(f"async {kind} took {took:.1f} s")


async def async_block(chaos: Chaos, pool: ConnectionPool, rng: random.Random) -> None:
    block = Block(next_id(), rng.randint(1, 4))
    with chaos.lock:
        chaos.blocks.append(block)
    raise_at = rng.randint(0, block.rows) if rng.random() < 0.3 else -1
    body_done = False
    try:
        async with pool.atransaction() as conn:
            for n in range(block.rows):
                if n == raise_at:
                    raise Boom("the borrower's own error")
                await conn.aexecute_query(
                    "INSERT INTO chaos_t (block, n) VALUES (%s, %s)", (block.block_id, n)
                )
            body_done = True
    except asyncio.CancelledError:
        block.outcome = "failed-at-commit" if body_done else "cancelled"
        raise
    except BaseException as exc:
        block.outcome = "failed-at-commit" if body_done else "raised-in-body"
        block.error = _error_name(exc)
        raise
    block.outcome = "ok"
    chaos.note("async block ok")


# -- the adversary --------------------------------------------------------------------------------


def killer(server: ThrowawayServer, user: str, stop: threading.Event, kills: list[int]) -> None:
    rng = random.Random(7)
    root: pymysql.connections.Connection | None = None
    while not stop.wait(KILL_EVERY):
        try:
            if root is None:
                root = pymysql.connect(
                    **server.root_connect_kwargs(), autocommit=True, connect_timeout=1
                )
            with root.cursor() as cur:
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,)
                )
                ids = [int(r[0]) for r in cur.fetchall()]
                if ids:
                    cur.execute("KILL %s", (rng.choice(ids),))
                    kills.append(1)
        except pymysql.err.MySQLError:
            if root is not None:
                root.close() if root.open else None
            root = None
    if root is not None and root.open:
        root.close()


def processlist_count(server: ThrowawayServer, user: str) -> int:
    root = pymysql.connect(**server.root_connect_kwargs(), autocommit=True)
    try:
        with root.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (user,)
            )
            (count,) = cur.fetchone()
        return int(count)
    finally:
        root.close()


def committed_rows(server: ThrowawayServer) -> dict[int, int]:
    root = pymysql.connect(**server.root_connect_kwargs(), autocommit=True)
    try:
        with root.cursor() as cur:
            cur.execute("SELECT block, COUNT(*) FROM chaos_t GROUP BY block")
            return {int(b): int(n) for b, n in cur.fetchall()}
    finally:
        root.close()


# -- the run --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.faults
async def test_chaos(private_server: ThrowawayServer, figures: Callable[..., None]) -> None:
    server = private_server
    root = pymysql.connect(**server.root_connect_kwargs(), autocommit=True)
    with root.cursor() as cur:
        cur.execute(
            "CREATE TABLE chaos_t (id INT AUTO_INCREMENT PRIMARY KEY, block INT, n INT,"
            " UNIQUE KEY (block, n)) ENGINE=InnoDB"
        )
    root.close()
    user = server.user
    chaos = Chaos(
        lock=threading.Lock(),
        stop=threading.Event(),
        pool_holder=[ConnectionPool(**server.connect_kwargs(), **POOL_OPTIONS)],
        blocks=[],
        outcomes=Counter(),
        wrong_tokens=[],
        slow_ops=[],
    )
    pools = list(chaos.pool_holder)
    kills: list[int] = []
    kill_stop = threading.Event()
    kill_thread = threading.Thread(
        target=killer, args=(server, user, kill_stop, kills), name="killer", daemon=True
    )
    threads = [
        threading.Thread(target=thread_worker, args=(chaos, i), name=f"chaos-{i}", daemon=True)
        for i in range(THREADS)
    ]
    started = time.monotonic()
    tasks = [asyncio.create_task(task_worker(chaos, 100 + i)) for i in range(TASKS)]
    for t in [*threads, kill_thread]:
        t.start()
    restart_s = rebuild_s = None
    try:
        await asyncio.sleep(RESTART_AT)
        t0 = time.monotonic()
        await asyncio.to_thread(server.restart)
        restart_s = time.monotonic() - t0
        await asyncio.sleep(max(0.0, started + REBUILD_AT - time.monotonic()))
        t0 = time.monotonic()
        new_pool = ConnectionPool(**server.connect_kwargs(), **POOL_OPTIONS)
        pools.append(new_pool)
        old, chaos.pool_holder[0] = chaos.pool_holder[0], new_pool
        await asyncio.to_thread(old.close)
        rebuild_s = time.monotonic() - t0
        await asyncio.sleep(max(0.0, started + RUN_SECONDS - time.monotonic()))
    finally:
        kill_stop.set()
        chaos.stop.set()
        end = time.monotonic() + 10
        for t in [*threads, kill_thread]:
            await asyncio.to_thread(t.join, max(0.0, end - time.monotonic()))
        _, pending = await asyncio.wait(tasks, timeout=max(0.1, end - time.monotonic()))
        for task in pending:
            task.cancel()
    hung_threads = [t.name for t in threads if t.is_alive()]
    hung_tasks = len(pending)

    # The final pool, after the chaos: flush out connections the killer left dead in it (a
    # borrow checks them), then its counts must match the server's process list.
    pool = chaos.pool_holder[0]
    held = []
    try:
        for _ in range(pool.max_size):
            held.append(pool.get_connection(timeout=2))
    except pymysql.err.Error:
        pass
    for conn in held:
        conn.close()
    deadline = time.monotonic() + 3
    while True:  # the server reaps a session a moment after the client closed it
        stats = pool.stats()
        on_server = processlist_count(server, user)
        if stats["pool_size"] == on_server or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)

    rows = committed_rows(server)
    by_outcome = Counter(b.outcome for b in chaos.blocks)
    lost = [b for b in chaos.blocks if b.outcome == "ok" and rows.get(b.block_id, 0) != b.rows]
    phantom = [
        b
        for b in chaos.blocks
        if b.outcome in ("raised-in-body", "cancelled") and rows.get(b.block_id, 0)
    ]
    partial = [b for b in chaos.blocks if rows.get(b.block_id, 0) not in (0, b.rows)]
    in_doubt = [b for b in chaos.blocks if b.outcome == "failed-at-commit"]
    figures(
        seconds=round(time.monotonic() - started, 1),
        ops=sum(chaos.outcomes.values()),
        kills=len(kills),
        restart_s=restart_s and round(restart_s, 2),
        rebuild_s=rebuild_s and round(rebuild_s, 2),
        blocks=dict(by_outcome),
        in_doubt_committed=sum(1 for b in in_doubt if rows.get(b.block_id)),
        in_doubt_errors=dict(Counter(b.error or "cancelled" for b in in_doubt)),
        outcomes=dict(chaos.outcomes.most_common(12)),
        final_stats={k: stats[k] for k in ("pool_size", "in_use", "requests_waiting")},
        processlist=on_server,
    )
    for p in pools:
        p.close()
    problems = {
        "wrong tokens": chaos.wrong_tokens[:5],
        "ok blocks missing rows": [(b.block_id, b.rows, rows.get(b.block_id)) for b in lost][:5],
        "raised blocks with rows": [(b.block_id, b.outcome, b.error) for b in phantom][:5],
        "partial blocks": [(b.block_id, b.rows, rows.get(b.block_id)) for b in partial][:5],
        "operations past their bound": chaos.slow_ops[:5],
        "threads still running": hung_threads,
        "tasks still running": hung_tasks,
        "stats vs process list": (
            f"pool_size={stats['pool_size']} process list={on_server}"
            if stats["pool_size"] != on_server
            else ""
        ),
        "still in use / waiting": (
            f"in_use={stats['in_use']} waiting={stats['requests_waiting']}"
            if stats["in_use"] or stats["requests_waiting"]
            else ""
        ),
    }
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, problems
    assert chaos.outcomes["sync token ok"] and chaos.outcomes["async token ok"], chaos.outcomes
