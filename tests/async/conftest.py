"""Fixtures for the async face: pools that always get closed, a scratch table, a lag ticker.

pytest-asyncio runs in auto mode (pyproject), one event loop per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pymysql
import pytest
from aiokit import MakePool, Ticker
from poolkit import PoolMaker


@pytest.fixture
async def make_pool(db_kwargs: dict[str, Any]) -> AsyncIterator[MakePool]:
    """``make_pool(**options)``: a pool on the shared test server, closed after the test."""
    maker = PoolMaker(db_kwargs)
    yield maker
    await maker.aclose()


@pytest.fixture
def table(admin: pymysql.connections.Connection, mysql_server: Any) -> Iterator[str]:
    """A fresh InnoDB table ``aio_t (id AUTO_INCREMENT, v INT, s VARCHAR)``; its name."""
    name = f"`{mysql_server.database}`.aio_t"
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(
            f"CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, v INT, s VARCHAR(50))"
            " ENGINE=InnoDB"
        )
    yield name
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()
