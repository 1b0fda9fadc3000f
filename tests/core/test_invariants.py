"""DESIGN.md invariants 1-6, each pinned by tests that fail when it breaks.

Counts of server connections come from the server's process list, filtered by an account of the
test's own (``own_pool``), so nothing else on the server is counted.
"""

from __future__ import annotations

import gc
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pymysql
import pytest
from corekit import ClosedTracker, MakePool, Sampler, session_id, wait_until
from pymysql.constants import SERVER_STATUS

from mysqlpool_ext import (
    Connection,
    ConnectionPool,
    ConnectionReturnedError,
    GetConnectionFromPoolError,
)

OwnPool = Callable[..., ConnectionPool]
Admin = pymysql.connections.Connection


def kill(admin: Admin, cid: int) -> None:
    with admin.cursor() as cur:
        cur.execute("KILL %s", (cid,))


def count_rows(admin: Admin, table: str) -> int:
    with admin.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        row = cur.fetchone()
    return int(row[0])


def global_status(admin: Admin, name: str) -> int:
    with admin.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
        row = cur.fetchone()
    return int(row[1])


# -- 1. A connection is in exactly one place ----------------------------------------------------


def test_each_lent_connection_is_a_distinct_server_session(make_pool: MakePool) -> None:
    pool = make_pool(size=3)
    conns = [pool.get_connection() for _ in range(3)]
    ids = [session_id(c) for c in conns]
    assert len(set(ids)) == 3
    assert [c.thread_id() for c in conns] == ids
    stats = pool.stats()
    assert (stats["in_use"], stats["pool_available"], pool.size()) == (3, 0, 0)
    for c in conns:
        c.close()
    stats = pool.stats()
    assert (stats["in_use"], stats["pool_available"], stats["pool_size"]) == (0, 3, 3)
    again = [pool.get_connection() for _ in range(3)]
    assert sorted(session_id(c) for c in again) == sorted(ids)  # the same three, none doubled
    for c in again:
        c.close()


def test_returned_connection_goes_to_the_waiter_not_the_idle_list(make_pool: MakePool) -> None:
    """A give-back with someone waiting hands the connection over: it is never both idle and
    lent, and nobody who comes later can take it from the waiter."""
    pool = make_pool(size=1)
    held = pool.get_connection()
    cid = held.thread_id()
    got: dict[str, Any] = {}
    may_return = threading.Event()

    def waiter() -> None:
        conn = pool.get_connection(timeout=10)
        got["cid"] = session_id(conn)
        got["idle_while_held"] = pool.size()
        may_return.wait(10)
        conn.close()

    t = threading.Thread(target=waiter)
    t.start()
    wait_until(lambda: pool.stats()["requests_waiting"] == 1, what="the waiter to queue")
    held.close()
    # The connection went straight to the waiter: a newcomer finds nothing idle.
    with pytest.raises(GetConnectionFromPoolError):
        pool.get_connection(timeout=0)
    wait_until(lambda: "cid" in got, what="the waiter to be served")
    may_return.set()
    t.join(10)
    assert got == {"cid": cid, "idle_while_held": 0}
    assert pool.stats()["in_use"] == 0 and pool.size() == 1


# -- 2. Never more than max_size server connections ---------------------------------------------


def test_server_never_sees_more_than_max_size(
    own_pool: OwnPool,
    own_user: dict[str, Any],
    server_connections: Callable[..., int],
    mysql_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """12 threads on size=2/max_size=4: the server sees at most 4 of the pool's sessions, the
    overflow is opened on demand (4 reached) and closed again once idle past max_idle."""
    pool = own_pool(size=2, max_size=4, max_idle=0.3, timeout=10)
    user = own_user["user"]
    assert server_connections(user) == 2
    root = pymysql.connect(**mysql_server.root_connect_kwargs(), autocommit=True)
    sampler = Sampler(root, user, ClosedTracker(monkeypatch))
    go = threading.Barrier(12)

    def borrower() -> None:
        go.wait()
        for _ in range(25):
            with pool.connection() as conn:
                conn.execute_query("SELECT SLEEP(0.001)")

    sampler.start()
    workers = [threading.Thread(target=borrower) for _ in range(12)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    sampler.finish()
    assert sampler.samples > 5
    assert sampler.peak <= 4, f"server saw {sampler.peak} connections from a pool with max_size=4"
    assert sampler.raw_peak >= 3  # the overflow was opened (and seen)
    assert pool.stats()["connections_num"] >= 4
    assert pool.stats()["pool_size"] <= 4
    wait_until(lambda: server_connections(user) == 2, timeout=10, what="overflow to close")
    assert pool.stats()["pool_size"] == 2


def test_max_size_holds_while_borrowers_wait(
    own_pool: OwnPool, own_user: dict[str, Any], server_connections: Callable[..., int]
) -> None:
    pool = own_pool(size=0, max_size=2)
    a, b = pool.get_connection(), pool.get_connection()
    with pytest.raises(GetConnectionFromPoolError):
        pool.get_connection(timeout=0.05)
    assert server_connections(own_user["user"]) == 2
    a.close()
    b.close()


# -- 3. What comes out is usable -----------------------------------------------------------------


def test_open_transaction_never_reaches_the_next_borrower(
    make_pool: MakePool, table: str, admin: Admin
) -> None:
    pool = make_pool(size=1)
    conn = pool.get_connection()
    conn.begin()
    conn.execute_query(f"INSERT INTO {table} (v) VALUES ('dirty')")
    assert conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS
    conn.close()  # not committed: must be rolled back
    with pool.connection() as nxt:
        assert nxt.execute_query("SELECT @@in_transaction", return_one=True) == (0,)
        assert not nxt.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS
        assert nxt.execute_query(f"SELECT COUNT(*) FROM {table}", return_one=True) == (0,)
    assert count_rows(admin, table) == 0
    assert pool.stats()["returns_rolled_back"] == 1


@pytest.mark.parametrize("how", ["method", "sql"])
def test_autocommit_restored_after_borrower_changed_it(
    make_pool: MakePool, table: str, admin: Admin, how: str
) -> None:
    pool = make_pool(size=1)  # pooled default: autocommit on
    conn = pool.get_connection()
    if how == "method":
        conn.autocommit(False)
    else:
        conn.execute_query("SET autocommit = 0")
    conn.execute_query(f"INSERT INTO {table} (v) VALUES ('left open')")
    conn.close()
    with pool.connection() as nxt:
        assert nxt.execute_query("SELECT @@autocommit, @@in_transaction", return_one=True) == (1, 0)
        nxt.execute_query(f"INSERT INTO {table} (v) VALUES ('autocommitted')")
        # Autocommit really is on: visible to another session before the block ends.
        assert count_rows(admin, table) == 1
    with admin.cursor() as cur:
        cur.execute(f"SELECT v FROM {table}")
        assert cur.fetchall() == (("autocommitted",),)


def test_autocommit_off_pool_is_restored_too(make_pool: MakePool) -> None:
    pool = make_pool(size=1, autocommit=False)
    conn = pool.get_connection()
    conn.autocommit(True)
    conn.close()
    with pool.connection() as nxt:
        assert nxt.execute_query("SELECT @@autocommit", return_one=True) == (0,)


def test_default_database_restored_after_select_db(
    make_pool: MakePool, admin: Admin, mysql_server: Any
) -> None:
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS core_other")
    pool = make_pool(size=1)
    conn = pool.get_connection()
    conn.select_db("core_other")
    assert conn.execute_query("SELECT DATABASE()", return_one=True) == ("core_other",)
    conn.close()
    with pool.connection() as nxt:
        assert nxt.execute_query("SELECT DATABASE()", return_one=True) == (mysql_server.database,)


def test_connection_past_max_lifetime_is_replaced(
    own_pool: OwnPool, own_user: dict[str, Any], server_connections: Callable[..., int]
) -> None:
    pool = own_pool(size=1, max_lifetime=0.2)
    first = pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
    time.sleep(0.25)  # the lifetime itself is what is tested: time has to pass
    second = pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
    assert first != second
    assert pool.stats()["connections_recycled"] >= 1
    assert server_connections(own_user["user"]) <= 1


@pytest.mark.parametrize("check_window", [0.0, 30.0])
def test_idle_connection_killed_by_server_is_not_lent(
    make_pool: MakePool, admin: Admin, check_window: float
) -> None:
    """Killed while idle: the next borrower still gets a working connection, inside the check
    window (the server spoke first) and past it (ping)."""
    pool = make_pool(size=1, check_window=check_window)
    old = pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
    kill(admin, old)
    with pool.connection(timeout=5) as conn:
        new = session_id(conn)
    assert new != old
    assert pool.stats()["checks_failed"] == 1


def test_a_kept_connection_is_lent_to_whoever_would_wait(make_pool: MakePool) -> None:
    """``pool.keep()`` (the Django ENGINE, between two requests of a thread) never costs
    capacity: with the pool full, another thread's borrow takes the kept connection at once,
    and the keeper can no longer use its lease."""
    pool = make_pool(size=1, max_size=1, timeout=5)
    mine = pool.get_connection()
    first = session_id(mine)
    assert pool.keep(mine)
    assert pool.stats()["in_use"] == 0 and pool.stats()["kept"] == 1
    got: list[int] = []

    def other() -> None:
        with pool.connection(timeout=5) as conn:
            got.append(session_id(conn))

    started = time.monotonic()
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert got == [first] and time.monotonic() - started < 2.0
    assert pool.take_kept(mine) is False
    with pytest.raises(ConnectionReturnedError):
        mine.cursor()
    mine.close()  # a no-op
    again = pool.get_connection()
    assert pool.keep(again) and pool.take_kept(again) is True  # kept, and taken back
    assert session_id(again) == first and pool.stats()["in_use"] == 1
    again.close()
    assert pool.stats()["pool_available"] == 1


def _alive_on_server(admin: Admin, cid: int) -> bool:
    with admin.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (cid,))
        (n,) = cur.fetchone()
    return bool(n)


@pytest.mark.parametrize("limit", ["max_lifetime", "max_idle"])
def test_a_kept_connection_is_retired_like_an_idle_one(
    make_pool: MakePool, admin: Admin, limit: str
) -> None:
    """Its keeper may never come back (a quiet thread): upkeep closes a kept connection past
    ``max_lifetime``, or idle past ``max_idle`` above ``size``, as it would an idle one; the
    keeper's lease is then detached and its next borrow gets a working connection."""
    options = {"max_lifetime": 0.3} if limit == "max_lifetime" else {"max_idle": 0.3}
    pool = make_pool(size=1, max_size=2, check_window=30.0, **options)
    stay = pool.get_connection()
    mine = pool.get_connection()
    first = session_id(mine)
    assert pool.keep(mine)
    wait_until(lambda: not _alive_on_server(admin, first), 10.0, f"the server to drop {first}")
    assert pool.stats()["kept"] == 0 and pool.stats()["connections_recycled"] >= 1
    assert pool.take_kept(mine) is False
    with pytest.raises(ConnectionReturnedError):
        mine.cursor()
    mine.close()  # a no-op
    with pool.connection(timeout=5) as conn:
        assert session_id(conn) != first
    stay.close()


@pytest.mark.parametrize("how", ["close", "release_kept"])
def test_a_kept_connection_given_back_while_another_thread_borrows_is_lent_once(
    make_pool: MakePool, how: str
) -> None:
    """Django's ``close()`` (runserver after each request, ``connections.close_all()``) gives
    a kept connection back while, in another thread, a request finds the pool full. Paused
    just before the keeper lets go of its lease, the other borrower must wait for it, not
    take it as well (then both would use one server connection)."""
    import sys

    from mysqlpool_ext import PoolTimeout, _core

    pool = make_pool(size=1, max_size=1, timeout=5)
    mine = pool.get_connection()
    first = session_id(mine)
    assert pool.keep(mine)
    paused, resume = threading.Event(), threading.Event()
    detach = _core.PoolCore.detach.__code__

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if frame.f_code is detach:
            paused.set()
            resume.wait(10)

    def give_back() -> None:
        sys.settrace(tracer)
        try:
            mine.close() if how == "close" else pool.release_kept(mine)
        finally:
            sys.settrace(None)

    keeper = threading.Thread(target=give_back)
    keeper.start()
    assert paused.wait(10)
    try:
        with pytest.raises(PoolTimeout):
            pool.get_connection(timeout=0.2)  # being given back: not lendable yet
    finally:
        resume.set()
        keeper.join(10)
    with pool.connection(timeout=5) as conn:
        assert session_id(conn) == first
        assert pool.stats()["in_use"] == 1 and pool.stats()["pool_size"] == 1
    assert pool.stats()["pool_available"] == 1 and pool.stats()["kept"] == 0


async def test_an_async_borrower_takes_a_kept_connection(make_pool: MakePool) -> None:
    pool = make_pool(size=1, max_size=1, timeout=5)
    mine = pool.get_connection()
    first = session_id(mine)
    assert pool.keep(mine)
    async with pool.aconnection(timeout=5) as conn:
        row = await conn.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
    assert row[0] == first
    assert pool.take_kept(mine) is False


@pytest.mark.parametrize("path", ["tcp_state", "poll"])
def test_the_idle_check_sees_a_hang_up_without_a_round_trip(
    make_pool: MakePool, admin: Admin, path: str
) -> None:
    """``has_pending_input()``, asked on every borrow: on Linux from the TCP state (which does
    not release the GIL, so a borrow among busy threads does not wait to get it back), else
    (a Unix socket, other systems) by a zero-timeout poll; both see the server hang up."""
    import sys

    pool = make_pool(size=1, max_size=1)
    conn = pool.get_connection()
    raw = conn._mp_slot.raw  # type: ignore[union-attr]  # the pool's handle on the socket
    try:
        cid = session_id(conn)
        if path == "poll":
            conn.__dict__["_mp_tcp"] = False
        assert raw.has_pending_input() is False
        if path == "tcp_state":
            assert conn.__dict__["_mp_tcp"] is sys.platform.startswith("linux")
        kill(admin, cid)
        wait_until(raw.has_pending_input, what="the hang-up seen")
    finally:
        conn.close()
    with pool.connection(timeout=5) as fresh:
        assert session_id(fresh) != cid


# -- 4. Giving back is cheap; dirty is rolled back; broken is discarded --------------------------


class WireCounter:
    """Counts what a connection writes to and reads from its socket (patched on the shared
    instance dict, so it sees the pool's own I/O on that connection too)."""

    def __init__(self, conn: Connection) -> None:
        self.writes = 0
        self.reads = 0
        slot = conn._mp_slot
        assert slot is not None
        raw = slot.raw  # the pool's record: still reachable after the lease went back
        cls = type(raw)
        d = raw.__dict__

        def write(data: bytes) -> None:
            self.writes += 1
            cls._write_bytes(raw, data)

        def read(*args: Any) -> Any:
            self.reads += 1
            return cls._read_packet(raw, *args)

        d["_write_bytes"] = write
        d["_read_packet"] = read
        self._dict = d

    def remove(self) -> None:
        self._dict.pop("_write_bytes", None)
        self._dict.pop("_read_packet", None)


def test_clean_return_costs_no_round_trip(make_pool: MakePool, admin: Admin) -> None:
    pool = make_pool(size=1)
    conn = pool.get_connection()
    conn.execute_query("SELECT 1")
    counter = WireCounter(conn)
    rollbacks, commits = global_status(admin, "Com_rollback"), global_status(admin, "Com_commit")
    conn.close()
    assert (counter.writes, counter.reads) == (0, 0)
    # `with pool.connection()` around a statement in autocommit mode: no COMMIT sent either.
    with pool.connection() as conn2:
        assert conn2.execute_query("SELECT 2") == ((2,),)
        writes_before = counter.writes
    assert counter.writes == writes_before
    assert global_status(admin, "Com_rollback") == rollbacks
    assert global_status(admin, "Com_commit") == commits
    counter.remove()


def test_dirty_return_rolls_back_on_the_wire(make_pool: MakePool, table: str, admin: Admin) -> None:
    pool = make_pool(size=1)
    conn = pool.get_connection()
    conn.begin()
    conn.execute_query(f"INSERT INTO {table} (v) VALUES ('x')")
    counter = WireCounter(conn)
    rollbacks = global_status(admin, "Com_rollback")
    conn.close()
    assert counter.writes == 1  # exactly one ROLLBACK
    assert global_status(admin, "Com_rollback") == rollbacks + 1
    assert count_rows(admin, table) == 0
    counter.remove()


def test_with_block_commits_on_success_and_rolls_back_on_error(
    make_pool: MakePool, table: str, admin: Admin
) -> None:
    pool = make_pool(size=1)
    with pool.connection() as conn:
        conn.begin()
        conn.execute_query(f"INSERT INTO {table} (v) VALUES ('kept')")
    with pytest.raises(ZeroDivisionError), pool.connection() as conn:
        conn.begin()
        conn.execute_query(f"INSERT INTO {table} (v) VALUES ('dropped')")
        1 / 0  # noqa: B018
    conn = pool.get_connection()
    with pytest.raises(KeyError), conn:
        conn.begin()
        conn.execute_query(f"INSERT INTO {table} (v) VALUES ('dropped too')")
        raise KeyError("boom")
    with pool.transaction() as conn:
        conn.execute_query(f"INSERT INTO {table} (v) VALUES ('tx kept')")
    with pytest.raises(RuntimeError), pool.transaction() as conn:
        conn.execute_query(f"INSERT INTO {table} (v) VALUES ('tx dropped')")
        raise RuntimeError
    with admin.cursor() as cur:
        cur.execute(f"SELECT v FROM {table} ORDER BY id")
        assert cur.fetchall() == (("kept",), ("tx kept",))
    assert pool.stats()["in_use"] == 0


@pytest.mark.parametrize("give_back", ["close", "with", "context"])
def test_broken_connection_is_discarded_and_capacity_freed(
    own_pool: OwnPool,
    own_user: dict[str, Any],
    admin: Admin,
    server_connections: Callable[..., int],
    give_back: str,
) -> None:
    pool = own_pool(size=2, max_size=2)
    victim: int | None = None

    def use_killed(conn: Connection) -> None:
        nonlocal victim
        victim = conn.thread_id()
        kill(admin, victim)
        with pytest.raises(pymysql.err.OperationalError):
            conn.execute_query("SELECT 1")

    if give_back == "close":
        conn = pool.get_connection()
        use_killed(conn)
        conn.close()
    elif give_back == "with":
        conn = pool.get_connection()
        with pytest.raises(pymysql.err.OperationalError), conn:
            victim = conn.thread_id()
            kill(admin, victim)
            conn.execute_query("SELECT 1")
    else:
        with pytest.raises(pymysql.err.OperationalError), pool.connection() as conn:
            victim = conn.thread_id()
            kill(admin, victim)
            conn.execute_query("SELECT 1")
    stats = pool.stats()
    assert stats["connections_lost"] == 1
    assert stats["in_use"] == 0 and stats["pool_size"] <= 2
    # Full capacity: two at once, both working, neither the dead one.
    both = [pool.get_connection(timeout=5) for _ in range(2)]
    ids = {session_id(c) for c in both}
    assert len(ids) == 2 and victim not in ids
    assert server_connections(own_user["user"]) == 2
    for c in both:
        c.close()


def test_killed_while_lent_but_unused_is_not_lent_again(make_pool: MakePool, admin: Admin) -> None:
    """The borrower never noticed (no I/O after the KILL): the return is clean, but the next
    borrow must still not get the dead session."""
    pool = make_pool(size=1)
    conn = pool.get_connection()
    victim = conn.thread_id()
    kill(admin, victim)
    conn.close()
    with pool.connection(timeout=5) as nxt:
        assert session_id(nxt) != victim


def test_socket_closed_under_the_borrower_is_discarded(make_pool: MakePool) -> None:
    pool = make_pool(size=1)
    conn = pool.get_connection()
    victim = conn.thread_id()
    conn._sock.shutdown(socket.SHUT_RDWR)  # the network goes away under the borrower
    with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
        conn.execute_query("SELECT 1")
    conn.close()
    assert pool.stats()["connections_lost"] == 1
    with pool.connection(timeout=5) as nxt:
        assert session_id(nxt) != victim


QUIET_GC = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


# The half-read result's own __del__ tries to drain the rows through the returned lease and
# PyMySQL reports that as an unraisable exception: noisy, but the alternative (marking the result
# finished) would make a late fetchone() return None instead of raising.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unread_unbuffered_result_is_not_lent_again(make_pool: MakePool) -> None:
    """Half-read server-side cursor: the connection is discarded (its socket still carries rows);
    reading on from the borrower's cursor raises instead of reading the next borrower's socket."""
    pool = make_pool(size=1)
    conn = pool.get_connection()
    victim = conn.thread_id()
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute("SELECT seq FROM seq_1_to_1000")  # MariaDB's sequence engine
    assert cur.fetchone() == (1,)
    conn.close()
    with pytest.raises(ConnectionReturnedError):
        cur.fetchone()
    del cur
    gc.collect()
    with pool.connection(timeout=5) as nxt:
        assert nxt.execute_query("SELECT 42") == ((42,),)
        assert nxt.thread_id() != victim


@QUIET_GC
def test_server_side_cursor_outliving_its_lease_is_collected_quietly(make_pool: MakePool) -> None:
    pool = make_pool(size=1)
    with pool.connection() as conn:
        victim = conn.thread_id()
        cur = conn.cursor(pymysql.cursors.SSCursor)
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
    del cur
    gc.collect()
    with pool.connection() as nxt:
        assert nxt.thread_id() == victim  # fully read: clean, kept


# -- 5. FIFO waiters with a deadline -------------------------------------------------------------


def test_waiters_are_served_in_arrival_order(make_pool: MakePool) -> None:
    pool = make_pool(size=1, timeout=10)
    held = pool.get_connection()
    served: list[int] = []
    lock = threading.Lock()
    threads = []
    for i in range(6):

        def wait_turn(i: int = i) -> None:
            with pool.connection() as conn:
                with lock:
                    served.append(i)
                conn.execute_query("SELECT 1")

        t = threading.Thread(target=wait_turn)
        t.start()
        threads.append(t)
        # The next thread starts only once this one is in the queue: arrival order is known.
        wait_until(lambda i=i: pool.stats()["requests_waiting"] == i + 1, what=f"waiter {i}")
    held.close()
    for t in threads:
        t.join(10)
    assert served == list(range(6))


def test_timeout_says_how_long_and_how_busy(make_pool: MakePool) -> None:
    pool = make_pool(size=1, max_size=2, name="core-busy", timeout=0.25)
    held = [pool.get_connection(), pool.get_connection()]
    waiting = threading.Event()

    def other_waiter() -> None:
        waiting.set()
        with pytest.raises(GetConnectionFromPoolError):
            pool.get_connection(timeout=2)

    t = threading.Thread(target=other_waiter)
    t.start()
    waiting.wait(5)
    wait_until(lambda: pool.stats()["requests_waiting"] == 1, what="the other waiter")
    start = time.monotonic()
    with pytest.raises(GetConnectionFromPoolError) as info:
        pool.get_connection()  # the pool's default timeout: 0.25 s
    elapsed = time.monotonic() - start
    assert 0.25 <= elapsed < 1.5
    message = str(info.value)
    waited = float(re.search(r"after waiting (\d+\.\d+) s", message).group(1))  # type: ignore[union-attr]
    assert 0.25 <= waited <= elapsed + 0.0005  # (printed to the millisecond)
    assert "'core-busy'" in message and "timeout 0.25 s" in message
    assert "2 of max_size=2 in use" in message
    assert "1 waiting" in message
    t.join(5)
    for c in held:
        c.close()
    assert pool.stats()["requests_errors"] == 2


def test_retry_num_waits_again(make_pool: MakePool) -> None:
    pool = make_pool(size=1)
    held = pool.get_connection()
    start = time.monotonic()
    with pytest.raises(GetConnectionFromPoolError):
        pool.get_connection(timeout=0.1, retry_num=2)
    assert time.monotonic() - start >= 0.3
    held.close()


# -- 6. Close twice, return twice, use after return ----------------------------------------------


def test_close_twice_and_putconn_twice_are_no_ops(make_pool: MakePool) -> None:
    pool = make_pool(size=2)
    conn = pool.get_connection()
    conn.close()
    conn.close()
    pool.putconn(conn)
    with pytest.raises(ConnectionReturnedError), conn:  # entering `with` is a use
        pass
    stats = pool.stats()
    assert (stats["in_use"], stats["pool_available"], stats["pool_size"]) == (0, 2, 2)
    a, b = pool.get_connection(), pool.get_connection()
    assert a.thread_id() != b.thread_id()  # the connection was not put back twice
    with pytest.raises(GetConnectionFromPoolError):
        pool.get_connection(timeout=0)
    a.close()
    b.close()


def test_close_inside_with_block_then_exit(make_pool: MakePool) -> None:
    pool = make_pool(size=1)
    with pool.connection() as conn:
        conn.close()
    with pool.get_connection() as conn2:
        conn2.close()
    with pytest.raises(LookupError), pool.get_connection() as conn3:
        conn3.close()
        raise LookupError  # the body's own error still comes out, unchanged
    assert pool.stats()["in_use"] == 0 and pool.size() == 1


@pytest.mark.parametrize(
    "use",
    [
        lambda c: c.cursor(),
        lambda c: c.execute_query("SELECT 1"),
        lambda c: c.query("SELECT 1"),
        lambda c: c.commit(),
        lambda c: c.rollback(),
        lambda c: c.begin(),
        lambda c: c.ping(),
        lambda c: c.select_db("mysql"),
        lambda c: c.autocommit(False),
        lambda c: c.thread_id(),
        lambda c: c.server_status,
        lambda c: c.__enter__(),
    ],
    ids=[
        "cursor",
        "execute_query",
        "query",
        "commit",
        "rollback",
        "begin",
        "ping",
        "select_db",
        "autocommit",
        "thread_id",
        "server_status",
        "enter",
    ],
)
def test_use_after_return_raises(make_pool: MakePool, use: Callable[[Connection], Any]) -> None:
    pool = make_pool(size=1, name="core-returned")
    conn = pool.get_connection()
    conn.close()
    with pytest.raises(ConnectionReturnedError, match="'core-returned'"):
        use(conn)
    assert not conn.open
    # The next borrower's session is untouched.
    with pool.connection() as nxt:
        assert nxt.execute_query("SELECT 1") == ((1,),)


def test_cursor_made_before_return_cannot_reach_the_socket(make_pool: MakePool) -> None:
    pool = make_pool(size=1)
    conn = pool.get_connection()
    cur = conn.cursor()
    dict_cur = conn.cursor(pymysql.cursors.DictCursor)
    cur.execute("SELECT 1")
    conn.close()
    nxt = pool.get_connection()  # same server connection, now someone else's
    with pytest.raises(ConnectionReturnedError):
        cur.execute("SELECT 2")
    with pytest.raises(ConnectionReturnedError):
        dict_cur.execute("SELECT %s", (3,))
    assert nxt.execute_query("SELECT 4") == ((4,),)
    nxt.close()


def test_putconn_rejects_strangers(make_pool: MakePool, db_kwargs: dict[str, Any]) -> None:
    pool_a, pool_b = make_pool(size=1), make_pool(size=1)
    conn = pool_a.get_connection()
    with pytest.raises(ValueError, match="does not belong"):
        pool_b.putconn(conn)
    with pytest.raises(TypeError):
        pool_b.putconn(object())  # type: ignore[arg-type]
    plain = Connection(**db_kwargs)
    with pytest.raises(ValueError):
        pool_a.putconn(plain)
    plain.close()
    conn.close()
    assert pool_a.stats()["in_use"] == 0 and pool_b.stats()["pool_available"] == 1


def test_closed_pool(make_pool: MakePool) -> None:
    from mysqlpool_ext import PoolClosedError

    pool = make_pool(size=2, name="core-closed")
    lent = pool.get_connection()
    pool.close()
    pool.close()  # twice: no-op
    with pytest.raises(PoolClosedError, match="'core-closed'"):
        pool.get_connection()
    lent.close()  # giving back to a closed pool closes it, without error
    assert pool.stats()["pool_size"] == 0
