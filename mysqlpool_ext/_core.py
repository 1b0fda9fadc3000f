"""The pool's policy, with no I/O of its own: one copy for the blocking and the asyncio face.

What lives here (psycopg_pool's ``BasePool`` and HikariCP's ``ConcurrentBag``, put together):
the idle connections (LIFO, so the warm ones stay warm and the surplus ages out), one FIFO line
of waiters shared by threads and tasks, the permits to open a connection (never more than
``max_size``), the outage state, lifetimes, counters — and the two procedures, *borrow* and
*give back*, written once as generators. A procedure never performs I/O itself: it yields an
*effect* (wait for a hand-over, open a connection, check one, reset one, send COMMIT) and the
face that runs it performs the effect with blocking calls (``pool.py``) or with ``await``
(``_adriver.py``), then sends the outcome back in — or throws the exception in, which is how an
interrupt, a timeout or a cancellation is cleaned up by the same lines on both faces.

The server connections themselves are reached only through a :class:`Connector` (open, close)
and the connection's own flags, so the policy is unit-tested with a fake connector.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import itertools
import logging
import os
import random
import ssl
import sys
import threading
import time
import traceback
from collections import namedtuple
from collections.abc import Callable, Generator
from typing import Any, Protocol, Union

from pymysql.err import MySQLError

from ._protocol import AUTOCOMMIT, IN_TRANS, block_end_action, clear_block_notes
from .connection import Connection, ReturnedConnection
from .errors import GetConnectionFromPoolError, PoolClosedError

logger = logging.getLogger("mysqlpool_ext")
#: The logger's own answers to isEnabledFor(), kept by ``logging`` and cleared by it whenever the
#: configuration changes. Every borrow and give-back asks about DEBUG: a "no" found here costs a
#: dict lookup instead of a call; anything else (no answer yet, "yes") asks the logger itself.
_LEVEL_CACHE: dict[int, bool] = getattr(logger, "_cache", {})
_monotonic = time.monotonic

#: Frames from these files are the pool's own (or contextlib's), not the borrower's.
_INTERNAL_DIRS = (os.path.dirname(os.path.abspath(__file__)), contextlib.__file__)

#: Connect errors a retry may fix: the network, a server starting or shutting down, or one
#: refusing new sessions for now. Everything else (a wrong password, an unknown database, a
#: syntax error in init_command, a missing CA file...) is permanent: the borrower sees it at once.
TRANSIENT_CONNECT_ERRORS = frozenset({2002, 2003, 2006, 2013, 2055, 1040, 1053, 1203, 1226, 1927})
#: The server is up but refuses new sessions (too many connections, resource limits).
REFUSING_ERRORS = frozenset({1040, 1203, 1226})


def is_transient(exc: BaseException) -> bool:
    """A connect error that retrying with backoff may fix."""
    if isinstance(exc, MySQLError):
        original = getattr(exc, "original_exception", None)  # PyMySQL keeps what it wrapped
        if isinstance(original, ssl.SSLCertVerificationError):
            return False
        return bool(exc.args) and exc.args[0] in TRANSIENT_CONNECT_ERRORS
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return False  # a certificate or socket path that is not there: configuration
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False  # the server's certificate is not what the options trust
    return isinstance(exc, (OSError, EOFError))


def describe(exc: BaseException) -> str:
    """A one-line account of an error, without repeating what the pool's own wording adds."""
    original = getattr(exc, "mp_detail", None)
    if original:
        return str(original)
    if isinstance(exc, MySQLError) and len(exc.args) >= 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    if isinstance(exc, UnicodeError):
        return f"{type(exc).__name__} (a value could not be encoded)"
    return repr(exc)


class _Permit:
    """The right to open one connection: capacity already reserved for the holder."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<permit>"


class _Closed:
    """What a waiter finds when the pool closed while it waited."""

    __slots__ = ()


PERMIT = _Permit()
CLOSED = _Closed()
#: ``borrow(first=...)`` when the face has not tried to acquire yet.
NOT_TRIED = object()


class Waiter(Protocol):
    """A borrower waiting in line: a thread (pool.py) or a task (_adriver.py).

    The giver sets ``result`` under the pool lock, then calls :meth:`wake`, from any thread;
    ``wake`` returns False when the waiter can never run again (its event loop is closed): the
    giver then takes the hand-over back and tries the next waiter.
    """

    result: Slot | _Permit | _Closed | None

    def wake(self) -> bool: ...


Grant = Union["Slot", _Permit]


class Verdict(enum.Enum):
    """What borrowing does with an idle connection it took."""

    LEND = 0  # used recently: lend it as it is
    CHECK = 1  # idle past the check window, or the server spoke first: check liveness
    RETIRE = 2  # past its lifetime: discard and take another


class ResetPlan(enum.IntFlag):
    """What giving back must send before the connection can be lent again (none: no I/O)."""

    NONE = 0
    ROLLBACK = 1  # an open transaction
    AUTOCOMMIT = 2  # the autocommit mode was changed (policy "rollback")
    SELECT_DB = 4  # the default database was changed (policy "rollback")
    SESSION = 8  # COM_RESET_CONNECTION + the connect-time state (policies "auto", "session")
    REPLACE = 16  # the session changed and cannot be reset here: discard the connection


_ROLLBACK = ResetPlan.ROLLBACK
_NOTHING = ResetPlan.NONE


# -- effects: what a procedure asks its face to do ------------------------------------------------


#: Wait for a hand-over (or the deadline) in line.
Wait = namedtuple("Wait", "waiter deadline")
#: Open a connection; what is left of the borrower's deadline bounds the connect.
Open = namedtuple("Open", "timeout")
#: Pause before opening a replacement (failed checks in a row).
Sleep = namedtuple("Sleep", "seconds")
#: Check a connection's liveness (``check=``); ``timeout``: what is left of the borrower's
#: deadline (a check never makes a borrow wait past its timeout; a frozen server fails it).
Check = namedtuple("Check", "raw timeout")
#: Reset a connection by a :class:`ResetPlan` before it is lent again.
Reset = namedtuple("Reset", "raw plan")
#: Send COMMIT or ROLLBACK at the end of a block.
Send = namedtuple("Send", "conn sql")

Effect = Wait | Open | Sleep | Check | Reset | Send
Procedure = Generator[Effect, Any, Any]


class Connector(Protocol):
    """How the core reaches server connections (a fake one in the unit tests)."""

    def open(self, timeout: float | None) -> Connection: ...

    def close(self, raw: Connection) -> None: ...

    def drop(self, raw: Connection) -> None: ...

    def end_on_server(self, raw: Connection, done: Callable[[], None]) -> None:
        """End ``raw``'s session on the server (closed here while a statement ran), in the
        background; call ``done`` once that is over, whatever the outcome."""


def _describe_site(site: Any) -> str:
    """Where a borrower was: ``file:line`` from ``(code, instruction offset)``, or the stack text
    recorded when ``leak_timeout`` is set."""
    if isinstance(site, tuple):
        code, lasti = site
        for start, end, line in code.co_lines():
            if start <= lasti < end:
                return f"{code.co_filename}:{line}"
        return f"{code.co_filename}:?"
    return f"\n{site}"


class Slot:
    """The long-lived record of one server connection (the lease is the borrower's object).

    It is the lease's owner (:class:`~mysqlpool_ext.connection.LeaseOwner`): a lease's
    ``close()`` and ``with`` reach the pool through it.
    """

    __slots__ = (
        "borrowed_at",
        "core",
        "created",
        "expires",
        "fresh",
        "generation",
        "last_used",
        "leak_reported",
        "raw",
        "site",
    )

    def __init__(self, core: PoolCore, raw: Connection, now: float) -> None:
        self.core = core
        self.raw = raw
        self.created = now
        self.last_used = now
        self.borrowed_at = 0.0
        self.generation = core.generation
        self.site: Any = None
        self.leak_reported = False
        self.fresh = False  # opened for this very borrow: the handshake just proved it alive
        lifetime = core.max_lifetime
        # A few percent of jitter so connections opened together do not all expire together.
        self.expires = now + lifetime * (1.0 - 0.05 * random.random()) if lifetime else None

    @property
    def pool_name(self) -> str:
        return self.core.name

    def give_back(self, lease: Connection) -> None:
        core = self.core
        proc = core.start_give_back(lease, None, False)
        if proc is not None:
            core.run_blocking(proc)

    def end_block(self, lease: Connection, exc: BaseException | None) -> None:
        self.core.sync_give_back(lease, exc, True)

    def lost_lease(self, lease: Connection) -> None:
        """``lease``, lent and not given back, is being collected. Detached first: in a
        reference cycle the collector runs every finaliser before freeing anything, so the code
        holding it (a generator's or a coroutine's ``with``) may still give it back after this
        one ran — a second give-back of one borrow, which lends the connection twice."""
        core = self.core
        core.detach(lease)
        core.reclaim_leaked(self)


COUNTER_NAMES = (
    "requests_num",
    "requests_queued",
    "requests_wait_ms",
    "requests_errors",
    "connections_num",
    "connections_errors",
    "connections_lost",
    "connections_recycled",
    "returns_rolled_back",
    "returns_reset",
    "checks_failed",
    "leaks",
)


class PoolCore:
    """Sizes, the idle deque, the line of waiters, permits, outage and counters of one pool.

    Every borrow and give-back takes ``lock`` a few times. Those paths use ``lock.acquire()``
    with ``try``/``finally`` instead of ``with``: on CPython 3.11 a ``with`` looks up and binds
    ``__enter__`` and ``__exit__`` and calls the latter with three arguments, which costs more
    than the work done under the lock.
    """

    def __init__(
        self,
        name: str,
        *,
        size: int,
        max_size: int,
        max_lifetime: float | None,
        max_idle: float | None,
        check: Callable[[Any], None] | str | None,
        check_window: float,
        reset: str | None,
        autocommit: bool | None,
        database: str | None,
        leak_timeout: float | None,
        backoff_max: float,
        connector: Connector,
    ) -> None:
        self.name = name
        self.size = size
        self.max_size = max_size
        self.max_lifetime = max_lifetime
        self.max_idle = max_idle
        self.check = check
        self.check_window = check_window
        self.reset = reset
        self.autocommit = autocommit
        self.database = database
        self.leak_timeout = leak_timeout
        self.backoff_max = backoff_max
        self.connector = connector
        self.closed = False
        self.generation = 0
        self.reset_unsupported = False
        #: The maintenance thread keeps ``size`` open only once this process borrows (a lazy
        #: pool before its first use; a parent after a fork until it borrows again).
        self.refill_paused = False
        #: Set by the blocking face: how a lease's close() / ``with`` gives back, and how a
        #: procedure runs with blocking calls.
        self.sync_give_back: Callable[[Connection, BaseException | None, bool], None]
        self.run_blocking: Callable[[Procedure], Any]
        #: Set by the blocking face: wake the maintenance thread.
        self.wake_maintenance: Callable[[], None] = lambda: None
        #: Kept by the asyncio face: the timer that ends its waiters' waits at their deadlines.
        self.deadline_watch: Any = None
        self.init_state()

    def init_state(self) -> None:
        """Everything that must start afresh (also in a forked child)."""
        self.lock = threading.Lock()
        self.idle: collections.deque[Slot] = collections.deque()
        self.waiters: collections.deque[Waiter] = collections.deque()
        self.lent: set[Slot] = set()
        #: Lent slots whose borrower has finished with them for now but keeps them (see
        #: :meth:`keep`), with the borrower's lease and thread: still in ``lent``; anyone who
        #: would otherwise wait takes them, and before opening a connection, one whose keeper's
        #: thread has ended.
        self.kept: dict[Slot, tuple[Connection, threading.Thread]] = {}
        self.leaked: collections.deque[Slot] = collections.deque()
        self.nconns = 0  # open + being opened: never above max_size
        self.generation += 1
        self.outage: BaseException | None = None
        self.outage_attempts = 0
        self.check_failures = 0  # failed liveness checks of replacements, in a row
        self.last_check_failure = 0.0
        self.drained = threading.Condition(self.lock)
        self.wait_samples: collections.deque[float] = collections.deque(maxlen=2048)
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)

    # -- borrowing ----------------------------------------------------------------------------
    def try_acquire(
        self, make_waiter: Callable[[], Waiter] | None
    ) -> Slot | _Permit | Waiter | None:
        """One non-blocking attempt: an idle slot, a permit to open one, or else a waiter made
        by ``make_waiter`` and queued FIFO (None when there is no factory: do not wait)."""
        lock = self.lock
        lock.acquire()
        try:
            if self.closed:
                raise PoolClosedError(f"pool {self.name!r} is closed")
            if self.idle:
                return self.idle.pop()
            kept = self.kept
            if kept:
                for slot, (_, thread) in kept.items():
                    if not thread.is_alive():  # a thread per request (runserver): never back
                        return self.take_from_keeper_locked(slot)
            if self.nconns < self.max_size and self.outage is None:
                self.nconns += 1
                return PERMIT
            if kept:
                return self.take_from_keeper_locked(next(iter(kept)))
            if make_waiter is None:
                return None
            waiter = make_waiter()
            self.waiters.append(waiter)
            self.counters["requests_queued"] += 1
            return waiter
        finally:
            lock.release()

    def end_wait(self, waiter: Waiter, start: float) -> Slot | _Permit | _Closed | None:
        """After a wait (woken, timed out or interrupted): what the giver left, or None after
        leaving the line. Under the lock, so a hand-over racing with a timeout is never lost."""
        lock = self.lock
        lock.acquire()
        try:
            result = waiter.result
            if result is None:
                try:
                    self.waiters.remove(waiter)
                except ValueError:
                    pass
            waited = _monotonic() - start
            self.counters["requests_wait_ms"] += int(waited * 1000)
            self.wait_samples.append(waited)
        finally:
            lock.release()
        return result

    def waited(self, waiter: Waiter, start: float, timeout: float) -> Slot | _Permit:
        """After a wait that ended (woken or timed out): what the giver handed over; raises
        the timeout, or :class:`PoolClosedError` when the pool closed meanwhile."""
        result = self.end_wait(waiter, start)
        if result is None:
            raise self.timeout_error(start, timeout)
        if isinstance(result, _Closed):
            raise PoolClosedError(f"pool {self.name!r} was closed while waiting for a connection")
        return result

    def leave_line(self, waiter: Waiter, start: float) -> None:
        """A wait interrupted (a signal, Ctrl-C, a cancellation, a closing loop): leave the
        line, or pass on what a giver handed over at that very moment."""
        self.unclaimed(self.end_wait(waiter, start))

    def unclaimed(self, result: Slot | _Permit | _Closed | None) -> None:
        """A waiter was handed a slot or a permit but goes away: pass it on."""
        if result is PERMIT:
            with self.lock:
                self.nconns -= 1
                self.grant_permit_locked()
        elif isinstance(result, Slot):
            self.put_idle(result)

    # -- kept connections: the persistent connection's speed, the pool's capacity -------------
    def keep(self, lease: Connection) -> bool:
        """The borrower of ``lease`` has finished with it for now and will likely want it again
        soon (the Django ENGINE's wrapper, at the end of a request of its thread). Instead of
        giving it back, it keeps the lease; True if so, else it must give it back as usual.

        A kept connection is still lent (it counts towards ``max_size`` like any), but anyone
        who finds no idle connection and no room to open one takes it instead of waiting
        (:meth:`take_from_keeper_locked`), so keeping never makes a borrower wait for capacity
        a keeper is not using. Only a connection that giving back would not touch is kept (no
        transaction, a session in its connect-time state, alive as far as its flags tell) and
        only while nobody waits; so it is exactly what a borrow would lend. Its owner takes it
        back with :meth:`take_kept` before using it again.
        """
        if lease.__class__ is not Connection:
            return False
        slot = lease.__dict__.get("_mp_slot")
        if slot.__class__ is not Slot or slot.core is not self:
            return False
        raw = slot.raw
        if (
            slot.generation != self.generation
            or raw._sock is None
            or raw._mp_broken
            or raw._mp_retired
            or self.session_plan(raw, clear_notes=False) != _NOTHING
        ):
            return False
        result = raw._result
        if result is not None and (result.unbuffered_active or result.has_next):
            return False
        now = _monotonic()
        if slot.expires is not None and now >= slot.expires:
            return False
        lock = self.lock
        lock.acquire()
        try:
            if self.closed or self.waiters or slot not in self.lent:
                return False
            # Before it is kept: from then on another borrower may take it and make its notes.
            d = raw.__dict__
            d["_mp_used"] = d["_mp_errored"] = False  # per-borrow, as a give-back clears them
            clear_block_notes(d)
            slot.last_used = now
            self.kept[slot] = (lease, threading.current_thread())
        finally:
            lock.release()
        return True

    def take_kept(self, lease: Connection) -> bool:
        """The keeper of ``lease`` wants it again: True if it is still kept for it and fit to use
        as it is (then it is lent to the keeper as by a borrow). False if someone took it (the
        lease is then detached), the pool closed or forked, or it needs what only a borrow does
        (a liveness check after an idle spell or a hang-up, its lifetime is over): the keeper
        then gives the lease back (``close()``, a no-op if detached) and borrows as usual."""
        slot = lease.__dict__.get("_mp_slot")
        if slot.__class__ is not Slot or slot.core is not self:
            return False
        lock = self.lock
        lock.acquire()
        try:
            kept = self.kept.get(slot)
            if kept is None or kept[0] is not lease:
                # Taken (another borrower may even keep it by now, with a lease of its own).
                return False
            del self.kept[slot]
            self.counters["requests_num"] += 1
        finally:
            lock.release()
        now = _monotonic()
        if slot.raw._mp_retired or self.vet(slot, now) is not Verdict.LEND:
            return False
        slot.borrowed_at = now
        slot.leak_reported = False
        return True

    def unkeep(self, lease: Connection) -> bool:
        """Before a keeper gives ``lease`` back instead of taking it back: take it out of
        ``kept`` under the lock, so that no other borrower can take it from the keeper while it
        is being given back (both would then give it back: lent twice). True if the keeper
        holds it as an ordinary lease now (or it was not kept); False if someone took it (the
        lease is detached: there is nothing to give back)."""
        lock = self.lock
        lock.acquire()
        try:
            if lease.__class__ is not Connection:
                return False
            slot = lease.__dict__.get("_mp_slot")
            kept = self.kept.get(slot)  # type: ignore[arg-type]
            if kept is not None and kept[0] is lease:
                del self.kept[slot]  # type: ignore[arg-type]
            return True
        finally:
            lock.release()

    def take_from_keeper_locked(self, slot: Slot) -> Slot:
        """Take a kept connection from its keeper for a borrower that found nothing idle (and no
        room to open one, unless the keeper's thread has ended): its lease is detached, so the
        keeper's next :meth:`take_kept` fails. Lock held."""
        lease, _ = self.kept.pop(slot)
        self.lent.discard(slot)
        self.detach(lease)
        return slot

    def vet(self, slot: Slot, now: float) -> Verdict:
        """Borrow-time policy for a slot taken from the idle deque."""
        expires = slot.expires
        if expires is not None and now >= expires:
            return Verdict.RETIRE
        if slot.fresh and self.check == "ping":
            # Just opened for this borrow: the handshake proved it alive. (A callable check may
            # judge more than liveness — a role, a lag — so it sees new connections too.)
            return Verdict.LEND
        if self.check is not None and (
            now - slot.last_used > self.check_window or slot.raw.has_pending_input()
        ):
            # Idle past the window, or the server spoke first (it hung up: KILL, shutdown,
            # wait_timeout). The zero-timeout poll costs about a microsecond and is kept on every
            # borrow: without it a KILL just after the last use reaches the next borrower.
            return Verdict.CHECK
        return Verdict.LEND

    def borrow(
        self,
        timeout: float,
        make_waiter: Callable[[], Waiter],
        first: Any = NOT_TRIED,
        start: float | None = None,
    ) -> Procedure:
        """The borrowing procedure: returns the slot to lend (see the module docstring).

        ``first``: what the face's own :meth:`try_acquire` (its fast path) returned — a slot, a
        permit, a queued waiter or None — or :data:`NOT_TRIED`; ``start``: when the borrow began,
        if the face already waited (see :meth:`waited`)."""
        if self.refill_paused:
            self.refill_paused = False
            self.wake_maintenance()
        if start is None:
            start = _monotonic()
        deadline = start + timeout
        factory = make_waiter if timeout > 0 else None
        last_check_error: BaseException | None = None
        while True:
            if first is not NOT_TRIED:
                got: Any = first
                first = NOT_TRIED
            else:
                got = self.try_acquire(factory)
            if got is None:
                raise self.timeout_error(start, timeout)
            if not isinstance(got, (Slot, _Permit)):
                try:
                    yield Wait(got, deadline)
                except BaseException:
                    self.leave_line(got, start)
                    raise
                got = self.waited(got, start, timeout)
            if got is PERMIT:
                pause = self.replacement_pause()
                if pause:
                    # Liveness checks keep failing: replacements back off like reconnects do,
                    # instead of opening a connection per failed check.
                    try:
                        yield Sleep(min(pause, max(0.0, deadline - _monotonic())))
                    except BaseException:
                        self.permit_unused()
                        raise
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    self.permit_unused()
                    err = self.timeout_error(start, timeout)
                    if last_check_error is not None:
                        raise GetConnectionFromPoolError(
                            f"{err}; liveness checks keep failing: {describe(last_check_error)}"
                        ) from last_check_error
                    raise err
                try:
                    slot = yield Open(remaining)
                except BaseException as exc:
                    if self.open_failed(exc):
                        raise
                    continue  # the server is unreachable: wait in line for the reconnects
                slot.fresh = True
            else:
                slot = got
            now = _monotonic()
            verdict = self.vet(slot, now)
            if verdict is Verdict.RETIRE:
                self.discard(slot, "reached max_lifetime", recycled=True)
                continue
            if verdict is Verdict.CHECK:
                try:
                    yield Check(slot.raw, max(deadline - _monotonic(), 0.01))
                except Exception as exc:
                    last_check_error = exc
                    with self.lock:
                        self.counters["checks_failed"] += 1
                        # Only a replacement opened after the last failure that fails too counts:
                        # old connections found dead after a restart are replaced at once.
                        if slot.created > self.last_check_failure:
                            self.check_failures += 1
                        self.last_check_failure = _monotonic()
                    self.discard(slot, f"failed liveness check ({describe(exc)})")
                    if _monotonic() >= deadline:
                        err = self.timeout_error(start, timeout)
                        raise GetConnectionFromPoolError(
                            f"{err}; the liveness check of an idle connection failed: "
                            f"{describe(exc)}"
                        ) from exc
                    continue
                except BaseException:
                    self.discard(slot, "interrupted during its liveness check")
                    raise
                self.check_failures = 0
            return slot

    def replacement_pause(self) -> float:
        """How long to wait before opening a replacement after consecutive failed checks (the
        first dead connection is replaced at once: that is the common case)."""
        n = self.check_failures
        if n < 2:
            return 0.0
        base = min(self.backoff_max, 0.05 * (2 ** min(n - 1, 16)))
        return base * (0.5 + 0.5 * random.random())

    def open_failed(self, exc: BaseException) -> bool:
        """A borrower's own connect failed: True to raise it, False to wait in line (outage)."""
        transient = isinstance(exc, Exception) and is_transient(exc)
        with self.lock:
            self.nconns -= 1
            if transient and self.outage is None:
                self.outage = exc
                self.outage_attempts = 0
                logger.warning("pool %r: cannot connect, will retry: %s", self.name, describe(exc))
            elif not transient:
                self.grant_permit_locked()
        if transient:
            self.wake_maintenance()
            return False
        return True

    def permit_unused(self) -> None:
        with self.lock:
            self.nconns -= 1
            self.grant_permit_locked()

    def lend(self, slot: Slot, depth: int, now: float | None = None) -> Connection:
        """Hand ``slot`` out as a fresh lease; remember where the borrower is: the first frame
        outside the pool's own files, looked for from ``depth`` frames up (the caller's known
        share of the stack, to skip). ``now``: the time :meth:`vet` was given, if just taken."""
        lease = Connection.__new__(Connection)
        lease.__dict__ = slot.raw.__dict__
        slot.borrowed_at = _monotonic() if now is None else now
        slot.fresh = False
        slot.leak_reported = False
        try:
            frame: Any = sys._getframe(depth)
        except ValueError:  # a shorter stack than the caller's share (a coroutine run from C)
            frame = sys._getframe(1)
        while frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
            back = frame.f_back  # a frame object, made on demand: asked for only when needed
            if back is None:
                break
            frame = back
        if self.leak_timeout is None:
            # The line is found only if a leak report needs it: f_lineno decodes the code's
            # line table up to the frame's instruction, which grows with the borrower's function.
            slot.site = (frame.f_code, frame.f_lasti)
        else:
            slot.site = "".join(traceback.format_stack(frame, limit=12))
        lock = self.lock
        lock.acquire()
        try:
            self.lent.add(slot)
            self.counters["requests_num"] += 1
        finally:
            lock.release()
        if _LEVEL_CACHE.get(logging.DEBUG, True) and logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "pool %r: get connection %s (%d idle, %d in use)",
                self.name,
                thread_id(slot),
                len(self.idle),
                len(self.lent),
            )
        return lease

    def timeout_error(self, start: float, timeout: float) -> GetConnectionFromPoolError:
        waited = _monotonic() - start
        with self.lock:
            self.counters["requests_errors"] += 1
            in_use, waiting, outage = len(self.lent), len(self.waiters), self.outage
        msg = (
            f"pool {self.name!r}: no connection available after waiting {waited:.3f} s "
            f"(timeout {timeout:g} s); {in_use} of max_size={self.max_size} in use, "
            f"{waiting} waiting"
        )
        if outage is not None:
            if refusing(outage):
                msg += f"; the server refuses new connections: {describe(outage)}"
            else:
                msg += f"; the server is unreachable: {describe(outage)}"
        err = GetConnectionFromPoolError(msg)
        if outage is not None:
            err.__cause__ = outage
        return err

    # -- giving back --------------------------------------------------------------------------
    def detach(self, lease: Connection) -> Slot:
        """The borrower's object lets go first: whatever happens next, it can no longer reach
        the socket, and a second close() on it is a no-op."""
        slot: Slot = lease.__dict__["_mp_slot"]
        lease.__dict__ = {"_mp_returned_pool": self.name}
        lease.__class__ = ReturnedConnection
        return slot

    def start_give_back(
        self, lease: Connection, exc: BaseException | None, block: bool
    ) -> Procedure | None:
        """Give back what needs no I/O at once; else return the procedure that finishes it.

        ``block``: the end of a ``with`` block (``exc`` is its exception, or None): an open
        transaction is committed on success and rolled back on error first.
        """
        kept = self.kept
        if kept and lease.__dict__.get("_mp_slot") in kept and not self.unkeep(lease):
            # It was kept, and another borrower took it from its keeper. (Not in ``kept`` at
            # that first look: it was not kept, since only its holder, this caller, keeps it.)
            return None
        if lease.__class__ is ReturnedConnection:
            return None
        if block and (
            lease.server_status & IN_TRANS or "_mp_tx_rolled_back" in lease.__dict__
        ):  # else the block end sends nothing
            try:
                action = block_end_action(lease, exc)
            except BaseException:
                self.abandon(self.detach(lease))
                raise
            if action is not None:
                return self.end_block(self.detach(lease), action)
        slot = self.detach(lease)
        plan = self.release_plan(slot)
        if plan is None:
            return None
        if plan:
            return self.reset_and_release(slot, plan)
        self.release_end(slot)
        return None

    def end_block(self, slot: Slot, action: bytes) -> Procedure:
        try:
            yield Send(slot.raw, action)
        except BaseException:
            if action == b"COMMIT":
                # Failed, or its outcome is unknown: never lend this connection again.
                slot.raw.__dict__["_mp_broken"] = True
            self.abandon(slot)
            raise
        plan = self.release_plan(slot)
        if plan:
            yield from self.reset_and_release(slot, plan)
        elif plan is not None:
            self.release_end(slot)

    def reset_and_release(self, slot: Slot, plan: ResetPlan) -> Procedure:
        if plan & ResetPlan.REPLACE:
            self.discard(slot, "its session changed and the server cannot reset it")
            return
        try:
            yield Reset(slot.raw, plan)
        except BaseException as err:
            if isinstance(err, MySQLError) and err.args and err.args[0] == 1047:
                self.reset_unsupported = True  # an old server or a proxy: replace instead
            self.discard(slot, f"reset failed ({describe(err)})", lost=True)
            if not isinstance(err, Exception):
                raise
            return
        with self.lock:
            if plan & ResetPlan.SESSION:
                self.counters["returns_reset"] += 1
            if plan & ResetPlan.ROLLBACK:
                self.counters["returns_rolled_back"] += 1
        self.release_end(slot)

    def abandon(self, slot: Slot) -> None:
        """Give back with no further I/O for the borrower (after a failed block end)."""
        if self.release_plan(slot) is not None:
            # Whatever state it is in, it is not worth a round trip to find out.
            self.discard(slot, "given back after a failed block end")

    def release_plan(self, slot: Slot) -> ResetPlan | None:
        """Bookkeeping and the reset plan; None when the slot was dropped or discarded."""
        lock = self.lock
        lock.acquire()
        try:
            self.lent.discard(slot)
            if self.kept:
                self.kept.pop(slot, None)  # given back by its keeper
            closed = self.closed
            if closed:
                self.drained.notify_all()
        finally:
            lock.release()
        raw = slot.raw
        if slot.generation != self.generation:
            self.connector.drop(raw)  # lent before a fork: never speak on the parent's socket
            return None
        if closed:
            self.drop(slot)
            return None
        if raw._sock is None or raw._mp_broken:
            self.discard(slot, "connection broken", lost=True)
            return None
        if raw._mp_retired:
            # Host lists (topology.py): its server no longer serves this pool's target.
            self.discard(slot, "its server no longer serves the pool's target", recycled=True)
            return None
        result = raw._result
        if result is not None and (result.unbuffered_active or result.has_next):
            self.discard(slot, "returned with an unread result")
            return None
        return self.session_plan(raw, clear_notes=True)

    def session_plan(self, raw: Connection, clear_notes: bool) -> ResetPlan:
        """What the session needs before it can be lent again, from its flags (no I/O);
        ``clear_notes``: the per-borrow notes start afresh for the next borrower."""
        status = raw.server_status
        policy = self.reset
        in_trans = status & IN_TRANS or (raw._mp_errored and not status & AUTOCOMMIT)
        plan = _ROLLBACK if in_trans else _NOTHING
        if raw._mp_used:
            # Per-borrow notes start afresh for the next borrower (a reset clears them too).
            if clear_notes:
                d = raw.__dict__
                d["_mp_used"] = d["_mp_errored"] = False
                clear_block_notes(d)  # the borrow's blocks and deadlock: not the next's
            if policy == "auto" and not raw._mp_state.tracking:  # type: ignore[union-attr]
                plan |= ResetPlan.REPLACE if self.reset_unsupported else ResetPlan.SESSION
        if policy == "auto":
            if raw._mp_dirty:
                # The reset rolls back too; ROLLBACK stays in the plan for the counters.
                plan |= ResetPlan.REPLACE if self.reset_unsupported else ResetPlan.SESSION
            return plan
        if policy == "session":
            return plan | (ResetPlan.REPLACE if self.reset_unsupported else ResetPlan.SESSION)
        if policy == "rollback":
            ac = self.autocommit
            if ac is not None and bool(status & AUTOCOMMIT) != ac:
                plan |= ResetPlan.AUTOCOMMIT
            if raw._mp_db_changed:
                plan |= ResetPlan.SELECT_DB
        return plan

    def release_end(self, slot: Slot) -> None:
        now = _monotonic()
        if slot.expires is not None and now >= slot.expires:
            self.discard(slot, "reached max_lifetime", recycled=True)
            return
        slot.last_used = now
        if _LEVEL_CACHE.get(logging.DEBUG, True) and logger.isEnabledFor(logging.DEBUG):
            logger.debug("pool %r: put back connection %s", self.name, thread_id(slot))
        self.put_idle(slot)

    def put_idle(self, slot: Slot) -> None:
        """To the first waiter that can still take it, else to the idle deque."""
        lock = self.lock
        lock.acquire()
        try:
            if self.closed:
                close_it = True
            else:
                close_it = False
                while self.waiters:
                    waiter = self.waiters.popleft()
                    waiter.result = slot
                    if waiter.wake():
                        break
                    waiter.result = None  # its loop is closed: nobody will ever take it
                else:
                    self.idle.append(slot)
        finally:
            lock.release()
        if close_it:
            self.drop(slot)

    def grant_permit_locked(self) -> None:
        """Capacity was freed: let the first live waiter open a connection. Lock held."""
        while self.waiters and self.nconns < self.max_size and self.outage is None:
            waiter = self.waiters.popleft()
            waiter.result = PERMIT
            if waiter.wake():
                self.nconns += 1
                return
            waiter.result = None

    def discard(self, slot: Slot, why: str, *, lost: bool = False, recycled: bool = False) -> None:
        """Close a connection that must not be lent again and free its capacity."""
        logger.debug("pool %r: discard connection %s: %s", self.name, thread_id(slot), why)
        raw = slot.raw
        self.connector.close(raw)
        if lost or recycled:
            with self.lock:
                if lost:
                    self.counters["connections_lost"] += 1
                if recycled:
                    self.counters["connections_recycled"] += 1
        if raw.__dict__.get("_mp_interrupted") is not None:
            # A statement given up mid-way (asyncio cancellation, a timeout) runs on, on the
            # server, until the server is told: its connection counts against max_size until
            # then, or a storm of timeouts on slow statements piles up server connections.
            self.connector.end_on_server(raw, self._freed)
            return
        self._freed()

    def _freed(self) -> None:
        """A discarded connection's capacity comes back."""
        with self.lock:
            self.nconns -= 1
            self.grant_permit_locked()
            refill = self.nconns < self.size and not self.closed
        if refill:
            self.wake_maintenance()

    def drop(self, slot: Slot) -> None:
        """Forget a slot of a closed pool."""
        self.connector.close(slot.raw)
        with self.lock:
            self.nconns -= 1

    # -- leaks --------------------------------------------------------------------------------
    def reclaim_leaked(self, slot: Slot) -> None:
        """From a lease's ``__del__``: any thread, maybe with our lock held. Queue only."""
        self.leaked.append(slot)
        self.wake_maintenance()

    def take_leaked(self) -> list[Slot]:
        """The slots whose leases were garbage-collected while lent: logged and counted here;
        the blocking face gives them back (with the reset they need)."""
        found: list[Slot] = []
        while True:
            try:
                slot = self.leaked.popleft()
            except IndexError:
                return found
            found.append(slot)
            with self.lock:
                self.counters["leaks"] += 1
            where = _describe_site(slot.site)
            logger.warning(
                "pool %r: connection %s was garbage-collected without being given back; "
                "reclaimed it. It was borrowed at %s",
                self.name,
                thread_id(slot),
                where,
            )

    def late_leases(self, now: float) -> list[Slot]:
        limit = self.leak_timeout
        if limit is None:
            return []
        with self.lock:
            late = [
                s
                for s in self.lent
                if not s.leak_reported and now - s.borrowed_at > limit and s not in self.kept
            ]
            for s in late:
                s.leak_reported = True
        return late

    # -- upkeep -------------------------------------------------------------------------------
    def retire_idle(self, now: float) -> list[tuple[Slot, bool]]:
        """Take out idle slots past their lifetime, or surplus idle past max_idle.

        Kept slots too: their keepers are not using them, and a keeper may not come back for
        hours (a quiet thread), so without this a kept connection would outlive
        ``max_lifetime`` (which operators count on to move every connection off a server
        within that time) and never shrink the pool after a burst (``max_idle``). Their
        leases are detached: the keeper's next ``take_kept`` fails and it borrows anew."""
        retire: list[tuple[Slot, bool]] = []
        max_idle = self.max_idle
        idle_limit = float("inf") if max_idle is None else max_idle
        with self.lock:
            kept = sorted(self.kept, key=lambda s: s.last_used)  # oldest first, like idle
            expired = {
                s
                for s in itertools.chain(self.idle, kept)
                if s.expires is not None and now >= s.expires
            }
            # Surplus above size, counting the expired ones as gone already (idle ones first:
            # a kept connection has a borrower likely to come back for it).
            surplus = self.nconns - self.size - len(expired) if max_idle is not None else 0

            def due(slot: Slot) -> bool:
                nonlocal surplus
                if slot in expired:
                    retire.append((slot, True))
                    return True
                if surplus > 0 and now - slot.last_used > idle_limit:
                    surplus -= 1
                    retire.append((slot, False))
                    return True
                return False

            self.idle = collections.deque(s for s in self.idle if not due(s))
            for slot in kept:
                if due(slot):
                    self.take_from_keeper_locked(slot)
        return retire

    def retire_where(self, matches: Callable[[Connection], bool]) -> list[Slot]:
        """Take out the idle slots whose connection ``matches`` (the caller discards them) and
        mark the lent ones to be discarded when given back. For a caller that knows what the
        policy cannot: topology.py, when a server stops serving the pool's target."""
        with self.lock:
            taken = [s for s in self.idle if matches(s.raw)]
            if taken:
                self.idle = collections.deque(s for s in self.idle if s not in taken)
            for s in [s for s in self.kept if matches(s.raw)]:  # kept: as good as idle
                self.lent.discard(s)
                self.detach(self.kept.pop(s)[0])
                taken.append(s)
            for s in self.lent:
                if matches(s.raw):
                    s.raw.__dict__["_mp_retired"] = True
        return taken

    def reserve(self, target: int) -> bool:
        """Reserve capacity to open one connection if fewer than ``target`` are open."""
        with self.lock:
            if self.closed or self.nconns >= min(target, self.max_size) or self.outage is not None:
                return False
            self.nconns += 1
            return True

    def adopt(self, raw: Connection) -> Slot:
        """A connection just opened with reserved capacity becomes a slot."""
        slot = Slot(self, raw, _monotonic())
        raw.__dict__["_mp_slot"] = slot
        with self.lock:
            self.counters["connections_num"] += 1
        return slot

    def take_in(self, raw: Connection) -> bool:
        """A connection opened for a borrower that went away meanwhile: keep it if there is room
        (the borrower's permit was already given back), else the caller closes it."""
        with self.lock:
            if self.closed or self.nconns >= self.max_size:
                return False
            self.nconns += 1
        self.put_idle(self.adopt(raw))
        return True

    def refill_failed(self, exc: BaseException) -> None:
        with self.lock:
            self.nconns -= 1
            self.grant_permit_locked()
            if self.outage is None and is_transient(exc):
                self.outage = exc
                self.outage_attempts = 0

    def backoff(self) -> float:
        self.outage_attempts += 1
        base = min(self.backoff_max, 0.05 * (2 ** min(self.outage_attempts, 16)))
        return base * (0.5 + 0.5 * random.random())

    def outage_over(self) -> None:
        with self.lock:
            self.outage = None
            self.outage_attempts = 0
            self.grant_permits_locked()

    def grant_permits_locked(self) -> None:
        while self.waiters and self.nconns < self.max_size and self.outage is None:
            before = len(self.waiters)
            self.grant_permit_locked()
            if len(self.waiters) == before:
                return

    # -- closing, stats -----------------------------------------------------------------------
    def close_begin(self) -> tuple[bool, list[Slot]]:
        """Mark closed, wake every waiter with "closed", take the idle slots out."""
        with self.lock:
            already = self.closed
            self.closed = True
            idle = list(self.idle)
            self.idle.clear()
            for slot, (lease, _) in self.kept.items():  # their keepers are not using them
                self.lent.discard(slot)
                self.detach(lease)
                idle.append(slot)
            self.kept.clear()
            while self.waiters:
                waiter = self.waiters.popleft()
                waiter.result = CLOSED
                waiter.wake()
        return already, idle

    def wait_drained(self, timeout: float) -> list[Slot]:
        deadline = _monotonic() + max(0.0, timeout)
        with self.lock:
            while self.lent and (remaining := deadline - _monotonic()) > 0:
                self.drained.wait(min(remaining, threading.TIMEOUT_MAX))
            return list(self.lent)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            c: dict[str, Any] = dict(self.counters)
            samples = sorted(self.wait_samples)
            outage = self.outage
            c.update(
                name=self.name,
                pool_min=self.size,
                pool_max=self.max_size,
                pool_size=self.nconns,
                pool_available=len(self.idle) + len(self.kept),
                in_use=len(self.lent) - len(self.kept),
                kept=len(self.kept),
                requests_waiting=len(self.waiters),
                server_unreachable=outage is not None and not refusing(outage),
                server_refusing=outage is not None and refusing(outage),
            )
        if samples:
            c["wait_p50_ms"] = round(samples[len(samples) // 2] * 1000, 3)
            c["wait_p99_ms"] = round(
                samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 3
            )
            c["wait_max_ms"] = round(samples[-1] * 1000, 3)
        else:
            c["wait_p50_ms"] = c["wait_p99_ms"] = c["wait_max_ms"] = 0.0
        return c


def refusing(exc: BaseException) -> bool:
    """The server answered, but refuses new sessions for now."""
    return isinstance(exc, MySQLError) and bool(exc.args) and exc.args[0] in REFUSING_ERRORS


def thread_id(slot: Slot) -> Any:
    sid = slot.raw.__dict__.get("server_thread_id")
    return sid[0] if sid else "?"
