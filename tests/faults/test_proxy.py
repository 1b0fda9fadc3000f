"""Fault 4: a TCP proxy between pool and server drops (RST) or blackholes the traffic.

Borrows and queries must fail within the configured timeouts with an error that says what
happened, and the pool must serve again soon after the network heals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest
from faultproxy import TcpProxy

from mysqlpool_ext import ConnectionPool, GetConnectionFromPoolError
from mysqlpool_ext._server import ThrowawayServer

pytestmark = pytest.mark.faults

TIMEOUT = 2.0  # borrow timeout
CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 1.0
SLACK = 0.5


@pytest.fixture
def proxy(own_server: ThrowawayServer) -> Iterator[TcpProxy]:
    with TcpProxy(own_server.host, own_server.port) as p:
        yield p


def make_pool(server: ThrowawayServer, proxy: TcpProxy, **overrides: Any) -> ConnectionPool:
    kwargs = {
        **server.connect_kwargs(),
        "host": proxy.host,
        "port": proxy.port,
        "size": 2,
        "max_size": 4,
        "timeout": TIMEOUT,
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "reconnect_backoff_max": 0.5,
    }
    kwargs.update(overrides)
    return ConnectionPool(**kwargs)


def timed(fn: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """Run ``fn`` in a thread with a hard deadline; (seconds taken, what it raised)."""
    out: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)
        else:
            out.append(None)

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "hung for 30 s"
    return time.monotonic() - start, out[0]


def wait_recovered(pool: ConnectionPool, healed_at: float) -> float:
    """Seconds from ``healed_at`` until a query through the pool succeeds again."""
    deadline = healed_at + 10
    while True:
        try:
            pool.execute_query("SELECT 1", timeout=0.2)
            return time.monotonic() - healed_at
        except (GetConnectionFromPoolError, pymysql.MySQLError):
            assert time.monotonic() < deadline, "the pool did not recover within 10 s"


def let_idle_past_window() -> None:
    time.sleep(0.6)  # the premise: pooled connections idle longer than check_window (0.5 s)


def test_drop(own_server: ThrowawayServer, proxy: TcpProxy, figures: Any) -> None:
    with make_pool(own_server, proxy) as pool:
        held = pool.get_connection()
        assert held.execute_query("SELECT 1") == ((1,),)
        proxy.reset()
        # A query on a connection the network reset: fails at once, says the connection is lost.
        query_s, query_err = timed(lambda: held.execute_query("SELECT 1"))
        held.close()
        assert isinstance(query_err, pymysql.err.OperationalError), query_err
        assert query_err.args[0] in (2006, 2013)
        # A borrow while every new connection is reset: waits its timeout, says why.
        borrow_s, borrow_err = timed(lambda: pool.execute_query("SELECT 1"))
        assert isinstance(borrow_err, GetConnectionFromPoolError), borrow_err
        assert "server is unreachable" in str(borrow_err)
        proxy.passthrough()
        healed = time.monotonic()
        recovery = wait_recovered(pool, healed)
    figures(
        query_fail_s=query_s,
        query_error=query_err.args[0],
        borrow_fail_s=borrow_s,
        recovery_s=recovery,
    )
    assert query_s <= SLACK
    assert borrow_s <= TIMEOUT + SLACK
    assert recovery <= 0.5 + SLACK  # reconnect_backoff_max + slack


def test_blackhole(own_server: ThrowawayServer, proxy: TcpProxy, figures: Any) -> None:
    with make_pool(own_server, proxy) as pool:
        held = pool.get_connection()
        assert held.execute_query("SELECT 1") == ((1,),)
        let_idle_past_window()
        proxy.blackhole()
        # A query into the void: fails after read_timeout.
        query_s, query_err = timed(lambda: held.execute_query("SELECT 1"))
        held.close()
        assert isinstance(query_err, pymysql.err.OperationalError), query_err
        assert query_err.args[0] == 2013
        # A borrow: the idle connection's ping and any new connection's handshake time out.
        borrow_s, borrow_err = timed(lambda: pool.execute_query("SELECT 1"))
        assert isinstance(borrow_err, GetConnectionFromPoolError), borrow_err
        assert "server is unreachable" in str(borrow_err)
        proxy.passthrough()
        healed = time.monotonic()
        recovery = wait_recovered(pool, healed)
    figures(
        query_fail_s=query_s,
        borrow_fail_s=borrow_s,
        borrow_error=str(borrow_err)[:160],
        recovery_s=recovery,
    )
    assert READ_TIMEOUT - 0.1 <= query_s <= READ_TIMEOUT + SLACK
    assert borrow_s <= TIMEOUT + SLACK
    # A reconnect attempt caught in the blackhole when it heals still runs out its
    # connect_timeout; then the next attempt comes within reconnect_backoff_max.
    assert recovery <= CONNECT_TIMEOUT + 0.5 + SLACK


def test_blackhole_without_read_timeout(
    own_server: ThrowawayServer, proxy: TcpProxy, figures: Any
) -> None:
    """No read_timeout set (PyMySQL's default), four idle connections that all need a ping:
    a borrow still ends near its deadline."""
    with make_pool(own_server, proxy, read_timeout=None, size=4) as pool:
        pool.execute_query("SELECT 1")
        let_idle_past_window()
        proxy.blackhole()
        borrow_s, borrow_err = timed(lambda: pool.execute_query("SELECT 1"))
        proxy.passthrough()
        recovery = wait_recovered(pool, time.monotonic())
    figures(borrow_fail_s=borrow_s, borrow_error=repr(borrow_err)[:160], recovery_s=recovery)
    assert isinstance(borrow_err, GetConnectionFromPoolError), borrow_err
    assert borrow_s <= TIMEOUT + CONNECT_TIMEOUT + SLACK


def _borrow_into_the_blackhole(
    pool: ConnectionPool, proxy: TcpProxy, face: str
) -> tuple[float, BaseException | None]:
    """An idle connection past its check window, the route then blackholed: one borrow."""
    import asyncio

    pool.execute_query("SELECT 1")
    let_idle_past_window()
    proxy.blackhole()
    if face == "sync":
        return timed(lambda: pool.execute_query("SELECT 1"))
    return timed(lambda: asyncio.run(pool.aexecute_query("SELECT 1")))


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_ping_into_a_blackhole_ends_at_the_borrowers_deadline(
    own_server: ThrowawayServer, proxy: TcpProxy, face: str
) -> None:
    """The liveness check of an idle connection, on a frozen route, with neither read_timeout
    nor a short connect_timeout: bounded by what is left of the borrower's timeout (it was
    unbounded on the async face, and waited connect_timeout on the sync one)."""

    with make_pool(
        own_server, proxy, read_timeout=None, connect_timeout=8, size=1, max_size=1, timeout=1
    ) as pool:
        took, err = _borrow_into_the_blackhole(pool, proxy, face)
        # A failed check is no interrupted statement: an idle session has nothing to KILL.
        killers = [t.name for t in threading.enumerate() if t.name.startswith("mysqlpool-kill")]
        proxy.passthrough()
        assert isinstance(err, GetConnectionFromPoolError), err
        assert took <= 1 + SLACK
        assert killers == []
        wait_recovered(pool, time.monotonic())
        assert pool.stats()["in_use"] == 0


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_custom_check_into_a_blackhole_ends_at_the_borrowers_deadline(
    own_server: ThrowawayServer, proxy: TcpProxy, face: str
) -> None:
    """A ``check=`` callable that queries is bounded as the pool's own ping."""

    def check(conn: Any) -> None:
        conn.cursor().execute("SELECT 1")

    with make_pool(
        own_server, proxy, read_timeout=None, connect_timeout=8, size=1, max_size=1, timeout=1,
        check=check,
    ) as pool:  # fmt: skip
        took, err = _borrow_into_the_blackhole(pool, proxy, face)
        proxy.passthrough()
        assert isinstance(err, GetConnectionFromPoolError), err
        assert took <= 1 + SLACK
