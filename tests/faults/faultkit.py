"""Helpers shared by the fault-injection tests: load generators and server-side counters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pymysql


@dataclass
class Call:
    """One call made by a load thread: when it started and ended, and what it raised."""

    thread: int
    start: float
    end: float
    error: BaseException | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Load:
    """``threads`` threads calling ``fn()`` in a loop until :meth:`stop`; every call is recorded."""

    fn: Callable[[], Any]
    threads: int
    pause: float = 0.0
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)
        ]

    def start(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            error: BaseException | None = None
            try:
                self.fn()
            except Exception as exc:  # noqa: BLE001 - recorded: the test asserts on every one
                error = exc
            call = Call(index, start, time.monotonic(), error)
            with self._lock:
                self.calls.append(call)
            if self.pause:
                self._stop.wait(self.pause)

    def stop(self, timeout: float = 30) -> list[str]:
        """Stop and join; returns the names of threads still alive (hung) after ``timeout``."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return [w.name for w in self._workers if w.is_alive()]

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float) -> bool:
        """Wait until ``predicate(calls so far)`` holds, polling; False at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.01)
        return predicate(self.snapshot())


def thread_ids(conn: pymysql.connections.Connection, user: str) -> set[int]:
    """Connection ids the server holds for ``user``, excluding ``conn`` itself."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ID FROM information_schema.PROCESSLIST"
            " WHERE USER = %s AND ID <> CONNECTION_ID()",
            (user,),
        )
        return {int(row[0]) for row in cur.fetchall()}


def max_used_connections(conn: pymysql.connections.Connection) -> int:
    """The server's high-water mark of simultaneous connections since start or FLUSH STATUS.

    Exact, unlike sampling the process list: every connection that ever overlapped counts.
    """
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Max_used_connections'")
        row = cur.fetchone()
    assert row is not None
    return int(row[1])


class ConnectionSampler:
    """Samples the server's process list for one user from its own root connection.

    Survives a server restart (reconnects); ``peak`` is the most connections seen at once.
    """

    def __init__(self, root_kwargs: dict[str, Any], user: str, interval: float = 0.005) -> None:
        self._kwargs = root_kwargs
        self._user = user
        self._interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        conn: pymysql.connections.Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = pymysql.connect(**self._kwargs, autocommit=True, connect_timeout=1)
                n = len(thread_ids(conn, self._user))
                self.peak = max(self.peak, n)
                self.samples += 1
            except pymysql.MySQLError:
                if conn is not None:
                    conn.close() if conn.open else None
                conn = None
                self._stop.wait(0.05)
                continue
            self._stop.wait(self._interval)
        if conn is not None and conn.open:
            conn.close()
