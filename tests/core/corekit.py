"""Helpers for the core tests (fixtures live in conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import mysqlpool_ext
from mysqlpool_ext import ConnectionPool

MakePool = Callable[..., ConnectionPool]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` (a condition with a deadline)."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate!r}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def session_id(conn: mysqlpool_ext.Connection) -> int:
    """The server's ``CONNECTION_ID()`` for this connection (one round trip)."""
    row = conn.execute_query("SELECT CONNECTION_ID()", return_one=True)
    return int(row[0])


class Holders:
    """Which thread holds which server connection: fails loudly on a double lend."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}
        self.violations: list[str] = []
        self.seen: set[int] = set()

    def take(self, cid: int) -> None:
        me = threading.get_ident()
        with self._lock:
            other = self._held.get(cid)
            if other is not None:
                self.violations.append(f"connection {cid} lent to {me} while {other} holds it")
            self._held[cid] = me
            self.seen.add(cid)

    def drop(self, cid: int) -> None:
        with self._lock:
            self._held.pop(cid, None)
