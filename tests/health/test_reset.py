"""Reset on return: what a borrower changed does not reach the next borrower."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from mysqlpool_ext import ConnectionPool

OTHER_DB = "mysqlpool_health_other"


@pytest.fixture
def other_db(admin: pymysql.connections.Connection) -> Iterator[str]:
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {OTHER_DB}")
    yield OTHER_DB
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {OTHER_DB}")


def session_state(pool: ConnectionPool) -> tuple[Any, ...]:
    row = pool.execute_query(
        "SELECT CONNECTION_ID(), @@autocommit, DATABASE(), @var", return_one=True
    )
    return tuple(row)


def dirty(pool: ConnectionPool, other_db: str) -> int:
    """Change everything a borrower can change, then give the connection back."""
    conn = pool.get_connection()
    cid = conn.thread_id()
    conn.execute_query("SET @var = 42")
    conn.execute_query("CREATE TEMPORARY TABLE tmp_reset (a INT)")
    conn.autocommit(False)
    conn.execute_query("INSERT INTO tmp_reset VALUES (1)")  # an open transaction
    conn.select_db(other_db)
    conn.close()
    return cid


def temp_table_exists(pool: ConnectionPool) -> bool:
    with pool.connection() as conn:
        try:
            conn.execute_query("SELECT COUNT(*) FROM mysqlpool_test.tmp_reset")
        except pymysql.err.ProgrammingError:
            return False
        return True


def test_reset_session(db_kwargs: dict[str, Any], other_db: str) -> None:
    with ConnectionPool(size=1, max_size=1, reset="session", **db_kwargs) as pool:
        cid = dirty(pool, other_db)
        assert session_state(pool) == (cid, 1, db_kwargs["database"], None)
        assert not temp_table_exists(pool)
        stats = pool.stats()
    assert stats["connections_num"] == 1  # reset in place: no reconnect


def test_reset_rollback(db_kwargs: dict[str, Any], other_db: str) -> None:
    with ConnectionPool(size=1, max_size=1, reset="rollback", **db_kwargs) as pool:
        cid = dirty(pool, other_db)
        # autocommit and the database are restored, the transaction rolled back; session
        # variables and temporary tables survive (that is what "session" is for).
        assert session_state(pool) == (cid, 1, db_kwargs["database"], 42)
        with pool.connection() as conn:
            assert conn.execute_query("SELECT COUNT(*) FROM tmp_reset") == ((0,),)
        stats = pool.stats()
    assert stats["returns_rolled_back"] == 1


def test_clean_return_costs_no_round_trip(db_kwargs: dict[str, Any]) -> None:
    with ConnectionPool(size=1, max_size=1, **db_kwargs) as pool:
        with pool.connection() as conn:
            before = conn.execute_query("SHOW SESSION STATUS LIKE 'Questions'")[0][1]
        with pool.connection() as conn:
            after = conn.execute_query("SHOW SESSION STATUS LIKE 'Questions'")[0][1]
    assert int(after) - int(before) == 1  # only the SHOW itself: no ROLLBACK, no SET
