"""Many tasks, few connections: FIFO, cancel-safe, never blocking the loop, shared with threads.

"Lent twice at once" is checked on the server's side of the connection: each borrower records the
``CONNECTION_ID()`` it holds, and nobody may hold an id somebody else holds.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time
from typing import Any

import pytest
from aiokit import MakePool, Ticker

from mysqlpool_ext import GetConnectionFromPoolError


class Holders:
    """Who holds which server connection right now; records any double lending."""

    def __init__(self) -> None:
        self.holding: dict[int, Any] = {}
        self.doubles: list[tuple[int, Any, Any]] = []
        self.seen: set[int] = set()
        self._lock = threading.Lock()

    def enter(self, cid: int, who: Any) -> None:
        with self._lock:
            if cid in self.holding:
                self.doubles.append((cid, self.holding[cid], who))
            self.holding[cid] = who
            self.seen.add(cid)

    def leave(self, cid: int) -> None:
        with self._lock:
            self.holding.pop(cid, None)


async def test_200_tasks_on_a_pool_of_8(make_pool: MakePool) -> None:
    pool = make_pool(size=8, max_size=8, timeout=30)
    holders = Holders()
    done = [0] * 200

    async def task(i: int) -> None:
        for _ in range(5):
            async with pool.aconnection() as conn:
                (cid,) = await conn.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
                holders.enter(cid, i)
                assert await conn.aexecute_query("SELECT %s", (i,)) == ((i,),)
                holders.leave(cid)
            assert (await pool.aexecute_query("SELECT %s + 1", (i,)))[0][0] == i + 1
            done[i] += 1

    await asyncio.wait_for(asyncio.gather(*(task(i) for i in range(200))), 60)
    assert done == [5] * 200
    assert holders.doubles == []
    assert len(holders.seen) <= 8
    stats = pool.stats()
    assert stats["in_use"] == 0 and stats["requests_waiting"] == 0
    assert stats["pool_size"] <= 8 and stats["connections_num"] <= 8
    assert stats["requests_num"] == 2000 and stats["requests_queued"] > 1000
    assert stats["connections_lost"] == 0 and stats["requests_errors"] == 0


async def test_random_cancellations_lose_no_slot(make_pool: MakePool) -> None:
    """Tasks cancelled at random points (waiting, mid-query, giving back): afterwards every slot
    is back, no connection was ever lent to two borrowers, and none answered out of turn."""
    rng = random.Random(6)
    pool = make_pool(size=8, max_size=8, timeout=30)
    holders = Holders()
    completed = 0

    async def worker(i: int) -> None:
        nonlocal completed
        while True:
            async with pool.aconnection() as conn:
                (cid,) = await conn.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
                holders.enter(cid, i)
                try:
                    pause = rng.choice((0, 0, 0.001, 0.004))
                    assert await conn.aexecute_query("SELECT SLEEP(%s), %s", (pause, i)) == (
                        (0, i),
                    )
                    # Same server session, and the answer to *this* query: no cross-talk.
                    again = await conn.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
                    assert again == (cid,)
                finally:
                    holders.leave(cid)
            completed += 1

    tasks = [asyncio.ensure_future(worker(i)) for i in range(48)]
    cancelled = 0
    for n in range(200):
        await asyncio.sleep(rng.uniform(0, 0.004))
        k = rng.randrange(len(tasks))
        tasks[k].cancel()
        cancelled += 1
        tasks[k] = asyncio.ensure_future(worker(100 + n))
    for t in tasks:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    # Only cancellations: an AssertionError or a driver error would show up here.
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results
    assert holders.doubles == []
    assert completed > 100 and cancelled == 200

    stats = pool.stats()
    assert stats["in_use"] == 0 and stats["requests_waiting"] == 0
    assert stats["pool_size"] <= 8
    # Every slot is back: 8 borrowers at once, 8 different server connections that work.
    conns = [await pool.aget_connection(timeout=10) for _ in range(8)]
    ids = {(await c.aexecute_query("SELECT CONNECTION_ID()"))[0][0] for c in conns}
    assert len(ids) == 8
    with pytest.raises(GetConnectionFromPoolError):
        await pool.aget_connection(timeout=0.05)
    for c in conns:
        c.close()
    assert pool.stats()["in_use"] == 0


async def _until(predicate: Any, timeout: float = 5.0) -> None:
    """Wait for a condition the pool offers no event for (a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


async def test_cancelled_just_after_being_handed_a_slot(make_pool: MakePool) -> None:
    pool = make_pool(size=1, max_size=1)
    held = await pool.aget_connection()
    waiter = asyncio.ensure_future(pool.aexecute_query("SELECT 1", timeout=10))
    await _until(lambda: pool.stats()["requests_waiting"] == 1)
    held.close()  # hands the slot straight to the waiter...
    waiter.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await waiter
    stats = pool.stats()
    assert stats["in_use"] == 0 and stats["pool_available"] == 1 and stats["pool_size"] == 1
    assert await pool.aexecute_query("SELECT 2", timeout=1) == ((2,),)


async def test_cancelled_just_after_being_handed_a_permit(make_pool: MakePool) -> None:
    pool = make_pool(size=1, max_size=1)
    held = await pool.aget_connection()
    waiter = asyncio.ensure_future(pool.aexecute_query("SELECT 1", timeout=10))
    await _until(lambda: pool.stats()["requests_waiting"] == 1)
    held.__dict__["_mp_broken"] = True
    held.close()  # discarded: its capacity becomes a permit for the waiter...
    waiter.cancel()  # ...which is cancelled before it could use it
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.stats()["pool_size"] <= 1
    assert await pool.aexecute_query("SELECT 3", timeout=5) == ((3,),)
    stats = pool.stats()
    assert stats["in_use"] == 0 and stats["pool_size"] == 1


async def test_cancelled_while_its_connection_is_opened(make_pool: MakePool) -> None:
    """The connect runs in a thread and cannot be interrupted: the pool adopts the connection."""
    pool = make_pool(size=1, max_size=1, lazy=True)
    opener = asyncio.ensure_future(pool.aexecute_query("SELECT 1"))
    await _until(
        lambda: pool.stats()["pool_size"] == 1
    )  # it holds the permit, the connect has started
    opener.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opener
    await _until(lambda: pool.size() == 1)
    stats = pool.stats()
    assert stats["pool_size"] == 1 and stats["in_use"] == 0
    assert await pool.aexecute_query("SELECT 4", timeout=1) == ((4,),)


async def test_cancelled_mid_query_discards_the_connection(make_pool: MakePool) -> None:
    pool = make_pool(size=1, max_size=1)
    (cid,) = await pool.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(pool.aexecute_query("SELECT SLEEP(5)"), 0.2)
    stats = pool.stats()
    assert stats["connections_lost"] == 1 and stats["in_use"] == 0
    (cid2,) = await pool.aexecute_query("SELECT CONNECTION_ID()", return_one=True, timeout=5)
    assert cid2 != cid  # a new connection: the old one's protocol state was unknown


async def test_fifo_order(make_pool: MakePool) -> None:
    """Waiters are served in arrival order; a borrower that gives back and asks again at once
    queues behind them instead of jumping the line."""
    pool = make_pool(size=1, max_size=1, timeout=10)
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with pool.aconnection():
            await release.wait()
        async with pool.aconnection():  # asks again right after giving back
            order.append("holder")

    async def waiter(name: str) -> None:
        async with pool.aconnection() as conn:
            await conn.aexecute_query("SELECT 1")
            order.append(name)

    tasks = [asyncio.ensure_future(holder())]
    await _until(lambda: pool.stats()["in_use"] == 1)
    for i, name in enumerate("ABCD", start=1):
        tasks.append(asyncio.ensure_future(waiter(name)))
        await _until(lambda i=i: pool.stats()["requests_waiting"] == i)
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["A", "B", "C", "D", "holder"]


async def test_no_starvation_64_tasks_on_8(make_pool: MakePool) -> None:
    """Every task is served, and about equally often (a naive queue starves most of them)."""
    pool = make_pool(size=8, max_size=8, timeout=30)
    counts = [0] * 64
    longest = [0.0] * 64
    stop = time.perf_counter() + 1.5

    async def task(i: int) -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await pool.aexecute_query("SELECT 1")
            longest[i] = max(longest[i], time.perf_counter() - t)
            counts[i] += 1

    await asyncio.gather(*(task(i) for i in range(64)))
    spread = min(counts) / max(counts)
    print(
        f"\nserved per task: min {min(counts)}, median {statistics.median(counts)}, "
        f"max {max(counts)} (spread {spread:.2f}); worst wait {max(longest) * 1000:.1f} ms"
    )
    assert min(counts) > 0
    assert spread > 0.8


async def test_a_slow_query_does_not_stop_the_loop(make_pool: MakePool, ticker: Ticker) -> None:
    pool = make_pool(size=1)
    ticker.start()
    try:
        assert await pool.aexecute_query("SELECT SLEEP(0.3)") == ((0,),)
    finally:
        await ticker.stop()
    # Blocked, the loop would tick 0 times in those 300 ms; it ticks every ~2 ms.
    assert ticker.ticks >= 30


async def test_loop_stays_responsive(make_pool: MakePool, ticker: Ticker) -> None:
    """Connecting (a lazy pool opens its 8 connections under load) and slow queries never block
    the loop: run serially, the 48 ``SLEEP(0.1)`` below alone would take 4.8 s."""
    pool = make_pool(size=8, max_size=8, lazy=True, timeout=30)
    ticker.start()
    try:

        async def task(i: int) -> None:
            for _ in range(3):
                await pool.aexecute_query("SELECT SLEEP(0.1)" if i % 4 == 0 else "SELECT 1")
            async with pool.atransaction() as conn:
                await conn.aexecute_query("SELECT %s", (i,))

        started = time.monotonic()
        await asyncio.gather(*(task(i) for i in range(64)))
        took = time.monotonic() - started
    finally:
        await ticker.stop()
    print(f"\nworst loop lag {ticker.worst * 1000:.1f} ms, {ticker.ticks} ticks in {took:.2f} s")
    assert pool.stats()["connections_num"] == 8
    assert took < 3.5
    # Loose: this machine's own scheduling noise reaches tens of ms; a blocked loop would show
    # whole queries (100 ms each) and connects back to back.
    assert ticker.worst < 0.25


async def test_threads_and_tasks_share_one_pool(make_pool: MakePool) -> None:
    """Sync borrowers in threads and async borrowers in tasks wait in one FIFO line."""
    pool = make_pool(size=4, max_size=4, timeout=30)
    holders = Holders()
    errors: list[BaseException] = []
    thread_done = [0] * 4
    task_done = [0] * 32

    def thread_body(i: int) -> None:
        try:
            for _ in range(60):
                with pool.connection() as conn:
                    (cid,) = conn.execute_query("SELECT CONNECTION_ID()", return_one=True)
                    holders.enter(cid, f"thread {i}")
                    assert conn.execute_query("SELECT %s", (i,)) == ((i,),)
                    holders.leave(cid)
                thread_done[i] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    async def task_body(i: int) -> None:
        for _ in range(20):
            async with pool.aconnection() as conn:
                (cid,) = await conn.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
                holders.enter(cid, f"task {i}")
                assert await conn.aexecute_query("SELECT %s", (i,)) == ((i,),)
                holders.leave(cid)
            task_done[i] += 1

    threads = [threading.Thread(target=thread_body, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(task_body(i) for i in range(32))), 60)
    finally:
        for t in threads:
            await asyncio.to_thread(t.join, 60)
    assert errors == []
    assert thread_done == [60] * 4 and task_done == [20] * 32
    assert holders.doubles == []
    assert len(holders.seen) <= 4
    stats = pool.stats()
    assert stats["in_use"] == 0 and stats["requests_waiting"] == 0 and stats["pool_size"] <= 4


async def test_timeouts(make_pool: MakePool) -> None:
    pool = make_pool(size=1, max_size=1)
    held = await pool.aget_connection()
    started = time.monotonic()
    with pytest.raises(GetConnectionFromPoolError) as info:
        await pool.aexecute_query("SELECT 1", timeout=0.2)
    took = time.monotonic() - started
    assert 0.18 <= took < 2.0
    assert "no connection available after waiting" in str(info.value)
    assert repr(pool.name) in str(info.value)
    with pytest.raises(GetConnectionFromPoolError):  # timeout=0: do not wait at all
        await pool.aexecute_query("SELECT 1", timeout=0)
    with pytest.raises(asyncio.TimeoutError):  # the caller's own deadline cancels the wait
        await asyncio.wait_for(pool.aexecute_query("SELECT 1", timeout=10), 0.1)
    stats = pool.stats()
    assert stats["requests_waiting"] == 0 and stats["requests_errors"] == 2
    held.close()
    assert await pool.aexecute_query("SELECT 1", timeout=0) == ((1,),)


async def test_each_wait_ends_at_its_own_deadline(make_pool: MakePool) -> None:
    """Waits share one deadline timer per pool and loop: a short deadline queued behind a long
    one still ends on time, and the long wait is still served."""
    pool = make_pool(size=1, max_size=1)
    held = await pool.aget_connection()
    long_wait = asyncio.ensure_future(pool.aexecute_query("SELECT 1", timeout=10))
    await _until(lambda: pool.stats()["requests_waiting"] == 1)
    started = time.monotonic()
    short = [asyncio.ensure_future(pool.aexecute_query("SELECT 1", timeout=t)) for t in (0.4, 0.2)]
    ended: list[float] = []
    for fut in asyncio.as_completed(short):
        with pytest.raises(GetConnectionFromPoolError):
            await fut
        ended.append(time.monotonic() - started)
    assert 0.18 <= ended[0] < 0.35 and 0.38 <= ended[1] < 2.0
    assert not long_wait.done()
    held.close()
    assert await long_wait == ((1,),)


async def test_deadline_of_a_wait_from_another_loop(make_pool: MakePool) -> None:
    """A pool used from two event loops at once: each loop's waits end at their deadlines."""
    pool = make_pool(size=1, max_size=1)
    held = await pool.aget_connection()
    here = asyncio.ensure_future(pool.aexecute_query("SELECT 1", timeout=10))
    await _until(lambda: pool.stats()["requests_waiting"] == 1)
    outcome: list[Any] = []

    def other_loop() -> None:
        started = time.monotonic()
        try:
            asyncio.run(pool.aexecute_query("SELECT 1", timeout=0.2))
        except GetConnectionFromPoolError as exc:
            outcome.append((exc, time.monotonic() - started))

    thread = threading.Thread(target=other_loop)
    thread.start()
    await asyncio.to_thread(thread.join, 5)
    assert len(outcome) == 1 and 0.18 <= outcome[0][1] < 2.0
    held.close()
    assert await here == ((1,),)
