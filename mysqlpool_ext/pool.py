"""``ConnectionPool``: a few PyMySQL connections shared safely by many threads and tasks.

This module is the pool's public object and its *blocking* face. The policy — which connection
to lend, who waits, when to check, what to reset — is :mod:`mysqlpool_ext._core`'s, written once
for both faces; here its procedures are run with blocking calls (a thread waits on a lock, a
connection is opened or reset in the calling thread). :mod:`mysqlpool_ext._adriver` runs the very
same procedures with ``await``. The hot path is a lock, a deque and a few attribute reads
(HikariCP's lesson): a clean borrow and give-back need no round trip and no procedure at all.

A maintenance thread keeps ``size`` connections open, retires old and idle ones, and reconnects
with exponential backoff while the server is down. Each pool survives ``os.fork()``: the child
starts empty and never touches the parent's sockets.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pymysql.cursors
from pymysql.err import MySQLError, OperationalError

from . import registry
from ._core import (
    COUNTER_NAMES,
    Check,
    Open,
    PoolCore,
    Procedure,
    Reset,
    ResetPlan,
    Send,
    Sleep,
    Slot,
    Verdict,
    Wait,
    describe,
    is_transient,
    thread_id,
)
from ._protocol import (
    COM_INIT_DB,
    COM_QUERY,
    Statement,
    StatementMethods,
    reset_session,
    run_query,
)
from .config import PoolOptions, build_options, parse_url, redact_url, url_from_env
from .connection import (
    Connection,
    ReturnedConnection,
    _RawConnection,
    bounded_check,
    forget_socket,
)
from .errors import ConfigError, GetConnectionFromPoolError, restore_pymysql_modules
from .topology import HostState, Topology

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

__all__ = ["ConnectionPool", "logger"]

logger = logging.getLogger("mysqlpool_ext")

_monotonic = time.monotonic
#: After a fork, a parent that has not borrowed for this long closes its idle connections.
_FORK_GRACE = 2.0
_names = itertools.count(1)
_all_pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()

#: Options PyMySQL accepts that a pool cannot honour.
_UNSUPPORTED = {
    "defer_connect": "a pool opens its connections itself; leave defer_connect False",
}


def check_timeout(value: Any) -> float:
    """A per-call ``timeout``: validated like the option of the same name."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"option 'timeout' must be a number of seconds, got {type(value).__name__}",
            option="timeout",
        )
    if not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"option 'timeout' must be a finite number >= 0, got {value!r}", option="timeout"
        )
    return float(value)


_ADRIVER: Any = None


def _async_face() -> Any:
    """The asyncio face's module, imported on first use (it imports asyncio; a program that
    never uses the async face does not pay for it) and then kept: an import statement in a
    method costs about a microsecond on every call."""
    global _ADRIVER
    if _ADRIVER is None:
        from . import _adriver

        _ADRIVER = _adriver
    return _ADRIVER


class _ThreadWaiter:
    """A thread waiting in the pool's line; the giver sets ``result`` under the pool lock."""

    __slots__ = ("_lock", "result")

    def __init__(self) -> None:
        self.result: Any = None
        self._lock = threading.Lock()
        self._lock.acquire()

    def wake(self) -> bool:
        self._lock.release()
        return True

    def wait(self, timeout: float) -> None:
        if timeout > 0:
            # A valid but huge timeout (1e300) raised OverflowError in acquire().
            self._lock.acquire(timeout=min(timeout, threading.TIMEOUT_MAX))


class _Connector:
    """Opens and closes this pool's server connections (the core's :class:`Connector`)."""

    def __init__(
        self,
        name: str,
        connect_kwargs: dict[str, Any],
        where: str,
        topology: Topology | None = None,
    ) -> None:
        self.name = name
        self.kwargs = connect_kwargs
        self.where = where
        self.ssl_cache: dict[Any, Any] = {}
        self.connect_timeout = float(connect_kwargs.get("connect_timeout") or 10)
        #: Host lists: topology.py picks the server and checks its role (None: one host).
        self.topology = topology
        #: Sessions to end on the server (end_on_server), and the thread that ends them.
        self._kill_lock = threading.Lock()
        self._kill_queue: list[tuple[Any, bytes | None, tuple[Any, Any], Callable[[], None]]] = []
        self._killer: threading.Thread | None = None

    def open(self, timeout: float | None) -> Connection:
        if self.topology is not None:
            return self.topology.open(self.open_at, timeout, self.connect_timeout)
        return self.open_at(None, None, timeout)

    def open_at(self, host: str | None, port: int | None, timeout: float | None) -> Connection:
        """Open one connection (to ``host:port`` of a host list, else the configured server)."""
        kwargs = self.kwargs
        where = self.where
        if host is not None:
            kwargs = {**kwargs, "host": host, "port": port}
            where = _address(kwargs)
        if timeout is not None and timeout < self.connect_timeout:
            # The borrower's deadline bounds the connect it performs itself.
            kwargs = {**kwargs, "connect_timeout": max(timeout, 0.001)}
        try:
            raw = _RawConnection(self.ssl_cache, **kwargs)
        except MySQLError as exc:
            raise self.error(exc, _detail(exc), where) from exc
        except Exception as exc:  # noqa: BLE001 - reworded, the cause kept
            # 2003 (retried with backoff) for the network; a missing CA file, a bad certificate
            # or any other local failure is permanent: 2026 (SSL) or 2000 (unknown error).
            code = 2003 if is_transient(exc) else 2026 if _is_tls(exc) else 2000
            new = OperationalError(
                code, f"pool {self.name!r}: cannot connect to {where}: {describe(exc)}"
            )
            new.mp_detail = describe(exc)
            raise new from (exc if not isinstance(exc, UnicodeError) else None)
        raw.connect_timeout = self.connect_timeout
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "pool %r: create connection %s to %s",
                self.name,
                raw.server_thread_id[0],
                where,
            )
        return raw

    def error(self, exc: MySQLError, detail: str, where: str | None = None) -> MySQLError:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 2003
        place = where or self.where
        new = type(exc)(code, f"pool {self.name!r}: cannot connect to {place}: {detail}")
        new.mp_detail = f"({code}) {detail}"
        return new

    def close(self, raw: Connection) -> None:
        if self.topology is not None:
            self.topology.released(raw)
        raw.quit()

    def end_on_server(self, raw: Connection, done: Callable[[], None]) -> None:
        """End the session of ``raw`` (closed here while the server ran a statement on it) on
        the server, then ``done``: queued for this pool's one killer thread (at most one more
        server connection than ``max_size``, whatever the number of cancellations)."""
        statement = raw.__dict__.get("_mp_interrupted")
        server_id = raw.server_thread_id[0] if getattr(raw, "server_thread_id", None) else None
        where = (raw.host, raw.port) if self.topology is not None else (None, None)
        text = None
        if isinstance(statement, str):
            statement = statement.encode(raw.encoding or "utf-8", "surrogateescape")
        if isinstance(statement, (bytes, bytearray)):
            # The server lists a statement without its leading blanks.
            text = bytes(statement).lstrip()[:_KILL_MATCH]
        with self._kill_lock:
            self._kill_queue.append((server_id, text, where, done))
            if self._killer is None:
                self._killer = threading.Thread(
                    target=self._kill_loop, name=f"mysqlpool-kill-{self.name}", daemon=True
                )
                self._killer.start()

    def after_fork(self) -> None:
        """In a forked child: the parent's queued kills are the parent's (their capacity was
        the parent's), and its killer thread does not exist here."""
        self._kill_lock = threading.Lock()
        self._kill_queue = []
        self._killer = None

    def _kill_loop(self) -> None:
        """KILL the queued sessions, a batch at a time, from one short-lived connection of the
        same account (a user may kill its own sessions without any privilege); each one's
        capacity comes back once the server shows it gone, or after ``connect_timeout``.

        A session is killed only if the server shows it running that very statement for this
        account: behind one address several servers may answer (a load balancer), and another
        server's session may have the same id. Whatever fails, every ``done`` runs."""
        side: Connection | None = None
        side_at: tuple[Any, Any] = (None, None)
        try:
            while True:
                with self._kill_lock:
                    batch = list(self._kill_queue)
                    self._kill_queue.clear()
                    if not batch:
                        self._killer = None
                        return
                pending: list[tuple[int, Callable[[], None]]] = []
                unreachable: set[tuple[Any, Any]] = set()
                for server_id, text, where, done in batch:
                    killed = False
                    try:
                        if where in unreachable:
                            raise OSError("its server did not answer a moment ago")
                        if side is not None and side_at != where:
                            side.quit()
                            side = None
                        if side is None:
                            try:
                                side, side_at = self._side_connection(where), where
                            except Exception:
                                unreachable.add(where)  # the rest of the batch: at once
                                raise
                        killed = server_id is not None and _kill_if_running(side, server_id, text)
                    except Exception as exc:  # noqa: BLE001 - capacity comes back all the same
                        logger.debug("pool %r: KILL %s: %s", self.name, server_id, describe(exc))
                        if side is not None:
                            side.quit()
                            side = None
                    if killed:
                        pending.append((server_id, done))
                    else:
                        done()
                try:
                    if pending and side is not None:
                        _wait_gone(side, pending, self.connect_timeout)
                except Exception as exc:  # noqa: BLE001
                    logger.debug("pool %r: waiting for KILLed sessions: %s", self.name, exc)
                    if side is not None:
                        side.quit()
                        side = None
                finally:
                    for _, done in pending:
                        done()
        finally:
            if side is not None:
                side.quit()

    def _side_connection(self, where: tuple[Any, Any]) -> Connection:
        kwargs = dict(self.kwargs)
        if where[0] is not None:
            kwargs["host"], kwargs["port"] = where
        bound = self.connect_timeout
        kwargs.update(connect_timeout=bound, read_timeout=bound, write_timeout=bound)
        return _RawConnection(self.ssl_cache, **kwargs)

    def drop(self, raw: Connection) -> None:
        if self.topology is not None:
            self.topology.released(raw)
        # The parent's socket: close our file descriptor only, never send COM_QUIT on it.
        forget_socket(raw)


#: How much of an interrupted statement's text identifies its session in the process list.
_KILL_MATCH = 200


def _kill_if_running(side: Connection, server_id: int, text: bytes | None) -> bool:
    """KILL session ``server_id`` if the server shows it running ``text`` (the start of the
    statement's bytes) for this account; True if killed."""
    if text is None:
        return False
    user = side.user.decode() if isinstance(side.user, bytes) else side.user
    with side.cursor(pymysql.cursors.Cursor) as cur:  # whatever the pool's cursorclass
        cur.execute(
            "SELECT LEFT(INFO_BINARY, %s) FROM information_schema.PROCESSLIST"
            " WHERE ID = %s AND USER = %s",
            (len(text), server_id, user),
        )
        row = cur.fetchone()
        if row is None or bytes(row[0] or b"") != text:
            return False  # gone, another statement, or another server's session (CALL: too)
        try:
            cur.execute(f"KILL {int(server_id)}")
        except MySQLError:  # 1094: it ended meanwhile
            return False
    return True


def _wait_gone(
    side: Connection, pending: list[tuple[int, Callable[[], None]]], limit: float
) -> None:
    """Until the server no longer lists the killed sessions (it ends a KILLed statement at its
    next check, which may take a while), at most ``limit`` seconds; each one's ``done`` runs as
    soon as it is gone (taken out of ``pending``)."""
    deadline = _monotonic() + limit
    with side.cursor(pymysql.cursors.Cursor) as cur:
        while pending:
            ids = [server_id for server_id, _ in pending]
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ("
                + ",".join(["%s"] * len(ids))
                + ")",
                ids,
            )
            alive = {row[0] for row in cur.fetchall()}
            for item in [p for p in pending if p[0] not in alive]:
                pending.remove(item)
                item[1]()
            if not pending or _monotonic() >= deadline:
                return
            time.sleep(0.05)  # the server's process list: nothing to wait on but polling


def _is_tls(exc: BaseException) -> bool:
    return isinstance(exc, (ssl.SSLError, FileNotFoundError, PermissionError, IsADirectoryError))


def _address(kw: dict[str, Any]) -> str:
    """``user@host:port/db`` for messages (never the password)."""
    place = kw.get("unix_socket") or f"{kw.get('host') or 'localhost'}:{kw.get('port') or 3306}"
    db = kw.get("database")
    return f"{kw.get('user') or '?'}@{place}" + (f"/{db}" if db else "")


def _detail(exc: MySQLError) -> str:
    return str(exc.args[1]) if len(exc.args) > 1 else str(exc)


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
            self.pool._give_back(conn, exc, True)


class _Transaction(_Borrow):
    """``with pool.transaction() as conn``: BEGIN, then COMMIT on success or ROLLBACK on error."""

    __slots__ = ()

    def __enter__(self) -> Connection:
        conn = self.conn = self.pool._getconn(self.timeout)
        try:
            conn.begin()
        except BaseException as exc:
            self.conn = None
            self.pool._give_back(conn, exc, True)
            raise
        return conn


class ConnectionPool(StatementMethods):
    """A pool of PyMySQL connections.

    ``size`` connections are opened at construction (unless ``lazy=True``) and kept open;
    up to ``max_size`` are opened under load and closed again after ``max_idle`` seconds idle.
    Every other keyword argument is passed to ``pymysql.connect`` (``host``, ``user``, ...).
    Unknown names are rejected with a suggestion. ``autocommit`` defaults to True for pooled
    connections (each statement commits unless you use :meth:`transaction` or ``BEGIN``).
    """

    #: The keys of :meth:`stats` that only ever grow while the pool lives (counters).
    COUNTER_NAMES: tuple[str, ...] = COUNTER_NAMES

    def __init__(self, /, size: int = 5, **kwargs: Any) -> None:
        restore_pymysql_modules()  # a MySQLdb shim loaded since the import may have broken them
        opts = build_options({"size": size, **kwargs})
        for key, why in _UNSUPPORTED.items():
            if opts.connect_kwargs.get(key):
                raise ConfigError(f"option {key!r} is not supported by the pool: {why}", option=key)
        self._opts: PoolOptions = opts
        connect_kwargs = dict(opts.connect_kwargs)
        connect_kwargs.setdefault("autocommit", True)
        self._connect_kwargs = connect_kwargs
        autocommit = connect_kwargs["autocommit"]
        self.name: str = opts.name or f"pool-{next(_names)}"
        self._timeout = opts.timeout
        self._check = opts.check
        self._paused_at = _monotonic()
        self._paused_requests = 0
        # Host lists (topology.py): None for a single host, which behaves exactly as before.
        self._topology: Topology | None = None
        if opts.hosts is not None:
            self._topology = Topology(
                self.name,
                opts.hosts,
                opts.target,
                opts.topology_interval,
                opts.reconnect_backoff_max,
            )
        self._connector = _Connector(self.name, connect_kwargs, self._where(), self._topology)
        self._core = core = PoolCore(
            self.name,
            size=opts.size,
            max_size=opts.max_size,
            max_lifetime=opts.max_lifetime,
            max_idle=opts.max_idle,
            check=opts.check,
            check_window=opts.check_window,
            reset=opts.reset,
            autocommit=None if autocommit is None else bool(autocommit),
            database=connect_kwargs.get("database"),
            leak_timeout=opts.leak_timeout,
            backoff_max=opts.reconnect_backoff_max,
            connector=self._connector,
        )
        # A lazy pool opens nothing until it is first used — not even in the background: a
        # pre-forking server's master (gunicorn --preload) builds the app and forks, and a
        # refill thread caught mid-connect by the fork leaves locks held in the child.
        core.refill_paused = opts.lazy
        core.sync_give_back = self._give_back
        core.run_blocking = self._run
        self._pid = os.getpid()
        self._maint_event = threading.Event()
        core.wake_maintenance = self._maint_event.set
        if self._topology is not None:
            self._topology.wake = lambda: core.wake_maintenance()  # replaced after a fork
        self._maint_thread: threading.Thread | None = None
        self._last_refill_error: str | None = None
        _all_pools.add(self)
        registry.register(self)
        if not opts.lazy:
            try:
                for _ in range(opts.size):
                    self._open_into_pool()
            except BaseException:
                self.close(timeout=0)
                raise
        self._start_maintenance()

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
        return len(self._core.idle)

    def get_connection(self, timeout: float | None = None, retry_num: int = 0) -> Connection:
        """Borrow a connection; give it back with ``conn.close()`` or ``with conn:``.

        Waits up to ``timeout`` seconds (default: the pool's ``timeout``), ``retry_num`` more
        times, then raises :class:`GetConnectionFromPoolError`.
        """
        if retry_num.__class__ is not int and (
            isinstance(retry_num, bool) or not isinstance(retry_num, int)
        ):
            raise ConfigError(
                f"pool {self.name!r}: retry_num must be an integer >= 0", option="retry_num"
            )
        if retry_num < 0:
            raise ConfigError(
                f"pool {self.name!r}: retry_num must be an integer >= 0", option="retry_num"
            )
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
        if not isinstance(slot, Slot) or slot.core is not self._core:
            raise ValueError(f"pool {self.name!r}: this connection does not belong to this pool")
        self._give_back(conn, None, False)

    # -- modern API -----------------------------------------------------------------------------
    def connection(self, timeout: float | None = None) -> _Borrow:
        """``with pool.connection() as conn:`` — borrow for a block.

        On success an open transaction is committed, on error rolled back; the connection then goes
        back to the pool (or is discarded if it broke). If the transaction could not be committed,
        the block raises: a block that ends normally means "committed".
        """
        return _Borrow(self, timeout)

    def transaction(self, timeout: float | None = None) -> _Transaction:
        """``with pool.transaction() as conn:`` — BEGIN, COMMIT on success, ROLLBACK on error."""
        return _Transaction(self, timeout)

    # execute_query / aexecute_query come from StatementMethods: borrow, run, commit, give back
    def _run_statement(self, stmt: Statement) -> Any:
        conn = self._getconn(stmt.timeout)
        try:
            result = run_query(conn, stmt)
        except BaseException as exc:
            self._give_back(conn, exc, True)
            raise
        self._give_back(conn, None, True)
        return result

    # -- the async face (mysqlpool_ext._adriver runs the same procedures with await) ------------
    def aconnection(self, timeout: float | None = None) -> AbstractAsyncContextManager[Connection]:
        """``async with pool.aconnection() as conn:`` — the async twin of :meth:`connection`."""
        return _async_face().AsyncBorrow(
            self._core, self._timeout if timeout is None else check_timeout(timeout), False
        )

    def atransaction(self, timeout: float | None = None) -> AbstractAsyncContextManager[Connection]:
        """``async with pool.atransaction() as conn:`` — the async twin of :meth:`transaction`."""
        return _async_face().AsyncBorrow(
            self._core, self._timeout if timeout is None else check_timeout(timeout), True
        )

    async def aget_connection(self, timeout: float | None = None) -> Connection:
        """Borrow without blocking the event loop; give back with ``conn.close()`` (or, better,
        ``await pool.aputconn(conn)``, which does not block the loop when a reset is needed)."""
        return await _async_face().agetconn(
            self._core, self._timeout if timeout is None else check_timeout(timeout), 2
        )

    async def aputconn(self, conn: Connection) -> None:
        """Give a connection back without blocking the event loop."""
        await _async_face().agive_back(self._core, conn, None, False)

    def _arun_statement(self, stmt: Statement) -> Awaitable[Any]:
        timeout = self._timeout if stmt.timeout is None else check_timeout(stmt.timeout)
        return (_ADRIVER or _async_face()).aexecute_query(self._core, timeout, stmt)

    async def aclose(self, timeout: float = 0.0) -> None:
        """The async twin of :meth:`close`: waits for borrowers without blocking the loop."""
        import asyncio

        await asyncio.to_thread(self.close, timeout)

    # -- the blocking face --------------------------------------------------------------------
    def _getconn(self, timeout: float | None) -> Connection:
        timeout = self._timeout if timeout is None else check_timeout(timeout)
        core = self._core
        # No getpid() here: os.register_at_fork resets every pool in a forked child before any
        # Python code runs there; the maintenance thread re-checks the pid.
        if core.leaked:
            self._reclaim_leaked()
        # One attempt under the lock: an idle connection, a permit, or a place in line.
        got = core.try_acquire(_ThreadWaiter if timeout > 0 else None)
        if got.__class__ is Slot:
            now = _monotonic()
            if core.vet(got, now) is Verdict.LEND:
                return core.lend(got, 2, now)
        slot = self._run(core.borrow(timeout, _ThreadWaiter, got))
        return core.lend(slot, 2)

    def keep(self, conn: Connection) -> bool:
        """Keep ``conn`` (lent by this pool) instead of giving it back, for a borrower that
        will likely want it again soon; True if kept, else give it back as usual.

        For adapters: the Django ENGINE keeps its thread's connection between two requests,
        as ``CONN_MAX_AGE`` would, without Django's connect and the pool's give-back and borrow
        on every request. The pool still owns the capacity: a borrower that finds no idle
        connection and no room to open one takes a kept connection instead of waiting (the
        keeper's lease is then detached). Only a connection that giving back would leave as
        it is (no transaction, the session unchanged) is kept, and only while nobody waits.
        Before using it again the keeper calls :meth:`take_kept`, or :meth:`release_kept` to
        give it back instead; closing the pool closes kept connections with the idle ones, and
        upkeep retires them like idle ones (``max_lifetime``, ``max_idle``).
        """
        return self._core.keep(conn)

    def take_kept(self, conn: Connection) -> bool:
        """Use a connection :meth:`keep` kept again: True if it is still kept for this lease
        and fit to use as a borrow would lend it. False if another borrower took it, or it is
        due a liveness check or past its lifetime: then ``conn.close()`` (a no-op if it was
        taken) and borrow as usual."""
        return self._core.take_kept(conn)

    def release_kept(self, conn: Connection) -> None:
        """Give back a connection :meth:`keep` kept, instead of using it again (a no-op if
        another borrower took it). Unlike ``conn.close()``, safe while another thread may be
        taking it from its keeper at that very moment: it is first taken out of the kept ones
        under the pool's lock."""
        if self._core.unkeep(conn):
            conn.close()

    def _give_back(self, lease: Connection, exc: BaseException | None, block: bool) -> None:
        proc = self._core.start_give_back(lease, exc, block)
        if proc is not None:
            self._run(proc)

    def _reclaim_leaked(self) -> None:
        core = self._core
        for slot in core.take_leaked():
            plan = core.release_plan(slot)
            if plan:
                self._run(core.reset_and_release(slot, plan))
            elif plan is not None:
                core.release_end(slot)

    def _run(self, proc: Procedure) -> Any:
        """Run a core procedure, performing its effects with blocking calls."""
        try:
            effect = next(proc)
            while True:
                try:
                    outcome = self._perform(effect)
                except BaseException as exc:  # noqa: BLE001 - the procedure cleans up, re-raises
                    effect = proc.throw(exc)
                else:
                    effect = proc.send(outcome)
        except StopIteration as stop:
            return stop.value

    def _perform(self, effect: Any) -> Any:
        cls = effect.__class__
        if cls is Wait:
            effect.waiter.wait(effect.deadline - _monotonic())
            return None
        if cls is Open:
            return self._core.adopt(self._connector.open(effect.timeout))
        if cls is Sleep:
            time.sleep(effect.seconds)
            return None
        if cls is Check:
            check = self._check
            if check == "ping":
                effect.raw.ping_within(effect.timeout)
            elif callable(check):
                bounded_check(check, effect.raw, effect.timeout)
            return None
        if cls is Reset:
            _reset_blocking(effect.raw, effect.plan, self._core)
            return None
        if cls is Send:
            raw = effect.conn
            raw._execute_command(COM_QUERY, effect.sql)
            raw._read_ok_packet()
            return None
        raise TypeError(f"unknown effect {effect!r}")

    def _open_into_pool(self) -> bool:
        core = self._core
        if not core.reserve(core.size):
            return False
        try:
            raw = self._connector.open(None)
        except BaseException as exc:
            core.refill_failed(exc)
            raise
        core.put_idle(core.adopt(raw))
        return True

    def _where(self) -> str:
        kw = self._connect_kwargs
        if self._opts.hosts is not None:  # host lists: user@h1:3306,h2:3306/db
            db = kw.get("database")
            place = ",".join(self._url_hosts())
            return f"{kw.get('user') or '?'}@{place}" + (f"/{db}" if db else "")
        return _address(kw)

    # -- host lists (topology.py) ---------------------------------------------------------------
    @property
    def topology(self) -> Topology | None:
        """The servers of a host list and their roles (None for a single ``host=``)."""
        return self._topology

    def check_topology(self) -> list[dict[str, Any]]:
        """Check every host's role now, in this thread, and describe the hosts (see
        :func:`mysqlpool_ext.topology.describe`); ``[]`` for a single ``host=``. For
        ``mysqlpool-ext check`` and for scripts that must wait for a primary."""
        topo = self._topology
        if topo is None:
            return []
        topo.check_hosts(
            self._connector.open_at, self._connector.connect_timeout, self._retire_host
        )
        return topo.snapshot()

    def _check_topology(self) -> float:
        """From the maintenance thread: re-check every host's role when due (or asked to by a
        borrower's failed statement); returns the delay until the next check."""
        topo = self._topology
        if topo is None or self.closed:
            return 3600.0
        delay = topo.due_in(_monotonic())
        if delay > 0:
            return delay
        delay = topo.check_hosts(
            self._connector.open_at, self._connector.connect_timeout, self._retire_host
        )
        if self._core.outage is not None and topo.usable():
            return 0.0  # a server fits again (a promotion): reconnect now, not after the backoff
        return delay

    def _retire_host(self, host: HostState) -> None:
        """A host stopped serving this pool's target: close its idle connections, and its lent
        ones when they come back."""
        core = self._core
        slots = core.retire_where(lambda raw: raw.__dict__.get("_mp_host") is host)
        if slots:
            logger.warning(
                "pool %r: %s is now %s: retiring its %d idle connection(s)",
                self.name,
                host.address,
                host.role,
                len(slots),
            )
        for slot in slots:
            core.discard(slot, f"{host.address} is now {host.role}", recycled=True)

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
        core = self._core
        spans = [x for x in (core.max_idle, core.max_lifetime, core.leak_timeout) if x]
        base = min(spans) / 4 if spans else 30.0
        return max(0.2, min(base, 30.0))

    def _maintain(self) -> float:
        """One round of upkeep; returns how long to sleep before the next one."""
        core = self._core
        if core.leaked:
            self._reclaim_leaked()
        now = _monotonic()
        if core.outage is not None:
            return self._retry_outage()
        for slot, expired in core.retire_idle(now):
            core.discard(
                slot, "reached max_lifetime" if expired else "idle past max_idle", recycled=True
            )
        for s in core.late_leases(now):
            logger.warning(
                "pool %r: connection %s held for %.1f s (leak_timeout=%g s); borrowed at:\n%s",
                self.name,
                thread_id(s),
                now - s.borrowed_at,
                core.leak_timeout,
                s.site,
            )
        if core.refill_paused:
            delay = self._paused_upkeep(now)
            if delay is not None:
                return delay
        # Keep `size` connections open.
        while not core.closed:
            try:
                if not self._open_into_pool():
                    break
            except Exception as exc:  # noqa: BLE001 - retried with backoff
                self._log_refill_error(exc)
                return core.backoff()
        if self._last_refill_error is not None:
            logger.warning("pool %r: connections open again", self.name)
            self._last_refill_error = None
        core.outage_attempts = 0
        return self._housekeeping_interval()

    def _log_refill_error(self, exc: BaseException) -> None:
        """Once per distinct error at WARNING (then DEBUG while it repeats), not every retry."""
        text = describe(exc)
        level = logging.DEBUG if text == self._last_refill_error else logging.WARNING
        self._last_refill_error = text
        kind = "will retry" if is_transient(exc) else "a configuration error, will retry"
        logger.log(level, "pool %r: cannot open a connection (%s): %s", self.name, kind, text)

    def _retry_outage(self) -> float:
        """While the server is unreachable: one attempt at a time, exponential backoff + jitter."""
        core = self._core
        with core.lock:
            if core.closed:
                return 1.0
            core.nconns += 1
        try:
            raw = self._connector.open(None)
        except Exception as exc:  # noqa: BLE001
            with core.lock:
                core.nconns -= 1
                if is_transient(exc):
                    core.outage = exc
                else:  # reachable, but refusing us: let borrowers see why
                    core.outage = None
            if not is_transient(exc):
                core.outage_over()
            self._log_refill_error(exc)
            return core.backoff()
        logger.warning(
            "pool %r: server reachable again after %d attempts", self.name, core.outage_attempts
        )
        self._last_refill_error = None
        slot = core.adopt(raw)
        core.put_idle(slot)
        core.outage_over()
        return 0.0

    # -- fork -----------------------------------------------------------------------------------
    def _after_fork_in_child(self) -> None:
        """In a forked child: forget the parent's connections without touching their sockets."""
        if self._pid == os.getpid():
            return
        core = self._core
        old = list(core.idle) + list(core.lent)
        core.init_state()
        self._connector.after_fork()
        self._maint_event = threading.Event()
        core.wake_maintenance = self._maint_event.set
        self._maint_thread = None
        core.refill_paused = self._opts.lazy  # a child starts as the pool did
        self._pid = os.getpid()
        for slot in old:
            forget_socket(slot.raw)  # a parent's thread may have been reading on it
        if self._topology is not None:
            self._topology.after_fork()
            self._topology.wake = lambda: core.wake_maintenance()
        if not core.closed:
            self._start_maintenance()

    def _after_fork_in_parent(self) -> None:
        """In the parent after a fork: if this process does not borrow within a few seconds,
        its idle connections are closed and not refilled until it borrows again. A pre-forking
        server's master (gunicorn ``--preload``) builds the app, forks its workers and never
        queries: it should not hold ``size`` server connections for nothing."""
        self._core.refill_paused = True
        self._paused_at = _monotonic()
        self._paused_requests = self._core.counters["requests_num"]
        self._maint_event.set()

    def _paused_upkeep(self, now: float) -> float | None:
        """While refilling is paused after a fork: None to resume normal upkeep, else a delay."""
        core = self._core
        if core.counters["requests_num"] != self._paused_requests:
            core.refill_paused = False  # this process borrows: it is not a pre-fork master
            return None
        waited = now - self._paused_at
        if waited < _FORK_GRACE:
            return _FORK_GRACE - waited
        with core.lock:
            idle = list(core.idle)
            core.idle.clear()
        for slot in idle:
            core.drop(slot)
        return self._housekeeping_interval()

    # -- closing, resizing, stats ---------------------------------------------------------------
    def close(self, timeout: float = 0.0) -> None:
        """Close the pool: idle connections now; lent ones when given back, or after ``timeout``.

        Waiters get :class:`PoolClosedError`; a borrower still holding a connection after
        ``timeout`` gets :class:`PoolClosedError` from its next (or current) statement, and its
        open transaction is rolled back by the server. Closing twice is a no-op.
        """
        core = self._core
        already, idle = core.close_begin()
        self._maint_event.set()
        registry.unregister(self)
        for slot in idle:
            if slot.generation == core.generation:
                core.drop(slot)
            else:
                slot.raw._force_close()
        if already:
            return
        for slot in core.wait_drained(timeout):
            # Wakes a borrower blocked on the socket (thread or event loop) with an error that
            # says what happened; the borrower closes the descriptor when it gives back.
            slot.raw.interrupt(self.name)
        logger.debug("pool %r: closed", self.name)

    @property
    def closed(self) -> bool:
        return self._core.closed

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
        return self._core.max_size

    @property
    def min_size(self) -> int:
        """The connections the pool keeps open (``size``; changed by :meth:`resize`)."""
        return self._core.size

    def resize(self, size: int, max_size: int | None = None) -> None:
        """Change ``size`` (and ``max_size``) of a running pool; surplus connections age out."""
        core = self._core
        if max_size is None:
            max_size = max(size, core.max_size)
        opts = build_options({"size": size, "max_size": max_size})
        with core.lock:
            core.size = opts.size
            core.max_size = opts.max_size
            core.grant_permits_locked()
        self._maint_event.set()

    def stats(self) -> dict[str, Any]:
        """A snapshot as a plain dict with stable snake_case keys (times in milliseconds).

        With a host list, ``hosts`` lists each server: role, connections, last_checked and
        denied_until (wall-clock seconds, or None)."""
        stats = self._core.stats()
        if self._topology is not None:
            stats["hosts"] = self._topology.snapshot()
        return stats

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        core = self._core
        state = (
            "closed"
            if core.closed
            else f"{len(core.idle)} idle, {len(core.lent) - len(core.kept)} in use"
        )
        return (
            f"<mysqlpool_ext.ConnectionPool {self.name!r} {self._where()} "
            f"size={core.size} max_size={core.max_size} ({state})>"
        )

    @property
    def url(self) -> str:
        """A ``mysql://`` URL for this pool's server, with the password masked."""
        kw = self._connect_kwargs
        host = kw.get("host") or "localhost"
        url = f"mysql://{kw.get('user') or ''}:x@{host}:{kw.get('port') or 3306}/"
        if self._opts.hosts is not None:  # host lists: h1:3306,h2:3306
            url = f"mysql://{kw.get('user') or ''}:x@{','.join(self._url_hosts())}/"
        return redact_url(url + (kw.get("database") or ""))

    def _url_hosts(self) -> list[str]:
        return [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self._opts.hosts or ()]

    def _iter_slots(self) -> Iterator[Slot]:
        core = self._core
        with core.lock:
            slots = list(core.idle) + list(core.lent)
        return iter(slots)


def _reset_blocking(raw: Connection, plan: ResetPlan, core: PoolCore) -> None:
    """Run a reset plan with blocking I/O."""
    if plan & ResetPlan.SESSION:
        reset_session(raw)
        return
    if plan & ResetPlan.ROLLBACK:
        raw.rollback()
    if plan & ResetPlan.AUTOCOMMIT:
        raw.autocommit(core.autocommit)
    if plan & ResetPlan.SELECT_DB:
        if core.database:
            raw._execute_command(COM_INIT_DB, core.database.encode(raw.encoding))
            raw._read_ok_packet()
            raw.db = core.database.encode(raw.encoding)
        raw.__dict__["_mp_db_changed"] = False


def _maintenance_loop(pool_ref: weakref.ref[ConnectionPool]) -> None:
    """Runs in a daemon thread; holds only a weak reference so a forgotten pool can be collected."""
    delay = 0.0
    pid = os.getpid()
    while True:
        pool = pool_ref()
        if pool is None or pool.closed or pool._pid != pid:
            return
        event = pool._maint_event
        del pool
        event.wait(delay)
        event.clear()
        pool = pool_ref()
        if pool is None or pool.closed or pool._pid != pid:
            return
        try:
            delay = pool._maintain()
            if pool._topology is not None:  # host lists: role checks share this thread
                delay = min(delay, pool._check_topology())
        except Exception:
            logger.exception("pool %r: maintenance failed", pool.name)
            delay = 1.0
        del pool


def _after_fork_in_child() -> None:
    for pool in list(_all_pools):
        pool._after_fork_in_child()


def _after_fork_in_parent() -> None:
    for pool in list(_all_pools):
        if not pool.closed:
            pool._after_fork_in_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child, after_in_parent=_after_fork_in_parent)
