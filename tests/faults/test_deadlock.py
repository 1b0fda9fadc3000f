"""A deadlock inside a transaction block: the server rolls the whole transaction back (error
1213) and the session goes on in autocommit. A block whose code caught the error and went on
must not end as if it had committed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from mysqlpool_ext import ConnectionPool, TransactionLostError, current_pool, request_scope
from mysqlpool_ext.registry import set_default_pool

pytestmark = pytest.mark.faults


@pytest.fixture
def tables(db_kwargs: dict[str, Any]) -> Iterator[pymysql.connections.Connection]:
    admin = pymysql.connect(**db_kwargs, autocommit=True)
    with admin.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS dl_rows (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
        cur.execute("CREATE TABLE IF NOT EXISTS dl_log (v VARCHAR(20)) ENGINE=InnoDB")
        cur.execute("CREATE TABLE IF NOT EXISTS dl_big (id INT PRIMARY KEY) ENGINE=InnoDB")
        for table in ("dl_rows", "dl_log", "dl_big"):
            cur.execute(f"DELETE FROM {table}")
        cur.execute("INSERT INTO dl_rows VALUES (1, 0), (2, 0)")
    yield admin
    with admin.cursor() as cur:
        cur.execute("DROP TABLE dl_rows, dl_log, dl_big")
    admin.close()


def _deadlock_victim(conn: Any, db_kwargs: dict[str, Any], admin: Any) -> int:
    """Make ``conn`` (which holds row 1) the victim of a deadlock with another session
    (which holds row 2 and has done more work, so the server rolls ``conn`` back): the
    error code ``conn``'s statement got."""
    other = pymysql.connect(**db_kwargs, autocommit=False)
    oc = other.cursor()
    oc.execute("BEGIN")
    oc.executemany("INSERT INTO dl_big VALUES (%s)", [(i,) for i in range(200)])
    oc.execute("UPDATE dl_rows SET v = v + 1 WHERE id = 2")
    sql = "UPDATE dl_rows SET v = v + 1 WHERE id = 2 /* the victim */"

    def closer() -> None:
        deadline = time.monotonic() + 10
        with admin.cursor() as cur:
            while time.monotonic() < deadline:  # until the victim waits for row 2
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = %s", (sql,)
                )
                if cur.fetchone()[0]:
                    break
        oc.execute("UPDATE dl_rows SET v = v + 1 WHERE id = 1")  # waits for row 1: a cycle

    thread = threading.Thread(target=closer)
    thread.start()
    try:
        conn.execute_query(sql)
        code = 0
    except pymysql.err.OperationalError as exc:
        code = exc.args[0]
    thread.join(10)
    other.rollback()
    other.close()
    return code


def test_a_pool_transaction_that_went_on_after_a_deadlock_raises(
    db_kwargs: dict[str, Any], tables: Any
) -> None:
    with ConnectionPool(size=1, max_size=1, **db_kwargs) as pool:
        codes = []
        with pytest.raises(TransactionLostError, match="deadlock"), pool.transaction() as conn:
            conn.execute_query("INSERT INTO dl_log VALUES ('before')")
            conn.execute_query("UPDATE dl_rows SET v = v + 1 WHERE id = 1")
            codes.append(_deadlock_victim(conn, db_kwargs, tables))
            conn.execute_query("INSERT INTO dl_log VALUES ('after')")  # autocommit now
        assert codes == [1213]
        # The server rolled back the block's work before the deadlock.
        assert pool.execute_query("SELECT v FROM dl_log") == (("after",),)
        # A retry that rolls back and begins again is a transaction of its own: it commits.
        with pool.transaction() as conn:
            conn.execute_query("INSERT INTO dl_log VALUES ('retried')")
        assert pool.stats()["in_use"] == 0


def test_a_request_block_that_went_on_after_a_deadlock_raises(
    db_kwargs: dict[str, Any], tables: Any
) -> None:
    with ConnectionPool(size=1, max_size=1, **db_kwargs) as pool:
        set_default_pool(pool)
        try:
            with request_scope():
                with pytest.raises(TransactionLostError, match="deadlock"):  # noqa: SIM117
                    with current_pool.transaction() as conn:
                        current_pool.execute_query("INSERT INTO dl_log VALUES ('before')")
                        current_pool.execute_query("UPDATE dl_rows SET v = v + 1 WHERE id = 1")
                        assert _deadlock_victim(conn, db_kwargs, tables) == 1213
                # The request goes on: a new block is a transaction of its own.
                with current_pool.transaction():
                    current_pool.execute_query("INSERT INTO dl_log VALUES ('next block')")
            assert pool.execute_query("SELECT v FROM dl_log") == (("next block",),)
        finally:
            set_default_pool(None)


def test_a_deadlock_swallowed_before_a_nested_block_still_fails_the_outer_one(
    db_kwargs: dict[str, Any], tables: Any
) -> None:
    """After the deadlock the connection is in no transaction: a block opened next inside the
    outer one begins a transaction of its own and commits it; the outer block's own work
    before the deadlock is gone all the same, so the outer block must not end "committed"."""
    with ConnectionPool(size=1, max_size=1, **db_kwargs) as pool:
        set_default_pool(pool)
        try:
            with (
                request_scope(),
                pytest.raises(TransactionLostError, match="deadlock"),
                current_pool.transaction() as conn,
            ):
                current_pool.execute_query("INSERT INTO dl_log VALUES ('before')")
                current_pool.execute_query("UPDATE dl_rows SET v = v + 1 WHERE id = 1")
                assert _deadlock_victim(conn, db_kwargs, tables) == 1213
                with current_pool.transaction():
                    current_pool.execute_query("INSERT INTO dl_log VALUES ('inner')")
            assert pool.execute_query("SELECT v FROM dl_log") == (("inner",),)
        finally:
            set_default_pool(None)
