"""Helpers for the core tests (fixtures live in conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

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


class ClosedTracker:
    """When the pool closed each server connection (by ``CONNECTION_ID()``), client side.

    The server reaps a session a moment after the client sent COM_QUIT and closed the socket
    (measured: up to ~1 ms under load), so a process-list snapshot taken in that moment shows the
    old session next to its replacement. Such a session is no longer the pool's: counts subtract
    sessions the pool had already closed when the snapshot started.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from mysqlpool_ext.connection import _RawConnection

        self.closed_at: dict[int, float] = {}
        quit_, force_close = _RawConnection.quit, _RawConnection._force_close
        tracker = self

        def note(raw: Any) -> None:
            sid = raw.__dict__.get("server_thread_id")
            if sid and raw.__dict__.get("_sock") is not None:
                tracker.closed_at.setdefault(sid[0], time.monotonic())

        def tracked_quit(self: _RawConnection) -> None:
            note(self)
            quit_(self)

        def tracked_force_close(self: _RawConnection) -> None:
            note(self)
            force_close(self)

        monkeypatch.setattr(_RawConnection, "quit", tracked_quit)
        monkeypatch.setattr(_RawConnection, "_force_close", tracked_force_close)


class Sampler(threading.Thread):
    """Samples an account's sessions in the process list until stopped.

    ``peak``: the most sessions seen at once that the pool had not closed before the snapshot;
    ``raw_peak``: the plain count; ``linger_max``: the longest a session closed by the pool was
    still listed (it must stay short, or the close never reached the server).
    """

    def __init__(self, admin: Any, user: str, closed: ClosedTracker) -> None:
        super().__init__(name="processlist-sampler", daemon=True)
        self.admin, self.user, self.closed = admin, user, closed
        self.peak = self.raw_peak = self.samples = 0
        self.linger_max = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        closed_at = self.closed.closed_at
        with self.admin.cursor() as cur:
            while not self.stop.is_set():
                started = time.monotonic()
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (self.user,)
                )
                ids = [int(row[0]) for row in cur.fetchall()]
                gone = [started - closed_at[i] for i in ids if closed_at.get(i, started) < started]
                self.raw_peak = max(self.raw_peak, len(ids))
                self.peak = max(self.peak, len(ids) - len(gone))
                self.linger_max = max([self.linger_max, *gone])
                self.samples += 1
                self.stop.wait(0.002)

    def finish(self) -> None:
        self.stop.set()
        self.join(10)
        self.admin.close()
