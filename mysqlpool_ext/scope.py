"""Request scope and ``current_pool``: framework-agnostic, built on ``contextvars``.

A web request wants *one* connection for all its statements (so ``LAST_INSERT_ID()``, session
variables and transactions behave), taken lazily on first use and given back when the request ends,
rolled back if a transaction is still open — never committed implicitly. Adapters (Flask, Django)
open a :class:`RequestScope` at the start of a request and call :meth:`RequestScope.release` at its
end; outside any scope, every ``current_pool`` call borrows and gives back at once.

Which pool ``current_pool`` means is decided by resolvers that adapters register (the Flask app's
pool inside an app context, Django's pool when settings say so), then by the registry's default.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import pymysql

from ._protocol import (
    COM_QUERY,
    IN_TRANS,
    LOST_CONNECTION_CODES,
    NestedBlock,
    Statement,
    StatementMethods,
    run_query,
)
from ._protocol import block_var as _block_var
from .connection import Connection, ReturnedConnection
from .errors import PoolError, TransactionLostError
from .registry import get_default_pool, get_pool

if TYPE_CHECKING:
    from .pool import ConnectionPool

__all__ = [
    "RequestScope",
    "current_pool",
    "current_scope",
    "register_resolver",
    "request_scope",
    "unregister_resolver",
]


#: A resolver maps a pool name (None = the default) to a pool, or None when it does not apply here.
Resolver = Callable[[str | None], "ConnectionPool | None"]

_resolvers: list[Resolver] = []
_fallbacks: set[Resolver] = set()
_resolvers_lock = threading.Lock()


def _reinit_after_fork() -> None:
    # A thread of the parent may have held the lock at fork time: the child gets a new one.
    global _resolvers_lock
    _resolvers_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)

_scope_var: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "mysqlpool_ext_scope", default=None
)


def register_resolver(resolver: Resolver, *, fallback: bool = False) -> None:
    """Let an adapter say which pool ``current_pool`` means in its context.

    Context-bound resolvers (Flask's: "inside an app context") are asked first, newest first;
    ``fallback=True`` ones (Django's: "whatever the settings say") only when none of those
    applies, so a Flask app in a process that also configured Django still gets its own pool.
    """
    with _resolvers_lock:
        if resolver in _resolvers:
            return
        if fallback:
            _resolvers.append(resolver)
            _fallbacks.add(resolver)
        else:
            _resolvers.insert(0, resolver)


def unregister_resolver(resolver: Resolver) -> None:
    with _resolvers_lock:
        if resolver in _resolvers:
            _resolvers.remove(resolver)
        _fallbacks.discard(resolver)


def resolve_pool(name: str | None = None) -> ConnectionPool:
    """The pool ``current_pool`` (or ``current_pool.using(name)``) stands for right now."""
    for resolver in list(_resolvers):
        pool = resolver(name)
        if pool is not None:
            return pool
    return get_default_pool() if name is None else get_pool(name)


class RequestScope:
    """The connections pinned to one request, at most one per pool.

    (Its lock is taken with ``acquire()``/``finally`` rather than ``with``, as in the pool's
    core: see :class:`mysqlpool_ext._core.PoolCore`.)"""

    __slots__ = ("_alocks", "_conns", "_lock", "_released", "_ulocks", "temporary")

    def __init__(self, temporary: bool = False) -> None:
        #: A scope for one ``with current_pool.transaction():`` outside a request: once it has
        #: ended, code still running in its context (a task the block started) is outside any
        #: scope again, rather than in an ended one.
        self.temporary = temporary
        self._conns: dict[int, tuple[ConnectionPool, Connection]] = {}
        self._alocks: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}
        self._ulocks: dict[int, threading.Lock] = {}
        self._lock = threading.Lock()
        self._released = False

    def connection_for(self, pool: ConnectionPool) -> Connection:
        """This request's connection from ``pool``, borrowed on first use."""
        entry = self._conns.get(id(pool))
        if entry is not None and not isinstance(entry[1], ReturnedConnection):
            return entry[1]
        return self._pin(pool, pool.get_connection())

    async def aconnection_for(self, pool: ConnectionPool) -> Connection:
        """The async twin of :meth:`connection_for`."""
        entry = self._conns.get(id(pool))
        if entry is not None and not isinstance(entry[1], ReturnedConnection):
            return entry[1]
        return self._pin(pool, await pool.aget_connection())

    def holds(self, pool: ConnectionPool) -> bool:
        """Whether this request has (or had) a connection from ``pool``."""
        return id(pool) in self._conns

    def pin(self, pool: ConnectionPool, conn: Connection) -> Connection:
        """Make ``conn``, lent by ``pool``, the request's connection for it, as
        :meth:`connection_for` does with one it borrows; returns the request's connection
        (``conn`` unless one was pinned meanwhile: then ``conn`` has gone back)."""
        return self._pin(pool, conn)

    def _pin(self, pool: ConnectionPool, conn: Connection) -> Connection:
        """Keep the first connection pinned for ``pool``; a racing second borrow goes back.

        Two tasks of one request (``asyncio.gather``) may both find no connection and borrow; the
        request must still use one connection, and the other must not leak.
        """
        lock = self._lock
        lock.acquire()
        try:
            released = self._released
            entry = self._conns.get(id(pool))
            if not released and (entry is None or isinstance(entry[1], ReturnedConnection)):
                self._conns[id(pool)] = (pool, conn)
                return conn
        finally:
            lock.release()
        conn.close()
        if released or entry is None:
            # A thread that copied the request's context and outlived it: nobody would ever
            # give this connection back.
            raise PoolError(
                f"pool {pool.name!r}: the request scope this code runs in has already ended; "
                "borrow with pool.connection() in code that outlives a request"
            )
        return entry[1]

    def alock_for(self, pool: ConnectionPool) -> asyncio.Lock:
        """Serialises the request's tasks on its one connection: a MySQL connection runs one
        statement at a time, and two tasks interleaving on it would corrupt the protocol.

        One per event loop: a request may run its async code in several loops one after the
        other (Flask runs each async hook and view with ``async_to_sync``, a loop each), and an
        ``asyncio.Lock`` belongs to the loop it first waited in."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._alocks.get(id(pool))
            if entry is None or entry[0] is not loop:
                entry = self._alocks[id(pool)] = (loop, asyncio.Lock())
        return entry[1]

    def use_lock(self, pool: ConnectionPool) -> threading.Lock:
        """Held while a statement runs on the request's connection for ``pool``, whoever sends
        it: ``current_pool`` (sync, and async after :meth:`alock_for`) and an adapter's own
        users of the connection (the Django ORM, in the request's thread or in another one
        the request started: ``sync_to_async``, ``asyncio.gather``). A MySQL connection runs
        one statement at a time; two threads interleaving on it corrupt the protocol."""
        lock = self._ulocks.get(id(pool))
        if lock is None:
            with self._lock:
                lock = self._ulocks.setdefault(id(pool), threading.Lock())
        return lock

    @property
    def ended(self) -> bool:
        """Whether the scope has given its connections back (its request is over)."""
        return self._released

    def transaction_ended(self, pool: ConnectionPool, conn: Connection, committed: bool) -> None:
        """A ``current_pool`` block on ``conn`` (``pool``'s connection for this scope) ended the
        transaction it began: COMMIT (``committed``) or ROLLBACK. For adapters that share the
        connection with code that tracks transactions itself (the Django ORM's on_commit
        callbacks); nothing to do here."""

    def pinned(self) -> list[tuple[ConnectionPool, Connection]]:
        """The connections this scope holds now, with their pools."""
        with self._lock:
            entries = list(self._conns.values())
        return [(p, c) for p, c in entries if not isinstance(c, ReturnedConnection)]

    async def atransaction_ended(
        self, pool: ConnectionPool, conn: Connection, committed: bool
    ) -> None:
        """:meth:`transaction_ended` from the event loop (an ``atransaction()`` block): an
        adapter whose listeners must run in a thread of their own overrides this."""
        self.transaction_ended(pool, conn, committed)

    @property
    def borrowed(self) -> int:
        """How many connections this scope holds now."""
        return sum(1 for _, c in self._conns.values() if not isinstance(c, ReturnedConnection))

    def release(self) -> None:
        """Give every pinned connection back: an open transaction is rolled back by the pool
        (never committed), a broken connection is discarded. Safe to call twice."""
        lock = self._lock
        lock.acquire()
        try:
            self._released = True
            entries = list(self._conns.values())
            self._conns.clear()
        finally:
            lock.release()
        first_error: BaseException | None = None
        for pool, conn in entries:
            if isinstance(conn, ReturnedConnection):
                continue
            use = self._ulocks.get(id(pool))
            busy = use is not None and not use.acquire(blocking=False)
            if busy:
                # A statement still runs on it (a thread the request started and did not wait
                # for): its answer would reach the next borrower. Discarded, not reused.
                conn.__dict__["_mp_broken"] = True
            try:
                conn.close()
            except BaseException as exc:  # noqa: BLE001 - give back the others, then re-raise
                first_error = first_error or exc
            finally:
                if use is not None and not busy:
                    use.release()
        if first_error is not None:
            raise first_error


def current_scope() -> RequestScope | None:
    """The request scope of the current context, if an adapter opened one."""
    return _scope_var.get()


@contextmanager
def request_scope() -> Iterator[RequestScope]:
    """Open a request scope for the block (adapters use this; so can a job runner)."""
    scope = RequestScope()
    token = _scope_var.set(scope)
    try:
        yield scope
    finally:
        _scope_var.reset(token)
        scope.release()


def set_scope(scope: RequestScope | None) -> contextvars.Token[RequestScope | None]:
    """Low-level: install ``scope`` in the current context (for adapters with split hooks)."""
    return _scope_var.set(scope)


def reset_scope(token: contextvars.Token[RequestScope | None]) -> None:
    _scope_var.reset(token)


class _CurrentPool(StatementMethods):
    """Proxy to the pool of the current context, request-scope aware.

    Inside a request scope, ``execute_query`` / ``connection`` / ``transaction`` use the request's
    pinned connection; outside, they borrow and give back per call. Anything else (``stats()``,
    ``name``...) is forwarded to the pool itself.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str | None = None) -> None:
        object.__setattr__(self, "_name", name)

    def _get_current_object(self) -> ConnectionPool:
        return resolve_pool(self._name)

    def using(self, name: str) -> _CurrentPool:
        """``current_pool.using("reports")``: the same proxy for a named pool (a bind)."""
        return _CurrentPool(name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._get_current_object(), attr)

    def __repr__(self) -> str:
        try:
            pool = self._get_current_object()
        except Exception as exc:  # noqa: BLE001 - repr must not raise
            return f"<current_pool unresolved: {exc}>"
        return f"<current_pool -> {pool!r}>"

    def __bool__(self) -> bool:
        try:
            self._get_current_object()
        except Exception:  # noqa: BLE001
            return False
        return True

    def _run_statement(self, stmt: Statement) -> Any:
        pool = self._get_current_object()
        scope = _live_scope()
        if scope is None:
            return pool.execute_query(*stmt)
        _check_not_closed(pool)
        conn = scope.connection_for(pool)
        lock = scope.use_lock(pool)
        _acquire_blocking(lock, pool)
        try:
            _check_block(pool, conn)
            return run_query(conn, stmt)
        finally:
            lock.release()

    async def _arun_statement(self, stmt: Statement) -> Any:
        pool = self._get_current_object()
        scope = _live_scope()
        if scope is None:
            return await pool.aexecute_query(*stmt)
        _check_not_closed(pool)
        async with scope.alock_for(pool):
            conn = await scope.aconnection_for(pool)
            lock = scope.use_lock(pool)
            await _acquire_without_blocking(lock)
            try:
                _check_block(pool, conn)
                return await conn.aexecute_query(*stmt)
            finally:
                lock.release()

    def connection(self, timeout: float | None = None) -> Any:
        return self._block(timeout, begin=False)

    def transaction(self, timeout: float | None = None) -> Any:
        return self._block(timeout, begin=True)

    def aconnection(self, timeout: float | None = None) -> Any:
        """The async twin of :meth:`connection`: inside a request, the request's connection."""
        return self._ablock(timeout, begin=False)

    def atransaction(self, timeout: float | None = None) -> Any:
        return self._ablock(timeout, begin=True)

    def _block(self, timeout: float | None, begin: bool) -> Any:
        """Outside a request, a pool block that is a scope of its own; inside one, a block on
        the request's connection."""
        pool = self._get_current_object()
        scope = _live_scope()
        _check_not_closed(pool)  # a block inside one whose connection was closed
        if scope is None:
            return _scoped_block(
                pool, pool.transaction(timeout) if begin else pool.connection(timeout)
            )
        return _pinned(scope, pool, scope.connection_for(pool), begin)

    def _ablock(self, timeout: float | None, begin: bool) -> Any:
        """The async twin of :meth:`_block` (the request's connection is taken when entered)."""
        pool = self._get_current_object()
        scope = _live_scope()
        _check_not_closed(pool)
        if scope is None:
            return _ascoped_block(
                pool, pool.atransaction(timeout) if begin else pool.aconnection(timeout)
            )
        return _apinned(scope, pool, begin)


def _live_scope() -> RequestScope | None:
    """The scope of this context, unless it is a temporary one that has ended."""
    scope = _scope_var.get()
    if scope is not None and scope.temporary and scope._released:
        return None
    return scope


def _check_block(pool: ConnectionPool, conn: Connection) -> None:
    """Before a statement on the request's connection (use lock held): raise if the connection
    was given up (:func:`_abandon`), or if this statement's ``transaction()`` block lost its
    transaction to another block: run now, the statement would commit on its own, or seem to
    succeed and be rolled back with a transaction nobody will end."""
    check_usable(pool, conn)
    entry = _block_var.get()
    if entry is not None and entry[1].conn is conn:
        entry[1].check()


def check_usable(pool: ConnectionPool, conn: Connection) -> None:
    """Raise :class:`TransactionLostError` if ``conn``, a request's connection, was given up
    because a block could not end its transaction, and that transaction is still open (for
    adapters sharing the connection: the Django ORM). Once it ended (a ROLLBACK, or the server
    rolled it back), the connection is usable again. Cheap: one dictionary look-up."""
    d = conn.__dict__
    reason = d.get("_mp_abandoned")
    if reason is None:
        return
    if not conn.server_status & IN_TRANS:  # ended: rolled back (by the ORM, or the server)
        del d["_mp_abandoned"]
        return
    raise TransactionLostError(
        f"pool {pool.name!r}: {reason}; no statement runs in that transaction any more (it "
        "is rolled back when the request or the atomic block around it ends)"
    )


def _abandon(conn: Connection, reason: str) -> None:
    """A block could not end what it began on ``conn``: never lent again (the server rolls
    back when it is closed), and every later statement of the request on it raises."""
    conn.__dict__["_mp_broken"] = True
    conn.__dict__.setdefault("_mp_abandoned", reason)


_NOT_ROLLED_BACK = "a current_pool block could not roll back after its error"


def _parent_block(conn: Connection) -> NestedBlock | None:
    """The ``transaction()`` block on ``conn`` this code runs in, if any (a new block inside it
    is its child, not a sibling: see :class:`NestedBlock`)."""
    entry = _block_var.get()
    return entry[1] if entry is not None and entry[1].conn is conn else None


def _check_not_closed(pool: ConnectionPool) -> None:
    """Before a statement of a ``transaction()`` block takes the request's connection: if the
    block's connection was closed (Django's ``close()``: the server rolled its transaction
    back), raise, rather than borrow another connection and commit the statement on its own."""
    entry = _block_var.get()
    if entry is not None and entry[0] is pool and isinstance(entry[1].conn, ReturnedConnection):
        raise _closed_inside(pool)


@contextmanager
def _scoped_block(pool: ConnectionPool, block: Any) -> Iterator[Connection]:
    """``with current_pool.transaction():`` outside a request (a CLI command, a task, an app
    context): the pool's block, and while it is open a request scope holding its connection,
    so that ``current_pool`` calls in it run on that connection, in its transaction (else each
    would borrow another: not in the transaction, and with a pool of one, waiting for ever on
    the block's own connection). Connections of other pools borrowed in it go back at its end."""
    with block as conn:
        scope = RequestScope(temporary=True)
        adopt_connection(scope, pool, conn)
        token = set_scope(scope)
        try:
            yield conn
        finally:
            reset_scope(token)
            detach_connection(scope, pool, conn)  # the pool's block gives it back
            scope.release()


@asynccontextmanager
async def _ascoped_block(pool: ConnectionPool, block: Any) -> AsyncIterator[Connection]:
    """The async twin of :func:`_scoped_block`."""
    async with block as conn:
        scope = RequestScope(temporary=True)
        adopt_connection(scope, pool, conn)
        token = set_scope(scope)
        try:
            yield conn
        finally:
            reset_scope(token)
            detach_connection(scope, pool, conn)
            if scope.borrowed:  # other pools' connections: a rollback may be a round trip
                await asyncio.to_thread(scope.release)
            else:
                scope.release()


@contextmanager
def _pinned(
    scope: RequestScope, pool: ConnectionPool, conn: Connection, begin: bool = False
) -> Iterator[Connection]:
    """A block on the request's own connection: it ends as a pool block ends (COMMIT on
    success, ROLLBACK on error — the same rule as ``pool.connection()``) unless it runs inside a
    transaction that was already open (then it is a savepoint); the connection stays with the
    request afterwards. The scope hears when the block ends a transaction
    (:meth:`RequestScope.transaction_ended`).

    Whether a transaction is open is read under the request's use lock, when the block's first
    statement is sent: another thread's block of the same request may have begun one since
    this block was created (two BEGINs: the second would commit the first's work)."""
    lock = scope.use_lock(pool)
    _acquire_blocking(lock, pool)
    try:
        check_usable(pool, conn)
        block = NestedBlock(conn, begin, _parent_block(conn))
        opening = block.opening()
        if opening is not None:
            _send(conn, opening)
            block.foreign = False  # its own SAVEPOINT, sent in its parent's context
    finally:
        lock.release()
    token = _block_var.set((pool, block)) if begin else None
    closing: bytes | None = None
    committed = False
    try:
        try:
            yield conn
        except BaseException as exc:
            if not isinstance(conn, ReturnedConnection):
                _end_quietly(lock, pool, conn, block, exc)
            raise
        if isinstance(conn, ReturnedConnection):
            raise _closed_inside(pool)
        try:
            _acquire_blocking(lock, pool)
        except PoolError:
            # On the event loop, with an async statement of the request on the connection:
            # the block can neither wait nor end. What it began stays open on the connection.
            _abandon(
                conn,
                "a blocking current_pool block on the event loop could not end while an async "
                "call of the request used the connection",
            )
            raise
        try:
            closing = block.closing(None)
            if closing is not None:
                _send(conn, closing)
                committed = closing == b"COMMIT"
        finally:
            lock.release()
        if block.error is not None:
            raise block.error
    finally:
        if token is not None:
            _block_var.reset(token)
        if block.ends_transaction and (begin or closing is not None):
            scope.transaction_ended(pool, conn, committed)


def _end_quietly(
    lock: threading.Lock, pool: ConnectionPool, conn: Connection, block: NestedBlock, exc: Any
) -> None:
    """A block's error is on its way out: roll back what the block must. If that cannot be done
    (the lock is out of reach, the connection failed), the connection is marked broken: never
    lent again, so the server rolls back when it is closed. The block's own error matters more
    than any of these."""
    try:
        _acquire_blocking(lock, pool)
    except PoolError:
        _abandon(conn, _NOT_ROLLED_BACK)
        return
    try:
        _send_quietly(conn, block.closing(exc))
    except Exception:  # noqa: BLE001 - the block's own error matters more
        _abandon(conn, _NOT_ROLLED_BACK)
    finally:
        lock.release()


def _closed_inside(pool: ConnectionPool) -> TransactionLostError:
    return TransactionLostError(
        f"pool {pool.name!r}: the request's connection was closed inside the block (Django's "
        "connection.close() or connections.close_all()?): its transaction was rolled back"
    )


def _acquire_blocking(lock: threading.Lock, pool: ConnectionPool) -> None:
    """Take a :meth:`RequestScope.use_lock` for a blocking call. On a thread that runs an event
    loop, the holder is likely a task of that loop (an async call of the same request, waiting
    for its answer): waiting here would stop the loop, and that task with it, for ever."""
    if lock.acquire(blocking=False):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        lock.acquire()  # another thread's statement: it ends
        return
    raise PoolError(
        f"pool {pool.name!r}: a blocking current_pool call on the event loop while an async "
        "call of this request runs on its connection would wait for ever; await the async "
        "API (current_pool.aexecute_query(), async with current_pool.atransaction())"
    )


async def _acquire_without_blocking(lock: threading.Lock) -> None:
    """Take a :meth:`RequestScope.use_lock` on the event loop: at once when free (the usual
    case), else in a thread, so that the loop runs on while another thread finishes its
    statement. Given up meanwhile (a cancellation, a loop closed under it), the lock is
    released by whichever side sees the other's move: the waiting thread once it gets the lock,
    or this task if the thread got it first (a done-callback would not run if the loop closed)."""
    if lock.acquire(blocking=False):
        return
    guard = threading.Lock()
    state = {"abandoned": False, "got": False}

    def take() -> None:
        lock.acquire()
        with guard:
            if state["abandoned"]:
                lock.release()
            else:
                state["got"] = True

    waiting = asyncio.get_running_loop().run_in_executor(None, take)
    try:
        await asyncio.shield(waiting)
    except BaseException:
        with guard:
            state["abandoned"] = True
            got = state["got"]
        if got:
            lock.release()
        raise


def _send(conn: Connection, sql: bytes) -> None:
    conn._execute_command(COM_QUERY, sql)
    conn._read_ok_packet()


def _send_quietly(conn: Connection, sql: bytes | None) -> None:
    """A block's error is on its way out: send ``sql`` if there is any; if that fails too, the
    block's own error matters more, and the pool discards the connection at the end."""
    if sql is None:
        return
    try:
        _send(conn, sql)
    except pymysql.err.MySQLError as exc:
        if _answered(conn, exc):
            return  # e.g. 1305: the savepoint is gone (the server rolled the transaction back)
        _abandon(conn, _NOT_ROLLED_BACK)
    except Exception:  # noqa: BLE001
        _abandon(conn, _NOT_ROLLED_BACK)


def _answered(conn: Connection, exc: pymysql.err.MySQLError) -> bool:
    """Whether the server answered ``exc`` (an error reply: the connection is in a known state)
    rather than the connection failing (lost, closed, out of step)."""
    code = exc.args[0] if exc.args else None
    return (
        isinstance(code, int)
        and code >= 1000
        and conn._sock is not None
        and code not in LOST_CONNECTION_CODES
    )


@asynccontextmanager
async def _apinned(
    scope: RequestScope, pool: ConnectionPool, begin: bool
) -> AsyncIterator[Connection]:
    """The async twin of :func:`_pinned`; its statements also take the request's async lock,
    which orders the request's tasks (``asyncio.gather`` of two blocks: the second one to
    start is a savepoint of the first's transaction, never a second BEGIN)."""
    from ._wire_async import aio_command

    conn = await scope.aconnection_for(pool)
    lock = scope.use_lock(pool)
    async with scope.alock_for(pool):
        await _acquire_without_blocking(lock)
        try:
            check_usable(pool, conn)
            block = NestedBlock(conn, begin, _parent_block(conn))
            opening = block.opening()
            if opening is not None:
                await aio_command(conn, opening.decode())
                block.foreign = False  # its own SAVEPOINT, sent in its parent's context
        finally:
            lock.release()
    token = _block_var.set((pool, block)) if begin else None
    closing: bytes | None = None
    committed = False
    try:
        try:
            yield conn
        except BaseException as exc:
            if not isinstance(conn, ReturnedConnection):
                try:
                    async with scope.alock_for(pool):
                        await _acquire_without_blocking(lock)
                        try:
                            closing = block.closing(exc)
                            if closing is not None:
                                await aio_command(conn, closing.decode())
                        finally:
                            lock.release()
                except pymysql.err.MySQLError as end_exc:
                    if not _answered(conn, end_exc):  # the block's own error matters more
                        _abandon(conn, _NOT_ROLLED_BACK)
                except BaseException:  # noqa: BLE001 - the block's own error matters more
                    _abandon(conn, _NOT_ROLLED_BACK)
            raise
        if isinstance(conn, ReturnedConnection):
            raise _closed_inside(pool)
        async with scope.alock_for(pool):
            await _acquire_without_blocking(lock)
            try:
                closing = block.closing(None)
                if closing is not None:
                    await aio_command(conn, closing.decode())
                    committed = closing == b"COMMIT"
            finally:
                lock.release()
        if block.error is not None:
            raise block.error
    finally:
        if token is not None:
            _block_var.reset(token)
        if block.ends_transaction and (begin or closing is not None):
            await scope.atransaction_ended(pool, conn, committed)


current_pool: _CurrentPool = _CurrentPool()
"""The pool of the current context; see the module docstring."""


# --- added for the Django backend (lead: keep) ---
# Django's ORM keeps its connection in its own wrapper, which may already hold one when a request
# starts (a TestCase's atomic block). For the ORM and ``current_pool`` to share one connection,
# the scope must be able to use a connection it did not borrow, and to let go of it unreturned.


def adopt_connection(scope: RequestScope, pool: ConnectionPool, conn: Connection) -> bool:
    """Make ``conn`` (borrowed from ``pool`` by someone else) ``scope``'s connection for ``pool``
    if the scope holds none yet; True if adopted. ``release()`` would give it back like one the
    scope borrowed: an owner that gives it back itself calls :func:`detach_connection` first."""
    with scope._lock:
        entry = scope._conns.get(id(pool))
        if scope._released or (entry is not None and not isinstance(entry[1], ReturnedConnection)):
            return False
        scope._conns[id(pool)] = (pool, conn)
        return True


def detach_connection(
    scope: RequestScope, pool: ConnectionPool, conn: Connection | None = None
) -> Connection | None:
    """Forget ``scope``'s connection for ``pool`` without giving it back; the caller owns it now.
    None if the scope holds none (or only one already given back). ``conn``: only if it is the
    scope's connection (a connection the scope borrowed since stays the scope's to give back)."""
    with scope._lock:
        entry = scope._conns.get(id(pool))
        if entry is None or (conn is not None and entry[1] is not conn):
            return None
        del scope._conns[id(pool)]
    if isinstance(entry[1], ReturnedConnection):
        return None
    return entry[1]
