"""``Connection``: a PyMySQL connection that knows its session's state, and whether it is pooled.

Used on its own (``mysqlpool_ext.Connection(host=...)``) it is a plain PyMySQL connection plus
:meth:`Connection.execute_query`. Borrowed from a pool it is a *lease*: a fresh ``Connection``
object that shares its instance ``__dict__`` (socket, buffers, ``server_status``) with the pool's
long-lived record of the server connection (SQLAlchemy's record/lease split). Giving it back swaps
the lease's ``__dict__`` for an empty one and its class for :class:`ReturnedConnection`, so any
later use of that object raises :class:`ConnectionReturnedError` instead of silently sharing a
socket with the next borrower — and both the lend and the give-back are O(1), no copying.

This module is the wire layer: it knows nothing of pools. A lease reaches its owner only through
the small :class:`LeaseOwner` interface (the pool's record of the connection implements it).

Why the connection watches every packet: the pool decides at give-back time, without a round
trip, whether the session is exactly as it was opened. PyMySQL stores the status flags of OK
packets but forgets those of the EOF packet that ends a result set, so after a SELECT the
"transaction open" bit it shows is stale; this class stores them. With ``CLIENT_SESSION_TRACK``
the server also flags every change of session state (``SERVER_SESSION_STATE_CHANGED``); the few
changes it does not report (named locks, ``LOCK TABLES``, user variables assigned inside an
expression, ``LAST_INSERT_ID(n)``) are caught by a cheap look at the statement text.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import socket
import struct
import threading
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import pymysql
import pymysql.cursors
from pymysql.constants import CLIENT, COMMAND
from pymysql.err import InterfaceError, MySQLError

from ._fastresult import read_result_sync
from ._protocol import (
    IN_TRANS,
    LOST_CONNECTION_CODES,
    SESSION_CHANGED,
    RowCount,
    SessionState,
    Statement,
    StatementMethods,
    block_end_action,
    closed_error,
    note_command,
    reset_session,
    run_query,
    shutdown_quietly,
)
from .errors import ConnectionReturnedError, TransactionLostError

__all__ = [
    "LOST_CONNECTION_CODES",
    "Connection",
    "LeaseOwner",
    "ReturnedConnection",
    "RowCount",
    "SessionState",
    "block_end_action",
    "bounded_check",
    "forget_socket",
    "reset_session",
    "run_query",
]

_SSL_BUILD_LOCK = threading.Lock()
_poll = getattr(select, "poll", None)  # not on Windows: select.select() stands in there
_POLLIN = getattr(select, "POLLIN", 1)
#: Linux: a TCP socket's state, asked without releasing the GIL (see has_pending_input()).
_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None)
_TCP_ESTABLISHED = 1
_IPPROTO_TCP = socket.IPPROTO_TCP


class LeaseOwner(Protocol):
    """What a lease needs from whoever lent it (the pool's record of the connection)."""

    def give_back(self, lease: Connection) -> None: ...

    def end_block(self, lease: Connection, exc: BaseException | None) -> None: ...

    def lost_lease(self, lease: Connection) -> None: ...


_WIRE_ASYNC: Any = None


def _wire_async() -> Any:
    """The event-loop wire layer, imported on first use (it imports asyncio) and then kept."""
    global _WIRE_ASYNC
    if _WIRE_ASYNC is None:
        from . import _wire_async as module

        _WIRE_ASYNC = module
    return _WIRE_ASYNC


class Connection(StatementMethods, pymysql.connections.Connection):
    """A PyMySQL connection; when borrowed from a pool, ``close()`` and ``with`` give it back."""

    # Class-level defaults, read through the instance when the shared dict has no entry: the hot
    # path reads them as plain attributes, no ``getattr`` with defaults.
    _mp_slot: LeaseOwner | None = None
    _mp_broken = False
    _mp_db_changed = False
    _mp_dirty = False  # the session may differ from its connect-time state
    _mp_used = False  # a command was sent during this borrow
    _mp_errored = False  # a statement failed during this borrow
    _mp_closed_by: str | None = None  # the name of the pool that closed under this lease
    _mp_state: SessionState | None = None
    _mp_retired = False  # host lists: its server no longer serves the pool's target (topology.py)

    if TYPE_CHECKING:
        # PyMySQL internals the pool reads; its type stubs do not declare them.
        _sock: Any
        _rfile: Any
        _result: Any
        _closed: bool
        _next_seq_id: int
        _current_timeout: Any
        _read_timeout: Any
        connect_timeout: Any
        server_status: int
        server_capabilities: int
        server_thread_id: Any
        autocommit_mode: bool | None
        charset: str
        collation: str | None
        encoding: str
        sql_mode: str | None
        init_command: str | None
        host: str
        port: int
        user: Any
        unix_socket: str | None
        db: Any

        def _force_close(self) -> None: ...
        def _send_autocommit_mode(self) -> None: ...
        def _write_bytes(self, data: bytes) -> None: ...

    # -- seed API: execute_query / aexecute_query come from StatementMethods -------------------
    def _run_statement(self, stmt: Statement) -> Any:
        return run_query(self, stmt)

    def _arun_statement(self, stmt: Statement) -> Awaitable[Any]:
        return _wire_async().aio_run_query(self, stmt)

    def reset_connection(self) -> None:
        """Send COM_RESET_CONNECTION, then re-apply the state this connection was opened with
        (database, character set, sql_mode, init_command, autocommit): the next user cannot
        tell it from a new connection. PyMySQL has no helper for it."""
        reset_session(self)

    # -- watching every command and every statement-ending packet -------------------------------
    def _execute_command(self, command: int, sql: Any) -> None:
        if self._sock is None:
            if self._mp_closed_by is not None:
                raise closed_error(self, None)
            raise InterfaceError(0, "the connection is closed")
        note_command(self, command, sql)
        try:
            super()._execute_command(command, sql)
        except MySQLError as exc:
            _fail(self, exc)

    def _read_query_result(self, unbuffered: bool = False) -> int:
        try:
            # Rows decoded by _rows (compiled when built); PyMySQL reads everything else. Either
            # way the flags of the packet that ends the statement are kept (server_status).
            return read_result_sync(self, unbuffered)
        except MySQLError as exc:
            _fail(self, exc)

    def _read_ok_packet(self) -> Any:
        try:
            ok = super()._read_ok_packet()
        except MySQLError as exc:
            _fail(self, exc)
        if self.server_status & SESSION_CHANGED:
            self.__dict__["_mp_dirty"] = True
        return ok

    def select_db(self, db: str) -> None:
        """Change the default database; a pooled connection gets its own back on return."""
        super().select_db(db)
        d = self.__dict__
        d["_mp_db_changed"] = True
        d["_mp_dirty"] = True

    # -- giving back ----------------------------------------------------------------------------
    def close(self) -> None:
        """Pooled: give the connection back (a second call is a no-op). Unpooled: close it."""
        slot = self._mp_slot
        if slot is None:
            super().close()
            return
        slot.give_back(self)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """Commit an open transaction on success, roll back on error, then give back (or close).

        If the transaction could not be committed (the connection was lost, or its pool closed),
        this raises: a block that ends without an exception means "committed"."""
        if isinstance(self, ReturnedConnection):
            # The body gave it back (``conn.close()``): ``with`` bound this method at entry, so
            # ReturnedConnection.__exit__ is never reached. Nothing left to do.
            return
        slot = self._mp_slot
        if slot is None:
            # Unpooled: exactly PyMySQL's behaviour.
            super().close()
            return
        slot.end_block(self, exc)

    def __del__(self) -> None:
        slot = self.__dict__.get("_mp_slot")
        if slot is None:
            # A plain connection: PyMySQL's own finaliser (close the socket, no COM_QUIT).
            self._force_close()
            return
        # A lease collected while still lent: its borrower lost it. Never close the shared socket
        # here (the pool's record still owns it); tell the owner, which reclaims it.
        slot.lost_lease(self)

    def __repr__(self) -> str:
        slot = self._mp_slot
        state = "open" if self._sock is not None else "closed"
        where = f"{self.host}:{self.port}" if not self.unix_socket else self.unix_socket
        if slot is None:
            return f"<mysqlpool_ext.Connection {state} {self.user}@{where}>"
        return (
            f"<mysqlpool_ext.Connection {state} {self.user}@{where} "
            f"lent by pool {getattr(slot, 'pool_name', '?')!r} id={self.thread_id()}>"
        )


_ER_LOCK_DEADLOCK = 1213


def _fail(conn: Connection, exc: MySQLError) -> NoReturn:
    """Note what an error means for the connection, then raise it (or what it really is)."""
    d = conn.__dict__
    d["_mp_errored"] = True
    if exc.args and exc.args[0] == _ER_LOCK_DEADLOCK and conn.server_status & IN_TRANS:
        # The server rolled the whole transaction back, work done before this statement
        # included; the session goes on in autocommit. A block that catches this and goes on
        # must not end as if it committed. (No transaction before: only this statement failed.)
        d["_mp_tx_rolled_back"] = True
        d["server_status"] = conn.server_status & ~IN_TRANS  # an ERR packet carries no flags
        owner = d.get("_mp_tx_owner")  # a request block that began the transaction
        if owner is not None and owner.error is None:
            owner.error = TransactionLostError(
                "not committed: the server rolled this block's transaction back (a deadlock, "
                "error 1213) and the block went on; what it sent afterwards ran outside it"
            )
    lost = conn._sock is None or bool(exc.args and exc.args[0] in LOST_CONNECTION_CODES)
    # Host lists: a connector-set callback (topology.Topology.on_error) hears every error, so a
    # refused write (1290...) or a lost server makes the pool re-check its hosts at once.
    hook = d.get("_mp_topology_hook")
    if hook is not None and exc.args and isinstance(exc.args[0], int):
        hook(conn, exc.args[0], lost)
    if lost:
        d["_mp_broken"] = True
        if conn._mp_closed_by is not None:
            raise closed_error(conn, exc) from exc
    raise exc


# -- the pool's own handle on a server connection ------------------------------------------------


def bounded_check(check: Any, raw: Connection, timeout: float) -> None:
    """A custom liveness check (``check=`` callable) on ``raw``, its reads bounded as the
    pool's own ping: by ``connect_timeout`` and by ``timeout``, what is left of the borrow."""
    with raw._bounded_reads(timeout):
        check(raw)


def forget_socket(conn: Connection) -> None:
    """In a forked child: let go of a connection inherited from the parent without a word on
    its socket and without touching its reader's lock.

    PyMySQL's ``_force_close`` closes the buffered reader first, which takes the reader's lock;
    a parent's thread that was inside a read at the fork holds that lock, and in the child that
    thread does not exist: the close would wait for ever. Closing the reader's raw stream takes
    no lock and marks the reader closed (its finaliser then does nothing); the descriptor is
    closed on its own (the socket object detached, so it never closes a reused number)."""
    d = conn.__dict__
    rfile, sock = d.get("_rfile"), d.get("_sock")
    d["_rfile"] = d["_sock"] = None
    fd = -1
    if sock is not None:
        with contextlib.suppress(OSError):
            fd = sock.detach()
    if rfile is not None:
        with contextlib.suppress(Exception):
            rfile.raw.close()
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


class _RawConnection(Connection):
    """The pool's own handle on a server connection (the record side of the split).

    It keeps PyMySQL's ``close()`` and ``__del__``; it builds its SSL context through the pool's
    cache, so opening a connection does not pay ~22 ms for ``ssl.create_default_context()``; and
    it asks the server to report session changes, so giving back needs no round trip to know
    whether the session must be reset.
    """

    def __init__(self, _ssl_cache: dict[Any, Any], **kwargs: Any) -> None:
        self.__dict__["_mp_ssl_cache"] = _ssl_cache
        kwargs["client_flag"] = kwargs.get("client_flag", 0) | CLIENT.SESSION_TRACK
        password = kwargs.get("password")
        if isinstance(password, str):
            try:
                password.encode("latin-1")
            except UnicodeEncodeError:
                # PyMySQL encodes str passwords as latin-1 and fails (echoing the password)
                # on anything else; the server hashed the UTF-8 bytes at CREATE USER time.
                kwargs["password"] = password.encode("utf-8")
        super().__init__(**kwargs)
        tracking = bool(getattr(self, "server_capabilities", 0) & CLIENT.SESSION_TRACK)
        if tracking and self._sock is not None:
            try:
                self.query("SET SESSION session_track_state_change=1")
            except MySQLError as exc:
                if self._sock is None or (exc.args and exc.args[0] in LOST_CONNECTION_CODES):
                    raise
                tracking = False  # a server or proxy that does not know the variable
        d = self.__dict__
        d["_mp_state"] = SessionState(
            database=kwargs.get("database") or kwargs.get("db"),
            charset=self.charset,
            collation=self.collation,
            encoding=self.encoding,
            sql_mode=self.sql_mode,
            init_command=self.init_command,
            autocommit=self.autocommit_mode,
            tracking=tracking,
        )
        d["_mp_dirty"] = d["_mp_used"] = d["_mp_errored"] = False

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        cache: dict[Any, Any] = self.__dict__["_mp_ssl_cache"]
        if not isinstance(sslp, dict):
            with _SSL_BUILD_LOCK:  # not cached, but never built across a fork either
                return super()._create_ssl_ctx(sslp)
        key = tuple(sorted((k, repr(v)) for k, v in sslp.items()))
        ctx = cache.get(key)
        if ctx is None:
            # Once per pool, not once per thread that races to open the first connections:
            # building a context holds the GIL for 20-40 ms (it stalls every other thread and
            # the event loop of the async face while it runs).
            with _SSL_BUILD_LOCK:
                ctx = cache.get(key)
                if ctx is None:
                    ctx = cache[key] = super()._create_ssl_ctx(sslp)
        return ctx

    def connect(self, sock: Any = None) -> None:
        """Open the connection; the handshake too is bounded by ``connect_timeout``.

        PyMySQL bounds only the TCP connect by it and reads the greeting with ``read_timeout``
        (default None: forever), so a server behind a blackholed route, or one that accepts and
        never greets, hung the borrower that opened the connection. libmysqlclient bounds the
        handshake by connect_timeout too.
        """
        with self._bounded_reads():
            super().connect(sock)

    def ping(self, reconnect: bool = False) -> None:
        """A liveness check (a lease's ``ping`` is PyMySQL's own): bounded by
        ``connect_timeout`` even when ``read_timeout`` is None, for the same reason."""
        with self._bounded_reads():
            super().ping(reconnect)

    def ping_within(self, timeout: float) -> None:
        """The pool's liveness check for a borrower: bounded as :meth:`ping`, and by
        ``timeout``, what is left of the borrower's deadline."""
        with self._bounded_reads(timeout):
            self.ping(False)  # bounded again by connect_timeout: the tighter bound stays

    @contextlib.contextmanager
    def _bounded_reads(self, timeout: float | None = None) -> Iterator[None]:
        read_timeout = self._read_timeout
        bound = self.connect_timeout
        if timeout is not None and timeout < (bound or math.inf):
            bound = timeout
        if not bound or (read_timeout is not None and read_timeout <= bound):
            yield
            return
        # PyMySQL re-arms the socket timeout on the next read when _read_timeout differs.
        self._read_timeout = bound
        try:
            yield
        finally:
            self._read_timeout = read_timeout

    def close(self) -> None:
        pymysql.connections.Connection.close(self)

    def __exit__(self, *exc_info: Any) -> None:
        pymysql.connections.Connection.close(self)

    def has_pending_input(self) -> bool:
        """True when the server hung up (or sent something) while this connection sat idle.

        The server never speaks first on an idle connection unless it ended the session: KILL,
        shutdown and ``wait_timeout`` close it (MySQL 8 sends an error packet first, with the
        FIN), a crash resets it. Asked on every borrow, so the pool can check such a connection
        even inside ``check_window`` instead of lending a dead one; it costs no round trip.

        On Linux a TCP connection's state (``TCP_INFO``: anything but ESTABLISHED means the
        server closed or reset it) is read without releasing the GIL. A zero-timeout ``poll``
        releases it, like every blocking call: with other threads busy (gunicorn
        ``--threads``) the borrower then waits for the GIL to come back, up to a switch
        interval, on every borrow. Elsewhere (a Unix socket, other systems) the poll is used.
        """
        sock = self._sock
        if sock is None:
            return True
        d = self.__dict__
        try:
            tcp = d.get("_mp_tcp")
            if tcp is None:  # once per socket: a pooled connection never changes socket
                tcp = d["_mp_tcp"] = _tcp_info_works(sock)
            if tcp:
                return sock.getsockopt(_IPPROTO_TCP, _TCP_INFO, 1)[0] != _TCP_ESTABLISHED
            if _poll is not None:
                poller = d.get("_mp_poller")
                if poller is None:
                    poller = d["_mp_poller"] = _poll()
                    poller.register(sock, _POLLIN)
                return bool(poller.poll(0))
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def __del__(self) -> None:
        self._force_close()

    def quit(self) -> None:
        """Close politely (COM_QUIT), ignoring errors: the socket may already be gone."""
        if self._sock is None:
            self._closed = True
            return
        try:
            self._closed = True
            self._write_bytes(struct.pack("<iB", 1, COMMAND.COM_QUIT))
        except Exception:  # noqa: BLE001 - closing a possibly dead socket: nothing to report
            pass
        finally:
            self._force_close()

    def interrupt(self, pool_name: str) -> None:
        """From another thread: make every blocked or future use of this connection fail.

        ``shutdown()`` (thread-safe, unlike closing PyMySQL's file objects under a reader) wakes
        a thread blocked in ``recv`` and an event loop waiting for the socket with EOF; the
        borrower then sees :class:`PoolClosedError`. The owner closes the descriptor when it
        gives the connection back.
        """
        self.__dict__["_mp_closed_by"] = pool_name
        shutdown_quietly(self._sock)


# -- a given-back lease ------------------------------------------------------------------------

_RETURNED_OK = frozenset({"__class__", "__dict__", "close", "open", "_mp_returned_pool"})
_PLAIN_ATTRS = frozenset(dir(object))


class _ReturnedAttribute(ConnectionReturnedError, AttributeError):
    """Reading a data attribute of a given-back connection: ``hasattr`` says False."""


class ReturnedConnection(Connection):
    """What a lease becomes once given back: calling anything raises, ``close()`` is a no-op.

    Looking a method up does not raise (``hasattr(conn, "commit")`` is True, as for a closed
    PyMySQL connection); calling it does. Reading a data attribute raises an error that is both
    :class:`ConnectionReturnedError` and ``AttributeError``, so ``getattr(conn, "x", None)``
    returns the default.
    """

    def __getattribute__(self, name: str) -> Any:
        if name in _RETURNED_OK or name in _PLAIN_ATTRS:
            return object.__getattribute__(self, name)
        if name == "_result":
            # SSCursor.__del__ (= close) compares its result with the connection's: "none" lets
            # a cursor that outlived its lease be collected quietly instead of printing a traceback.
            return None
        attr = getattr(Connection, name, None)
        if callable(attr):

            def refuse(*args: Any, **kwargs: Any) -> NoReturn:
                _raise_returned(self, name)

            return refuse
        pool_name = object.__getattribute__(self, "__dict__").get("_mp_returned_pool", "?")
        raise _ReturnedAttribute(_returned_message(pool_name, name))

    def close(self) -> None:
        """Closing twice is a no-op (DB-API code often closes in ``finally`` after a ``with``)."""

    @property
    def open(self) -> bool:
        return False

    def __enter__(self) -> NoReturn:
        _raise_returned(self, "__enter__")

    def __exit__(self, *exc_info: Any) -> None:
        """A ``with conn:`` whose body already gave the connection back: nothing left to do."""

    def __del__(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<mysqlpool_ext.Connection returned to pool {self._mp_returned_pool!r}>"


def _returned_message(pool_name: str, what: str) -> str:
    return (
        f"pool {pool_name!r}: this connection was already given back to the pool "
        f"(tried to use {what!r}); borrow another with pool.connection() or get_connection()"
    )


def _raise_returned(conn: ReturnedConnection, what: str) -> NoReturn:
    pool_name = object.__getattribute__(conn, "__dict__").get("_mp_returned_pool", "?")
    raise ConnectionReturnedError(_returned_message(pool_name, what))


# A fork must never land while a thread builds an SSL context: OpenSSL's own locks would stay
# held in the child, and the child's first connect would hang for ever (seen with gunicorn
# --preload: the master's refill thread was building the context when it forked a worker).
# Holding the build lock across the fork makes the fork wait for a build in progress (tens of
# milliseconds at most); the child starts with a fresh lock.
def _before_fork() -> None:
    _SSL_BUILD_LOCK.acquire()


def _after_fork_in_parent() -> None:
    _SSL_BUILD_LOCK.release()


def _after_fork_in_child() -> None:
    global _SSL_BUILD_LOCK
    _SSL_BUILD_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def _tcp_info_works(sock: socket.socket) -> bool:
    """Whether ``sock`` is a TCP socket whose state ``TCP_INFO`` reports (Linux)."""
    if _TCP_INFO is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        return len(sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 1)) == 1
    except OSError:  # a kernel or sandbox without it
        return False
