"""Fault 5: 200 threads on a pool of 8 with timeout=1."""

from __future__ import annotations

import threading
import time
from typing import Any

import pymysql
import pytest
from faultkit import max_used_connections

from mysqlpool_ext import ConnectionPool, GetConnectionFromPoolError
from mysqlpool_ext._server import ThrowawayServer

pytestmark = [pytest.mark.faults, pytest.mark.slow]

THREADS = 200
SIZE = 8
TIMEOUT = 1.0
SLACK = 0.3
HOLD = "SELECT SLEEP(0.05)"  # each borrower keeps its connection ~50 ms


def test_200_threads_on_8(
    own_server: ThrowawayServer, root: pymysql.connections.Connection, figures: Any
) -> None:
    with root.cursor() as cur:
        cur.execute("FLUSH STATUS")  # Max_used_connections := connections open now
    baseline = max_used_connections(root)  # this root session (and nothing else)
    barrier = threading.Barrier(THREADS)
    results: list[tuple[float, BaseException | None]] = []
    lock = threading.Lock()

    with ConnectionPool(size=SIZE, timeout=TIMEOUT, **own_server.connect_kwargs()) as pool:

        def borrower() -> None:
            barrier.wait()
            start = time.monotonic()
            error: BaseException | None = None
            try:
                with pool.connection() as conn:
                    waited = time.monotonic() - start
                    conn.execute_query(HOLD)
            except GetConnectionFromPoolError as exc:
                waited, error = time.monotonic() - start, exc
            with lock:
                results.append((waited, error))

        threads = [threading.Thread(target=borrower) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT + 30)
        hung = sum(t.is_alive() for t in threads)
        stats = pool.stats()
    peak = max_used_connections(root) - baseline
    served = [w for w, e in results if e is None]
    timed_out = [w for w, e in results if e is not None]
    figures(
        threads=THREADS,
        served=len(served),
        timed_out=len(timed_out),
        longest_wait_served_s=max(served),
        longest_wait_timed_out_s=max(timed_out, default=0.0),
        wait_p99_ms=stats["wait_p99_ms"],
        max_server_connections=peak,
    )
    assert hung == 0
    assert len(results) == THREADS
    assert max(w for w, _ in results) <= TIMEOUT + SLACK
    assert all(w >= TIMEOUT - 0.01 for w in timed_out)  # nobody gives up early
    assert served and timed_out  # the load really exceeded the pool
    assert peak <= SIZE
