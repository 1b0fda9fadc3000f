"""The seed's surface, as its users wrote it: the transcript, its DEBUG log, ``execute_query``,
and ``mysqlpool_ext.Connection`` used without a pool."""

from __future__ import annotations

import logging
import re
from typing import Any

import pymysql
import pytest
from corekit import MakePool

import mysqlpool_ext
from mysqlpool_ext import (
    Connection,
    ConnectionPool,
    ConnectionReturnedError,
    GetConnectionFromPoolError,
    RowCount,
)


def test_seed_transcript(db_kwargs: dict[str, Any]) -> None:
    """The seed's README session, line by line."""
    config = db_kwargs
    pool1 = ConnectionPool(size=2, name="pool1", **config)
    try:
        assert pool1.size() == 2
        conn1 = pool1.get_connection()
        conn2 = pool1.get_connection()
        assert pool1.size() == 0
        with pytest.raises(GetConnectionFromPoolError) as info:
            pool1.get_connection(timeout=0, retry_num=0)
        message = str(info.value)
        assert "'pool1'" in message
        assert re.search(r"after waiting \d+\.\d+ s \(timeout 0 s\)", message), message
        conn1.close()
        assert pool1.size() == 1
        with conn2:
            assert conn2.execute_query("SELECT 1") == ((1,),)
        assert pool1.size() == 2
    finally:
        pool1.close()


def test_get_connection_error_is_a_pymysql_operational_error(make_pool: MakePool) -> None:
    """Seed users caught ``OperationalError`` around get_connection; that keeps working."""
    pool = make_pool(size=1, name="seed-op")
    held = pool.get_connection()
    with pytest.raises(pymysql.err.OperationalError):
        pool.get_connection(timeout=0)
    held.close()


def test_debug_log_lines(make_pool: MakePool, caplog: pytest.LogCaptureFixture) -> None:
    """create / get / put back / retry / discard, each at DEBUG and naming the pool."""
    mysqlpool_ext.logger.setLevel("DEBUG")
    with caplog.at_level(logging.DEBUG, logger="mysqlpool_ext"):
        pool = make_pool(size=1, name="seed-log")
        conn = pool.get_connection()
        with pytest.raises(GetConnectionFromPoolError):
            pool.get_connection(timeout=0, retry_num=2)
        conn.close()
        conn = pool.get_connection()
        # Break it the way the server does (the session ends); giving it back discards it.
        with pytest.raises(pymysql.err.OperationalError):
            conn.query("KILL CONNECTION_ID()")
        conn.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "mysqlpool_ext"]
    for word in ("create connection", "get connection", "put back connection", "discard"):
        assert any("'seed-log'" in m and word in m for m in messages), (word, messages)
    retries = [m for m in messages if "retry" in m]
    assert len(retries) == 2 and "2/2" in retries[-1], retries
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "get connection" in r.message)


def test_debug_lines_follow_level_changes(
    make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    """The borrow path remembers "DEBUG is off" only as long as logging does: turning DEBUG on
    (or off) between two borrows is obeyed by the very next one."""
    pool = make_pool(size=1, name="seed-level")
    log = mysqlpool_ext.logger
    old = log.level
    try:
        log.setLevel(logging.INFO)
        pool.get_connection().close()  # "DEBUG is off" is now remembered
        caplog.set_level(logging.DEBUG, logger="mysqlpool_ext")
        pool.get_connection().close()
        lines = [r.getMessage() for r in caplog.records if "'seed-level'" in r.getMessage()]
        assert any("get connection" in m for m in lines), lines
        assert any("put back connection" in m for m in lines), lines
        caplog.clear()
        log.setLevel(logging.INFO)
        pool.get_connection().close()
        assert not [r for r in caplog.records if "'seed-level'" in r.getMessage()]
    finally:
        log.setLevel(old)


@pytest.fixture
def pool_with_table(make_pool: MakePool, table: str) -> tuple[ConnectionPool, str]:
    return make_pool(size=1, name="seed-eq"), table


def test_execute_query_forms(pool_with_table: tuple[ConnectionPool, str]) -> None:
    pool, table = pool_with_table
    with pool.connection() as conn:
        # A modifying statement: a RowCount (an int) with .lastrowid.
        inserted = conn.execute_query(f"INSERT INTO {table} (v) VALUES (%s)", ("a",))
        assert isinstance(inserted, RowCount) and isinstance(inserted, int)
        assert inserted == 1 and inserted.lastrowid == 1
        # exec_many: executemany over a sequence of tuples; rowcount is the total.
        many = conn.execute_query(
            f"INSERT INTO {table} (v) VALUES (%s)", [("b",), ("c",), ("d",)], exec_many=True
        )
        assert many == 3 and isinstance(many, RowCount)
        assert many.lastrowid == 2  # MySQL's LAST_INSERT_ID: the first row of the batch
        # An empty batch sends nothing and is still a RowCount (PyMySQL's rowcount: -1).
        empty = conn.execute_query(f"INSERT INTO {table} (v) VALUES (%s)", [], exec_many=True)
        assert isinstance(empty, RowCount) and empty == -1
        updated = conn.execute_query(f"UPDATE {table} SET v = UPPER(v) WHERE id > %s", (2,))
        assert updated == 2 and updated.lastrowid == 0
        # SELECT: tuples; dictcursor: dicts; return_one: a row or None.
        rows = conn.execute_query(f"SELECT id, v FROM {table} ORDER BY id")
        assert rows == ((1, "a"), (2, "b"), (3, "C"), (4, "D"))
        dicts = conn.execute_query(f"SELECT id, v FROM {table} WHERE id <= 2", dictcursor=True)
        assert list(dicts) == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
        one = conn.execute_query(f"SELECT v FROM {table} WHERE id = %s", (3,), return_one=True)
        assert one == ("C",)
        none = conn.execute_query(f"SELECT v FROM {table} WHERE id = %s", (99,), return_one=True)
        assert none is None
        one_dict = conn.execute_query(
            f"SELECT v FROM {table} WHERE id = 1", dictcursor=True, return_one=True
        )
        assert one_dict == {"v": "a"}
        # Args as a dict (pyformat) pass through to PyMySQL.
        named = conn.execute_query(f"SELECT v FROM {table} WHERE id = %(id)s", {"id": 2})
        assert named == (("b",),)
        deleted = conn.execute_query(f"DELETE FROM {table} WHERE id = 4")
        assert deleted == 1


def test_pool_execute_query_forms_and_commit(
    pool_with_table: tuple[ConnectionPool, str], admin: pymysql.connections.Connection
) -> None:
    """The pool's execute_query: borrow, run, commit, give back — even with autocommit off."""
    pool, table = pool_with_table
    inserted = pool.execute_query(f"INSERT INTO {table} (v) VALUES (%s)", ("x",))
    assert inserted == 1 and inserted.lastrowid == 1
    assert pool.execute_query(f"SELECT v FROM {table}", return_one=True) == ("x",)
    assert pool.execute_query(f"SELECT v FROM {table} WHERE id = 7", return_one=True) is None
    assert pool.execute_query(f"SELECT id, v FROM {table}", dictcursor=True) == [
        {"id": 1, "v": "x"}
    ]
    many = pool.execute_query(
        f"INSERT INTO {table} (v) VALUES (%s)", [("y",), ("z",)], exec_many=True
    )
    assert many == 2
    assert pool.stats()["in_use"] == 0

    manual = ConnectionPool(**{**pool.options.connect_kwargs, "autocommit": False}, size=1)
    try:
        manual.execute_query(f"INSERT INTO {table} (v) VALUES ('committed')")
    finally:
        manual.close()
    with admin.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table} WHERE v = 'committed'")
        assert cur.fetchone() == (1,)


def test_execute_query_error_leaves_pool_whole(pool_with_table: tuple[ConnectionPool, str]) -> None:
    """A failing statement raises PyMySQL's error and the connection is given back and reusable."""
    pool, table = pool_with_table
    before = pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
    with pytest.raises(pymysql.err.ProgrammingError):
        pool.execute_query("SELEC 1")
    with pytest.raises(pymysql.err.IntegrityError):
        pool.execute_query(f"INSERT INTO {table} (id, v) VALUES (1, 'a'), (1, 'b')")
    assert pool.stats()["in_use"] == 0
    # Not a connection-lost error: the same server connection is still the one lent.
    assert pool.execute_query("SELECT CONNECTION_ID()", return_one=True) == before
    assert pool.stats()["connections_lost"] == 0


# -- mysqlpool_ext.Connection without a pool ------------------------------------------------------


def _alive_on_server(admin: pymysql.connections.Connection, cid: int) -> bool:
    with admin.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (cid,))
        row = cur.fetchone()
    return bool(row and row[0])


def test_unpooled_connection_is_plain_pymysql(
    db_kwargs: dict[str, Any], admin: pymysql.connections.Connection
) -> None:
    from corekit import wait_until

    conn = Connection(**db_kwargs)
    assert isinstance(conn, pymysql.connections.Connection)
    assert conn.open
    assert conn.autocommit_mode is False  # PyMySQL's default, not the pool's
    cid = conn.thread_id()
    assert conn.execute_query("SELECT %s + 1", (1,)) == ((2,),)
    with conn.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    conn.close()  # really closes
    assert not conn.open
    wait_until(lambda: not _alive_on_server(admin, cid), what="the server to drop the session")
    with pytest.raises(pymysql.err.Error) as info:
        conn.close()
    assert not isinstance(info.value, ConnectionReturnedError)
    assert "already closed" in str(info.value).lower()


def test_unpooled_with_closes_like_pymysql(
    db_kwargs: dict[str, Any], admin: pymysql.connections.Connection, table: str
) -> None:
    from corekit import wait_until

    with Connection(**db_kwargs) as conn:
        cid = conn.thread_id()
        conn.execute_query(f"INSERT INTO {table} (v) VALUES ('not committed')")
    assert not conn.open
    wait_until(lambda: not _alive_on_server(admin, cid), what="the server to drop the session")
    # PyMySQL's `with` closes without committing: the insert is gone.
    with admin.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        assert cur.fetchone() == (0,)
