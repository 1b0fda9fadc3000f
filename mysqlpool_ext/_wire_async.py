"""PyMySQL's protocol on the event loop: the async face's wire layer. It knows no pool.

Why this design (measured, see ``benchmarks/async_bench.py``): handing each query to a worker
thread reached 0.38x aiomysql's throughput; a second driver would mean a second connection class
with its own type conversions. Here one :class:`~mysqlpool_ext.Connection` class serves both faces
and PyMySQL still does the parsing:

- a command is written with a non-blocking ``send``; the task then lets the others run once and
  reads: under load the whole answer is usually there, and a check of its packets
  (``_rows.response_complete``) takes it as it is. Otherwise the response is read by a reader
  callback registered on the event loop, which needs only packet headers and first bytes to know
  where the response ends (OK / ERR / column count, column definitions, EOF, rows, EOF, and again
  while the server says more results follow). PyMySQL then parses the buffered bytes unchanged
  (``_read_query_result`` over a ``BytesIO``), so rows, conversions and errors are the sync face's;
  a single plain result set is decoded by ``_fastresult.read_result_async`` (per-column plans
  made by PyMySQL's own ``_get_descriptions``; same rows, same state, EOF flags kept);
- several pipelined commands (the session reset) are written at once and their responses read
  as one buffer: one round trip;
- a TLS connection (``ssl.SSLSocket``) cannot be read this way: every call on it runs the sync
  code in a worker thread (correct, but about as slow as the thread-per-query design);
- a task cancelled (or timed out) between writing a command and reading the end of its response
  leaves the protocol in an unknown state: the socket is closed at once and the pool discards the
  connection when it is given back.

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
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pymysql
import pymysql.cursors
from pymysql.constants import COMMAND, CR, SERVER_STATUS
from pymysql.err import InterfaceError, NotSupportedError, OperationalError

from . import _rows  # the compiled row scan (skip_rows) when built
from ._fastresult import read_result_async
from ._protocol import (
    RowCount,
    Statement,
    after_reset,
    closed_error,
    note_command,
    pipeline,
    read_responses,
    reset_session,
    run_query,
    shutdown_quietly,
)

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["aio_command", "aio_ping", "aio_reset_session", "aio_run_query", "in_thread"]

T = TypeVar("T")

_MORE_RESULTS = SERVER_STATUS.SERVER_MORE_RESULTS_EXISTS
_MAX_PACKET = 2**24 - 1
_RECV_SIZE = 64 * 1024  # below malloc's mmap threshold: no mmap/munmap per read
_COM_QUERY = COMMAND.COM_QUERY
_pack_head = struct.Struct("<iB").pack  # a packet's length and sequence number 0, the command
_monotonic = time.monotonic


class _AsyncMode:
    """``conn._current_timeout`` while the socket is non-blocking for the event loop.

    It equals no real timeout, so PyMySQL's sync code calls ``settimeout`` (back to blocking mode)
    before its next read or write, and the async face knows it need not call ``setblocking``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<async mode>"


_ASYNC = _AsyncMode()

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


def aio_run_query(conn: Connection, stmt: Statement, keep: bool = True) -> Awaitable[Any]:
    """``conn.aexecute_query``: what ``run_query`` does, over async I/O (same results).

    A plain function that picks the coroutine to await, not a coroutine itself: every level of
    ``await`` is crossed twice per suspension, and a query suspends two or three times.
    ``keep=False``: the connection goes back to its pool right after (``pool.aexecute_query``),
    so the ``MySQLResult`` PyMySQL would leave in ``conn._result`` for later calls is not made.
    """
    if isinstance(conn._sock, ssl.SSLSocket):
        return in_thread(conn, run_query, conn, stmt, statement=_statement_text(conn, stmt))
    query, args, dictcursor, return_one, exec_many, _ = stmt
    if not exec_many and (dictcursor or conn.cursorclass is _PlainCursor):
        return _run_simple(conn, query, args, dictcursor, return_one, keep)
    return _run_cursor(conn, query, args, dictcursor, return_one, exec_many)


async def _run_cursor(
    conn: Connection, query: str, args: Any, dictcursor: bool, return_one: bool, exec_many: bool
) -> Any:
    """Through a PyMySQL cursor: ``executemany``, the connection's own cursor class."""
    unbuffered = False
    if dictcursor:
        cur = pymysql.cursors.DictCursor(conn)
    else:
        cls = conn.cursorclass
        unbuffered = issubclass(cls, pymysql.cursors.SSCursor)
        if unbuffered:  # unbuffered reads need the socket
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
        result = _cursor_result(cur, return_one)
        if unbuffered and not return_one and result.__class__ is tuple:
            return list(result)  # an SSCursor's fetchall() is a list, a Cursor's a tuple
        return result
    finally:
        cur.connection = None


def _cursor_result(cur: Any, return_one: bool) -> Any:
    if cur.description is None:
        return RowCount(cur.rowcount, getattr(cur, "lastrowid", None) or 0)
    return cur.fetchone() if return_one else cur.fetchall()


_PlainCursor = pymysql.cursors.Cursor
_MySQLResult = pymysql.connections.MySQLResult


def _run_simple(
    conn: Connection, query: str, args: Any, dictcursor: bool, return_one: bool, keep: bool
) -> Awaitable[Any]:
    """One statement, buffered plain or dict rows: the common case, without a cursor.

    PyMySQL's parse (packet objects, a column descriptor object per column, per-field method
    calls) was the biggest part of the CPU per query. One plain result set is decoded by
    ``_fastresult.read_result_async`` instead: the rows and the connection's state (``_result``,
    ``_affected_rows``, sequence id, plus the EOF's ``server_status``) come out as PyMySQL leaves
    them. Anything else (OK, errors, several results, 16 MiB packets, any oddity) is PyMySQL's.
    (Returns :func:`_exchange`'s coroutine, which runs :func:`_simple_result` on the answer.)
    """
    if args is None or args == ():
        sql: Any = query
    else:
        sql = _PlainCursor(conn).mogrify(query, args)
    if not isinstance(sql, bytes):
        sql = sql.encode(conn.encoding) if isinstance(sql, str) else bytes(sql)
    if conn._sock is None:
        raise _closed(conn)
    note_command(conn, _COM_QUERY, sql)
    how = (sql, dictcursor, return_one, keep)
    return _exchange(conn, _COM_QUERY, sql, None, _simple_result, how)


def _simple_result(conn: Connection, data: bytes, how: tuple[bytes, bool, bool, bool]) -> Any:
    sql, dictcursor, return_one, keep = how
    # issue 17: one plain result set is decoded by _fastresult/_rows; None: PyMySQL parses it
    rows = read_result_async(conn, data, dictcursor, keep)
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
        await in_thread(conn, _sync_command, conn, command, payload)
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
        return _pack_head(size, command) + payload
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


def _closed(conn: Connection) -> BaseException:
    if conn._mp_closed_by is not None:
        return closed_error(conn, None)
    return InterfaceError(0, "the connection is closed")  # what PyMySQL raises


def _roundtrip(conn: Connection, command: int, payload: bytes) -> Awaitable[bytes]:
    """Write one command, return its whole response (every result set), unparsed. (Returns
    :func:`_exchange`'s coroutine: one ``await`` level fewer, see :func:`aio_run_query`.)"""
    if conn._sock is None:
        raise _closed(conn)
    note_command(conn, command, payload)
    return _exchange(conn, command, payload)


def _no_finish(conn: Connection, data: bytes, how: Any) -> bytes:
    return data


async def _exchange(
    conn: Connection,
    command: int,
    payload: bytes,
    pipelined: list[tuple[int, bytes]] | None = None,
    finish: Callable[[Connection, bytes, Any], Any] = _no_finish,
    how: Any = None,
) -> Any:
    """Write one command (or ``pipelined`` commands, written at once); return the bytes of its
    response (of all their responses) -- or what ``finish(conn, data, how)`` makes of them: a
    caller's parse, run here to save the event loop's tasks one ``await`` level per query. Only
    the I/O breaks the connection when it fails; ``finish`` raises as the caller would."""
    sock = conn._sock
    if sock is None:
        raise _closed(conn)
    result = conn._result
    if result is not None:
        if result.unbuffered_active or result.has_next:
            if result.unbuffered_active:
                warnings.warn("Previous unbuffered result was left incomplete", stacklevel=3)
            await in_thread(conn, _finish_pending, conn)
            sock = conn._sock
            if sock is None:
                raise _closed(conn)
        conn._result = None
    if conn._current_timeout is not _ASYNC:
        sock.setblocking(False)
        conn._current_timeout = _ASYNC
    if pipelined is None:
        responses = 1
        size = len(payload) + 1
        if size < _MAX_PACKET:  # _packets(), inline: one packet, sequence id 0
            conn._next_seq_id = 1
            data = _pack_head(size, command) + payload
        else:
            data = _packets(conn, command, payload)
    else:
        responses = len(pipelined)
        data = pipeline(pipelined)
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
        # Let the other tasks run once first: under load the answer is usually there when we
        # come back, and then no reader needs registering (two epoll_ctl calls fewer per query).
        await _YIELD
        try:
            chunk: bytes | None = sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            chunk = None
        if chunk and _rows.response_complete(chunk, responses):
            data = chunk  # the common case: the whole answer in one read, no scanner needed
        else:
            data = await _read_response(conn, sock, responses, chunk)
    except BaseException as exc:
        d = conn.__dict__
        d["_mp_broken"] = True
        if (
            reading
            and command == _COM_QUERY
            and pipelined is None
            and (not isinstance(exc, OSError) or isinstance(exc, TimeoutError))
        ):
            # A statement given up while the server works on it (a cancellation, a timeout):
            # the server runs it on to its end; the pool ends it there (_core.discard). Its
            # text lets the pool make sure it kills that statement's session.
            d["_mp_interrupted"] = payload
        conn._force_close()
        if isinstance(exc, _LocalInfile):
            raise NotSupportedError(
                "LOAD DATA LOCAL INFILE is not supported by the async face; "
                "run it with the sync face (pool.connection() / execute_query)"
            ) from None
        if isinstance(exc, OSError):
            if conn._mp_closed_by is not None:
                raise _closed(conn) from exc
            if not reading:
                raise OperationalError(
                    CR.CR_SERVER_GONE_ERROR, f"MySQL server has gone away ({exc!r})"
                ) from exc
            detail = "" if isinstance(exc, _ServerClosed) else f" ({exc})"
            raise OperationalError(
                CR.CR_SERVER_LOST, f"Lost connection to MySQL server during query{detail}"
            ) from exc
        raise
    return finish(conn, data, how)


async def aio_reset_session(conn: Connection) -> None:
    """The session reset of :func:`~mysqlpool_ext.connection.reset_session`, pipelined in one
    round trip without blocking the loop."""
    state = conn._mp_state
    if state is None:
        raise InterfaceError(0, "reset needs a connection opened by a pool")
    if isinstance(conn._sock, ssl.SSLSocket):
        await in_thread(conn, reset_session, conn)
        return
    cmds = state.reset_commands(conn)
    if conn._sock is None:
        raise _closed(conn)
    data = await _exchange(conn, 0, b"", cmds)
    _parse(conn, data, read_responses, conn, len(cmds))
    after_reset(conn, state)


async def aio_ping(conn: Connection) -> None:
    """COM_PING without blocking the loop (the pool's liveness check)."""
    await _command(conn, COMMAND.COM_PING, b"")


async def aio_init_db(conn: Connection, db: str) -> None:
    await _command(conn, COMMAND.COM_INIT_DB, db.encode(conn.encoding))
    conn.db = db.encode(conn.encoding)


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
        "todo",
    )

    def __init__(self, sock: socket.socket, responses: int = 1) -> None:
        self.sock = sock
        self.todo = responses
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
            if state == _DONE and self.todo > 1:
                self.todo -= 1  # pipelined commands: the next response follows
                state = _FIRST
                continue
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


class _Yield:
    """``await _YIELD`` lets the other tasks run once, as ``await asyncio.sleep(0)`` does, minus
    ``sleep``'s two Python-level calls on every query.

    Its ``__await__`` is C code: an iterator over ``(None,)`` yields once, a bare yield, and the
    task reschedules itself at once; a generator would be one more Python frame per query. (A
    cancellation thrown in there is raised at the ``await``, as for any iterator without
    ``throw``.)"""

    __slots__ = ()

    __await__ = staticmethod(functools.partial(iter, (None,)))


_YIELD = _Yield()


async def _read_response(
    conn: Connection, sock: socket.socket, responses: int, chunk: bytes | None
) -> bytes:
    """The rest of a response whose first read (``chunk``; None: nothing yet) was not all of it:
    the scanner finds where it ends, the event loop says when the socket is readable."""
    reader = _Reader(sock, responses)
    if chunk is not None and reader.feed(chunk):
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


def _statement_text(conn: Connection, stmt: Any) -> bytes | None:
    """The text the server will run for ``stmt`` (one statement, not executemany)."""
    query, args, _, _, exec_many, _ = stmt
    if exec_many:
        return None
    try:
        sql = pymysql.cursors.Cursor(conn).mogrify(query, args if args != () else None)
    except Exception:  # noqa: BLE001 - the statement itself will say what is wrong
        return None
    return sql.encode(conn.encoding, "surrogateescape") if isinstance(sql, str) else sql


async def in_thread(
    conn: Connection, fn: Callable[..., T], *args: Any, statement: bytes | None = None
) -> T:
    """Run blocking PyMySQL code on ``conn`` in a worker thread (TLS, session reset, ...).

    If the task is cancelled meanwhile, the thread cannot be: the socket is shut down so that it
    fails fast, and the task waits for it before letting anyone else near the connection.
    ``statement``: the text of the statement ``fn`` runs, if any: given up, the pool ends it on
    the server (see ``_exchange``).
    """
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, functools.partial(fn, *args))
    try:
        return await asyncio.shield(fut)
    except OperationalError as exc:
        if statement is not None and isinstance(exc.__context__, TimeoutError):
            # read_timeout ran out while the server worked on it: as a cancellation.
            conn.__dict__["_mp_interrupted"] = statement
        raise
    except asyncio.CancelledError:
        if not fut.done():
            conn.__dict__["_mp_broken"] = True
            if statement is not None:
                conn.__dict__["_mp_interrupted"] = statement
            shutdown_quietly(conn._sock)
            while not fut.done():
                try:
                    await asyncio.wait([fut])
                except asyncio.CancelledError:
                    continue  # we are leaving anyway; first let the thread let go of the socket
            if not fut.cancelled():
                fut.exception()  # retrieved: the cancellation is what the caller sees
        raise
