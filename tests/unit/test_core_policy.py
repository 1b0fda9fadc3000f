"""The pool's policy without a server: ``mysqlpool_ext._core`` driven with a fake connector.

These run in milliseconds and pin the rules both faces share (docs/architecture.md lists them);
the behaviour a user sees is tested against a real server in tests/core, tests/async and the
both-faces suite in tests/reliability.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from mysqlpool_ext._core import (
    CLOSED,
    PERMIT,
    Check,
    Open,
    PoolCore,
    ResetPlan,
    Send,
    Slot,
    Verdict,
    Wait,
    is_transient,
)
from mysqlpool_ext._protocol import IN_TRANS, SessionState
from mysqlpool_ext.connection import Connection
from mysqlpool_ext.errors import GetConnectionFromPoolError, PoolClosedError


class FakeRaw(Connection):
    """Just the attributes the core reads; no socket behind it."""

    def __init__(self, n: int) -> None:
        d = self.__dict__
        d["_sock"] = object()
        d["_result"] = None
        d["server_status"] = 2
        d["server_thread_id"] = (n,)
        d["_mp_state"] = SessionState(None, "utf8mb4", None, "utf8", None, None, True, True)
        d["closed_by_core"] = False

    def has_pending_input(self) -> bool:
        return False

    def __del__(self) -> None:
        pass


class FakeConnector:
    def __init__(self) -> None:
        self.opened = 0
        self.closed: list[FakeRaw] = []

    def open(self, timeout: float | None) -> Connection:
        self.opened += 1
        return FakeRaw(self.opened)

    def close(self, raw: Connection) -> None:
        self.closed.append(raw)  # type: ignore[arg-type]

    def drop(self, raw: Connection) -> None:
        self.closed.append(raw)  # type: ignore[arg-type]


class FakeWaiter:
    def __init__(self, alive: bool = True) -> None:
        self.result: Any = None
        self.alive = alive
        self.woken = 0

    def wake(self) -> bool:
        self.woken += 1
        return self.alive


def make_core(**kw: Any) -> tuple[PoolCore, FakeConnector]:
    connector = FakeConnector()
    options: dict[str, Any] = dict(
        size=1,
        max_size=2,
        max_lifetime=None,
        max_idle=None,
        check="ping",
        check_window=0.5,
        reset="auto",
        autocommit=True,
        database=None,
        leak_timeout=None,
        backoff_max=1.0,
        connector=connector,
    )
    options.update(kw)
    core = PoolCore("unit", **options)
    core.sync_give_back = lambda lease, exc, block: None
    core.run_blocking = lambda proc: None
    return core, connector


def drive(proc: Any, outcomes: dict[type, Any]) -> Any:
    """Run a procedure, answering each effect from ``outcomes`` (an exception is thrown in)."""
    try:
        effect = next(proc)
        while True:
            answer = outcomes[type(effect)]
            if callable(answer) and not isinstance(answer, type):
                answer = answer(effect)
            if isinstance(answer, BaseException):
                effect = proc.throw(answer)
            else:
                effect = proc.send(answer)
    except StopIteration as stop:
        return stop.value


def opened_slot(core: PoolCore, connector: FakeConnector) -> Slot:
    return core.adopt(connector.open(None))


def test_borrow_opens_with_a_permit_and_never_exceeds_max_size() -> None:
    core, connector = make_core(max_size=2)
    slots = [
        drive(core.borrow(1.0, FakeWaiter), {Open: lambda e: opened_slot(core, connector)})
        for _ in range(2)
    ]
    assert core.nconns == 2 and all(isinstance(s, Slot) for s in slots)
    assert core.try_acquire(None) is None  # full: no permit beyond max_size
    with pytest.raises(GetConnectionFromPoolError, match=r"of max_size=2"):
        drive(core.borrow(0, FakeWaiter), {})


def test_waiters_are_served_fifo_and_a_dead_waiter_is_skipped() -> None:
    core, connector = make_core(max_size=1)
    slot = opened_slot(core, connector)
    core.nconns = 1
    first, dead, last = FakeWaiter(), FakeWaiter(alive=False), FakeWaiter()
    core.waiters.extend([dead, first, last])
    core.put_idle(slot)
    assert dead.result is None and first.result is slot and last.result is None
    assert list(core.waiters) == [last]


def test_interrupted_waiter_passes_on_what_it_was_handed() -> None:
    core, connector = make_core(max_size=1)
    slot = opened_slot(core, connector)
    core.nconns = 1
    core.lent.add(slot)
    proc = core.borrow(5.0, FakeWaiter)
    effect = next(proc)
    assert isinstance(effect, Wait)
    nxt = FakeWaiter()
    core.waiters.append(nxt)
    core.lent.discard(slot)
    core.put_idle(slot)  # handed to the waiter at the very moment it is interrupted
    assert effect.waiter.result is slot
    with pytest.raises(KeyboardInterrupt):
        proc.throw(KeyboardInterrupt())
    assert nxt.result is slot  # passed on, not lost
    assert core.nconns == 1 and effect.waiter not in core.waiters


def test_interrupted_permit_holder_gives_capacity_back() -> None:
    core, _ = make_core(max_size=1)
    proc = core.borrow(5.0, FakeWaiter)
    assert isinstance(next(proc), Open) and core.nconns == 1
    with pytest.raises(KeyboardInterrupt):
        proc.throw(KeyboardInterrupt())
    assert core.nconns == 0


def test_permanent_connect_error_reaches_the_borrower_transient_waits() -> None:
    import pymysql

    core, _ = make_core(max_size=1)
    with pytest.raises(pymysql.err.ProgrammingError):
        drive(core.borrow(1.0, FakeWaiter), {Open: pymysql.err.ProgrammingError(1064, "syntax")})
    assert core.nconns == 0 and core.outage is None
    proc = core.borrow(1.0, FakeWaiter)
    next(proc)
    effect = proc.throw(pymysql.err.OperationalError(2003, "refused"))
    assert isinstance(effect, Wait) and core.outage is not None  # in line for the reconnects
    assert is_transient(pymysql.err.OperationalError(1040, "too many")) and not is_transient(
        FileNotFoundError("ca.pem")
    )


def test_fresh_connection_is_not_checked_idle_one_is() -> None:
    core, connector = make_core(check_window=0.0)
    checks: list[Any] = []
    slot = drive(
        core.borrow(1.0, FakeWaiter),
        {Open: lambda e: opened_slot(core, connector), Check: checks.append},
    )
    assert checks == []  # just opened: the handshake proved it alive
    core.lend(slot, 1)
    core.lent.discard(slot)
    core.idle.append(slot)
    assert core.vet(slot, slot.last_used + 1.0) is Verdict.CHECK


def test_failed_check_discards_and_the_borrow_goes_on() -> None:
    core, connector = make_core(check_window=0.0)
    stale = opened_slot(core, connector)
    core.nconns = 1
    core.idle.append(stale)
    got = drive(
        core.borrow(1.0, FakeWaiter),
        {Check: OSError("gone"), Open: lambda e: opened_slot(core, connector)},
    )
    assert got is not stale and stale.raw in connector.closed
    assert core.counters["checks_failed"] == 1 and core.nconns == 1


def test_reset_plans() -> None:
    core, connector = make_core()
    slot = opened_slot(core, connector)
    raw = slot.raw
    assert core.release_plan(slot) is ResetPlan.NONE  # clean: no round trip
    raw.__dict__["server_status"] = 2 | IN_TRANS
    assert core.release_plan(slot) is ResetPlan.ROLLBACK
    raw.__dict__["_mp_dirty"] = True
    assert core.release_plan(slot) == ResetPlan.SESSION | ResetPlan.ROLLBACK
    core.reset_unsupported = True
    assert core.release_plan(slot) & ResetPlan.REPLACE
    core.reset_unsupported = False
    raw.__dict__.update(_mp_dirty=False, _mp_used=True, server_status=2)
    assert core.release_plan(slot) is ResetPlan.NONE  # tracked: a used but unchanged session
    assert raw._mp_used is False  # per-borrow notes start afresh
    raw.__dict__["_mp_state"] = SessionState(None, "utf8mb4", None, "utf8", None, None, True, False)
    assert core.release_plan(slot) is ResetPlan.NONE  # untracked server, unused: nothing
    raw.__dict__["_mp_used"] = True
    assert core.release_plan(slot) is ResetPlan.SESSION  # untracked server: reset if used


def test_block_end_commits_and_lost_transaction_raises() -> None:
    from mysqlpool_ext.errors import TransactionLostError

    core, connector = make_core()
    slot = opened_slot(core, connector)
    core.nconns = 1
    lease = core.lend(slot, 1)
    slot.raw.__dict__["server_status"] = 2 | IN_TRANS
    sent: list[bytes] = []
    proc = core.start_give_back(lease, None, True)
    assert proc is not None
    drive(proc, {Send: lambda e: (sent.append(e.sql), slot.raw.__dict__.update(server_status=2))})
    assert sent == [b"COMMIT"] and core.idle[-1] is slot
    lease = core.lend(core.idle.pop(), 1)
    slot.raw.__dict__.update(_mp_broken=True, server_status=2 | IN_TRANS)
    with pytest.raises(TransactionLostError):
        core.start_give_back(lease, None, True)
    assert core.nconns == 0 and slot.raw in connector.closed


def test_close_wakes_waiters_with_closed() -> None:
    core, _ = make_core(max_size=0)
    waiter = FakeWaiter()
    core.waiters.append(waiter)
    core.close_begin()
    assert waiter.result is CLOSED
    with pytest.raises(PoolClosedError):
        core.try_acquire(None)


def test_permit_is_a_singleton() -> None:
    core, _ = make_core()
    assert core.try_acquire(None) is PERMIT


def test_consecutive_failed_checks_back_off_before_replacing() -> None:
    """A check that keeps failing must not turn every borrow into a new server connection."""
    from mysqlpool_ext._core import Sleep

    core, connector = make_core(size=1, max_size=1, check_window=0.0, backoff_max=1.0)
    sleeps: list[float] = []
    for _ in range(4):
        stale = opened_slot(core, connector)
        core.nconns = 1
        core.idle.append(stale)
        drive(
            core.borrow(5.0, FakeWaiter),
            {
                Check: OSError("always"),
                Sleep: lambda e: sleeps.append(e.seconds),
                Open: lambda e: opened_slot(core, connector),
            },
        )
        core.nconns = 0
    assert len(sleeps) == 3  # the first dead connection is replaced at once
    assert sleeps == sorted(sleeps) or max(sleeps) <= 1.0
    assert 0 < sleeps[0] <= 0.1 and all(s <= 1.0 for s in sleeps)


def test_lend_with_a_share_deeper_than_the_stack_still_records_the_borrower() -> None:
    """A borrow whose caller's share of the stack is larger than the stack (a coroutine driven
    from C code) still lends, and names the innermost frame outside the pool's files."""
    core, connector = make_core()
    slot = opened_slot(core, connector)
    core.nconns = 1
    lease = core.lend(slot, 100_000)
    code, _ = slot.site
    assert code is sys._getframe(0).f_code  # this test function: the first frame not ours
    core.start_give_back(lease, None, False)
    assert core.idle[-1] is slot


def lent_lease(core: PoolCore, connector: FakeConnector) -> Connection:
    slot = opened_slot(core, connector)
    core.nconns += 1
    return core.lend(slot, 1)


def test_keep_only_what_giving_back_would_leave_as_it_is() -> None:
    """A kept connection is exactly what a borrow would lend: never with a transaction, a
    changed session, past its lifetime, of a closed pool, nor while someone waits."""
    core, connector = make_core(max_size=4)
    lease = lent_lease(core, connector)
    raw = lease._mp_slot.raw  # type: ignore[union-attr]
    for change, undo in (
        ({"server_status": 2 | IN_TRANS}, {"server_status": 2}),
        ({"_mp_dirty": True}, {"_mp_dirty": False}),
        ({"_mp_broken": True}, {"_mp_broken": False}),
        ({"_sock": None}, {"_sock": raw._sock}),
    ):
        raw.__dict__.update(change)
        assert core.keep(lease) is False, change
        raw.__dict__.update(undo)
    core.waiters.append(FakeWaiter())
    assert core.keep(lease) is False
    core.waiters.clear()
    raw.__dict__["_mp_used"] = True
    assert core.keep(lease) is True
    assert raw._mp_used is False  # per-borrow notes start afresh, as a give-back clears them
    stats = core.stats()
    assert (stats["kept"], stats["in_use"], stats["pool_available"]) == (1, 0, 1)
    assert core.take_kept(lease) is True and core.stats()["kept"] == 0
    assert core.counters["requests_num"] == 2  # a take-back is a borrow

    lease._mp_slot.expires = 0.0  # type: ignore[union-attr]
    assert core.keep(lease) is False  # past its lifetime: given back, retired there
    core.close_begin()
    assert core.keep(lease) is False


def test_a_kept_slot_goes_to_a_borrower_that_would_otherwise_wait() -> None:
    core, connector = make_core(max_size=1)
    lease = lent_lease(core, connector)
    slot = lease._mp_slot
    assert core.keep(lease)
    assert core.try_acquire(FakeWaiter) is slot  # no idle, no room: taken from its keeper
    assert lease.__class__ is not Connection  # the keeper's lease is detached
    assert core.take_kept(lease) is False
    lease.close()  # a no-op on a detached lease
    thief = core.lend(slot, 1)
    assert core.lent == {slot} and not core.waiters
    core.start_give_back(thief, None, False)
    assert list(core.idle) == [slot]


def test_a_kept_lease_given_back_is_no_longer_kept() -> None:
    """Its keeper may give it back instead of taking it back (Django's close()): then it is
    an idle slot like any, never also kept (which would lend it twice)."""
    core, connector = make_core(max_size=1)
    lease = lent_lease(core, connector)
    slot = lease._mp_slot
    assert core.keep(lease)
    core.start_give_back(lease, None, False)
    assert core.kept == {} and list(core.idle) == [slot]
    assert core.try_acquire(None) is slot
    assert core.try_acquire(None) is None  # only once


def test_a_kept_slot_needing_a_check_is_not_taken_back() -> None:
    core, connector = make_core(max_size=2, check_window=0.5)
    lease = lent_lease(core, connector)
    slot = lease._mp_slot
    assert core.keep(lease)
    slot.last_used -= 10.0  # idle past the check window: only a borrow (which checks) lends it
    assert core.take_kept(lease) is False
    core.start_give_back(lease, None, False)
    assert list(core.idle) == [slot]


def test_kept_slots_are_closed_with_the_pool_retired_with_their_server_not_late() -> None:
    core, connector = make_core(max_size=3, leak_timeout=0.001)
    first, second = lent_lease(core, connector), lent_lease(core, connector)
    first_slot, second_slot = first._mp_slot, second._mp_slot
    assert isinstance(first_slot, Slot) and isinstance(second_slot, Slot)
    assert core.keep(first) and core.keep(second)
    first_slot.borrowed_at -= 60.0
    assert core.late_leases(_now()) == []  # kept, not leaked
    assert core.retire_where(lambda raw: raw is second_slot.raw) == [second_slot]
    assert second.__class__ is not Connection and core.stats()["kept"] == 1
    _, to_close = core.close_begin()
    assert to_close == [first_slot]  # closed with the idle ones: its keeper is not using it
    assert first.__class__ is not Connection and core.kept == {} and core.lent == set()


def test_kept_slots_are_retired_like_idle_ones_past_their_lifetime_or_surplus() -> None:
    """A keeper may not come back for hours: upkeep retires what it keeps as if it were idle
    (past ``max_lifetime``; past ``max_idle`` above ``size``), detaching its lease."""
    core, connector = make_core(size=1, max_size=4, max_idle=30.0)
    leases = [lent_lease(core, connector) for _ in range(3)]
    slots = [lease._mp_slot for lease in leases]
    assert all(isinstance(s, Slot) for s in slots)
    assert all(core.keep(lease) for lease in leases)
    now = _now()
    assert core.retire_idle(now) == []  # none idle for long, none expired
    slots[2].expires = now - 1.0  # type: ignore[union-attr]
    slots[0].last_used = now - 100.0  # type: ignore[union-attr]
    slots[1].last_used = now - 60.0  # type: ignore[union-attr]
    retired = core.retire_idle(now)
    # Expired: always; surplus idle past max_idle: only down to size (1) connection.
    assert set(retired) == {(slots[2], True), (slots[0], False)}
    assert core.kept.keys() == {slots[1]} and core.lent == {slots[1]}
    assert leases[0].__class__ is not Connection and leases[2].__class__ is not Connection
    assert core.take_kept(leases[0]) is False  # its keeper borrows anew
    slots[1].last_used = _now()  # type: ignore[union-attr]
    assert core.take_kept(leases[1]) is True


class HookLock:
    """The core's lock, running ``before_acquire`` once, right before the next acquire, and
    ``after_release`` once, right after the next release: what another thread may do at that
    very moment."""

    def __init__(self) -> None:
        import threading

        self.inner = threading.Lock()
        self.before_acquire: Any = None
        self.after_release: Any = None

    def acquire(self, *args: Any) -> bool:
        hook, self.before_acquire = self.before_acquire, None
        if hook is not None:
            hook()
        return self.inner.acquire(*args)

    def release(self) -> None:
        self.inner.release()
        hook, self.after_release = self.after_release, None
        if hook is not None:
            hook()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def test_keep_clears_the_notes_before_anyone_can_take_the_connection() -> None:
    """A borrower may take a kept connection as soon as it is kept and note, say, a failed
    statement in an open transaction (``_mp_errored``): keep() must not clear that note."""
    core, connector = make_core(max_size=1)
    lease = lent_lease(core, connector)
    slot = lease._mp_slot
    assert isinstance(slot, Slot)
    core.lock = HookLock()  # type: ignore[assignment]
    thief: list[Connection] = []

    def take_it() -> None:
        got = core.try_acquire(FakeWaiter)
        assert got is slot
        thief.append(core.lend(slot, 1))
        slot.raw.__dict__["_mp_errored"] = True  # the thief's statement failed

    core.lock.after_release = take_it  # type: ignore[attr-defined]
    assert core.keep(lease) is True
    assert thief and slot.raw._mp_errored is True


def test_take_kept_is_only_for_the_lease_that_was_kept() -> None:
    """Taken from its keeper, used and kept again by the taker: the first keeper's take_kept
    must fail, not take the second keeper's entry."""
    core, connector = make_core(max_size=1)
    first = lent_lease(core, connector)
    slot = first._mp_slot
    assert core.keep(first)
    core.lock = HookLock()  # type: ignore[assignment]
    taker: list[Connection] = []

    def take_use_and_keep() -> None:  # after take_kept read the slot, before it locks
        assert core.try_acquire(FakeWaiter) is slot
        taker.append(core.lend(slot, 1))
        assert core.keep(taker[0])

    core.lock.before_acquire = take_use_and_keep  # type: ignore[attr-defined]
    assert core.take_kept(first) is False
    second = taker[0]
    assert core.kept.keys() == {slot} and core.kept[slot][0] is second  # type: ignore[index]
    assert core.take_kept(second) is True


def test_a_kept_lease_given_back_while_a_borrower_would_take_it_is_lent_once() -> None:
    """The keeper gives its kept lease back (Django's ``close()``) while, in another thread, a
    borrower finds the pool full: the give-back first takes it out of the kept ones under the
    lock, so the borrower waits for it instead of taking it too (lent twice)."""
    import threading

    core, connector = make_core(max_size=1)
    lease = lent_lease(core, connector)
    slot = lease._mp_slot
    assert core.keep(lease)
    paused, resume = threading.Event(), threading.Event()
    detach = PoolCore.detach.__code__

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if frame.f_code is detach:  # the keeper is about to let go of its lease
            paused.set()
            resume.wait(10)

    def give_back() -> None:
        sys.settrace(tracer)
        try:
            assert core.start_give_back(lease, None, False) is None
        finally:
            sys.settrace(None)

    keeper = threading.Thread(target=give_back)
    keeper.start()
    assert paused.wait(10)
    try:
        got = core.try_acquire(FakeWaiter)
        assert not isinstance(got, Slot), "the borrower took a connection being given back"
        assert isinstance(got, FakeWaiter)  # it waits: nothing idle, no room
    finally:
        resume.set()
        keeper.join(10)
    assert got.result is slot  # handed over by the give-back
    assert not core.idle and core.kept == {} and core.nconns == 1
    core.lend(slot, 1)
    assert core.lent == {slot}


def _now() -> float:
    import time

    return time.monotonic()


def test_a_connection_kept_by_an_ended_thread_is_taken_before_opening_another() -> None:
    """A server that runs each request in a new thread (Django's runserver) never comes back
    for what a request kept: the next borrower takes it instead of opening a connection."""
    import threading

    core, connector = make_core(max_size=4)
    lease = lent_lease(core, connector)
    slot = lease._mp_slot
    kept: list[bool] = []
    keeper = threading.Thread(target=lambda: kept.append(core.keep(lease)))
    keeper.start()
    keeper.join()
    assert kept == [True]
    assert core.try_acquire(None) is slot  # not a permit: nothing new opened
    assert core.kept == {} and core.nconns == 1
    assert core.keep(core.lend(slot, 1)) is True  # kept by this (live) thread
    assert core.try_acquire(None) is PERMIT  # room: a live keeper keeps it
