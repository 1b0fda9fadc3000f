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


def _sessions(db_kwargs: dict[str, Any], marker: str) -> int:
    """Sessions of the pool's account on the server running the marked statement."""
    conn = pymysql.connect(**db_kwargs)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                " WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                (f"%{marker}%",),
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["wait_for", "read_timeout"])
async def test_a_cancelled_statement_does_not_run_on_past_the_pool(
    make_pool: Any, db_kwargs: dict[str, Any], how: str
) -> None:
    """``asyncio.wait_for`` (or the pool's own ``read_timeout``) gives up on slow statements:
    each gives its connection up at once, but MariaDB runs a statement to its end before it
    notices. The pool ends it on the server (KILL, from one more connection at most) and
    counts the connection against max_size until then: a storm of timeouts never piles up
    server sessions beyond max_size + 1."""
    opts = {"read_timeout": 0.2} if how == "read_timeout" else {}
    pool = make_pool(size=1, max_size=3, timeout=10, **opts)
    marker = f"cancelled-statement-{how}"
    sql = f"SELECT SLEEP(30) /* {marker} */"
    peak = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, await asyncio.to_thread(_sessions, db_kwargs, marker))
            await asyncio.sleep(0.02)

    async def storm() -> None:
        with pytest.raises((asyncio.TimeoutError, pymysql.err.OperationalError)):
            await asyncio.wait_for(pool.aexecute_query(sql), 0.2 if how == "wait_for" else 30)

    sampler = asyncio.ensure_future(sample())
    await asyncio.gather(*(storm() for _ in range(12)))
    deadline = time.monotonic() + 5
    while _sessions(db_kwargs, marker):
        assert time.monotonic() < deadline, "cancelled statements still run on the server"
        await asyncio.sleep(0.02)
    stop.set()
    await sampler
    assert peak <= 3
    stats = pool.stats()
    assert stats["in_use"] == 0 and stats["pool_size"] <= 3


@pytest.mark.parametrize(
    ("shape", "opts"),
    [
        ("leading blanks", {}),
        ("emoji", {}),
        ("dict cursor pool", {"cursorclass": pymysql.cursors.DictCursor}),
    ],
)
async def test_the_interrupted_statement_is_found_on_the_server(
    make_pool: Any, db_kwargs: dict[str, Any], shape: str, opts: dict[str, Any]
) -> None:
    """The server lists a statement without its leading blanks, and its text column cannot
    hold a 4-byte character; the pool's cursor class may make rows dicts: none of it may stop
    the pool from finding (and KILLing) the statement it gave up on."""
    marker = f"found-{shape.replace(' ', '-')}"
    sql = {
        "leading blanks": f"\n    SELECT SLEEP(30) /* {marker} */",
        "emoji": f"SELECT SLEEP(30), '\U0001f600' /* {marker} */",
        "dict cursor pool": f"SELECT SLEEP(30) /* {marker} */",
    }[shape]
    pool = make_pool(size=1, max_size=1, timeout=10, charset="utf8mb4", **opts)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(pool.aexecute_query(sql), 0.3)
    deadline = time.monotonic() + 3
    while _sessions(db_kwargs, marker):
        assert time.monotonic() < deadline, "the interrupted statement runs on"
        await asyncio.sleep(0.02)
    assert (await pool.aexecute_query("SELECT 1 AS one", timeout=10))[0] in ((1,), {"one": 1})
