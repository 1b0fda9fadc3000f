"""Where the result-set decoder (:mod:`mysqlpool_ext._rows`) meets PyMySQL: one entry per face.

- :func:`read_result_sync` stands in for ``Connection._read_query_result``: it reads one result
  set from the socket's buffered reader (``peek`` + exact ``read``, so it never consumes a byte
  past the end of the result set -- the next result of a multi-result response stays where
  PyMySQL's ``next_result`` will look for it) and decodes its rows from those buffers.
- :func:`read_result_async` takes the whole buffered response of one command (the async face
  reads it from the event loop) and returns its rows.

Both leave the connection exactly as PyMySQL's read would (``_result`` with the same attributes,
``_next_seq_id``, the returned affected-row count) plus one thing PyMySQL forgets: the status
flags of the EOF packet that ends the result set go to ``conn.server_status`` (all but
NO_BACKSLASH_ESCAPES, which stays PyMySQL's: see ``_protocol.note_status``), so the pool can tell an
open transaction after a SELECT without a round trip.

Everything that is not a plain text result set -- OK and ERR packets, LOAD DATA LOCAL, an error
in the middle of the rows, packets of 16 MiB or more, unbuffered cursors, a converter that
raises -- is read by PyMySQL itself: the sync face replays the bytes it took to PyMySQL's own
reader, the async face returns ``None`` so the caller lets PyMySQL parse the buffer. The errors,
and the state they leave, are therefore PyMySQL's.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import Any

import pymysql
from pymysql.constants import CR, SERVER_STATUS
from pymysql.err import OperationalError  # PyMySQL's own class, not a MySQLdb-shim copy
from pymysql.protocol import MysqlPacket

from . import _rows
from ._protocol import note_status, read_query_result_tracked
from ._rows import EOF, MAX_PACKET, MISS, MORE, Plan

__all__ = ["read_result_async", "read_result_sync"]

_MySQLResult = pymysql.connections.MySQLResult
_new_result = object.__new__
_base_read_query_result = read_query_result_tracked  # PyMySQL's reader, keeping the flags
_MORE_RESULTS = SERVER_STATUS.SERVER_MORE_RESULTS_EXISTS
_EOF_BODY = struct.Struct("<hH")  # warning count (signed, as PyMySQL reads it), status flags
_PLANS_MAX = 128
_PEEK = 65536
#: Above this many missing bytes of one packet, read them in one call instead of peek by peek.
_BIG_READ = 4096


class _Incomplete:
    """``_head``'s answer when the column definitions are not all in the buffer yet."""

    __slots__ = ()


_INCOMPLETE = _Incomplete()


# -- column definitions -> plan ------------------------------------------------------------------


class _DefinitionReader:
    """Stands in for the connection while PyMySQL's ``_get_descriptions`` reads buffered column
    definitions, so the fields, descriptions and converters are made by PyMySQL's own code."""

    __slots__ = ("decoders", "encoding", "packets", "use_unicode")

    def __init__(self, conn: Any, packets: list[bytes]) -> None:
        self.use_unicode = conn.use_unicode
        self.encoding = conn.encoding
        self.decoders = conn.decoders
        self.packets = iter(packets)

    def _read_packet(self, packet_type: Any = MysqlPacket) -> Any:
        return packet_type(next(self.packets), self.encoding)


def _plans(conn: Any) -> dict[bytes, Plan]:
    """This connection's plans by column-definition bytes; a new encoding, ``use_unicode`` or
    decoders dict starts afresh (in-place changes of the dict: see ``Plan.still_valid``)."""
    entry = conn.__dict__.get("_mp_row_plans")
    if entry is not None:
        encoding, use_unicode, decoders, plans = entry
        if (
            decoders is conn.decoders
            and encoding == conn.encoding
            and use_unicode == conn.use_unicode
        ):
            return plans
    plans = {}
    conn.__dict__["_mp_row_plans"] = (conn.encoding, conn.use_unicode, conn.decoders, plans)
    return plans


def _make_plan(conn: Any, buf: bytes, start: int, ncols: int) -> Plan:
    packets = []
    pos = start
    for _ in range(ncols + 1):
        length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        packets.append(buf[pos + 4 : pos + 4 + length])
        pos += 4 + length
    result = _MySQLResult(None)
    result.connection = _DefinitionReader(conn, packets)
    result.field_count = ncols
    try:
        result._get_descriptions()
    finally:
        result.connection = None
    return Plan(result.fields, result.description, result.converters, conn.decoders)


def _head(conn: Any, buf: bytes, end: int, seq: int) -> Any:
    """The plan for the result set that starts ``buf``, with the position and sequence number of
    its first row packet; ``None`` when it is not a plain result set (PyMySQL's to read);
    ``_INCOMPLETE`` when the column definitions are not all in ``buf[:end]`` yet."""
    walk = _rows.scan_head(buf, end, seq)
    if walk.__class__ is not tuple:
        return None if walk is None else _INCOMPLETE
    ncols, start, defs_end, pos, seq = walk
    key = buf[start:defs_end]
    plans = _plans(conn)
    plan = plans.get(key)
    if plan is None or not plan.still_valid(conn.decoders):
        if len(plans) >= _PLANS_MAX:
            plans.clear()
        plan = plans[key] = _make_plan(conn, buf, start, ncols)
    return plan, pos, seq


def _result(conn: Any, plan: Plan, rows: list[Any], buf: bytes, eof: int, seq: int) -> Any:
    """Store the finished result set in the connection as PyMySQL would, plus the EOF's flags.
    ``None`` (nothing stored) when the EOF packet at ``eof`` is too short to read."""
    if (buf[eof] | buf[eof + 1] << 8 | buf[eof + 2] << 16) < 5:
        return None
    warning_count, status = _EOF_BODY.unpack_from(buf, eof + 5)
    return _store(conn, plan, tuple(rows), warning_count, status, (seq + 1) & 0xFF)


def _store(
    conn: Any, plan: Plan, rows: tuple[Any, ...], warning_count: int, status: int, next_seq: int
) -> Any:
    """The connection's state after PyMySQL read this result set: ``_result`` (a MySQLResult
    with the attributes ``MySQLResult.read()`` leaves, set in one go: its ``__init__`` plus a
    dozen attribute stores were a visible part of a one-row query), ``_next_seq_id``, and the
    EOF's flags in ``server_status``."""
    attributes = plan.result_attributes
    if attributes is None:
        # The lists are shared by the results of one plan: PyMySQL only reads them once the
        # result is read (DictCursor's names), as it reads the description tuple.
        attributes = plan.result_attributes = {
            "connection": None,
            "affected_rows": 0,
            "insert_id": None,
            "server_status": None,  # PyMySQL's, for a result set (the flags go to the connection)
            "warning_count": 0,
            "message": None,
            "field_count": plan.ncols,
            "description": plan.description,
            "rows": (),
            "has_next": 0,
            "unbuffered_active": False,
            "fields": list(plan.fields),
            "converters": plan.converters,
        }
    result = _new_result(_MySQLResult)
    result.__dict__ = d = attributes.copy()
    d["affected_rows"] = len(rows)
    d["warning_count"] = warning_count
    d["rows"] = rows
    d["has_next"] = status & _MORE_RESULTS
    conn._next_seq_id = next_seq
    conn._result = result
    note_status(conn, status)  # "in transaction", "session changed"
    return result


# -- the async face: one buffered response -------------------------------------------------------


def read_result_async(conn: Any, data: bytes, dicts: bool, keep: bool = True) -> Any:
    """The rows of ``data`` -- the whole response to one COM_QUERY -- when it is exactly one plain
    result set: a tuple of tuples, or (``dicts``) DictCursor's list of dicts (its empty tuple
    when there are no rows). The connection's state is then PyMySQL's after reading it
    (``_result``, ``_affected_rows``, ``_next_seq_id``) and ``server_status`` holds the EOF's
    flags; with ``keep=False`` (nobody can look: the connection goes back to its pool at once)
    ``_result`` is left None instead of a ``MySQLResult``. ``None``, with nothing changed, for
    anything else: PyMySQL's to parse."""
    decoders = conn.decoders
    found = _rows.decode_response(data, conn._next_seq_id, _plans(conn), decoders)
    if found == MISS:  # a new set of columns: PyMySQL's reading of them makes the plan
        if _head(conn, data, len(data), conn._next_seq_id).__class__ is not tuple:
            return None
        found = _rows.decode_response(data, conn._next_seq_id, _plans(conn), decoders)
    if found is None or found == MISS:
        return None
    plan, rows, warning_count, status, next_seq = found
    if keep:
        _store(conn, plan, rows, warning_count, status, next_seq)
    else:
        conn._next_seq_id = next_seq
        note_status(conn, status)  # "in transaction", "session changed": the pool reads them
    conn._affected_rows = len(rows)
    if dicts and rows:
        return _rows.make_dicts(rows, plan.names)
    return rows


# -- the sync face: from the socket's buffered reader --------------------------------------------


def _lost(conn: Any, exc: BaseException | None) -> OperationalError:
    conn._force_close()
    if exc is None:
        return OperationalError(CR.CR_SERVER_LOST, "Lost connection to MySQL server during query")
    return OperationalError(
        CR.CR_SERVER_LOST, f"Lost connection to MySQL server during query ({exc})"
    )


def _read_failed(conn: Any, exc: BaseException, read: Callable[[int], bytes], size: int) -> bytes:
    """After ``read(size)`` raised ``exc``: PyMySQL's ``_read_bytes`` error handling. An
    interrupted call (EINTR) is made again; another OSError means the connection is lost (closed,
    reported as error 2013); anything else (an interrupt) closes it and goes on up. Out of line,
    so a read that succeeds costs no more than the call itself."""
    while isinstance(exc, OSError) and exc.errno == errno.EINTR:
        try:
            return read(size)
        except BaseException as again:  # noqa: BLE001 - sorted out below
            exc = again
    if not isinstance(exc, OSError) or isinstance(exc, TimeoutError):
        # Given up while the server works on the statement (an interrupt: Ctrl-C, a signal
        # handler's exception; read_timeout): the server runs it on; the pool ends it there.
        d = conn.__dict__
        d["_mp_interrupted"] = d.get("_mp_last_sql")
    if isinstance(exc, OSError):
        raise _lost(conn, exc) from None
    conn._force_close()
    raise exc


def _peek(conn: Any, rfile: Any) -> bytes:
    """What the reader holds, or (when it holds nothing) one ``recv``."""
    try:
        chunk: bytes = rfile.peek(_PEEK)
    except BaseException as exc:  # noqa: BLE001 - _read_failed sorts it out
        chunk = _read_failed(conn, exc, rfile.peek, _PEEK)
    if not chunk:
        raise _lost(conn, None)
    return chunk


def _take(conn: Any, rfile: Any, size: int) -> bytes:
    """Consume exactly ``size`` bytes (already peeked, or a packet's known rest)."""
    try:
        data: bytes = rfile.read(size)
    except BaseException as exc:  # noqa: BLE001 - _read_failed sorts it out
        data = _read_failed(conn, exc, rfile.read, size)
    if len(data) < size:
        raise _lost(conn, None)
    return data


class _Replay:
    """The bytes already taken from the reader, then the reader: what PyMySQL reads when it
    takes over a response (its ``_read_bytes`` calls only ``read``)."""

    __slots__ = ("data", "pos", "rfile")

    def __init__(self, data: bytes, rfile: Any) -> None:
        self.data = data
        self.pos = 0
        self.rfile = rfile

    def read(self, size: int) -> bytes:
        pos = self.pos
        if pos >= len(self.data):
            return self.rfile.read(size)
        piece = self.data[pos : pos + size]
        self.pos = pos + len(piece)
        if len(piece) < size:
            piece += self.rfile.read(size - len(piece))
        return piece

    def close(self) -> None:
        self.rfile.close()


def _replay(conn: Any, rfile: Any, taken: list[bytes], seq: int) -> int:
    """Let PyMySQL read the response from its start: the bytes taken so far, then the socket."""
    conn._next_seq_id = seq
    if not taken:
        return _base_read_query_result(conn)
    replay = _Replay(b"".join(taken), rfile)
    conn._rfile = replay
    try:
        return _base_read_query_result(conn)
    finally:
        if conn._rfile is replay:  # else PyMySQL closed the connection (and the reader)
            conn._rfile = rfile


def read_result_sync(conn: Any, unbuffered: bool = False) -> int:
    """``Connection._read_query_result`` with the rows decoded by :mod:`mysqlpool_ext._rows`.

    Returns the affected-row count as PyMySQL's does and leaves the same state, plus the EOF's
    status flags in ``conn.server_status``. Unbuffered reads (SSCursor) and readers without
    ``peek`` (the async face's replay of a buffered response) are PyMySQL's.
    """
    rfile = conn._rfile
    if unbuffered or rfile is None or not hasattr(rfile, "peek"):
        return _base_read_query_result(conn, unbuffered)
    if conn._current_timeout != conn._read_timeout:  # as PyMySQL's _read_packet does
        conn._sock.settimeout(conn._read_timeout)
        conn._current_timeout = conn._read_timeout
    conn._result = None
    seq0 = seq = conn._next_seq_id
    taken: list[bytes] = []  # consumed from the reader: replayed if PyMySQL must take over
    data = b""  # taken but not decoded yet: the start of an incomplete packet
    plan: Plan | None = None
    rows: list[Any] = []
    pos = 0
    peeked = True
    while True:
        chunk = _peek(conn, rfile) if peeked else b""
        peeked = True
        buf = data + chunk if data else chunk
        n = len(buf)
        if plan is None:
            head = _head(conn, buf, n, seq)
            if head is None:
                return _replay(conn, rfile, taken, seq0)
            if head is _INCOMPLETE:
                taken.append(_take(conn, rfile, len(chunk)))
                data = buf
                continue
            plan, pos, seq = head
        else:
            pos = 0
        try:
            pos, seq, stop = _rows.decode_rows(buf, pos, n, seq, plan, rows)
        except Exception:  # noqa: BLE001 - a converter that raises: PyMySQL raises it the same way
            return _replay(conn, rfile, taken, seq0)
        if stop == EOF:
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            end = pos + 4 + length
            result = _result(conn, plan, rows, buf, pos, seq)
            if result is None:
                return _replay(conn, rfile, taken, seq0)
            if end > len(data):
                _take(conn, rfile, end - len(data))  # up to the end of the EOF, no further
            return len(rows)
        if stop != MORE:
            return _replay(conn, rfile, taken, seq0)
        # The result set goes on past this chunk: all of it is ours.
        taken.append(_take(conn, rfile, len(chunk)))
        data = buf[pos:]
        if len(data) >= 4:
            length = data[0] | data[1] << 8 | data[2] << 16
            if length >= MAX_PACKET:
                return _replay(conn, rfile, taken, seq0)
            missing = 4 + length - len(data)
            if missing > _BIG_READ:  # a large value: its rest in one read, not peek by peek
                rest = _take(conn, rfile, missing)
                taken.append(rest)
                data += rest
                peeked = False
