"""close(timeout), PoolClosedError, and lazy pools."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from mysqlpool_ext import ConnectionPool, GetConnectionFromPoolError, PoolClosedError


def test_close_waits_for_a_borrower(db_kwargs: dict[str, Any], figures: Any) -> None:
    pool = ConnectionPool(size=1, **db_kwargs)
    borrowed = threading.Event()

    def borrower() -> None:
        with pool.connection() as conn:
            borrowed.set()
            conn.execute_query("SELECT SLEEP(0.3)")  # the borrower's work, in flight at close

    thread = threading.Thread(target=borrower)
    thread.start()
    assert borrowed.wait(5)
    start = time.monotonic()
    pool.close(timeout=5)
    waited = time.monotonic() - start
    thread.join(5)
    figures(close_waited_s=waited)
    assert 0.2 <= waited < 2  # waited for the query, not for the whole timeout
    assert pool.stats()["pool_size"] == 0


def test_close_timeout_expires(db_kwargs: dict[str, Any]) -> None:
    pool = ConnectionPool(size=1, **db_kwargs)
    held = pool.get_connection()
    start = time.monotonic()
    pool.close(timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 1.5
    held.close()  # giving back to a closed pool is harmless
    assert pool.stats()["in_use"] == 0


def test_borrowing_from_a_closed_pool(db_kwargs: dict[str, Any]) -> None:
    pool = ConnectionPool(size=1, **db_kwargs)
    pool.close()
    pool.close()  # twice: a no-op
    with pytest.raises(PoolClosedError, match="closed"):
        pool.get_connection()
    with pytest.raises(PoolClosedError):
        pool.execute_query("SELECT 1")
    with pytest.raises(PoolClosedError), pool.connection():
        pass


def test_waiters_get_pool_closed_error(db_kwargs: dict[str, Any], figures: Any) -> None:
    pool = ConnectionPool(size=1, max_size=1, **db_kwargs)
    held = pool.get_connection()
    outcome: list[tuple[float, BaseException]] = []

    def waiter() -> None:
        start = time.monotonic()
        try:
            pool.get_connection(timeout=10)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append((time.monotonic() - start, exc))

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while pool.stats()["requests_waiting"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    closed_at = time.monotonic()
    pool.close()
    for t in threads:
        t.join(5)
    woke = max(t for t, _ in outcome) - (closed_at - min(t for t, _ in outcome))
    held.close()
    figures(waiters=len(outcome))
    assert len(outcome) == 3
    assert all(isinstance(exc, PoolClosedError) for _, exc in outcome)
    assert woke < 10


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_lazy_pool_builds_without_a_server(db_kwargs: dict[str, Any], figures: Any) -> None:
    kwargs = {**db_kwargs, "port": _unused_port(), "connect_timeout": 1}
    start = time.monotonic()
    pool = ConnectionPool(size=2, lazy=True, timeout=0.5, **kwargs)
    built = time.monotonic() - start
    try:
        with pytest.raises(GetConnectionFromPoolError, match="unreachable"):
            pool.get_connection()
    finally:
        pool.close()
    figures(construct_s=built)
    assert built < 0.1


def test_lazy_pool_serves(db_kwargs: dict[str, Any]) -> None:
    with ConnectionPool(size=2, lazy=True, **db_kwargs) as pool:
        assert pool.execute_query("SELECT 1") == ((1,),)


def test_eager_pool_fails_fast_without_a_server(db_kwargs: dict[str, Any]) -> None:
    import pymysql

    with pytest.raises(pymysql.err.OperationalError, match="cannot connect"):
        ConnectionPool(size=1, **{**db_kwargs, "port": _unused_port(), "connect_timeout": 1})
