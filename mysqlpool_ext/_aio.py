"""The async face of :class:`~mysqlpool_ext.ConnectionPool`: PyMySQL's protocol on the event loop.

Why this design (measured, see ``benchmarks/async_bench.py``): handing each query to a worker
thread reached 0.38x aiomysql's throughput; a second driver would mean a second connection class
with its own type conversions. Here one :class:`~mysqlpool_ext.Connection` class serves both faces
and PyMySQL still does all the parsing:

- waiting for a connection is a future queued in the pool's own FIFO of waiters, so threads and
  tasks share one line and one policy (sizing, lifetime, liveness window, reset, stats);
- a command is written with a non-blocking ``send``; the response is read by a reader callback
  registered on the event loop, which needs only packet headers and first bytes to know where
  the response ends (OK / ERR / column count, column definitions, EOF, rows, EOF, and again
  while the server says more results follow). PyMySQL then parses the buffered bytes unchanged
  (``_read_query_result`` over a ``BytesIO``), so rows, conversions and errors are the sync face's;
  a single plain result set is decoded by ``_fastresult.read_result_async`` (issue 17: per-column
  plans made by PyMySQL's own ``_get_descriptions``; same rows, same state, EOF flags kept);
- opening a connection (DNS, TCP, TLS, authentication) is blocking PyMySQL code and rare thanks to
  pooling: it runs in the loop's default executor; a cancelled opener's connection joins the pool;
- a TLS connection (``ssl.SSLSocket``) cannot be read this way: every call on it runs the sync
  code in a worker thread (correct, but about as slow as the thread-per-query design);
- a task cancelled (or timed out) between writing a command and reading the end of its response
  leaves the protocol in an unknown state: the socket is closed at once and the pool discards the
  connection when it is given back. Cancelled while *waiting*, a task never loses a slot: one it
  was handed at that instant passes on to the next waiter.

Measured (``python -m benchmarks.async_bench --repeats 5``: 64 tasks on 8 connections,
``SELECT 1``, 2 busy cores): about 1.8x aiomysql's throughput per round (~31 us of client CPU per
query against ~55 us) with a 3-5x lower p99 and every task served alike; asyncmy, whose protocol
code is compiled, is within ~10% (~28 us). A worker thread per query costs ~5x the CPU per
query. What got it there: a result set whose column definitions the connection has seen is
parsed here without a cursor (PyMySQL's parse was the largest item after ``send``), one deadline
timer per pool and loop instead of one per wait, and no import statement per call.

The socket stays non-blocking while the async face uses it; PyMySQL re-applies its own timeout
(blocking mode) before its next blocking use, because ``_current_timeout`` is left at a sentinel.
``read_timeout`` applies to async reads too (time without any data from the server).
"""

from __future__ import annotations

import asyncio
import functools
import io
import socket
import ssl
import struct
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pymysql
import pymysql.cursors
from pymysql.constants import COMMAND, CR, SERVER_STATUS

from . import _rows  # issue 17: the compiled row scan (skip_rows)
from ._fastresult import read_result_async  # issue 17: the result-set decoder
from .connection import Connection, ReturnedConnection, RowCount, run_query
from .pool import _PERMIT, _RETIRED, _Slot

if TYPE_CHECKING:
    from .pool import ConnectionPool

__all__ = ["AsyncBorrow", "aexecute_query", "agetconn", "aio_command", "aio_run_query"]

T = TypeVar("T")

_monotonic = time.monotonic
_IN_TRANS = SERVER_STATUS.SERVER_STATUS_IN_TRANS
_MORE_RESULTS = SERVER_STATUS.SERVER_MORE_RESULTS_EXISTS
_MAX_PACKET = 2**24 - 1
_RECV_SIZE = 64 * 1024  # below malloc's mmap threshold: no mmap/munmap per read
_COM_QUERY = COMMAND.COM_QUERY


class _AsyncMode:
    """``conn._current_timeout`` while the socket is non-blocking for the event loop.

    It equals no real timeout, so PyMySQL's sync code calls ``settimeout`` (back to blocking mode)
    before its next read or write, and the async face knows it need not call ``setblocking``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<async mode>"


_ASYNC = _AsyncMode()


# -- waiting for a connection -----------------------------------------------------------------


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _AsyncWaiter:
    """A task waiting in the pool's FIFO: the same duck type as the pool's thread ``_Waiter``.

    The giver sets ``result`` under the pool lock, then calls :meth:`wake` — from any thread.
    """

    __slots__ = ("deadline", "fut", "loop", "result", "thread")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.fut: asyncio.Future[None] = self.loop.create_future()
        self.result: Any = None
        self.thread = threading.get_ident()
        self.deadline = _INF

    def wake(self) -> None:
        if threading.get_ident() == self.thread:
            _resolve(self.fut)
        else:
            try:
                self.loop.call_soon_threadsafe(_resolve, self.fut)
            except RuntimeError:  # the loop is closed: its tasks are gone, nobody waits
                pass


_INF = float("inf")


class _Watch:
    """One timer per pool for the deadlines of the tasks of one event loop waiting in its line.

    A timer per wait (``call_later`` + ``cancel``, and the loop's heap of cancelled handles) was
    ~3 us of every borrow that waits, although nearly every wait ends long before its deadline.
    The watch is armed for the earliest deadline it knows of; when it fires it ends the waits
    that are due (as a per-wait timer would) and re-arms for the earliest of the rest. Only the
    loop's thread touches it. It holds the pool weakly, like the maintenance thread.
    """

    __slots__ = ("handle", "loop", "pool", "when")

    def __init__(self, pool: ConnectionPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = weakref.ref(pool)
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
        pool = self.pool()
        if pool is None:
            return
        now = _monotonic()
        due = []
        later = _INF
        loop = self.loop
        with pool._lock:
            for waiter in pool._waiters:
                if waiter.__class__ is _AsyncWaiter and waiter.loop is loop:
                    if waiter.deadline <= now:
                        due.append(waiter)
                    elif waiter.deadline < later:
                        later = waiter.deadline
        for waiter in due:
            _resolve(waiter.fut)
        if later < _INF:
            self.arm(later)


def _watch(
    pool: ConnectionPool, waiter: _AsyncWaiter, deadline: float
) -> asyncio.TimerHandle | None:
    """See that the wait ends by ``deadline``: through the pool's watch for this loop, or (the
    pool is in use from another live loop) through a timer of its own, returned to cancel."""
    waiter.deadline = deadline
    loop = waiter.loop
    watch: _Watch | None = pool.__dict__.get("_mp_aio_watch")
    if watch is None or watch.loop is not loop:
        if watch is not None and not watch.loop.is_closed():
            return loop.call_later(max(0.0, deadline - _monotonic()), _resolve, waiter.fut)
        watch = pool.__dict__["_mp_aio_watch"] = _Watch(pool, loop)
    if deadline < watch.when:
        watch.arm(deadline)
    return None


async def _wait(pool: ConnectionPool, waiter: _AsyncWaiter, start: float, deadline: float) -> Any:
    timer = _watch(pool, waiter, deadline)
    try:
        await waiter.fut
    except BaseException:
        # Cancelled: leave the line, or pass on what a giver handed us at this very moment.
        if timer is not None:
            timer.cancel()
        pool._unclaimed(pool._end_wait(waiter, start))
        raise
    if timer is not None:
        timer.cancel()
    return pool._end_wait(waiter, start)


async def _acquire(pool: ConnectionPool, start: float, deadline: float, timeout: float) -> _Slot:
    """The async twin of ``ConnectionPool._acquire``, on the same policy steps."""
    make_waiter = _AsyncWaiter if timeout > 0 else None
    while True:
        got = pool._try_acquire(make_waiter)
        if got.__class__ is _Slot:
            return got
        if got is None:
            raise pool._timeout_error(start, timeout)
        if got is not _PERMIT:
            result = await _wait(pool, got, start, deadline)
            got = pool._wait_outcome(result, start, timeout)
            if got is not _PERMIT:
                return got
        slot = await _open_with_permit(pool)
        if slot is not None:
            return slot
        # The server is unreachable: wait in line for the maintenance thread.


def _adopt(pool: ConnectionPool, fut: asyncio.Future[_Slot | None]) -> None:
    """A connection opened for a borrower who was cancelled meanwhile: the pool keeps it."""
    if fut.cancelled() or fut.exception() is not None:
        return
    slot = fut.result()
    if slot is not None:
        pool._put_idle(slot)


async def _open_with_permit(pool: ConnectionPool) -> _Slot | None:
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, pool._open_with_permit)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        fut.add_done_callback(functools.partial(_adopt, pool))
        raise


async def agetconn(pool: ConnectionPool, timeout: float | None) -> Connection:
    """Borrow without blocking the loop: the async twin of ``ConnectionPool._getconn``."""
    if timeout is None:
        timeout = pool._timeout
    if pool._leaked:
        pool._process_leaked()
    start = _monotonic()
    deadline = start + timeout
    while True:
        slot = await _acquire(pool, start, deadline, timeout)
        now = _monotonic()
        verdict = pool._vet(slot, now)
        if verdict:
            if verdict == _RETIRED:
                continue
            try:
                await _run_check(pool, slot.raw)
            except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
                pool._check_failed(slot, exc)
                continue
            except BaseException:
                pool._discard(slot, "cancelled during its liveness check")
                raise
        return pool._lend(slot, now)


async def _run_check(pool: ConnectionPool, raw: Connection) -> None:
    check = pool._check
    if check == "ping":
        await _command(raw, COMMAND.COM_PING, b"")
    elif callable(check):
        await _in_thread(raw, check, raw)


# -- giving back -----------------------------------------------------------------------------


async def _afinish(pool: ConnectionPool, conn: Connection, exc: BaseException | None) -> None:
    """End of an ``async with`` block (async twin of ``_finish_block``): commit or roll back
    what is open, then give back."""
    if conn.__class__ is ReturnedConnection:
        return
    try:
        if conn._sock is not None and not conn._mp_broken and conn.server_status & _IN_TRANS:
            if exc is None:
                await aio_command(conn, "COMMIT")
            else:
                try:
                    await aio_command(conn, "ROLLBACK")
                except Exception:  # noqa: BLE001 - the original error matters more
                    conn.__dict__["_mp_broken"] = True
    finally:
        await _aputconn(pool, conn)


async def _aputconn(pool: ConnectionPool, lease: Connection) -> None:
    slot = pool._detach(lease)
    plan = pool._release_begin(slot)
    if plan is None:
        return
    if plan:
        try:
            await _apply_reset(pool, slot.raw, plan)
        except BaseException as exc:
            pool._discard(slot, f"reset failed ({exc!r})", lost=True)
            if not isinstance(exc, Exception):
                raise
            return
    pool._release_end(slot)


async def _apply_reset(pool: ConnectionPool, raw: Any, plan: tuple[str, ...]) -> None:
    """Run the pool's reset plan (decided by ``_release_begin``) with async I/O."""
    if "session" in plan or isinstance(raw._sock, ssl.SSLSocket):
        # COM_RESET_CONNECTION re-applies several settings: rare, and run as the sync face does.
        await _in_thread(raw, pool._apply_reset, raw, plan)
        return
    for step in plan:
        if step == "rollback":
            await aio_command(raw, "ROLLBACK")
            pool._counters["returns_rolled_back"] += 1
        elif step == "autocommit":
            raw.autocommit_mode = bool(pool._autocommit)
            await aio_command(raw, f"SET AUTOCOMMIT = {raw.escape(raw.autocommit_mode)}")
        elif step == "select_db":
            db = pool._database
            if db:
                await _command(raw, COMMAND.COM_INIT_DB, db.encode(raw.encoding))
                raw.db = db
            raw.__dict__["_mp_db_changed"] = False


class AsyncBorrow:
    """``async with pool.aconnection()`` / ``pool.atransaction()``: borrow for a block.

    With ``begin=True`` the block runs in a transaction (BEGIN first). Either way, on success an
    open transaction is committed, on error rolled back; then the connection goes back (or is
    discarded if it broke, e.g. because the task was cancelled in the middle of a query).
    """

    __slots__ = ("begin", "conn", "pool", "timeout")

    def __init__(self, pool: ConnectionPool, timeout: float | None, begin: bool = False) -> None:
        self.pool = pool
        self.timeout = timeout
        self.begin = begin
        self.conn: Connection | None = None

    async def __aenter__(self) -> Connection:
        conn = await agetconn(self.pool, self.timeout)
        if self.begin:
            try:
                await aio_command(conn, "BEGIN")
            except BaseException as exc:
                await _afinish(self.pool, conn, exc)
                raise
        self.conn = conn
        return conn

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        conn = self.conn
        if conn is not None:
            self.conn = None
            await _afinish(self.pool, conn, exc)


async def aexecute_query(
    pool: ConnectionPool,
    query: str,
    args: Any,
    dictcursor: bool,
    return_one: bool,
    exec_many: bool,
    timeout: float | None,
) -> Any:
    """Borrow, run one statement, commit what is open, give back (``pool.aexecute_query``)."""
    conn = await agetconn(pool, timeout)
    try:
        result = await aio_run_query(conn, query, args, dictcursor, return_one, exec_many)
    except BaseException as exc:
        await _afinish(pool, conn, exc)
        raise
    await _afinish(pool, conn, None)
    return result


# -- running statements ----------------------------------------------------------------------


class _Recorder(pymysql.cursors.Cursor):
    """Collects the statements PyMySQL's ``executemany`` would send (its multi-row INSERT
    rewrite included) instead of sending them, so the async face batches exactly alike."""

    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self.statements: list[Any] = []

    def execute(self, query: Any, args: Any = None) -> int:
        self.statements.append(query if args is None else self._mogrify(query, args))
        return 0


async def aio_run_query(
    conn: Connection,
    query: str,
    args: Any,
    dictcursor: bool,
    return_one: bool,
    exec_many: bool,
) -> Any:
    """``conn.aexecute_query``: what ``run_query`` does, over async I/O (same results)."""
    if isinstance(conn._sock, ssl.SSLSocket):
        return await _in_thread(
            conn, run_query, conn, query, args, dictcursor, return_one, exec_many
        )
    if not exec_many and (dictcursor or conn.cursorclass is _PlainCursor):
        return await _run_simple(conn, query, args, dictcursor, return_one)
    if dictcursor:
        cur = pymysql.cursors.DictCursor(conn)
    else:
        cls = conn.cursorclass
        if issubclass(cls, pymysql.cursors.SSCursor):  # unbuffered reads need the socket
            dict_rows = issubclass(cls, pymysql.cursors.DictCursorMixin)
            cls = pymysql.cursors.DictCursor if dict_rows else pymysql.cursors.Cursor
        cur = cls(conn)
    try:
        if exec_many:
            recorder = _Recorder(conn)
            recorder.max_stmt_length = cur.max_stmt_length
            recorder.executemany(query, args)
            total = 0
            for sql in recorder.statements:
                await _query(conn, cur, sql)
                total += cur.rowcount
            if recorder.statements:
                cur.rowcount = total
        else:
            await _query(conn, cur, cur.mogrify(query, args if args != () else None))
        return _cursor_result(cur, return_one)
    finally:
        cur.connection = None


def _cursor_result(cur: Any, return_one: bool) -> Any:
    if cur.description is None:
        return RowCount(cur.rowcount, getattr(cur, "lastrowid", None) or 0)
    return cur.fetchone() if return_one else cur.fetchall()


_PlainCursor = pymysql.cursors.Cursor
_MySQLResult = pymysql.connections.MySQLResult


async def _run_simple(
    conn: Connection, query: str, args: Any, dictcursor: bool, return_one: bool
) -> Any:
    """One statement, buffered plain or dict rows: the common case, without a cursor.

    PyMySQL's parse (packet objects, a column descriptor object per column, per-field method
    calls) was the biggest part of the CPU per query. One plain result set is decoded by
    ``_fastresult.read_result_async`` instead: the rows and the connection's state (``_result``,
    ``_affected_rows``, sequence id, plus the EOF's ``server_status``) come out as PyMySQL leaves
    them. Anything else (OK, errors, several results, 16 MiB packets, any oddity) is PyMySQL's.
    """
    if args is None or args == ():
        sql: Any = query
    else:
        sql = _PlainCursor(conn).mogrify(query, args)
    if not isinstance(sql, bytes):
        sql = sql.encode(conn.encoding) if isinstance(sql, str) else bytes(sql)
    data = await _roundtrip(conn, _COM_QUERY, sql)
    # issue 17: one plain result set is decoded by _fastresult/_rows; None: PyMySQL parses it
    rows = read_result_async(conn, data, dictcursor)
    if rows is None:
        cur = (pymysql.cursors.DictCursor if dictcursor else _PlainCursor)(conn)
        try:
            _parse(conn, data, _read_into_cursor, conn, cur, sql)
            return _cursor_result(cur, return_one)
        finally:
            cur.connection = None
    if return_one:
        return rows[0] if rows else None
    return rows


async def _query(conn: Connection, cur: Any, sql: Any) -> None:
    if not isinstance(sql, bytes):
        sql = sql.encode(conn.encoding) if isinstance(sql, str) else bytes(sql)
    data = await _roundtrip(conn, _COM_QUERY, sql)
    _parse(conn, data, _read_into_cursor, conn, cur, sql)


def _read_into_cursor(conn: Connection, cur: Any, sql: bytes) -> None:
    cur._clear_result()
    conn._affected_rows = conn._read_query_result()
    cur._do_get_result()
    cur._executed = sql
    # Further results of a multi-statement query: read and dropped, as Cursor.close() does.
    result = conn._result
    while result is not None and result.has_next:
        conn.next_result()
        result = conn._result


async def aio_command(conn: Connection, sql: str) -> None:
    """Run a statement that answers OK (BEGIN, COMMIT, ROLLBACK, SET ...) without blocking."""
    await _command(conn, _COM_QUERY, sql.encode(conn.encoding))


async def _command(conn: Connection, command: int, payload: bytes) -> None:
    if isinstance(conn._sock, ssl.SSLSocket):
        await _in_thread(conn, _sync_command, conn, command, payload)
        return
    data = await _roundtrip(conn, command, payload)
    _parse(conn, data, conn._read_ok_packet)


def _sync_command(conn: Connection, command: int, payload: bytes) -> None:
    conn._execute_command(command, payload)
    conn._read_ok_packet()


def _parse(conn: Connection, data: bytes, fn: Callable[..., T], *args: Any) -> T:
    """Let PyMySQL read a whole buffered response exactly as it would read it from the socket."""
    rfile = conn._rfile
    buffered = io.BytesIO(data)
    conn._rfile = buffered
    conn._current_timeout = conn._read_timeout  # so PyMySQL leaves the socket's mode alone
    try:
        return fn(*args)
    finally:
        if conn._sock is not None:  # PyMySQL closes the connection on a protocol error
            conn._rfile = rfile
            conn._current_timeout = _ASYNC
            if buffered.tell() != len(data):
                # PyMySQL read less than the server sent: the stream can no longer be trusted.
                conn.__dict__["_mp_broken"] = True
                conn._force_close()
        elif rfile is not None:
            rfile.close()


def _finish_pending(conn: Connection) -> None:
    """What PyMySQL's ``_execute_command`` does first: finish an unread result of the sync face."""
    result = conn._result
    if result is not None:
        if result.unbuffered_active:
            result._finish_unbuffered_query()
        while conn._result is not None and conn._result.has_next:
            conn.next_result()
    conn._result = None


def _packets(conn: Connection, command: int, payload: bytes) -> bytes:
    """The command's packets as ``_execute_command`` writes them (split at 16 MiB)."""
    size = len(payload) + 1
    if size < _MAX_PACKET:
        conn._next_seq_id = 1
        return struct.pack("<iB", size, command) + payload
    parts = [struct.pack("<iB", _MAX_PACKET, command), payload[: _MAX_PACKET - 1]]
    rest = payload[_MAX_PACKET - 1 :]
    seq = 1
    while True:
        size = min(_MAX_PACKET, len(rest))
        parts.append(struct.pack("<I", size | (seq << 24)))
        parts.append(rest[:size])
        rest = rest[size:]
        seq = (seq + 1) % 256
        if not rest and size < _MAX_PACKET:
            break
    conn._next_seq_id = seq
    return b"".join(parts)


async def _roundtrip(conn: Connection, command: int, payload: bytes) -> bytes:
    """Write one command, return its whole response (every result set), unparsed."""
    sock = conn._sock
    if sock is None:
        raise pymysql.err.InterfaceError(0, "")  # what PyMySQL raises on a closed connection
    result = conn._result
    if result is not None:
        if result.unbuffered_active or result.has_next:
            if result.unbuffered_active:
                warnings.warn("Previous unbuffered result was left incomplete", stacklevel=3)
            await _in_thread(conn, _finish_pending, conn)
            sock = conn._sock
            if sock is None:
                raise pymysql.err.InterfaceError(0, "")
        conn._result = None
    if conn._current_timeout is not _ASYNC:
        sock.setblocking(False)
        conn._current_timeout = _ASYNC
    data = _packets(conn, command, payload)
    reading = False
    # From the first byte written to the last byte read the connection is mid-protocol: an
    # interruption of any kind (cancellation, timeout, error) leaves it unusable.
    try:
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(data):
            await asyncio.get_running_loop().sock_sendall(sock, memoryview(data)[sent:])
        reading = True
        return await _read_response(conn, sock)
    except BaseException as exc:
        conn.__dict__["_mp_broken"] = True
        conn._force_close()
        if isinstance(exc, _LocalInfile):
            raise pymysql.err.NotSupportedError(
                "LOAD DATA LOCAL INFILE is not supported by the async face; "
                "run it with the sync face (pool.connection() / execute_query)"
            ) from None
        if isinstance(exc, OSError):
            if not reading:
                raise pymysql.err.OperationalError(
                    CR.CR_SERVER_GONE_ERROR, f"MySQL server has gone away ({exc!r})"
                ) from exc
            detail = "" if isinstance(exc, _ServerClosed) else f" ({exc})"
            raise pymysql.err.OperationalError(
                CR.CR_SERVER_LOST, f"Lost connection to MySQL server during query{detail}"
            ) from exc
        raise


class _LocalInfile(Exception):
    """The server asked for a local file (LOAD DATA LOCAL INFILE)."""


class _ServerClosed(ConnectionError):
    """The server closed the connection in the middle of a response."""


# Response scanner states: where the response ends is known from headers and first bytes only.
_FIRST, _COLUMNS, _COLUMNS_EOF, _ROWS, _DONE = range(5)


class _Reader:
    """Buffers one response. Once registered, the event loop calls :meth:`on_readable` whenever
    the socket is readable: reading in the loop's callback (as a transport would) wakes the
    waiting task once, when the whole response is there, instead of once per chunk.
    """

    __slots__ = (
        "buf",
        "cols",
        "cont",
        "done",
        "error",
        "fut",
        "last",
        "pos",
        "sock",
        "state",
        "timer",
    )

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0
        self.state = _FIRST
        self.cols = 0
        self.cont = False
        self.done = False
        self.error: BaseException | None = None
        self.fut: asyncio.Future[None] | None = None
        self.last = _monotonic()
        self.timer: asyncio.TimerHandle | None = None

    def pull(self) -> bool:
        """One non-blocking ``recv``; True once the response is complete (or failed)."""
        try:
            chunk = self.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self.error = exc
            return True
        return self.feed(chunk)

    def feed(self, chunk: bytes) -> bool:
        if not chunk:
            self.error = _ServerClosed()
            return True
        self.buf += chunk
        self.last = _monotonic()
        try:
            self.done = self.scan()
        except Exception as exc:  # noqa: BLE001 - raised in the waiting task by result()
            self.error = exc
            return True
        return self.done

    def result(self) -> bytes:
        if self.error is not None:
            raise self.error
        return bytes(self.buf)

    def on_readable(self) -> None:
        fut = self.fut
        if fut is not None and not fut.done() and self.pull():
            fut.set_result(None)

    def scan(self) -> bool:
        buf = self.buf
        n = len(buf)
        pos = self.pos
        state = self.state
        while pos + 4 <= n:
            if state == _ROWS and not self.cont:  # issue 17: ordinary rows skipped in one call
                pos = _rows.skip_rows(buf, pos, n)
                if pos + 4 > n:
                    break
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            end = pos + 4 + length
            if end > n:
                break
            if self.cont:  # a continuation of a payload of 16 MiB or more: not a new packet
                self.cont = length == _MAX_PACKET
                pos = end
                continue
            self.cont = length == _MAX_PACKET
            first = buf[pos + 4] if length else 0
            if state == _ROWS:
                if first == 0xFE and length < 9:  # EOF (PyMySQL does not ask for DEPRECATE_EOF)
                    state = _FIRST if buf[pos + 7] & _MORE_RESULTS else _DONE
                elif first == 0xFF:
                    state = _DONE
            elif state == _FIRST:
                if first == 0x00:  # OK
                    state = _FIRST if _ok_status(buf, pos + 5) & _MORE_RESULTS else _DONE
                elif first == 0xFF:  # ERR
                    state = _DONE
                elif first == 0xFB:
                    raise _LocalInfile()
                else:
                    self.cols = _lenenc(buf, pos + 4)
                    state = _COLUMNS
            elif state == _COLUMNS:
                self.cols -= 1
                if not self.cols:
                    state = _COLUMNS_EOF
            elif state == _COLUMNS_EOF:
                state = _ROWS
            pos = end
            if state == _DONE:
                if pos != n:
                    raise pymysql.err.InternalError(
                        "the server sent more than one response to one command"
                    )
                return True
        self.pos = pos
        self.state = state
        return False

    def on_timer(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        fut = self.fut
        if fut is None or fut.done():
            return
        idle = _monotonic() - self.last
        if idle >= timeout:
            self.error = TimeoutError("timed out")
            fut.set_result(None)
        else:
            self.timer = loop.call_later(timeout - idle, self.on_timer, loop, timeout)


def _lenenc(buf: bytearray, p: int) -> int:
    c = buf[p]
    if c < 0xFB:
        return c
    width = 2 if c == 0xFC else 3 if c == 0xFD else 8
    return int.from_bytes(buf[p + 1 : p + 1 + width], "little")


def _ok_status(buf: bytearray, p: int) -> int:
    """The status flags of an OK packet whose payload (after the 0x00) starts at ``p``."""
    for _ in range(2):  # affected rows, last insert id
        c = buf[p]
        p += 1 if c < 0xFB else 3 if c == 0xFC else 4 if c == 0xFD else 9
    return buf[p] | buf[p + 1] << 8


async def _read_response(conn: Connection, sock: socket.socket) -> bytes:
    reader = _Reader(sock)
    # Let the other tasks run once first: under load the answer is usually there when we come
    # back, and then no reader needs registering (two epoll_ctl calls fewer per query).
    await asyncio.sleep(0)
    if reader.pull():
        return reader.result()
    loop = asyncio.get_running_loop()
    timeout = conn._read_timeout
    fd = sock.fileno()
    reader.fut = loop.create_future()
    try:
        loop.add_reader(fd, reader.on_readable)
    except NotImplementedError:  # e.g. the Windows proactor loop: no readiness callbacks
        while not reader.done and reader.error is None:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, _RECV_SIZE), timeout)
            reader.feed(chunk)
        return reader.result()
    try:
        if timeout:
            reader.timer = loop.call_later(timeout, reader.on_timer, loop, timeout)
        await reader.fut
    finally:
        loop.remove_reader(fd)
        if reader.timer is not None:
            reader.timer.cancel()
    return reader.result()


async def _in_thread(conn: Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking PyMySQL code on ``conn`` in a worker thread (TLS, session reset, ...).

    If the task is cancelled meanwhile, the thread cannot be: the socket is shut down so that it
    fails fast, and the task waits for it before letting anyone else near the connection.
    """
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, functools.partial(fn, *args))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        if not fut.done():
            conn.__dict__["_mp_broken"] = True
            sock = conn._sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            while not fut.done():
                try:
                    await asyncio.wait([fut])
                except asyncio.CancelledError:
                    continue  # we are leaving anyway; first let the thread let go of the socket
            if not fut.cancelled():
                fut.exception()  # retrieved: the cancellation is what the caller sees
        raise
