"""The asyncio face: the core's procedures run with ``await``.

:mod:`mysqlpool_ext._core` decides everything (who gets which connection, who waits, what to
check and reset); this module only performs the effects a procedure asks for without blocking the
event loop — the same procedures the blocking face runs, so the two faces cannot drift:

- waiting is a future queued in the pool's one FIFO line, shared with threads; one timer per pool
  and loop watches the deadlines of all the loop's waiters (a timer per wait cost ~3 us each);
- opening a connection (DNS, TCP, TLS, authentication) is blocking PyMySQL code and rare thanks
  to pooling: it runs in the loop's default executor, bounded by the borrower's deadline;
- liveness checks, COMMIT/ROLLBACK and session resets go over :mod:`mysqlpool_ext._wire_async`.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from asyncio import _get_running_loop
from typing import Any

from . import _core
from ._core import PoolCore, Procedure, ResetPlan, Slot, Verdict
from ._protocol import Statement
from ._wire_async import (
    aio_command,
    aio_init_db,
    aio_ping,
    aio_reset_session,
    aio_run_query,
    in_thread,
)
from .connection import Connection, bounded_check

__all__ = ["AsyncBorrow", "aexecute_query", "agetconn", "agive_back"]

_monotonic = time.monotonic
_INF = float("inf")


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _TaskWaiter:
    """A task waiting in the pool's line (the core's ``Waiter``)."""

    __slots__ = ("deadline", "fut", "loop", "result", "thread")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.fut: asyncio.Future[None] = self.loop.create_future()
        self.result: Any = None
        self.thread = threading.get_ident()
        self.deadline = _INF

    def wake(self) -> bool:
        """False when the loop is closed: the task can never take what it was handed."""
        if _get_running_loop() is self.loop:
            # A give-back on the waiter's own loop (most of them): open, and this thread's.
            fut = self.fut
            if not fut.done():
                fut.set_result(None)
            return True
        if self.loop.is_closed():
            return False
        if threading.get_ident() == self.thread:
            fut = self.fut  # _resolve, inline: a giver wakes a waiter on most give-backs
            if not fut.done():
                fut.set_result(None)
            return True
        try:
            self.loop.call_soon_threadsafe(_resolve, self.fut)
        except RuntimeError:  # closed meanwhile
            return False
        return True


class _Watch:
    """One timer per pool and event loop for the deadlines of that loop's waiters.

    Armed for the earliest deadline it knows of; when it fires it ends the waits that are due and
    re-arms for the earliest of the rest. Only the loop's thread touches it. It holds the core
    weakly, like the maintenance thread holds the pool.
    """

    __slots__ = ("core", "handle", "loop", "when")

    def __init__(self, core: PoolCore, loop: asyncio.AbstractEventLoop) -> None:
        self.core = weakref.ref(core)
        self.loop = loop
        self.handle: asyncio.TimerHandle | None = None
        self.when = _INF

    def arm(self, deadline: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.when = deadline
        self.handle = self.loop.call_later(max(0.0, deadline - _monotonic()), self.fire)

    def fire(self) -> None:
        self.handle = None
        self.when = _INF
        core = self.core()
        if core is None:
            return
        now = _monotonic()
        due = []
        later = _INF
        loop = self.loop
        with core.lock:
            for waiter in core.waiters:
                if waiter.__class__ is _TaskWaiter and waiter.loop is loop:
                    if waiter.deadline <= now:
                        due.append(waiter)
                    elif waiter.deadline < later:
                        later = waiter.deadline
        for waiter in due:
            _resolve(waiter.fut)
        if later < _INF:
            self.arm(later)


def _watch(core: PoolCore, waiter: _TaskWaiter, deadline: float) -> asyncio.TimerHandle | None:
    """See that the wait ends by ``deadline``: through the pool's watch for this loop, or (the
    pool is in use from another live loop too) through a timer of its own, returned to cancel."""
    waiter.deadline = deadline
    loop = waiter.loop
    watch = core.deadline_watch
    if watch is None or watch.loop is not loop:
        if watch is not None and not watch.loop.is_closed():
            return loop.call_later(max(0.0, deadline - _monotonic()), _resolve, waiter.fut)
        watch = core.deadline_watch = _Watch(core, loop)
    if deadline < watch.when:
        watch.arm(deadline)
    return None


async def arun(core: PoolCore, proc: Procedure) -> Any:
    """Run a core procedure, performing its effects without blocking the loop."""
    try:
        effect = next(proc)
        while True:
            try:
                if effect.__class__ is _core.Wait:  # the common one: no coroutine of its own
                    waiter = effect.waiter
                    timer = _watch(core, waiter, effect.deadline)
                    try:
                        await waiter.fut
                    finally:
                        if timer is not None:
                            timer.cancel()
                    outcome = None
                else:
                    outcome = await _perform(core, effect)
            except BaseException as exc:  # noqa: BLE001 - the procedure cleans up, re-raises
                effect = proc.throw(exc)
            else:
                effect = proc.send(outcome)
    except StopIteration as stop:
        return stop.value


async def _perform(core: PoolCore, effect: Any) -> Any:
    cls = effect.__class__
    if cls is _core.Open:
        return await _open(core, effect.timeout)
    if cls is _core.Sleep:
        await asyncio.sleep(effect.seconds)
        return None
    if cls is _core.Check:
        check = core.check
        if check == "ping":
            # Bounded as the blocking face's ping: by connect_timeout and by what is left of
            # the borrower's deadline (a frozen server must not hold the borrow past it).
            raw = effect.raw
            bound = min(raw.connect_timeout or math.inf, effect.timeout)
            if raw._read_timeout is not None:
                bound = min(bound, raw._read_timeout)
            if bound == math.inf:
                await aio_ping(raw)
            else:
                await asyncio.wait_for(aio_ping(raw), bound)
        elif callable(check):
            await in_thread(effect.raw, bounded_check, check, effect.raw, effect.timeout)
        return None
    if cls is _core.Reset:
        await _reset(core, effect.raw, effect.plan)
        return None
    if cls is _core.Send:
        await aio_command(effect.conn, effect.sql.decode())
        return None
    raise TypeError(f"unknown effect {effect!r}")


async def _open(core: PoolCore, timeout: float) -> Slot:
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, core.connector.open, timeout)
    try:
        raw = await asyncio.shield(fut)
    except asyncio.CancelledError:
        # The procedure gives the permit back; a connection that still opens joins the pool
        # (or is closed if the capacity went to someone else meanwhile).
        fut.add_done_callback(_take_in_opened(core))
        raise
    return core.adopt(raw)


def _take_in_opened(core: PoolCore) -> Any:
    def done(fut: asyncio.Future[Connection]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            raw = fut.result()
            if not core.take_in(raw):
                core.connector.close(raw)

    return done


async def _reset(core: PoolCore, raw: Connection, plan: ResetPlan) -> None:
    if plan & ResetPlan.SESSION:
        await aio_reset_session(raw)
        return
    if plan & ResetPlan.ROLLBACK:
        await aio_command(raw, "ROLLBACK")
    if plan & ResetPlan.AUTOCOMMIT:
        raw.autocommit_mode = bool(core.autocommit)
        await aio_command(raw, f"SET AUTOCOMMIT = {int(bool(core.autocommit))}")
    if plan & ResetPlan.SELECT_DB:
        if core.database:
            await aio_init_db(raw, core.database)
        raw.__dict__["_mp_db_changed"] = False


async def agetconn(core: PoolCore, timeout: float, depth: int = 1) -> Connection:
    """Borrow without blocking the loop: the blocking face's ``_getconn``, awaited.

    ``depth``: how many frames up the borrower is (1: the caller), for :meth:`PoolCore.lend`
    to start its search for the borrower's line there."""
    if core.leaked:
        core.wake_maintenance()  # the blocking face gives leaked connections back
    # One attempt under the lock: an idle connection, a permit, or a place in line.
    got = core.try_acquire(_TaskWaiter if timeout > 0 else None)
    start = None
    if got.__class__ is _TaskWaiter and not core.refill_paused:
        # The procedure's first step (wait in line), taken here without running a generator:
        # under load most borrows wait, and the procedure's machinery costs more than the rest
        # of the borrow. What a wait leaves behind is sorted out by the core, as there.
        start = _monotonic()
        timer = _watch(core, got, start + timeout)
        try:
            await got.fut
        except BaseException:
            core.leave_line(got, start)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        got = core.waited(got, start, timeout)
    if got.__class__ is Slot:
        now = _monotonic()
        if core.vet(got, now) is Verdict.LEND:
            return core.lend(got, depth, now)
    slot = await arun(core, core.borrow(timeout, _TaskWaiter, got, start))
    return core.lend(slot, depth)


async def agive_back(
    core: PoolCore, lease: Connection, exc: BaseException | None, block: bool
) -> None:
    proc = core.start_give_back(lease, exc, block)
    if proc is not None:
        await arun(core, proc)


class AsyncBorrow:
    """``async with pool.aconnection()`` / ``pool.atransaction()``: borrow for a block.

    With ``begin=True`` the block runs in a transaction (BEGIN first). Either way, on success an
    open transaction is committed, on error rolled back; then the connection goes back (or is
    discarded if it broke, e.g. because the task was cancelled in the middle of a query). A
    block that ends normally but could not commit raises.
    """

    __slots__ = ("begin", "conn", "core", "timeout")

    def __init__(self, core: PoolCore, timeout: float, begin: bool) -> None:
        self.core = core
        self.timeout = timeout
        self.begin = begin
        self.conn: Connection | None = None

    async def __aenter__(self) -> Connection:
        conn = await agetconn(self.core, self.timeout, 2)  # the borrower's ``async with``
        if self.begin:
            try:
                await aio_command(conn, "BEGIN")
            except BaseException as exc:
                await agive_back(self.core, conn, exc, True)
                raise
        self.conn = conn
        return conn

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        conn = self.conn
        if conn is not None:
            self.conn = None
            await agive_back(self.core, conn, exc, True)


async def aexecute_query(core: PoolCore, timeout: float, stmt: Statement) -> Any:
    """Borrow, run one statement, commit what is open, give back (``pool.aexecute_query``)."""
    # The borrower awaits this coroutine (StatementMethods.aexecute_query only returns it):
    # lend() finds it right there, with no frame to walk past.
    conn = await agetconn(core, timeout, 3)
    try:
        result = await aio_run_query(conn, stmt, False)  # given back at once: keep no result
    except BaseException as exc:
        await agive_back(core, conn, exc, True)
        raise
    proc = core.start_give_back(conn, None, True)  # agive_back, one coroutine fewer
    if proc is not None:
        await arun(core, proc)
    return result
