"""Fault 7: a borrower drops its connection without giving it back; and leak_timeout."""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import pytest

from mysqlpool_ext import ConnectionPool, GetConnectionFromPoolError

pytestmark = pytest.mark.faults


def leaky_handler(pool: ConnectionPool) -> int:
    """Borrows and forgets to give back, as buggy request handlers do."""
    conn = pool.get_connection()  # LEAK-SITE
    return int(conn.execute_query("SELECT 1", return_one=True)[0])


def line_of(marker: str) -> int:
    with open(__file__) as source:
        return next(
            i for i, line in enumerate(source, 1) if marker in line and "line_of" not in line
        )


def test_leaked_connection_is_reclaimed_and_logged(
    db_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture, figures: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="mysqlpool_ext")
    with ConnectionPool(size=1, max_size=1, timeout=0.2, **db_kwargs) as pool:
        assert leaky_handler(pool) == 1
        gc.collect()
        started = time.monotonic()
        with pool.connection(timeout=5) as conn:  # the only slot: it must be back
            reclaimed_s = time.monotonic() - started
            assert conn.execute_query("SELECT 1") == ((1,),)
        stats = pool.stats()
    warnings = [r.getMessage() for r in caplog.records if "garbage-collected" in r.getMessage()]
    figures(reclaimed_s=reclaimed_s, leaks=stats["leaks"], log=warnings[0] if warnings else "")
    assert stats["leaks"] == 1
    assert len(warnings) == 1
    assert f"test_leak.py:{line_of('LEAK-SITE')}" in warnings[0]


def test_leak_without_gc_still_times_out(db_kwargs: dict[str, Any]) -> None:
    """Control: a borrower that keeps its reference really holds the slot."""
    with ConnectionPool(size=1, max_size=1, timeout=0.2, **db_kwargs) as pool:
        kept = pool.get_connection()
        with pytest.raises(GetConnectionFromPoolError):
            pool.get_connection()
        kept.close()


def test_leak_timeout_logs_the_borrowers_stack(
    db_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture, figures: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="mysqlpool_ext")
    with ConnectionPool(size=1, leak_timeout=0.3, **db_kwargs) as pool:
        held = pool.get_connection()  # HELD-SITE
        deadline = time.monotonic() + 5
        while not any("leak_timeout" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no leak_timeout warning within 5 s"
            time.sleep(0.05)
        logged_after = time.monotonic() - (deadline - 5)
        held.close()
    message = next(r.getMessage() for r in caplog.records if "leak_timeout" in r.getMessage())
    figures(logged_after_s=logged_after)
    assert f'test_leak.py", line {line_of("HELD-SITE")}' in message
    assert "test_leak_timeout_logs_the_borrowers_stack" in message


def _lent_once(pool: ConnectionPool) -> None:
    """The pool's one connection, once reclaimed, is lent to one borrower at a time."""
    first = pool.get_connection(timeout=5)  # waits for the reclaim
    try:
        with pytest.raises(GetConnectionFromPoolError):
            pool.get_connection(timeout=0.3)
    finally:
        first.close()
    stats = pool.stats()
    # Counted as a leak if the lease's finaliser ran first (the collector's order is its own).
    assert (stats["pool_size"], stats["in_use"]) == (1, 0) and stats["leaks"] <= 1


@pytest.mark.parametrize("in_transaction", [False, True])
def test_a_borrower_collected_in_a_cycle_gives_back_once(
    db_kwargs: dict[str, Any], in_transaction: bool
) -> None:
    """A generator holding ``with conn:`` is dropped inside a reference cycle: the collector
    runs the lease's finaliser (a leak: reclaimed) and then the generator's (``with`` ends:
    a give-back) on the same borrow. One give-back only, or the connection is lent twice; and
    the transaction it left open is rolled back, not committed."""
    with ConnectionPool(size=1, max_size=1, timeout=1, **db_kwargs) as pool:
        pool.execute_query("CREATE TABLE IF NOT EXISTS leak_cycle (v INT)")
        pool.execute_query("DELETE FROM leak_cycle")

        def rows(conn: Any) -> Any:
            with conn:
                if in_transaction:
                    conn.begin()
                    conn.execute_query("INSERT INTO leak_cycle VALUES (1)")
                yield conn.execute_query("SELECT 1")
                yield conn.execute_query("SELECT 2")

        class Holder:
            pass

        holder = Holder()
        holder.self = holder  # type: ignore[attr-defined]
        holder.gen = rows(pool.get_connection())  # type: ignore[attr-defined]
        next(holder.gen)  # type: ignore[attr-defined]
        del holder
        gc.collect()
        _lent_once(pool)
        assert pool.execute_query("SELECT COUNT(*) FROM leak_cycle") == ((0,),)
        pool.execute_query("DROP TABLE leak_cycle")


def test_a_task_dropped_with_its_closed_loop_gives_back_once(db_kwargs: dict[str, Any]) -> None:
    """A task holding ``async with pool.aconnection()`` is dropped with its event loop (closed
    without cancelling it): the lease's finaliser and the coroutine's both run. One give-back."""
    import asyncio
    import threading

    with ConnectionPool(size=1, max_size=1, timeout=1, **db_kwargs) as pool:

        def run_and_abandon() -> None:
            loop = asyncio.new_event_loop()
            holding = asyncio.Event()

            async def holder() -> None:
                async with pool.aconnection() as conn:
                    await conn.aexecute_query("SELECT 1")
                    holding.set()
                    await asyncio.Event().wait()  # for ever

            task = loop.create_task(holder())
            loop.run_until_complete(asyncio.wait_for(holding.wait(), 10))
            assert not task.done()
            loop.close()

        thread = threading.Thread(target=run_and_abandon)
        thread.start()
        thread.join()
        gc.collect()
        _lent_once(pool)
