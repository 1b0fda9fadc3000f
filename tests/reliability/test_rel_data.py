"""Issue 11, "Data: nothing committed or lost silently" (items 1-3).

1. A block that ends without an exception must mean "committed". When the COMMIT could not happen
   (the pool was closed under the block, the connection was KILLed inside it and the borrower
   swallowed the 2013), the block must raise instead of ending normally.
2. No transaction outlives its borrow: with ``autocommit=False`` a borrower that ran only SELECTs
   (PyMySQL keeps no status flags from the EOF packet that ends a result set) must not give back
   a connection whose transaction is still open on the server.
3. A connection used after its pool was closed raises ``PoolClosedError``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pymysql
import pytest
from faces import Face, MakePool

import mysqlpool_ext
from mysqlpool_ext import ConnectionPool, PoolClosedError, current_pool, request_scope

# -- item 1 -------------------------------------------------------------------------------------

BLOCKS = ["transaction", "connection", "with-conn", "request-scope"]


@asynccontextmanager
async def open_block(kind: str, face: Face, pool: ConnectionPool) -> AsyncIterator[Any]:
    """Each way a user writes "these statements, then COMMIT" — with an explicit BEGIN where the
    block itself does not start a transaction."""
    if kind == "transaction":
        async with face.transaction(pool) as conn:
            yield conn
    elif kind == "connection":
        async with face.connection(pool) as conn:
            await face.query(conn, "BEGIN")
            yield conn
    elif kind == "with-conn":  # the seed API: ``with conn:`` commits on success
        conn = await face.get_connection(pool)
        with conn:
            await face.query(conn, "BEGIN")
            yield conn
    else:  # the request scope's transaction (what Flask and Django views use)
        mysqlpool_ext.set_default_pool(pool)
        try:
            with request_scope():
                if face.name == "sync":
                    with current_pool.transaction() as conn:
                        yield conn
                else:
                    async with current_pool.atransaction() as conn:
                        yield conn
        finally:
            mysqlpool_ext.set_default_pool(None)


def close_from_thread(pool: ConnectionPool) -> None:
    """``pool.close()`` from another thread (default ``timeout=0``), joined."""
    closer = threading.Thread(target=pool.close, name="closer")
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "pool.close() hung"


@pytest.mark.parametrize("cause", ["pool-closed", "killed"])
@pytest.mark.parametrize("kind", BLOCKS)
async def test_block_that_could_not_commit_raises(
    request: pytest.FixtureRequest,
    face: Face,
    kind: str,
    cause: str,
    table: str,
    committed: Callable[[], list[str]],
    make_pool: MakePool,
    admin: pymysql.connections.Connection,
) -> None:
    """The block inserts a row; then the pool is closed (or the connection KILLed, and the
    borrower catches the 2013 of its next statement and carries on). Ending without an exception
    is only allowed if the row is committed."""
    if kind == "with-conn" and face.name == "async":
        pytest.skip("``with conn:`` is the blocking face's seed API")
    pool = make_pool(size=1, max_size=1)
    raised: BaseException | None = None
    try:
        async with open_block(kind, face, pool) as conn:
            await face.query(conn, f"INSERT INTO {table} (v) VALUES ('x')")
            if cause == "pool-closed":
                close_from_thread(pool)
            else:
                (cid,) = await face.query(conn, "SELECT CONNECTION_ID()", return_one=True)
                with admin.cursor() as cur:
                    cur.execute("KILL %s", (cid,))
                try:
                    await face.query(conn, "SELECT 1")
                except pymysql.err.OperationalError:
                    pass  # the borrower "handles" the 2013 and carries on
    except pymysql.err.Error as exc:  # a PoolError or PyMySQL's own: both say "not committed"
        raised = exc
    rows = committed()
    if raised is None:
        assert rows == ["x"], (
            f"the {kind} block ended normally after {cause}, yet committed {rows!r}: "
            "a lost COMMIT must raise"
        )
    else:
        assert rows == [], f"the block raised {raised!r} but {rows!r} was committed"


# -- item 2 -------------------------------------------------------------------------------------


@pytest.fixture
def one_row(admin: pymysql.connections.Connection, table: str) -> str:
    with admin.cursor() as cur:
        cur.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'a')")
    return table


@pytest.mark.parametrize("select", ["SELECT", "SELECT ... FOR UPDATE"])
async def test_select_only_borrow_leaves_no_transaction(
    face: Face,
    select: str,
    one_row: str,
    make_pool: MakePool,
    admin: pymysql.connections.Connection,
) -> None:
    """After the block, the server must have no transaction for that connection
    (``information_schema.innodb_trx``), and another session must be able to change the row and
    the table without waiting (short lock timeouts: a leaked lock becomes error 1205, not a hang).
    """
    pool = make_pool(size=1, max_size=1, autocommit=False)
    sql = f"SELECT v FROM {one_row} WHERE id = 1" + (" FOR UPDATE" if "UPDATE" in select else "")
    async with face.connection(pool) as conn:
        (cid,) = await face.query(conn, "SELECT CONNECTION_ID()", return_one=True)
        assert await face.query(conn, sql) == (("a",),)
    with admin.cursor() as cur:
        cur.execute(
            "SELECT trx_id, trx_state FROM information_schema.innodb_trx"
            " WHERE trx_mysql_thread_id = %s",
            (cid,),
        )
        open_trx = cur.fetchall()
        cur.execute("SET SESSION innodb_lock_wait_timeout = 1, SESSION lock_wait_timeout = 1")
        cur.execute(f"UPDATE {one_row} SET v = 'b' WHERE id = 1")
        cur.execute(f"ALTER TABLE {one_row} COMMENT = 'metadata lock free'")
    assert open_trx == (), f"connection {cid} went back with a transaction open: {open_trx}"


async def test_next_borrower_sees_committed_data(
    face: Face, one_row: str, make_pool: MakePool, admin: pymysql.connections.Connection
) -> None:
    """A stale REPEATABLE READ snapshot handed to the next borrower: it must see what another
    session committed after the previous borrow ended."""
    pool = make_pool(size=1, max_size=1, autocommit=False)
    async with face.connection(pool) as conn:
        await face.query(conn, f"SELECT v FROM {one_row} WHERE id = 1")
    with admin.cursor() as cur:
        cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
        cur.execute(f"UPDATE {one_row} SET v = 'new' WHERE id = 1")
    async with face.connection(pool) as conn:
        seen = await face.query(conn, f"SELECT v FROM {one_row} WHERE id = 1")
    assert seen == (("new",),)


# -- item 3 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("closed_by", ["same-thread", "other-thread"])
async def test_use_after_pool_closed_raises_pool_closed(
    face: Face, closed_by: str, make_pool: MakePool
) -> None:
    pool = make_pool(size=1, max_size=1)
    conn = await face.get_connection(pool)
    if closed_by == "same-thread":
        await face.close(pool)
    else:
        close_from_thread(pool)
    for _ in range(2):  # the first use and any later one
        with pytest.raises(PoolClosedError):
            await face.query(conn, "SELECT 1")
