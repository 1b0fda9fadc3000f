"""Faults 2 and 3: the server closes idle pooled connections (``wait_timeout``, ``KILL``).

Neither may reach the user: a connection idle past ``check_window`` is pinged before it is lent,
and one that fails the ping is replaced within the borrower's deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pymysql
import pytest
from faultkit import Load, thread_ids

from mysqlpool_ext import ConnectionPool
from mysqlpool_ext._server import ThrowawayServer

pytestmark = pytest.mark.faults

THREADS = 16


@pytest.fixture
def short_wait_timeout(root: pymysql.connections.Connection) -> Iterator[None]:
    """``wait_timeout=2`` for sessions opened from now on; restored afterwards."""
    with root.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.wait_timeout")
        (old,) = cur.fetchone() or (28800,)
        cur.execute("SET GLOBAL wait_timeout = 2")
    yield
    with root.cursor() as cur:
        cur.execute("SET GLOBAL wait_timeout = %s", (int(old),))


def run_load(pool: ConnectionPool, queries: int) -> Load:
    """``THREADS`` threads running ``queries`` queries in all; returns the finished load."""
    load = Load(lambda: pool.execute_query("SELECT CONNECTION_ID()"), THREADS)
    load.start()
    finished = load.wait_for(lambda calls: len(calls) >= queries, 20)
    hung = load.stop()
    assert finished and not hung
    return load


def test_wait_timeout_then_load(
    own_server: ThrowawayServer,
    root: pymysql.connections.Connection,
    short_wait_timeout: None,
    figures: object,
) -> None:
    with ConnectionPool(size=4, max_size=8, timeout=5, **own_server.connect_kwargs()) as pool:
        assert pool.execute_query("SELECT @@SESSION.wait_timeout", return_one=True) == (2,)
        before = thread_ids(root, own_server.user)
        assert len(before) == 4
        # The premise: every pooled connection sits idle longer than wait_timeout.
        time.sleep(3)
        closed_by_server = before - thread_ids(root, own_server.user)
        load = run_load(pool, 400)
        stats = pool.stats()
    errors = [c.error for c in load.calls if c.error is not None]
    figures(
        closed_by_server=len(closed_by_server),
        queries=len(load.calls),
        user_errors=len(errors),
        checks_failed=stats["checks_failed"],
        first_query_s=min(c.duration for c in load.calls[:THREADS]),
        slowest_query_s=max(c.duration for c in load.calls),
    )
    assert closed_by_server == before, "the server did not close the idle connections"
    assert errors == []
    assert stats["checks_failed"] >= 1


def _kill_all(root: pymysql.connections.Connection, ids: set[int]) -> None:
    with root.cursor() as cur:
        for tid in ids:
            cur.execute("KILL %s", (tid,))


def _wait_gone(root: pymysql.connections.Connection, user: str, ids: set[int]) -> None:
    deadline = time.monotonic() + 5
    while thread_ids(root, user) & ids:
        assert time.monotonic() < deadline, "killed connections still listed"
        time.sleep(0.01)


def test_kill_idle_connections(
    own_server: ThrowawayServer, root: pymysql.connections.Connection, figures: object
) -> None:
    with ConnectionPool(size=4, max_size=8, timeout=5, **own_server.connect_kwargs()) as pool:
        run_load(pool, 100)  # warm: every connection used, then given back
        idle_since = time.monotonic()
        victims = thread_ids(root, own_server.user)
        assert len(victims) >= 4
        _kill_all(root, victims)
        _wait_gone(root, own_server.user, victims)
        # The premise: the connections were idle longer than check_window (0.5 s) when killed —
        # which is what an idle killer (DBA, pt-kill, a proxy) does. See the next test for less.
        time.sleep(max(0.0, idle_since + 0.6 - time.monotonic()))
        load = run_load(pool, 400)
        stats = pool.stats()
        survivors = thread_ids(root, own_server.user)
    errors = [c.error for c in load.calls if c.error is not None]
    figures(
        killed=len(victims),
        queries=len(load.calls),
        user_errors=len(errors),
        checks_failed=stats["checks_failed"],
    )
    assert errors == []
    assert not (survivors & victims)


def test_kill_inside_check_window(
    own_server: ThrowawayServer, root: pymysql.connections.Connection, figures: object
) -> None:
    """KILL 0.05 s after the last use, so no ping is due: the pool still must not lend the corpse.

    The server's FIN is already on the socket; the pool sees it with a zero-timeout poll at
    checkout (no round trip), pings, and replaces the connection. The user's own query is never
    retried: it simply never runs on a dead connection.
    """
    with ConnectionPool(size=4, max_size=4, timeout=5, **own_server.connect_kwargs()) as pool:
        leases = [pool.get_connection() for _ in range(4)]
        victims = {lease.thread_id() for lease in leases}
        for lease in leases:
            lease.close()
        returned_at = time.monotonic()
        _kill_all(root, victims)
        _wait_gone(root, own_server.user, victims)
        errors = []
        seen = set()
        for _ in range(8):
            try:
                seen.add(pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0])
            except pymysql.MySQLError as exc:
                errors.append(exc)
        inside_window = time.monotonic() - returned_at < 0.5
        stats = pool.stats()
    figures(killed=len(victims), user_errors=len(errors), checks_failed=stats["checks_failed"])
    assert inside_window, "too slow to test the window: the ping would have run anyway"
    assert errors == []
    assert not (seen & victims)
    assert stats["checks_failed"] >= 1  # the rest wait under fresh ones (LIFO)
