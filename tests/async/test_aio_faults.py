"""The server dies under the async face: a clear error, a loop that keeps running, a pool that
recovers by itself once the server is back. Uses a private server (never the shared one)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pymysql
import pytest
from aiokit import Ticker

from mysqlpool_ext import ConnectionPool, GetConnectionFromPoolError
from mysqlpool_ext._server import ThrowawayServer

pytestmark = pytest.mark.faults


async def _until_running(pool: ConnectionPool, sql_prefix: str, timeout: float = 10) -> None:
    """Wait until the server shows ``sql_prefix`` running (a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (n,) = await pool.aexecute_query(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s",
            (sql_prefix + "%",),
            return_one=True,
        )
        if n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{sql_prefix!r} never showed up in the process list")


@pytest.mark.slow
async def test_server_killed_mid_query_then_restarted(
    private_server: ThrowawayServer, ticker: Ticker
) -> None:
    kwargs: dict[str, Any] = private_server.connect_kwargs()
    pool = ConnectionPool(size=4, max_size=4, timeout=10, reconnect_backoff_max=0.2, **kwargs)
    try:
        assert await pool.aexecute_query("SELECT 1") == ((1,),)
        ticker.start()
        victims = [asyncio.ensure_future(pool.aexecute_query("SELECT SLEEP(30)")) for _ in range(2)]
        await _until_running(pool, "SELECT SLEEP(30)")

        await asyncio.to_thread(private_server.kill)
        results = await asyncio.wait_for(asyncio.gather(*victims, return_exceptions=True), 10)
        for err in results:
            assert isinstance(err, pymysql.err.OperationalError), err
            assert err.args[0] == 2013
            assert "Lost connection to MySQL server during query" in err.args[1]

        # While it is down: a borrow fails within its deadline, saying why.
        started = time.monotonic()
        with pytest.raises((GetConnectionFromPoolError, pymysql.err.OperationalError)) as info:
            await pool.aexecute_query("SELECT 1", timeout=0.5)
        assert time.monotonic() - started < 3
        assert pool.name in str(info.value)

        await asyncio.to_thread(private_server.start)
        # Back: the very next call works (stale connections are checked and replaced).
        assert await pool.aexecute_query("SELECT 1", timeout=10) == ((1,),)
        rows = await asyncio.gather(*(pool.aexecute_query("SELECT %s", (i,)) for i in range(40)))
        assert rows == [((i,),) for i in range(40)]
        await ticker.stop()
        stats = pool.stats()
        assert stats["in_use"] == 0 and stats["pool_size"] <= 4
        assert stats["connections_lost"] >= 2
        assert not stats["server_unreachable"]
        print(f"\nworst loop lag through kill and restart: {ticker.worst * 1000:.1f} ms")
        assert ticker.worst < 0.25
    finally:
        await pool.aclose()


async def test_a_cancelled_statement_does_not_run_on_past_the_pool(make_pool: Any) -> None:
    """``asyncio.wait_for`` gives up on slow statements: each cancellation closes its
    connection at once, but MariaDB runs a statement to its end before it notices. The pool
    ends it on the server (KILL) and counts the connection against max_size until then: a
    storm of timeouts never piles up server connections beyond max_size."""
    pool = make_pool(size=1, max_size=2, timeout=5)
    sql = "SELECT SLEEP(5) /* cancelled-statement */"
    running = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = %s"
    for _ in range(6):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.aexecute_query(sql), 0.2)
    deadline = time.monotonic() + 3
    while pool.execute_query(running, (sql,), return_one=True)[0]:
        assert time.monotonic() < deadline, "cancelled statements still run on the server"
        await asyncio.sleep(0.02)
    stats = pool.stats()
    assert stats["in_use"] == 0 and stats["pool_size"] <= 2
