"""The async face returns what the sync face returns, and leaves connections as the sync face does.

Every query here also runs through the sync face, so a difference in conversions, row shapes,
row counts or errors would show.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import time
from typing import Any

import pymysql
import pymysql.cursors
import pytest
from aiokit import MakePool, seq

from mysqlpool_ext import ConnectionPool, ConnectionReturnedError
from mysqlpool_ext.connection import RowCount
from mysqlpool_ext.registry import set_default_pool
from mysqlpool_ext.scope import current_pool, request_scope

QUERIES: list[tuple[str, Any, dict[str, Any]]] = [
    ("SELECT 1", (), {}),
    ("SELECT 1, 'a', NULL, 2.5, CAST(3 AS UNSIGNED)", (), {}),
    ("SELECT %s AS x, %s AS y, %s AS z", (1, "é ✓", None), {"dictcursor": True}),
    ("SELECT %(a)s AS a, %(b)s AS b", {"a": b"\x00\xff", "b": 1.25}, {}),
    ("SELECT NOW() > '2000-01-01', CURDATE(), CAST('12:34:56' AS TIME)", (), {}),
    ("SELECT CAST(1.10 AS DECIMAL(10,2)), JSON_OBJECT('k', 1), X'DEADBEEF'", (), {}),
    (seq(5), (), {"return_one": True}),
    ("SELECT 1 FROM DUAL WHERE 1 = 0", (), {"return_one": True}),
    ("SELECT 1 FROM DUAL WHERE 1 = 0", (), {}),
    (seq(3, "seq * 2 AS d"), (), {"dictcursor": True}),
    ("DO 1", (), {}),
    ("SET @x = 5", (), {}),
]


@pytest.mark.parametrize(("query", "args", "opts"), QUERIES, ids=[q[0][:40] for q in QUERIES])
async def test_same_results_as_sync_face(
    make_pool: MakePool, query: str, args: Any, opts: dict[str, Any]
) -> None:
    pool = make_pool(size=1)
    sync = pool.execute_query(query, args, **opts)
    got = await pool.aexecute_query(query, args, **opts)
    if "NOW()" in query:
        assert got[0][0] == sync[0][0] == 1
        assert isinstance(got[0][1], datetime.date) and isinstance(got[0][2], datetime.timedelta)
    else:
        assert got == sync
        assert type(got) is type(sync)
    async with pool.aconnection() as conn:
        assert await conn.aexecute_query(query, args, **opts) == got or "NOW()" in query


@pytest.mark.parametrize(
    "cursorclass", [pymysql.cursors.SSCursor, pymysql.cursors.SSDictCursor], ids=["ss", "ssdict"]
)
async def test_an_unbuffered_cursor_class_gives_the_sync_faces_rows(
    make_pool: MakePool, cursorclass: Any
) -> None:
    """A pool opened with ``cursorclass=SSCursor``: the async face reads buffered, but its rows
    are what the cursor class gives (a list from ``fetchall()``), as the sync face's."""
    pool = make_pool(size=1, cursorclass=cursorclass)
    sync = pool.execute_query("SELECT 1 AS n, 'x' AS s")
    got = await pool.aexecute_query("SELECT 1 AS n, 'x' AS s")
    assert (type(got), got) == (type(sync), sync) == (list, sync)
    async with pool.aconnection() as conn:
        assert await conn.aexecute_query("SELECT 1 AS n, 'x' AS s") == sync


REPEATED: list[tuple[str, Any, dict[str, Any]]] = [
    *QUERIES,
    ("SELECT 1 AS a, 2 AS a, NULL AS b", (), {"dictcursor": True}),
    ("SELECT REPEAT('x', 300), REPEAT('é', 70000), NULL, ''", (), {}),
    ("SELECT %s, %s", ("é" * 100, b"\x00" * 70000), {"return_one": True}),
    (seq(300, "CONCAT('r', seq)", "NULL"), (), {}),
]


@pytest.mark.parametrize(("query", "args", "opts"), REPEATED, ids=[q[0][:40] for q in REPEATED])
async def test_repeated_query_same_results_and_state(
    make_pool: MakePool, query: str, args: Any, opts: dict[str, Any]
) -> None:
    """A result set whose columns a connection has seen before is parsed by the async face itself
    (cached column definitions): rows and the connection's state must still be PyMySQL's."""
    pool = make_pool(size=1)
    with pool.connection() as sync_conn:
        sync = sync_conn.execute_query(query, args, **opts)
        expected = _result_state(sync_conn)
    async with pool.aconnection() as conn:
        for _ in range(3):  # the first run fills the cache, the others read through it
            got = await conn.aexecute_query(query, args, **opts)
            if "NOW()" not in query:
                assert got == sync
                assert type(got) is type(sync)
                assert _result_state(conn) == expected


def _result_state(conn: Any) -> dict[str, Any]:
    result = conn._result
    state = {
        k: getattr(result, k, None)
        for k in (
            "affected_rows",
            "insert_id",
            "server_status",
            "warning_count",
            "message",
            "field_count",
            "description",
            "has_next",
            "unbuffered_active",
            "connection",
        )
    }
    state["rows"] = None if result.rows is None or "NOW()" in str(result.rows) else len(result.rows)
    state["fields"] = [vars(f) for f in getattr(result, "fields", [])]
    state["attributes"] = sorted(vars(result))
    state["converters"] = getattr(result, "converters", None)
    state["conn_affected"] = conn._affected_rows
    state["server_status_conn"] = conn.server_status
    return state


async def test_types_survive(make_pool: MakePool) -> None:
    pool = make_pool(size=1)
    row = await pool.aexecute_query(
        "SELECT CAST(1.10 AS DECIMAL(10,2)), CAST('2024-02-29 10:11:12' AS DATETIME), %s",
        (b"\x00\x01",),
        return_one=True,
    )
    assert row == (decimal.Decimal("1.10"), datetime.datetime(2024, 2, 29, 10, 11, 12), b"\x00\x01")


async def test_modifying_statements_return_rowcount(make_pool: MakePool, table: str) -> None:
    pool = make_pool(size=2)
    one = await pool.aexecute_query(f"INSERT INTO {table} (v, s) VALUES (%s, %s)", (1, "a"))
    assert isinstance(one, RowCount) and one == 1 and one.lastrowid == 1
    many = await pool.aexecute_query(
        f"INSERT INTO {table} (v, s) VALUES (%s, %s)",
        [(2, "b"), (3, "c"), (4, "d")],
        exec_many=True,
    )
    # PyMySQL's multi-row INSERT rewrite: one statement, lastrowid is its first id.
    assert many == 3 and many.lastrowid == 2
    upd = await pool.aexecute_query(f"UPDATE {table} SET v = v + 10 WHERE v >= %s", (3,))
    assert upd == 2 and upd.lastrowid == 0
    # Not an INSERT: one statement per parameter set, row counts summed (as executemany does).
    deleted = await pool.aexecute_query(
        f"DELETE FROM {table} WHERE v = %s", [(1,), (2,), (99,)], exec_many=True
    )
    assert deleted == 2
    empty = await pool.aexecute_query(f"DELETE FROM {table} WHERE v = %s", [], exec_many=True)
    assert empty == pool.execute_query(f"DELETE FROM {table} WHERE v = %s", [], exec_many=True)
    rows = await pool.aexecute_query(f"SELECT v, s FROM {table} ORDER BY id", dictcursor=True)
    assert rows == [{"v": 13, "s": "c"}, {"v": 14, "s": "d"}]


async def test_executemany_batches_like_pymysql(make_pool: MakePool, table: str) -> None:
    """A long multi-row INSERT is split at PyMySQL's max_stmt_length, as the sync face does."""
    pool = make_pool(size=1)
    rows = [(i, "x" * 40) for i in range(30000)]  # ~1.5 MB of VALUES: two statements
    count = await pool.aexecute_query(
        f"INSERT INTO {table} (v, s) VALUES (%s, %s)", rows, exec_many=True
    )
    assert count == 30000
    assert await pool.aexecute_query(f"SELECT COUNT(*), SUM(v) FROM {table}") == (
        (30000, decimal.Decimal(sum(range(30000)))),
    )


async def test_large_result_arrives_in_many_reads(make_pool: MakePool) -> None:
    pool = make_pool(size=1)
    query = seq(50000, "REPEAT('y', 100)")
    rows = await pool.aexecute_query(query)
    assert len(rows) == 50000 and rows[-1] == (50000, "y" * 100)
    assert rows == pool.execute_query(query)


async def test_packets_over_16_mib(
    make_pool: MakePool, admin: pymysql.connections.Connection
) -> None:
    """Commands and rows of 16 MiB or more are split into several protocol packets."""
    with admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_allowed_packet")
        (old,) = cur.fetchone()
        cur.execute("SET GLOBAL max_allowed_packet = %s", (64 * 1024 * 1024,))
    try:
        pool = make_pool(size=1)  # new connections see the new limit
        big = "z" * (17 * 1024 * 1024)
        assert await pool.aexecute_query("SELECT LENGTH(%s)", (big,)) == ((len(big),),)
        query = "SELECT REPEAT('q', 17 * 1024 * 1024)"
        (value,) = await pool.aexecute_query(query, return_one=True)
        assert len(value) == 17 * 1024 * 1024 and set(value) == {"q"}
        # Exactly one packet's worth (2**24 - 1 bytes) needs an empty packet after it.
        exact = (1 << 24) - 1
        (value,) = await pool.aexecute_query(f"SELECT REPEAT('e', {exact - 4})", return_one=True)
        assert len(value) == exact - 4
        assert await pool.aexecute_query("SELECT 1") == ((1,),)
        assert pool.stats()["connections_lost"] == 0
    finally:
        with admin.cursor() as cur:
            cur.execute("SET GLOBAL max_allowed_packet = %s", (old,))


async def test_multi_statement_results(db_kwargs: dict[str, Any]) -> None:
    """Like the sync face: the first result is returned, the others are read and dropped."""
    flag = pymysql.constants.CLIENT.MULTI_STATEMENTS
    pool = ConnectionPool(size=1, client_flag=flag, **db_kwargs)
    try:
        query = "SELECT 1; SELECT 2, 3; DO 4"
        assert await pool.aexecute_query(query) == pool.execute_query(query) == ((1,),)
        assert await pool.aexecute_query("SELECT 5") == ((5,),)
        with pytest.raises(pymysql.err.ProgrammingError):
            await pool.aexecute_query("SELECT 1; SELEC 2")
        assert await pool.aexecute_query("SELECT 6") == ((6,),)
        assert pool.stats()["connections_lost"] == 0
    finally:
        await pool.aclose()


async def test_sql_error_keeps_the_connection(make_pool: MakePool) -> None:
    pool = make_pool(size=1)
    (cid,) = await pool.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
    with pytest.raises(pymysql.err.ProgrammingError) as info:
        await pool.aexecute_query("SELEC 1")
    assert info.value.args[0] == 1064
    with pytest.raises(pymysql.err.MySQLError):  # an error in the middle of the rows
        await pool.aexecute_query("SELECT (SELECT 1 UNION SELECT 2) FROM DUAL")
    assert await pool.aexecute_query("SELECT CONNECTION_ID()", return_one=True) == (cid,)
    assert pool.stats()["connections_lost"] == 0


async def test_atransaction_commits_and_rolls_back(make_pool: MakePool, table: str) -> None:
    pool = make_pool(size=2)
    async with pool.atransaction() as conn:
        await conn.aexecute_query(f"INSERT INTO {table} (v) VALUES (1)")
        assert (await conn.aexecute_query("SELECT @@in_transaction")) == ((1,),)
        # Not visible to another connection before COMMIT.
        assert pool.execute_query(f"SELECT COUNT(*) FROM {table}") == ((0,),)
    assert await pool.aexecute_query(f"SELECT COUNT(*) FROM {table}") == ((1,),)

    with pytest.raises(ZeroDivisionError):
        async with pool.atransaction() as conn:
            await conn.aexecute_query(f"INSERT INTO {table} (v) VALUES (2)")
            1 / 0  # noqa: B018
    assert await pool.aexecute_query(f"SELECT v FROM {table}") == ((1,),)
    stats = pool.stats()
    assert stats["in_use"] == 0 and stats["connections_lost"] == 0


async def test_aconnection_commits_open_transaction_or_rolls_back(
    make_pool: MakePool, table: str
) -> None:
    pool = make_pool(size=1)
    async with pool.aconnection() as conn:
        await conn.aexecute_query("BEGIN")
        await conn.aexecute_query(f"INSERT INTO {table} (v) VALUES (7)")
    with pytest.raises(RuntimeError):
        async with pool.aconnection() as conn:
            await conn.aexecute_query("BEGIN")
            await conn.aexecute_query(f"INSERT INTO {table} (v) VALUES (8)")
            raise RuntimeError("boom")
    assert await pool.aexecute_query(f"SELECT v FROM {table}") == ((7,),)


async def test_dirty_connection_is_reset_on_return(make_pool: MakePool, table: str) -> None:
    """Given back with an open transaction, autocommit off and another database: all undone."""
    pool = make_pool(size=1)
    conn = await pool.aget_connection()
    (cid,) = await conn.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
    await conn.aexecute_query("BEGIN")
    await conn.aexecute_query(f"INSERT INTO {table} (v) VALUES (9)")
    await conn.aexecute_query("SET autocommit = 0")
    conn.select_db("information_schema")
    # The async give-back (what the end of an ``async with`` block runs): reset with async I/O.
    await pool.aputconn(conn)
    assert pool.stats()["returns_rolled_back"] == 1
    async with pool.aconnection() as again:
        assert await again.aexecute_query(
            "SELECT CONNECTION_ID(), @@autocommit, DATABASE()", return_one=True
        ) == (cid, 1, pool.options.connect_kwargs["database"])
    assert await pool.aexecute_query(f"SELECT COUNT(*) FROM {table}") == ((0,),)


async def test_returned_connection_refuses_async_use(make_pool: MakePool) -> None:
    pool = make_pool(size=1)
    conn = await pool.aget_connection()
    assert await conn.aexecute_query("SELECT 1") == ((1,),)
    conn.close()
    with pytest.raises(ConnectionReturnedError):
        await conn.aexecute_query("SELECT 1")
    async with pool.aconnection() as block:
        block.close()  # given back inside the block: the block's end is then a no-op
    assert pool.stats()["in_use"] == 0


async def test_sync_and_async_use_of_one_connection(make_pool: MakePool) -> None:
    """The socket switches between blocking (sync face) and non-blocking (async face) use."""
    pool = make_pool(size=1, read_timeout=5)
    async with pool.aconnection() as conn:
        for i in range(3):
            assert await conn.aexecute_query("SELECT %s", (i,)) == ((i,),)
            assert conn.execute_query("SELECT %s", (i,)) == ((i,),)
        # An unbuffered sync cursor left half-read: the async face finishes it first.
        cur = conn.cursor(pymysql.cursors.SSCursor)
        cur.execute(seq(1000))
        assert cur.fetchone() == (1,)
        with pytest.warns(UserWarning, match="unbuffered"):
            assert await conn.aexecute_query("SELECT 42") == ((42,),)
        assert conn.execute_query("SELECT 43") == ((43,),)
    assert pool.execute_query("SELECT 44") == ((44,),)
    assert pool.stats()["connections_lost"] == 0


async def test_unpooled_connection(db_kwargs: dict[str, Any]) -> None:
    from mysqlpool_ext import Connection

    conn = Connection(**db_kwargs)
    try:
        assert await conn.aexecute_query("SELECT %s", ("plain",)) == (("plain",),)
        assert conn.execute_query("SELECT 2") == ((2,),)
    finally:
        conn.close()
    with pytest.raises(pymysql.err.InterfaceError):
        await conn.aexecute_query("SELECT 1")


async def test_read_timeout_applies_to_async_reads(make_pool: MakePool) -> None:
    pool = make_pool(size=1, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as info:
        await pool.aexecute_query("SELECT SLEEP(3)")
    took = time.monotonic() - started
    assert info.value.args[0] == 2013 and "timed out" in info.value.args[1]
    assert 0.25 < took < 2.0
    assert await pool.aexecute_query("SELECT 1") == ((1,),)  # a fresh connection
    assert pool.stats()["connections_lost"] == 1


async def test_current_pool_in_a_request_scope(make_pool: MakePool) -> None:
    """What the Flask and Django adapters use from async views."""
    pool = make_pool(size=2)
    set_default_pool(pool)
    try:
        with request_scope() as scope:
            (a,) = await current_pool.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
            (b,) = await current_pool.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
            assert a == b and scope.borrowed == 1 and pool.stats()["in_use"] == 1
            async with current_pool.atransaction() as conn:
                assert await conn.aexecute_query("SELECT @@in_transaction") == ((1,),)
        assert pool.stats()["in_use"] == 0
        assert await current_pool.aexecute_query("SELECT 1") == ((1,),)
    finally:
        set_default_pool(None)


async def test_aclose_wakes_waiters(make_pool: MakePool) -> None:
    from mysqlpool_ext import PoolClosedError

    pool = make_pool(size=1)
    held = await pool.aget_connection()
    waiter = asyncio.ensure_future(pool.aexecute_query("SELECT 1", timeout=10))
    while pool.stats()["requests_waiting"] == 0:
        await asyncio.sleep(0.001)
    await pool.aclose()
    with pytest.raises(PoolClosedError):
        await waiter
    held.close()
    with pytest.raises(PoolClosedError):
        await pool.aexecute_query("SELECT 1")
