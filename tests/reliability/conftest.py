"""Fixtures for the reliability regressions (issue 11): both faces, pools that always get closed,
a scratch table, an account of the test's own.

Every test here guards one defect that was reproduced against a real server (issue 11): each
failed on the code before the redesign and passes now. docs/architecture.md maps the guarantees
of the README's Reliability section to these tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest
from faces import FACES, Face


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> Face:
    """The face under test; each test using it runs once per face."""
    return FACES[request.param]


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
def own_name(own_user: dict[str, Any]) -> str:
    """The user name of ``own_user`` (tests take this, never the kwargs: a failing test's
    report shows its arguments, and the kwargs hold the password)."""
    return str(own_user["user"])
