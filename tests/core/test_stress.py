"""Many threads, few connections, borrowers that fail at random: invariants 1, 2 and 4 under load.

A double lend is caught by ``CONNECTION_ID()`` (the handshake's thread id on every borrow, checked
against a real ``SELECT CONNECTION_ID()`` every few borrows): each borrower registers the id it
holds in a dict under a lock and unregisters it *before* giving the connection back, so two
threads holding the same id at once is a violation. A sampler thread counts the pool's sessions
in the server's process list during the whole run.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pymysql
import pytest
from corekit import ClosedTracker, Holders, Sampler

from mysqlpool_ext import Connection, ConnectionPool


class Boom(Exception):
    """The borrower's own failure."""


def run_load(
    pool: ConnectionPool,
    holders: Holders,
    *,
    threads: int,
    borrows: int,
    query_every: int,
    fail_rate: float,
    seed: int,
) -> tuple[int, list[str]]:
    """Run the borrowers; returns (borrows done, unexpected errors)."""
    done = 0
    done_lock = threading.Lock()
    unexpected: list[str] = []
    start = threading.Barrier(threads)

    def use(conn: Connection, rng: random.Random, n: int) -> None:
        cid = conn.thread_id()
        holders.take(cid)
        try:
            if n % query_every == 0:
                real = conn.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
                if real != cid:
                    holders.violations.append(f"thread_id {cid} but CONNECTION_ID() {real}")
                if n % (query_every * 4) == 0:
                    conn.begin()  # left open: rolled back on the way back, whatever happens
                    conn.execute_query("SELECT 1")
            if rng.random() < fail_rate:
                raise Boom(n)
        finally:
            holders.drop(cid)

    def borrower(index: int) -> None:
        nonlocal done
        rng = random.Random(seed * 1000 + index)
        start.wait()
        mine = 0
        for n in range(1, borrows + 1):
            try:
                if rng.random() < 0.5:
                    with pool.connection() as conn:
                        use(conn, rng, n)
                else:
                    conn = pool.get_connection()
                    try:
                        use(conn, rng, n)
                    finally:
                        conn.close()
            except Boom:
                pass
            except Exception as exc:  # noqa: BLE001 - collected and asserted on below
                unexpected.append(f"thread {index} borrow {n}: {exc!r}")
                return
            mine += 1
        with done_lock:
            done += mine

    workers = [threading.Thread(target=borrower, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not any(w.is_alive() for w in workers), "borrowers still running after 120 s"
    return done, unexpected


def sampler_admin(mysql_server: Any) -> pymysql.connections.Connection:
    """A root connection of the sampler's own (the ``admin`` fixture belongs to the test)."""
    return pymysql.connect(**mysql_server.root_connect_kwargs(), autocommit=True)


def assert_full_capacity(pool: ConnectionPool, max_size: int) -> None:
    stats = pool.stats()
    assert stats["in_use"] == 0, stats
    assert stats["requests_waiting"] == 0, stats
    assert stats["pool_size"] <= max_size, stats
    conns = [pool.get_connection(timeout=5) for _ in range(max_size)]
    ids = {c.execute_query("SELECT CONNECTION_ID()", return_one=True)[0] for c in conns}
    assert len(ids) == max_size
    for c in conns:
        c.close()
    assert pool.stats()["in_use"] == 0


def test_64_threads_1000_borrows_on_8(
    own_pool: Callable[..., ConnectionPool],
    own_user: dict[str, Any],
    server_connections: Callable[..., int],
    mysql_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads, borrows, max_size = 64, 1000, 8
    pool = own_pool(size=max_size, max_size=max_size, timeout=60, name="core-stress")
    holders = Holders()
    sampler = Sampler(sampler_admin(mysql_server), own_user["user"], ClosedTracker(monkeypatch))
    sampler.start()
    started = time.monotonic()
    try:
        done, unexpected = run_load(
            pool, holders, threads=threads, borrows=borrows, query_every=16, fail_rate=0.2, seed=1
        )
    finally:
        sampler.finish()
    elapsed = time.monotonic() - started
    assert unexpected == []
    assert holders.violations == []
    assert done == threads * borrows
    assert pool.stats()["requests_num"] == threads * borrows
    assert sampler.samples >= 10
    # No churn here (size == max_size, nothing expires): the plain count must hold too.
    assert sampler.raw_peak <= max_size, f"server saw {sampler.raw_peak} (max_size={max_size})"
    assert len(holders.seen) <= max_size
    assert_full_capacity(pool, max_size)
    assert server_connections(own_user["user"]) <= max_size
    print(f"{done} borrows in {elapsed:.1f} s, {len(holders.seen)} connections used")


@pytest.mark.parametrize("seed", [2, 3])
def test_overflow_and_recycling_under_load(
    own_pool: Callable[..., ConnectionPool],
    own_user: dict[str, Any],
    mysql_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    """The same checks while overflow connections open and close and lifetimes expire."""
    max_size = 6
    pool = own_pool(
        size=2, max_size=max_size, max_idle=0.2, max_lifetime=0.3, check_window=0.0, timeout=30
    )
    holders = Holders()
    sampler = Sampler(sampler_admin(mysql_server), own_user["user"], ClosedTracker(monkeypatch))
    sampler.start()
    try:
        done, unexpected = run_load(
            pool, holders, threads=24, borrows=300, query_every=3, fail_rate=0.3, seed=seed
        )
    finally:
        sampler.finish()
    assert unexpected == []
    assert holders.violations == []
    assert done == 24 * 300
    stats = pool.stats()
    assert stats["connections_recycled"] > 0, stats  # lifetimes did expire during the run
    assert sampler.samples >= 10
    assert sampler.peak <= max_size, f"server saw {sampler.peak} sessions (max_size={max_size})"
    # What the pool closed left the server promptly (a lost COM_QUIT would linger for good).
    assert sampler.linger_max < 0.5, sampler.linger_max
    assert_full_capacity(pool, max_size)
