"""``ConnectionPool``: a few PyMySQL connections shared safely by many threads and tasks.

The hot path is a lock, a deque and a few attribute reads (HikariCP's lesson):

- borrowing pops the most recently returned connection (LIFO, so the warm ones stay warm and the
  surplus ages out) and checks liveness only if it sat idle longer than ``check_window``;
- giving back reads PyMySQL's ``server_status``: a clean connection goes back with no round trip;
  an open transaction is rolled back; a broken one is discarded and its capacity freed;
- when nothing is idle the borrower queues FIFO with a deadline, and a returned connection is
  handed directly to the first waiter, so nobody jumps the queue.

A maintenance thread keeps ``size`` connections open, retires old and idle ones, and reconnects
with exponential backoff while the server is down. Each pool survives ``os.fork()``: the child
starts empty and never touches the parent's sockets.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import random
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pymysql
from pymysql.constants import SERVER_STATUS

from .config import PoolOptions, build_options, parse_url, redact_url, url_from_env
from .connection import Connection, ReturnedConnection, _RawConnection, run_query
from .errors import ConfigError, GetConnectionFromPoolError, PoolClosedError

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

__all__ = ["ConnectionPool", "logger"]

logger = logging.getLogger("mysqlpool_ext")

_IN_TRANS = SERVER_STATUS.SERVER_STATUS_IN_TRANS
_AUTOCOMMIT = SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT
_monotonic = time.monotonic
_AIO: Any = None  # mysqlpool_ext._aio once the async face is first used (it imports asyncio)


def _aio() -> Any:
    """The async face's module: a function-level ``from ._aio import ...`` costs ~0.8 us per
    call, measurable on ``aexecute_query``; this costs a global lookup after the first call."""
    global _AIO
    if _AIO is None:
        from . import _aio as face

        _AIO = face
    return _AIO


_getpid = os.getpid

#: MySQL errors that no retry will fix: report them to the borrower at once.
_PERMANENT_CONNECT_ERRORS = frozenset({1044, 1045, 1049, 1251, 1698, 2059, 2061})

#: Frames from these files are the pool's own (or contextlib's), not the borrower's.
_INTERNAL_DIRS = (os.path.dirname(os.path.abspath(__file__)), contextlib.__file__)

_PERMIT = object()  # a waiter is allowed to open a new connection itself
_CLOSED = object()  # the pool closed while the waiter waited
_LEND, _CHECK, _RETIRED = 0, 1, 2  # _vet's verdicts
_SESSION_RESET = ("session",)

_names = itertools.count(1)
_all_pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()


class _Slot:
    """The long-lived record of one server connection (the lease is the borrower's object)."""

    __slots__ = (
        "borrowed_at",
        "created",
        "expires",
        "generation",
        "last_used",
        "leak_reported",
        "pool",
        "raw",
        "site",
    )

    def __init__(self, pool: ConnectionPool, raw: _RawConnection, now: float) -> None:
        self.pool = pool
        self.raw = raw
        self.created = now
        self.last_used = now
        self.borrowed_at = 0.0
        self.generation = pool._generation
        self.site: Any = None
        self.leak_reported = False
        lifetime = pool._max_lifetime
        # A few percent of jitter so connections opened together do not all expire together.
        self.expires = now + lifetime * (1.0 - 0.05 * random.random()) if lifetime else None


class _Waiter:
    """A thread waiting for a connection; the giver sets ``result`` under the pool lock."""

    __slots__ = ("_lock", "result")

    def __init__(self) -> None:
        self.result: Any = None
        self._lock = threading.Lock()
        self._lock.acquire()

    def wake(self) -> None:
        self._lock.release()

    def wait(self, timeout: float) -> None:
        if timeout > 0:
            # A valid but huge timeout (1e300) raised OverflowError in acquire().
            self._lock.acquire(timeout=min(timeout, threading.TIMEOUT_MAX))


class _Borrow:
    """``with pool.connection() as conn``: commit on success, roll back on error, give back."""

    __slots__ = ("conn", "pool", "timeout")

    def __init__(self, pool: ConnectionPool, timeout: float | None) -> None:
        self.pool = pool
        self.timeout = timeout
        self.conn: Connection | None = None

    def __enter__(self) -> Connection:
        self.conn = self.pool._getconn(self.timeout)
        return self.conn

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        conn = self.conn
        if conn is not None:
            self.conn = None
            self.pool._finish_block(conn, exc)


class _Transaction(_Borrow):
    """``with pool.transaction() as conn``: BEGIN, then COMMIT on success or ROLLBACK on error."""

    __slots__ = ()

    def __enter__(self) -> Connection:
        conn = self.conn = self.pool._getconn(self.timeout)
        try:
            conn.begin()
        except BaseException:
            self.conn = None
            self.pool._finish_block(conn, sys.exc_info()[1])
            raise
        return conn


class ConnectionPool:
    """A pool of PyMySQL connections.

    ``size`` connections are opened at construction (unless ``lazy=True``) and kept open;
    up to ``max_size`` are opened under load and closed again after ``max_idle`` seconds idle.
    Every other keyword argument is passed to ``pymysql.connect`` (``host``, ``user``, ...).
    Unknown names are rejected with a suggestion. ``autocommit`` defaults to True for pooled
    connections (each statement commits unless you use :meth:`transaction` or ``BEGIN``).
    """

    def __init__(self, /, size: int = 5, **kwargs: Any) -> None:
        opts = build_options({"size": size, **kwargs})
        self._opts: PoolOptions = opts
        self._connect_kwargs = dict(opts.connect_kwargs)
        self._connect_kwargs.setdefault("autocommit", True)
        self._autocommit: bool | None = (
            None
            if self._connect_kwargs["autocommit"] is None
            else bool(self._connect_kwargs["autocommit"])
        )
        self._database: str | None = self._connect_kwargs.get("database")
        self._ssl_cache: dict[Any, Any] = {}

        self.name: str = opts.name or f"pool-{next(_names)}"
        self._size = opts.size
        self._max_size = opts.max_size
        self._timeout = opts.timeout
        self._max_lifetime = opts.max_lifetime
        self._max_idle = opts.max_idle
        self._check = opts.check
        self._check_window = opts.check_window
        self._reset = opts.reset
        self._leak_timeout = opts.leak_timeout
        self._backoff_max = opts.reconnect_backoff_max

        self._init_state()
        self._closed = False
        _all_pools.add(self)
        from .registry import _register

        _register(self)
        if not opts.lazy:
            try:
                for _ in range(self._size):
                    self._open_into_pool()
            except BaseException:
                self.close(timeout=0)
                raise
        self._start_maintenance()

    # -- construction helpers -------------------------------------------------------------------
    def _init_state(self) -> None:
        """Everything that must start afresh in a forked child."""
        self._lock = threading.Lock()
        self._idle: collections.deque[_Slot] = collections.deque()
        self._waiters: collections.deque[Any] = collections.deque()
        self._lent: set[_Slot] = set()
        self._leaked: collections.deque[_Slot] = collections.deque()
        self._nconns = 0  # open + being opened: never above max_size
        self._pid = _getpid()
        self._generation = getattr(self, "_generation", 0) + 1
        self._outage: BaseException | None = None
        self._outage_attempts = 0
        self._maint_event = threading.Event()
        self._maint_thread: threading.Thread | None = None
        self._drained = threading.Condition(self._lock)
        self._wait_samples: collections.deque[float] = collections.deque(maxlen=2048)
        self._counters = dict.fromkeys(
            (
                "requests_num",
                "requests_queued",
                "requests_wait_ms",
                "requests_errors",
                "connections_num",
                "connections_errors",
                "connections_lost",
                "connections_recycled",
                "returns_rolled_back",
                "checks_failed",
                "leaks",
            ),
            0,
        )

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> ConnectionPool:
        """Build a pool from ``mysql://user:password@host:port/database?option=value``.

        With no URL, ``MYSQLPOOL_URL`` (or a ``mysql://`` ``DATABASE_URL``) is read from the
        environment. Keyword arguments override what the URL says.
        """
        if url is None:
            url = url_from_env()
            if url is None:
                raise ConfigError("no URL given and neither MYSQLPOOL_URL nor DATABASE_URL is set")
        params = parse_url(url)
        params.update(kwargs)
        return cls(**params)

    # -- seed API -------------------------------------------------------------------------------
    def size(self) -> int:
        """Number of idle connections ready to lend right now (the seed's meaning of size)."""
        return len(self._idle)

    def get_connection(self, timeout: float | None = None, retry_num: int = 0) -> Connection:
        """Borrow a connection; give it back with ``conn.close()`` or ``with conn:``.

        Waits up to ``timeout`` seconds (default: the pool's ``timeout``), ``retry_num`` more
        times, then raises :class:`GetConnectionFromPoolError`.
        """
        if isinstance(retry_num, bool) or not isinstance(retry_num, int) or retry_num < 0:
            raise ConfigError(f"pool {self.name!r}: retry_num must be an integer >= 0")
        attempt = 0
        while True:
            try:
                return self._getconn(timeout)
            except GetConnectionFromPoolError:
                if attempt >= retry_num:
                    raise
                attempt += 1
                logger.debug(
                    "pool %r: retry %d/%d to get a connection", self.name, attempt, retry_num
                )

    getconn = get_connection

    def putconn(self, conn: Connection) -> None:
        """Give a connection back (same as ``conn.close()``)."""
        if not isinstance(conn, Connection):
            raise TypeError(
                f"pool {self.name!r}: putconn() takes a Connection, got {type(conn).__name__}"
            )
        if isinstance(conn, ReturnedConnection):
            return
        slot = conn._mp_slot
        if slot is None or slot.pool is not self:
            raise ValueError(f"pool {self.name!r}: this connection does not belong to this pool")
        self._putconn(conn)

    # -- modern API -----------------------------------------------------------------------------
    def connection(self, timeout: float | None = None) -> _Borrow:
        """``with pool.connection() as conn:`` — borrow for a block.

        On success an open transaction is committed, on error rolled back; the connection then goes
        back to the pool (or is discarded if it broke).
        """
        return _Borrow(self, timeout)

    def transaction(self, timeout: float | None = None) -> _Transaction:
        """``with pool.transaction() as conn:`` — BEGIN, COMMIT on success, ROLLBACK on error."""
        return _Transaction(self, timeout)

    def execute_query(
        self,
        query: str,
        args: Any = (),
        dictcursor: bool = False,
        return_one: bool = False,
        exec_many: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Borrow, run one statement (see :meth:`Connection.execute_query`), commit, give back."""
        conn = self._getconn(timeout)
        try:
            result = run_query(conn, query, args, dictcursor, return_one, exec_many)
        except BaseException as exc:
            self._finish_block(conn, exc)
            raise
        self._finish_block(conn, None)
        return result

    # async face: implemented in _aio, which runs PyMySQL's protocol on the event loop
    def aconnection(self, timeout: float | None = None) -> AbstractAsyncContextManager[Connection]:
        """``async with pool.aconnection() as conn:`` — the async twin of :meth:`connection`."""
        return (_AIO or _aio()).AsyncBorrow(self, timeout, begin=False)

    def atransaction(self, timeout: float | None = None) -> AbstractAsyncContextManager[Connection]:
        """``async with pool.atransaction() as conn:`` — the async twin of :meth:`transaction`."""
        return (_AIO or _aio()).AsyncBorrow(self, timeout, begin=True)

    async def aget_connection(self, timeout: float | None = None) -> Connection:
        """Borrow without blocking the event loop; give back with ``conn.close()``."""
        return await (_AIO or _aio()).agetconn(self, timeout)

    async def aexecute_query(
        self,
        query: str,
        args: Any = (),
        dictcursor: bool = False,
        return_one: bool = False,
        exec_many: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """The async twin of :meth:`execute_query`."""
        return await (_AIO or _aio()).aexecute_query(
            self, query, args, dictcursor, return_one, exec_many, timeout
        )

    async def aclose(self, timeout: float = 0.0) -> None:
        """The async twin of :meth:`close`: waits for borrowers without blocking the loop."""
        import asyncio

        await asyncio.to_thread(self.close, timeout)

    # -- borrowing ------------------------------------------------------------------------------
    def _getconn(self, timeout: float | None) -> Connection:
        if timeout is None:
            timeout = self._timeout
        # No getpid() here (0.3 us a borrow): os.register_at_fork resets every pool in a forked
        # child before any Python code runs there; the maintenance thread re-checks the pid.
        if self._leaked:
            self._process_leaked()
        start = _monotonic()
        deadline = start + timeout
        while True:
            slot = self._acquire(start, deadline, timeout)
            now = _monotonic()
            verdict = self._vet(slot, now)
            if verdict:
                if verdict == _RETIRED:
                    continue
                try:
                    self._run_check(slot.raw)
                except Exception as exc:  # any failure means "not usable"
                    self._check_failed(slot, exc)
                    if _monotonic() >= deadline:
                        # Each dead idle connection costs a ping: stop at the deadline.
                        raise self._check_timeout_error(start, timeout, exc) from exc
                    continue
            return self._lend(slot, now)

    # The borrowing policy, in steps shared by the sync face (below) and the async face (_aio):
    # _try_acquire (never blocks) -> wait on the queued waiter -> _end_wait -> _wait_outcome,
    # then _vet / _check_failed, then _lend.
    def _try_acquire(self, make_waiter: Callable[[], Any] | None) -> Any:
        """One non-blocking attempt: an idle ``_Slot``, ``_PERMIT`` (capacity reserved: open a
        connection), or else a waiter from ``make_waiter`` queued FIFO (None if no factory)."""
        with self._lock:
            if self._closed:
                raise PoolClosedError(f"pool {self.name!r} is closed")
            if self._idle:
                return self._idle.pop()
            if self._nconns < self._max_size and self._outage is None:
                self._nconns += 1
                return _PERMIT
            if make_waiter is None:
                return None
            waiter = make_waiter()
            self._waiters.append(waiter)
            self._counters["requests_queued"] += 1
            return waiter

    def _end_wait(self, waiter: Any, start: float) -> Any:
        """After a wait (woken, timed out or cancelled): what the giver left, or None after
        leaving the queue. Under the lock, so a hand-over racing with a timeout is never lost."""
        with self._lock:
            result = waiter.result
            if result is None:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            waited = _monotonic() - start
            self._counters["requests_wait_ms"] += int(waited * 1000)
            self._wait_samples.append(waited)
        return result

    def _wait_outcome(self, result: Any, start: float, timeout: float) -> Any:
        """Turn a wait's result into a ``_Slot`` or ``_PERMIT``, or raise timeout / closed."""
        if result is None:
            raise self._timeout_error(start, timeout)
        if result is _CLOSED:
            raise PoolClosedError(f"pool {self.name!r} was closed while waiting for a connection")
        return result

    def _unclaimed(self, result: Any) -> None:
        """A waiter got a slot or a permit but will not use it (cancelled): pass it on."""
        if result is _PERMIT:
            with self._lock:
                self._nconns -= 1
                self._grant_permit_locked()
        elif isinstance(result, _Slot):
            self._put_idle(result)

    def _vet(self, slot: _Slot, now: float) -> int:
        """Borrow-time policy: ``_LEND`` it, ``_CHECK`` liveness first (idle longer than
        ``check_window``), or ``_RETIRED`` (past its lifetime: discarded, borrow again)."""
        expires = slot.expires
        if expires is not None and now >= expires:
            self._discard(slot, "reached max_lifetime", recycled=True)
            return _RETIRED
        if self._check is not None and (
            now - slot.last_used > self._check_window or slot.raw._has_pending_input()
        ):
            # Idle past the window, or the server spoke first (it hung up). The zero-timeout
            # poll costs ~0.9 us and is kept on every borrow: skipping it for connections used
            # in the last millisecond let a KILL or a shutdown in that millisecond reach the
            # borrower as error 2013 (tests/core/test_invariants.py, killed-while-idle).
            return _CHECK
        return _LEND

    def _check_failed(self, slot: _Slot, exc: BaseException) -> None:
        with self._lock:
            self._counters["checks_failed"] += 1
        self._discard(slot, f"failed liveness check ({exc!r})")

    def _acquire(self, start: float, deadline: float, timeout: float) -> _Slot:
        """Take an idle slot, or the right to open one, or wait in line for either."""
        make_waiter = _Waiter if timeout > 0 else None
        while True:
            got = self._try_acquire(make_waiter)
            if got.__class__ is _Slot:
                return got
            if got is None:
                raise self._timeout_error(start, timeout)
            if got is not _PERMIT:
                got.wait(deadline - _monotonic())
                got = self._wait_outcome(self._end_wait(got, start), start, timeout)
                if got is not _PERMIT:
                    return got
            slot = self._open_with_permit()
            if slot is not None:
                return slot
            # The server is unreachable: wait in line for the maintenance thread.

    def _lend(self, slot: _Slot, now: float) -> Connection:
        lease = Connection.__new__(Connection)
        lease.__dict__ = slot.raw.__dict__
        slot.borrowed_at = now
        slot.leak_reported = False
        # Where the borrower is: the first frame outside this package (and contextlib).
        frame: Any = sys._getframe(2)
        while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
            frame = frame.f_back
        if self._leak_timeout is None:
            slot.site = (frame.f_code.co_filename, frame.f_lineno)
        else:
            slot.site = "".join(traceback.format_stack(frame, limit=12))
        with self._lock:
            self._lent.add(slot)
            self._counters["requests_num"] += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "pool %r: get connection %s (%d idle, %d in use)",
                self.name,
                slot.raw.server_thread_id[0],
                len(self._idle),
                len(self._lent),
            )
        return lease

    def _check_timeout_error(
        self, start: float, timeout: float, exc: BaseException
    ) -> GetConnectionFromPoolError:
        err = self._timeout_error(start, timeout)
        return GetConnectionFromPoolError(
            f"{err}; the liveness check of an idle connection failed: {_describe(exc)}"
        )

    def _timeout_error(self, start: float, timeout: float) -> GetConnectionFromPoolError:
        waited = _monotonic() - start
        with self._lock:
            self._counters["requests_errors"] += 1
            in_use, waiting, outage = len(self._lent), len(self._waiters), self._outage
        msg = (
            f"pool {self.name!r}: no connection available after waiting {waited:.3f} s "
            f"(timeout {timeout:g} s); {in_use} of max_size={self._max_size} in use, "
            f"{waiting} waiting"
        )
        if outage is not None:
            msg += f"; the server is unreachable: {_describe(outage)}"
        err = GetConnectionFromPoolError(msg)
        if outage is not None:
            err.__cause__ = outage
        return err

    # -- opening --------------------------------------------------------------------------------
    def _connect(self) -> _Slot:
        """Open one server connection (no lock held). Raises the driver's error, reworded."""
        try:
            raw = _RawConnection(self._ssl_cache, **self._connect_kwargs)
        except pymysql.err.MySQLError as exc:
            with self._lock:
                self._counters["connections_errors"] += 1
            raise self._connect_error(exc) from exc
        except Exception as exc:
            with self._lock:
                self._counters["connections_errors"] += 1
            raise pymysql.err.OperationalError(
                2003, f"pool {self.name!r}: cannot connect to {self._where()}: {exc!r}"
            ) from exc
        raw.__dict__["_mp_pool_name"] = self.name
        slot = _Slot(self, raw, _monotonic())
        raw.__dict__["_mp_slot"] = slot
        with self._lock:
            self._counters["connections_num"] += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "pool %r: create connection %s to %s",
                self.name,
                raw.server_thread_id[0],
                self._where(),
            )
        return slot

    def _connect_error(self, exc: pymysql.err.MySQLError) -> pymysql.err.MySQLError:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 2003
        detail = exc.args[1] if len(exc.args) > 1 else str(exc)
        new = type(exc)(code, f"pool {self.name!r}: cannot connect to {self._where()}: {detail}")
        return new

    def _where(self) -> str:
        kw = self._connect_kwargs
        place = kw.get("unix_socket") or f"{kw.get('host') or 'localhost'}:{kw.get('port') or 3306}"
        db = kw.get("database")
        return f"{kw.get('user') or '?'}@{place}" + (f"/{db}" if db else "")

    def _open_with_permit(self) -> _Slot | None:
        """Open a connection for the borrower holding a permit.

        Returns None (after giving the permit back) when the server is unreachable, so that the
        borrower waits in line while the maintenance thread retries with backoff.
        """
        try:
            return self._connect()
        except BaseException as exc:
            permanent = _permanent(exc)
            with self._lock:
                self._nconns -= 1
                if not permanent and isinstance(exc, Exception) and self._outage is None:
                    self._outage = exc
                    self._outage_attempts = 0
                    logger.warning(
                        "pool %r: cannot connect, will retry: %s", self.name, _describe(exc)
                    )
                else:
                    self._grant_permit_locked()
            if permanent or not isinstance(exc, Exception):
                raise
            self._maint_event.set()
            return None

    def _open_into_pool(self) -> None:
        with self._lock:
            if self._nconns >= self._max_size:
                return
            self._nconns += 1
        try:
            slot = self._connect()
        except BaseException:
            with self._lock:
                self._nconns -= 1
                # A borrower may have queued behind this attempt's reservation: it may try now.
                self._grant_permit_locked()
            raise
        self._put_idle(slot)

    # -- giving back ----------------------------------------------------------------------------
    def _finish_block(self, conn: Connection, exc: BaseException | None) -> None:
        """End of a ``with`` block: commit or roll back what is open, then give back."""
        if isinstance(conn, ReturnedConnection):
            return
        try:
            if conn._sock is not None and not conn._mp_broken and conn.server_status & _IN_TRANS:
                if exc is None:
                    conn.commit()
                else:
                    try:
                        conn.rollback()
                    except Exception:  # noqa: BLE001 - the original error matters more
                        conn.__dict__["_mp_broken"] = True
        finally:
            self._putconn(conn)

    def _putconn(self, lease: Connection) -> None:
        # _detach, inlined: this is the sync hot path.
        slot: _Slot = lease.__dict__["_mp_slot"]
        lease.__dict__ = {"_mp_returned_pool": self.name}
        lease.__class__ = ReturnedConnection
        self._release(slot)

    def _detach(self, lease: Connection) -> _Slot:
        """Detach the borrower's object first: whatever happens next, it can no longer reach the
        socket, and a second close() on it is a no-op."""
        slot: _Slot = lease.__dict__["_mp_slot"]
        lease.__dict__ = {"_mp_returned_pool": self.name}
        lease.__class__ = ReturnedConnection
        return slot

    # Giving back, in steps shared by both faces: _release_begin (bookkeeping, the discard rules
    # and the reset *plan*, no I/O) -> the face runs the plan (sync: _apply_reset; async: _aio)
    # -> _release_end (lifetime, back to a waiter or the idle deque).
    def _release(self, slot: _Slot) -> None:
        plan = self._release_begin(slot)
        if plan is None:
            return
        if plan:
            try:
                self._apply_reset(slot.raw, plan)
            except Exception as exc:  # noqa: BLE001 - a reset that fails: the connection is unusable
                self._discard(slot, f"reset failed ({exc!r})", lost=True)
                return
        self._release_end(slot)

    def _release_begin(self, slot: _Slot) -> tuple[str, ...] | None:
        """None if the slot was dropped or discarded; else the reset steps it needs (``()`` for
        a clean connection: no round trip), from ``rollback``, ``autocommit``, ``select_db``,
        ``session``."""
        with self._lock:
            self._lent.discard(slot)
            closed = self._closed
            if closed:
                self._drained.notify_all()
        if slot.generation != self._generation:
            slot.raw._force_close()  # lent before a fork: never speak on the parent's socket
            return None
        if closed:
            self._drop(slot, quit=True)
            return None
        raw = slot.raw
        if raw._sock is None or raw._mp_broken:
            self._discard(slot, "connection broken", lost=True)
            return None
        result = raw._result
        if result is not None and (result.unbuffered_active or result.has_next):
            self._discard(slot, "returned with an unread result")
            return None
        if self._reset == "session":
            return _SESSION_RESET
        status = raw.server_status
        plan: tuple[str, ...] = ("rollback",) if status & _IN_TRANS else ()
        if self._reset is not None:
            ac = self._autocommit
            if ac is not None and bool(status & _AUTOCOMMIT) != ac:
                plan += ("autocommit",)
            if raw._mp_db_changed:
                plan += ("select_db",)
        return plan

    def _apply_reset(self, raw: _RawConnection, plan: tuple[str, ...]) -> None:
        """Run a reset plan with blocking I/O (the sync face; also the async face's fallback)."""
        for step in plan:
            if step == "rollback":
                raw.rollback()
                self._counters["returns_rolled_back"] += 1
            elif step == "autocommit":
                raw.autocommit(self._autocommit)
            elif step == "select_db":
                if self._database:
                    raw.select_db(self._database)
                raw.__dict__["_mp_db_changed"] = False
            else:  # "session"
                raw.reset_connection()
                if self._database and raw._mp_db_changed:
                    raw.select_db(self._database)
                raw.__dict__["_mp_db_changed"] = False

    def _release_end(self, slot: _Slot) -> None:
        now = _monotonic()
        if slot.expires is not None and now >= slot.expires:
            self._discard(slot, "reached max_lifetime", recycled=True)
            return
        slot.last_used = now
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("pool %r: put back connection %s", self.name, _thread_id(slot))
        self._put_idle(slot)

    def _put_idle(self, slot: _Slot) -> None:
        with self._lock:
            if self._closed:
                close_it = True
            else:
                close_it = False
                if self._waiters:
                    waiter = self._waiters.popleft()
                    waiter.result = slot
                    waiter.wake()
                else:
                    self._idle.append(slot)
        if close_it:
            self._drop(slot, quit=True)

    def _grant_permit_locked(self) -> None:
        """Capacity was freed: let the first waiter open a connection. Caller holds the lock."""
        if self._waiters and self._nconns < self._max_size and self._outage is None:
            self._nconns += 1
            waiter = self._waiters.popleft()
            waiter.result = _PERMIT
            waiter.wake()

    def _discard(
        self, slot: _Slot, why: str, *, lost: bool = False, recycled: bool = False
    ) -> None:
        """Close a connection that must not be lent again and free its capacity."""
        logger.debug("pool %r: discard connection %s: %s", self.name, _thread_id(slot), why)
        slot.raw.quit()
        with self._lock:
            self._nconns -= 1
            if lost:
                self._counters["connections_lost"] += 1
            if recycled:
                self._counters["connections_recycled"] += 1
            self._grant_permit_locked()
            refill = self._nconns < self._size and not self._closed
        if refill:
            self._maint_event.set()

    def _drop(self, slot: _Slot, *, quit: bool) -> None:
        """Forget a slot of a closed pool (or of the parent process, after a fork)."""
        if quit:
            slot.raw.quit()
            with self._lock:
                self._nconns -= 1
        else:
            # The parent's socket: close our file descriptor only, never send COM_QUIT on it.
            slot.raw._force_close()

    def _run_check(self, raw: _RawConnection) -> None:
        check = self._check
        if check == "ping":
            raw.ping(reconnect=False)
        elif callable(check):
            check(raw)

    # -- leaks ----------------------------------------------------------------------------------
    def _reclaim_leaked(self, slot: _Slot, lease: Connection) -> None:
        """Called from a lease's ``__del__``: any thread, maybe with our lock held. Queue only."""
        self._leaked.append(slot)
        self._maint_event.set()

    def _process_leaked(self) -> None:
        while True:
            try:
                slot = self._leaked.popleft()
            except IndexError:
                return
            with self._lock:
                self._counters["leaks"] += 1
            site = slot.site
            where = f"{site[0]}:{site[1]}" if isinstance(site, tuple) else f"\n{site}"
            logger.warning(
                "pool %r: connection %s was garbage-collected without being given back; "
                "reclaimed it. It was borrowed at %s",
                self.name,
                _thread_id(slot),
                where,
            )
            self._release(slot)

    def _check_leak_timeout(self, now: float) -> None:
        limit = self._leak_timeout
        if limit is None:
            return
        with self._lock:
            late = [s for s in self._lent if not s.leak_reported and now - s.borrowed_at > limit]
            for s in late:
                s.leak_reported = True
        for s in late:
            logger.warning(
                "pool %r: connection %s held for %.1f s (leak_timeout=%g s); borrowed at:\n%s",
                self.name,
                _thread_id(s),
                now - s.borrowed_at,
                limit,
                s.site,
            )

    # -- maintenance ----------------------------------------------------------------------------
    def _start_maintenance(self) -> None:
        if self._maint_thread is not None and self._maint_thread.is_alive():
            return
        thread = threading.Thread(
            target=_maintenance_loop,
            args=(weakref.ref(self),),
            name=f"mysqlpool-{self.name}",
            daemon=True,
        )
        self._maint_thread = thread
        thread.start()

    def _housekeeping_interval(self) -> float:
        spans = [x for x in (self._max_idle, self._max_lifetime, self._leak_timeout) if x]
        base = min(spans) / 4 if spans else 30.0
        return max(0.2, min(base, 30.0))

    def _maintain(self) -> float:
        """One round of upkeep; returns how long to sleep before the next one."""
        if self._leaked:
            self._process_leaked()
        now = _monotonic()
        if self._outage is not None:
            return self._retry_outage()
        # Retire idle connections: past their lifetime, or surplus idle past max_idle.
        retire: list[_Slot] = []
        with self._lock:
            keep: collections.deque[_Slot] = collections.deque()
            for slot in self._idle:  # oldest first
                too_old = slot.expires is not None and now >= slot.expires
                surplus = (
                    self._max_idle is not None
                    and now - slot.last_used > self._max_idle
                    and self._nconns - len(retire) > self._size
                )
                (retire if too_old or surplus else keep).append(slot)
            self._idle = keep
        for slot in retire:
            expired = slot.expires is not None and now >= slot.expires
            self._discard(
                slot, "reached max_lifetime" if expired else "idle past max_idle", recycled=True
            )
        self._check_leak_timeout(now)
        # Keep `size` connections open.
        while not self._closed:
            with self._lock:
                if self._nconns >= self._size or self._outage is not None:
                    break
            try:
                self._open_into_pool()
            except Exception as exc:  # noqa: BLE001 - becomes the outage state, retried with backoff
                with self._lock:
                    # Not for a wrong password & co: borrowers would queue for the whole timeout
                    # behind "server unreachable"; without an outage they try, and get the error.
                    if self._outage is None and not _permanent(exc):
                        self._outage = exc
                        self._outage_attempts = 0
                logger.warning("pool %r: cannot refill: %s", self.name, _describe(exc))
                return self._backoff()
        return self._housekeeping_interval()

    def _backoff(self) -> float:
        self._outage_attempts += 1
        base = min(self._backoff_max, 0.05 * (2 ** min(self._outage_attempts, 16)))
        return base * (0.5 + 0.5 * random.random())

    def _retry_outage(self) -> float:
        """While the server is unreachable: one attempt at a time, exponential backoff + jitter."""
        with self._lock:
            if self._closed:
                return 1.0
            self._nconns += 1
        try:
            slot = self._connect()
        except Exception as exc:  # noqa: BLE001
            with self._lock:
                self._nconns -= 1
                if _permanent(exc):  # reachable, but refusing us: let borrowers see why
                    self._outage = None
                    while self._waiters and self._nconns < self._max_size:
                        self._grant_permit_locked()
                else:
                    self._outage = exc
            return self._backoff()
        logger.warning(
            "pool %r: server reachable again after %d attempts", self.name, self._outage_attempts
        )
        with self._lock:
            self._outage = None
            self._outage_attempts = 0
        self._put_idle(slot)
        with self._lock:
            while self._waiters and self._nconns < self._max_size:
                self._grant_permit_locked()
        return 0.0

    # -- fork -----------------------------------------------------------------------------------
    def _after_fork(self) -> None:
        """In a forked child: forget the parent's connections without touching their sockets."""
        if self._pid == _getpid():
            return
        old_idle = list(self._idle)
        self._init_state()
        for slot in old_idle:
            slot.raw._force_close()
        if not self._closed:
            self._start_maintenance()

    # -- closing, resizing, stats ---------------------------------------------------------------
    def close(self, timeout: float = 0.0) -> None:
        """Close the pool: idle connections now; lent ones when given back, or after ``timeout``.

        Waiters get :class:`PoolClosedError`. Closing twice is a no-op.
        """
        with self._lock:
            already = self._closed
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            while self._waiters:
                waiter = self._waiters.popleft()
                waiter.result = _CLOSED
                waiter.wake()
        self._maint_event.set()
        from .registry import _unregister

        _unregister(self)
        for slot in idle:
            self._drop(slot, quit=slot.generation == self._generation)
        if already:
            return
        deadline = _monotonic() + max(0.0, timeout)
        with self._lock:
            while self._lent and (remaining := deadline - _monotonic()) > 0:
                self._drained.wait(min(remaining, threading.TIMEOUT_MAX))
            lent = list(self._lent)
            self._lent.clear()
        for slot in lent:
            slot.raw._force_close()
        logger.debug("pool %r: closed", self.name)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- public, read-only facts for integrations (Flask, Django, CLI, metrics) -----------------
    @property
    def options(self) -> PoolOptions:
        """The validated options this pool was built with (``connect_kwargs`` included; its repr
        leaves them out because they hold the password)."""
        return self._opts

    @property
    def server_address(self) -> str:
        """``user@host:port/database`` (or the unix socket): where this pool connects. Never
        contains the password."""
        return self._where()

    @property
    def max_size(self) -> int:
        """The most server connections this pool opens (changed by :meth:`resize`)."""
        return self._max_size

    @property
    def min_size(self) -> int:
        """The connections the pool keeps open (``size``; changed by :meth:`resize`)."""
        return self._size

    def resize(self, size: int, max_size: int | None = None) -> None:
        """Change ``size`` (and ``max_size``) of a running pool; surplus connections age out."""
        if max_size is None:
            max_size = max(size, self._max_size)
        opts = build_options({"size": size, "max_size": max_size})
        with self._lock:
            self._size = opts.size
            self._max_size = opts.max_size
            while self._waiters and self._nconns < self._max_size and self._outage is None:
                self._grant_permit_locked()
        self._maint_event.set()

    def stats(self) -> dict[str, Any]:
        """A snapshot as a plain dict with stable snake_case keys (times in milliseconds)."""
        with self._lock:
            c: dict[str, Any] = dict(self._counters)
            samples = sorted(self._wait_samples)
            c.update(
                name=self.name,
                pool_min=self._size,
                pool_max=self._max_size,
                pool_size=self._nconns,
                pool_available=len(self._idle),
                in_use=len(self._lent),
                requests_waiting=len(self._waiters),
                server_unreachable=self._outage is not None,
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

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._idle)} idle, {len(self._lent)} in use"
        return (
            f"<mysqlpool_ext.ConnectionPool {self.name!r} {self._where()} "
            f"size={self._size} max_size={self._max_size} ({state})>"
        )

    @property
    def url(self) -> str:
        """A ``mysql://`` URL for this pool's server, with the password masked."""
        kw = self._connect_kwargs
        host = kw.get("host") or "localhost"
        url = f"mysql://{kw.get('user') or ''}:x@{host}:{kw.get('port') or 3306}/"
        return redact_url(url + (kw.get("database") or ""))

    def _iter_slots(self) -> Iterator[_Slot]:
        with self._lock:
            slots = list(self._idle) + list(self._lent)
        return iter(slots)


def _permanent(exc: BaseException) -> bool:
    """A connect error no retry will fix (wrong password, unknown database...)."""
    return (
        isinstance(exc, pymysql.err.MySQLError)
        and bool(exc.args)
        and exc.args[0] in _PERMANENT_CONNECT_ERRORS
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) >= 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return repr(exc)


def _thread_id(slot: _Slot) -> Any:
    sid = slot.raw.__dict__.get("server_thread_id")
    return sid[0] if sid else "?"


def _maintenance_loop(pool_ref: weakref.ref[ConnectionPool]) -> None:
    """Runs in a daemon thread; holds only a weak reference so a forgotten pool can be collected."""
    delay = 0.0
    while True:
        pool = pool_ref()
        if pool is None or pool._closed or pool._pid != _getpid():
            return
        event = pool._maint_event
        del pool
        event.wait(delay)
        event.clear()
        pool = pool_ref()
        if pool is None or pool._closed:
            return
        try:
            delay = pool._maintain()
        except Exception:
            logger.exception("pool %r: maintenance failed", pool.name)
            delay = 1.0
        del pool


def _after_fork_in_child() -> None:
    for pool in list(_all_pools):
        pool._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
