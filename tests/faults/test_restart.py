"""Fault 1: the server restarts while 16 threads run queries through the pool."""

from __future__ import annotations

import time

import pymysql
import pytest
from faultkit import ConnectionSampler, Load

from mysqlpool_ext import ConnectionPool, GetConnectionFromPoolError
from mysqlpool_ext._server import ThrowawayServer

pytestmark = [pytest.mark.faults, pytest.mark.slow]

THREADS = 16
TIMEOUT = 2.0  # the pool's borrow timeout
DOWNTIME = 2.5  # how long the server stays down
SLACK = 0.5  # scheduling slack on 2 busy cores


def test_restart_under_load(own_server: ThrowawayServer, figures: object) -> None:
    pool = ConnectionPool(
        size=4,
        max_size=8,
        timeout=TIMEOUT,
        connect_timeout=2,
        name="restart",
        **own_server.connect_kwargs(),
    )

    def work() -> None:
        pool.execute_query("SELECT 1")

    with pool, ConnectionSampler(own_server.root_connect_kwargs(), own_server.user) as sampler:
        load = Load(work, THREADS, pause=0.002).start()
        assert load.wait_for(lambda calls: sum(c.error is None for c in calls) >= 200, 10)

        down_at = time.monotonic()
        own_server.stop()
        stopped_at = time.monotonic()
        time.sleep(DOWNTIME)  # the outage itself: the server is down for this long
        own_server.start()
        up_at = time.monotonic()

        # Every thread must get a successful query again; the first within 2 s of the restart.
        def all_threads_served(calls: list) -> bool:
            return {c.thread for c in calls if c.error is None and c.start >= up_at} == set(
                range(THREADS)
            )

        recovered = load.wait_for(all_threads_served, 10)
        hung = load.stop(timeout=TIMEOUT + 5)
        calls = load.snapshot()
        stats = pool.stats()

    assert not hung, f"threads still blocked after stop: {hung}"
    assert recovered, "not every thread was served again after the restart"
    first_ok = min(c.end for c in calls if c.error is None and c.start >= up_at)
    all_ok = max(
        min(c.end for c in calls if c.thread == t and c.error is None and c.start >= up_at)
        for t in range(THREADS)
    )
    errors = [c for c in calls if c.error is not None]
    kinds = sorted({type(c.error).__name__ for c in errors})
    longest = max(c.duration for c in calls)
    figures(
        downtime_s=up_at - down_at,
        shutdown_s=stopped_at - down_at,
        recovery_first_s=first_ok - up_at,
        recovery_all_threads_s=all_ok - up_at,
        calls=len(calls),
        errors=len(errors),
        error_kinds="/".join(kinds),
        borrow_timeouts=sum(isinstance(c.error, GetConnectionFromPoolError) for c in errors),
        longest_call_s=longest,
        peak_server_connections=sampler.peak,
        connections_lost=stats["connections_lost"],
    )
    # No call hangs: a borrow waits at most its timeout, a query in flight fails at once.
    assert longest <= TIMEOUT + SLACK, f"a call took {longest:.2f} s"
    # Errors only while the server was away, and only the two documented kinds.
    assert all(c.start < up_at for c in errors), [repr(c.error) for c in errors if c.start >= up_at]
    for c in errors:
        assert isinstance(c.error, (GetConnectionFromPoolError, pymysql.err.OperationalError))
    timeouts = [c.error for c in errors if isinstance(c.error, GetConnectionFromPoolError)]
    if timeouts:
        assert "server is unreachable" in str(timeouts[-1])
    assert first_ok - up_at <= 2.0
    assert sampler.peak <= 8
