"""Fixtures for the reliability regressions (issue 11): both faces, pools that always get closed,
a scratch table, an account of the test's own.

Every test here guards one defect that was reproduced against a real server (issue 11): each
failed on the code before the redesign and passes now. docs/architecture.md maps the guarantees
of the README's Reliability section to these tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest
from faces import FACES, Face

from mysqlpool_ext import ConnectionPool

MakePool = Callable[..., ConnectionPool]


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> Face:
    """The face under test; each test using it runs once per face."""
    return FACES[request.param]


@pytest.fixture
def make_pool(db_kwargs: dict[str, Any]) -> Iterator[MakePool]:
    """``make_pool(**options)``: a pool on the shared server, closed after the test (also when
    the test closed it already: closing twice is a no-op)."""
    made: list[ConnectionPool] = []

    def make(**options: Any) -> ConnectionPool:
        pool = ConnectionPool(**{**db_kwargs, **options})
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


@pytest.fixture
def table(admin: pymysql.connections.Connection, mysql_server: Any) -> Iterator[str]:
    """A fresh InnoDB table ``rel_t (id AUTO_INCREMENT, v VARCHAR)``; its qualified name."""
    name = f"`{mysql_server.database}`.rel_t"
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(
            f"CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50)) ENGINE=InnoDB"
        )
    yield name
    with admin.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = 5")
        cur.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def committed(admin: pymysql.connections.Connection, table: str) -> Callable[[], list[str]]:
    """``committed()``: the values committed in ``table``, read on the admin connection."""

    def read() -> list[str]:
        with admin.cursor() as cur:
            cur.execute(f"SELECT v FROM {table} ORDER BY id")
            return [r[0] for r in cur.fetchall()]

    return read


@pytest.fixture
def own_user(mysql_server: Any, admin: pymysql.connections.Connection) -> Iterator[dict[str, Any]]:
    """Connect kwargs for an account of this test's own: the process list filtered by it is
    exactly what the test's pools opened. Same password as the session's, so the session's
    password-leak guard watches it."""
    user = "rel_" + secrets.token_hex(4)
    with admin.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, mysql_server.password))
            cur.execute(
                f"GRANT ALL PRIVILEGES ON `{mysql_server.database}`.* TO %s@%s", (user, host)
            )
    yield {**mysql_server.connect_kwargs(), "user": user}
    with admin.cursor() as cur:
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
        for (thread_id,) in cur.fetchall():
            try:
                cur.execute("KILL %s", (thread_id,))
            except pymysql.err.OperationalError:
                pass  # 1094: it ended on its own meanwhile
        for host in ("127.0.0.1", "localhost"):
            cur.execute("DROP USER IF EXISTS %s@%s", (user, host))


@pytest.fixture
def own_name(own_user: dict[str, Any]) -> str:
    """The user name of ``own_user`` (tests take this, never the kwargs: a failing test's
    report shows its arguments, and the kwargs hold the password)."""
    return str(own_user["user"])


@pytest.fixture
def own_pool(own_user: dict[str, Any]) -> Iterator[MakePool]:
    """``own_pool(**options)``: like ``make_pool``, on the test's own account."""
    made: list[ConnectionPool] = []

    def make(**options: Any) -> ConnectionPool:
        pool = ConnectionPool(**{**own_user, **options})
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()
