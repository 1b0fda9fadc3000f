"""The liveness check runs only for connections idle longer than ``check_window``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from mysqlpool_ext import ConnectionPool
from mysqlpool_ext.connection import _RawConnection

WINDOW = 0.3


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts COM_PING sent by the pool (MariaDB counts it in no status variable)."""
    sent: list[int] = []
    real = _RawConnection.ping

    def counting_ping(self: _RawConnection, reconnect: bool = False) -> None:
        sent.append(self.server_thread_id[0])
        real(self, reconnect)

    monkeypatch.setattr(_RawConnection, "ping", counting_ping)
    yield sent


def idle_past_window() -> None:
    time.sleep(WINDOW + 0.1)  # the premise: the connection sat idle longer than the window


def test_busy_pool_sends_no_ping(db_kwargs: dict[str, Any], pings: list[int], figures: Any) -> None:
    with ConnectionPool(size=2, check_window=WINDOW, **db_kwargs) as pool:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 1.0:  # well past the window, never idle inside it
            with pool.connection() as conn:
                conn.execute_query("SELECT 1")
            n += 1
    figures(borrows=n, pings=len(pings))
    assert n > 100
    assert pings == []


def test_idle_connection_is_pinged_once(db_kwargs: dict[str, Any], pings: list[int]) -> None:
    with ConnectionPool(size=1, check_window=WINDOW, **db_kwargs) as pool:
        pool.execute_query("SELECT 1")
        idle_past_window()
        pool.execute_query("SELECT 1")
        pool.execute_query("SELECT 1")  # used a moment ago: no second ping
    assert len(pings) == 1


def test_check_none_never_pings(db_kwargs: dict[str, Any], pings: list[int]) -> None:
    with ConnectionPool(size=1, check=None, check_window=WINDOW, **db_kwargs) as pool:
        pool.execute_query("SELECT 1")
        idle_past_window()
        pool.execute_query("SELECT 1")
    assert pings == []


def test_check_callable_decides(db_kwargs: dict[str, Any], pings: list[int]) -> None:
    seen: list[int] = []
    verdict = {"fail": True}

    def check(conn: pymysql.connections.Connection) -> None:
        seen.append(conn.thread_id())
        if verdict["fail"]:
            raise RuntimeError("not good enough")

    with ConnectionPool(size=1, check=check, check_window=WINDOW, **db_kwargs) as pool:
        first = pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
        idle_past_window()
        # The check rejects the idle connection: the borrower gets a fresh one, no error.
        second = pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
        verdict["fail"] = False
        idle_past_window()
        third = pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
        stats = pool.stats()
    assert seen[0] == first
    assert second != first and third == second
    assert stats["checks_failed"] == 1
    assert pings == []  # a callable replaces the ping
