"""max_lifetime (with jitter) and max_idle: connections are retired, and the pool stays warm."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pymysql
import pytest

from mysqlpool_ext import ConnectionPool


def conn_id(pool: ConnectionPool) -> int:
    return int(pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0])


def live_ids(admin: pymysql.connections.Connection, ids: set[int]) -> set[int]:
    with admin.cursor() as cur:
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST")
        return ids & {int(r[0]) for r in cur.fetchall()}


def wait_until(predicate: Any, timeout: float) -> float:
    """Poll ``predicate`` until true; returns the seconds it took (fails at the deadline)."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - start


def test_connection_recycled_after_max_lifetime(
    db_kwargs: dict[str, Any], admin: pymysql.connections.Connection, figures: Any
) -> None:
    with ConnectionPool(size=1, max_lifetime=0.5, **db_kwargs) as pool:
        first = conn_id(pool)
        # The maintenance thread retires it and opens a replacement, with nobody borrowing.
        took = wait_until(lambda: not live_ids(admin, {first}), 5)
        second = conn_id(pool)
        stats = pool.stats()
    figures(retired_after_s=took, recycled=stats["connections_recycled"])
    assert second != first
    assert stats["connections_recycled"] >= 1
    assert took <= 0.5 + 0.5  # lifetime + one housekeeping round (0.2 s) + slack


def test_lifetime_jitter_spreads_expiry(db_kwargs: dict[str, Any], figures: Any) -> None:
    with ConnectionPool(size=20, max_lifetime=100, **db_kwargs) as pool:
        lifetimes = [s.expires - s.created for s in pool._iter_slots()]
    spread = max(lifetimes) - min(lifetimes)
    figures(
        connections=len(lifetimes),
        min_s=min(lifetimes),
        max_s=max(lifetimes),
        stdev_s=statistics.pstdev(lifetimes),
    )
    assert len(lifetimes) == 20
    assert all(95.0 <= t <= 100.0 for t in lifetimes)  # up to 5 % shorter, never longer
    assert len({round(t, 3) for t in lifetimes}) >= 15 and spread > 1.0


def test_max_idle_trims_overflow_back_to_size(
    db_kwargs: dict[str, Any], admin: pymysql.connections.Connection, figures: Any
) -> None:
    with ConnectionPool(size=2, max_size=6, max_idle=0.5, **db_kwargs) as pool:
        leases = [pool.get_connection() for _ in range(6)]
        ids = {lease.thread_id() for lease in leases}
        for lease in leases:
            lease.close()
        assert pool.stats()["pool_size"] == 6
        took = wait_until(lambda: pool.stats()["pool_size"] == 2, 5)
        assert len(live_ids(admin, ids)) == 2
        assert pool.execute_query("SELECT 1") == ((1,),)
        # It stays at size: the survivors are not trimmed further.
        time.sleep(0.8)
        stats = pool.stats()
    figures(trimmed_after_s=took, remaining=stats["pool_size"])
    assert stats["pool_size"] == 2
    assert took <= 0.5 + 0.5


@pytest.mark.parametrize("lifetime", [None])
def test_no_lifetime_means_no_recycling(db_kwargs: dict[str, Any], lifetime: Any) -> None:
    with ConnectionPool(size=1, max_lifetime=lifetime, max_idle=None, **db_kwargs) as pool:
        first = conn_id(pool)
        assert all(s.expires is None for s in pool._iter_slots())
        assert conn_id(pool) == first
