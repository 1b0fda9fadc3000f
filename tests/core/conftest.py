"""Fixtures for the core tests: pools that always get closed, and an account per test.

Counting "the pool's connections" on the server must not pick up anyone else's, so tests that count
get a database account of their own (``own_user``): the process list filtered by that user is
exactly what the pool opened. The account uses the session's test password, so the session's
password-leak guard watches it too.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from mysqlpool_ext import ConnectionPool

MakePool = Callable[..., ConnectionPool]


@pytest.fixture
def make_pool(db_kwargs: dict[str, Any]) -> Iterator[MakePool]:
    """``make_pool(**options)``: a pool on the test server (``db_kwargs`` + options), closed at
    the end of the test whatever happened."""
    made: list[ConnectionPool] = []

    def make(**options: Any) -> ConnectionPool:
        pool = ConnectionPool(**{**db_kwargs, **options})
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


@pytest.fixture
def own_user(mysql_server: Any, admin: pymysql.connections.Connection) -> Iterator[dict[str, Any]]:
    """Connect kwargs for a fresh account of this test's own (same password, same database)."""
    user = "core_" + secrets.token_hex(4)
    with admin.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, mysql_server.password))
            cur.execute(
                f"GRANT ALL PRIVILEGES ON `{mysql_server.database}`.* TO %s@%s", (user, host)
            )
    yield {**mysql_server.connect_kwargs(), "user": user}
    with admin.cursor() as cur:
        # Kill what a failed test may have left behind, then drop the account.
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
        for (thread_id,) in cur.fetchall():
            try:
                cur.execute("KILL %s", (thread_id,))
            except pymysql.err.OperationalError:
                pass  # 1094 unknown thread: it ended on its own meanwhile
        for host in ("127.0.0.1", "localhost"):
            cur.execute("DROP USER IF EXISTS %s@%s", (user, host))


@pytest.fixture
def own_pool(own_user: dict[str, Any]) -> Iterator[Callable[..., ConnectionPool]]:
    """``own_pool(**options)``: like ``make_pool`` but on the test's own account."""
    made: list[ConnectionPool] = []

    def make(**options: Any) -> ConnectionPool:
        pool = ConnectionPool(**{**own_user, **options})
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


@pytest.fixture
def table(admin: pymysql.connections.Connection, mysql_server: Any) -> str:
    """A fresh InnoDB table ``core_t (id AUTO_INCREMENT, v VARCHAR)``; its qualified name."""
    name = f"`{mysql_server.database}`.core_t"
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(
            f"CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50)) ENGINE=InnoDB"
        )
    return name
