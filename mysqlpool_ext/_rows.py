"""Decode the rows of a text-protocol result set straight from a buffer of packets.

Why: reading 100 rows x 4 columns, PyMySQL spends ~90 % of the client CPU in its per-row work -- a
``MysqlPacket`` object and two ``read`` calls per packet, a method call per length-coded field,
and a regular expression per DATETIME -- so the async face lost to asyncmy by 5x as soon as rows
had to be decoded. Here the rows of a whole buffer are decoded in one loop with a per-column plan
made once per set of column definitions.

Identity with PyMySQL is the rule, not a goal:

- the plan is made *from* what PyMySQL's own ``MySQLResult._get_descriptions`` decided for each
  column (its ``(encoding, converter)`` pairs, i.e. the connection's ``decoders``, ``encoding``
  and ``use_unicode``), never re-derived;
- a converter is only ever replaced by a faster equivalent where the two provably agree (an
  ``int``/``float``/``Decimal`` of an ASCII string; a DATETIME/DATE in the exact shape MySQL
  prints); any other value -- zero dates, odd fractions, anything the fast path does not
  recognise -- goes to PyMySQL's converter itself, so odd values come out exactly as PyMySQL's;
- anything unusual in the packets (an ERR packet, a sequence number out of step, a packet of
  16 MiB or more, a malformed length) stops the decoder *before* that packet: the caller then lets
  PyMySQL read the response itself, errors included.

The compiled accelerator (``_rows_c``, Cython, optional) implements :func:`decode_rows` with the
same signature and the same stops; :func:`set_accelerated` and ``MYSQLPOOL_NO_ACCEL=1`` choose.
"""

from __future__ import annotations

import datetime
import decimal
import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from pymysql import converters as _conv

__all__ = [
    "EOF",
    "INCOMPLETE",
    "MISS",
    "MORE",
    "OTHER",
    "Plan",
    "accelerated",
    "decode_response",
    "decode_rows",
    "has_accelerator",
    "make_dicts",
    "response_complete",
    "scan_head",
    "set_accelerated",
    "skip_rows",
]

#: Why :func:`decode_rows` stopped. ``MORE``: the packet at ``pos`` is not complete in the
#: buffer. ``EOF``: an EOF packet starts at ``pos`` (not consumed). ``OTHER``: the packet at
#: ``pos`` (or a field in it) is something only PyMySQL should read.
MORE, EOF, OTHER = 0, 1, 2
#: :func:`scan_head`'s answer when the column definitions are not all in the buffer yet.
INCOMPLETE = -1
#: :func:`decode_response`'s answer when only the plan for the columns is missing.
MISS = -2

MAX_PACKET = 0xFFFFFF
_MORE_RESULTS = 0x0008  # SERVER_MORE_RESULTS_EXISTS in an EOF's or OK's status flags

# Column kinds: how a field's bytes become a value (the same numbers in _rows_c.pyx).
K_RAW = 0  # no encoding, no converter: the bytes
K_STR = 1  # decoded, no converter
K_INT = 2  # ascii + int
K_FLOAT = 3  # ascii + float
K_DECIMAL = 4  # ascii + Decimal
K_DATETIME = 5  # ascii + pymysql.converters.convert_datetime
K_DATE = 6  # ascii + pymysql.converters.convert_date
K_TIMEDELTA = 7  # ascii + pymysql.converters.convert_timedelta
K_CALL = 8  # anything else: decode if an encoding is set, then call the converter

_Decimal = decimal.Decimal
_datetime_fromiso = datetime.datetime.fromisoformat
_date_fromiso = datetime.date.fromisoformat
_convert_datetime = _conv.convert_datetime
_convert_date = _conv.convert_date
_convert_timedelta = _conv.convert_timedelta


def _kind(encoding: str | None, converter: Any) -> int:
    if converter is None:
        return K_RAW if encoding is None else K_STR
    if encoding == "ascii":
        if converter is int:
            return K_INT
        if converter is float:
            return K_FLOAT
        if converter is _Decimal:
            return K_DECIMAL
        if converter is _convert_datetime:
            return K_DATETIME
        if converter is _convert_date:
            return K_DATE
        if converter is _convert_timedelta:
            return K_TIMEDELTA
    return K_CALL


def _fast_datetime(s: str) -> Any:
    """``convert_datetime`` for the shapes MySQL prints (``YYYY-MM-DD HH:MM:SS[.fff[fff]]``).

    ``fromisoformat`` is C and agrees with PyMySQL's regex on those shapes when it accepts the
    string (both read the same digits); everything else, and every string it refuses (zero
    dates, invalid days), goes to PyMySQL's converter.
    """
    n = len(s)
    if (n == 19 or n == 26 or n == 23) and s[10] == " " and s[4] == "-" and s[13] == ":":
        try:
            value = _datetime_fromiso(s)
        except ValueError:
            return _convert_datetime(s)
        if value.tzinfo is None:
            return value
    return _convert_datetime(s)


def _fast_date(s: str) -> Any:
    """``convert_date`` for ``YYYY-MM-DD`` (see :func:`_fast_datetime` for why it agrees)."""
    if len(s) == 10 and s[4] == "-" and s[7] == "-":
        try:
            return _date_fromiso(s)
        except ValueError:
            pass
    return _convert_date(s)


#: What the pure decoder calls per kind (``None``: no call).
_PURE_CONVERTERS: dict[int, Callable[[str], Any]] = {
    K_INT: int,
    K_FLOAT: float,
    K_DECIMAL: _Decimal,
    K_DATETIME: _fast_datetime,
    K_DATE: _fast_date,
    K_TIMEDELTA: _convert_timedelta,
}


class Plan:
    """What a set of column definitions decodes to, made once from PyMySQL's reading of them.

    ``fields``, ``description`` and ``converters`` are PyMySQL's own objects (a result gets fresh
    lists of them); ``cols`` is the pure decoder's per-column ``(encoding, function)`` and
    ``kinds``/``c_encodings``/``functions`` the accelerator's; ``names`` are DictCursor's keys.
    ``decoders`` remembers which converter the connection's ``decoders`` gave each column type,
    so a dict changed in place after the plan was made is noticed (:meth:`still_valid`).
    """

    __slots__ = (
        "_converters",
        "c_encodings",
        "cols",
        "decoders",
        "description",
        "encodings",
        "fields",
        "functions",
        "kinds",
        "names",
        "ncols",
        "result_attributes",
        "type_codes",
    )

    def __init__(
        self,
        fields: Sequence[Any],
        description: tuple[Any, ...],
        converters: Sequence[tuple[str | None, Any]],
        decoders: dict[int, Any],
    ) -> None:
        self.fields = tuple(fields)
        self.description = description
        self.ncols = len(self.fields)
        self.type_codes = tuple(f.type_code for f in self.fields)
        self.decoders = tuple(decoders.get(t) for t in self.type_codes)
        kinds = []
        encodings = []
        functions = []
        cols: list[tuple[str | None, Any]] = []
        for encoding, converter in converters:
            kind = _kind(encoding, converter)
            kinds.append(kind)
            encodings.append(encoding)
            functions.append(converter)
            if kind in (K_INT, K_FLOAT):
                # int()/float() read ASCII bytes as they read the decoded str; bytes they
                # refuse raise (ValueError, not PyMySQL's UnicodeDecodeError), and any raise
                # hands the response to PyMySQL, which raises its own.
                cols.append((None, converter))
            else:
                cols.append((encoding, _PURE_CONVERTERS.get(kind, converter)))
        self.kinds = tuple(kinds)
        self.encodings = tuple(encodings)
        self._converters = list(zip(encodings, functions))
        self.c_encodings = tuple(None if e is None else e.encode("ascii") for e in encodings)
        self.functions = tuple(functions)
        self.cols = tuple(cols)
        names: list[str] = []
        for f in self.fields:  # DictCursorMixin._do_get_result's naming
            name = f.name
            if name in names:
                name = f.table_name + "." + name
            names.append(name)
        self.names = tuple(names)
        #: What every result set read with this plan has in common (``_fastresult`` fills it).
        self.result_attributes: dict[str, Any] | None = None

    @property
    def converters(self) -> list[tuple[str | None, Any]]:
        """A fresh list of PyMySQL's ``(encoding, converter)`` pairs, as each result has."""
        return self._converters[:]

    def still_valid(self, decoders: dict[int, Any]) -> bool:
        get = decoders.get
        for t, c in zip(self.type_codes, self.decoders):  # noqa: SIM110 - no generator: hot path
            if get(t) is not c:
                return False
        return True


def py_decode_rows(
    buf: bytes, pos: int, end: int, seq: int, plan: Plan, out: list[tuple[Any, ...]]
) -> tuple[int, int, int]:
    """Decode the row packets of ``buf[pos:end]`` into ``out``; return ``(pos, seq, stop)``.

    ``buf`` must be ``bytes`` (a slice of a ``bytearray`` would give ``bytearray`` values).

    ``seq`` is the sequence number the next packet must carry; the returned ``pos`` and ``seq``
    are those of the packet the decoder stopped at (see ``MORE`` / ``EOF`` / ``OTHER``). Each row
    is exactly what ``MySQLResult._read_row_from_packet`` makes of its packet.
    """
    cols = plan.cols
    append = out.append
    while True:
        if pos + 4 > end:
            return pos, seq, MORE
        length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        p = pos + 4
        stop = p + length
        if stop > end:
            return pos, seq, MORE
        if buf[pos + 3] != seq or length >= MAX_PACKET or length == 0:
            return pos, seq, OTHER
        first = buf[p]
        if first == 0xFE and length < 9:
            return pos, seq, EOF
        if first == 0xFF:
            return pos, seq, OTHER
        row: list[Any] = []
        for encoding, fn in cols:
            if p >= stop:
                break  # fewer fields than columns: PyMySQL stops there too
            c = buf[p]
            if c < 0xFB:
                p += 1
                size = c
            elif c == 0xFB:
                p += 1
                row.append(None)
                continue
            elif c == 0xFC and p + 3 <= stop:
                size = buf[p + 1] | buf[p + 2] << 8
                p += 3
            elif c == 0xFD and p + 4 <= stop:
                size = buf[p + 1] | buf[p + 2] << 8 | buf[p + 3] << 16
                p += 4
            elif c == 0xFE and p + 9 <= stop:
                size = int.from_bytes(buf[p + 1 : p + 9], "little")
                p += 9
            else:  # 0xFF, or a length cut short: PyMySQL's to read (and to complain about)
                return pos, seq, OTHER
            if p + size > stop:
                return pos, seq, OTHER
            value: Any = buf[p : p + size]
            p += size
            if encoding is not None:
                value = value.decode(encoding)
            if fn is not None:
                value = fn(value)
            row.append(value)
        append(tuple(row))
        pos = stop
        seq = (seq + 1) & 0xFF


def py_scan_head(buf: bytes | bytearray, end: int, seq: int) -> Any:
    """Where the result set that starts ``buf`` has its parts: ``(ncols, defs, defs_end, pos,
    seq)`` -- the column definitions are ``buf[defs:defs_end]``, and the first row packet (with
    sequence number ``seq``) starts at ``pos`` after their EOF. ``None`` when it is not a plain
    result set (an OK, an ERR, LOAD DATA LOCAL, a sequence number out of step, 16 MiB packets:
    PyMySQL's to read); :data:`INCOMPLETE` when the definitions are not all in ``buf[:end]``."""
    if end < 4:
        return INCOMPLETE
    length = buf[0] | buf[1] << 8 | buf[2] << 16
    if 4 + length > end:
        return INCOMPLETE
    if buf[3] != seq or length == 0 or length >= 9:
        return None
    first = buf[4]
    if first < 0xFB:
        ncols = first
    elif first == 0xFC and length >= 3:
        ncols = buf[5] | buf[6] << 8
    elif first == 0xFD and length >= 4:
        ncols = buf[5] | buf[6] << 8 | buf[7] << 16
    else:
        return None  # 0xFB LOAD DATA LOCAL, 0xFE, 0xFF ERR; 0x00 (OK) is ncols == 0 below
    if ncols == 0:
        return None
    pos = 4 + length
    seq = (seq + 1) & 0xFF
    start = pos
    for _ in range(ncols + 1):  # the definitions, then their EOF
        if pos + 4 > end:
            return INCOMPLETE
        length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        if pos + 4 + length > end:
            return INCOMPLETE
        if buf[pos + 3] != seq or length == 0 or length >= MAX_PACKET or buf[pos + 4] == 0xFF:
            return None
        seq = (seq + 1) & 0xFF
        pos += 4 + length
    if length >= 9 or buf[pos - length] != 0xFE:
        return None  # PyMySQL asserts an EOF here
    return ncols, start, pos - 4 - length, pos, seq


def py_decode_response(buf: bytes, seq: int, plans: dict[bytes, Plan], decoders: Any) -> Any:
    """``buf`` -- a whole response -- decoded when it is exactly one plain result set whose plan
    is in ``plans`` (keyed by the column-definition bytes) and still valid for ``decoders``:
    ``(plan, rows, warning_count, status, next_seq)``, ``rows`` a tuple of tuples. :data:`MISS`
    when only the plan is missing (make it, store it, ask again); ``None`` for anything else:
    other responses, several results, an EOF too short to read, a converter that raises
    (PyMySQL's to read, and to raise)."""
    n = len(buf)
    walk = py_scan_head(buf, n, seq)
    if walk.__class__ is not tuple:
        return None
    _, start, defs_end, pos, seq = walk
    plan = plans.get(buf[start:defs_end])
    if plan is None or not plan.still_valid(decoders):
        return MISS
    rows: list[tuple[Any, ...]] = []
    try:
        pos, seq, stop = py_decode_rows(buf, pos, n, seq, plan, rows)
    except Exception:  # noqa: BLE001 - PyMySQL's to raise, the same way
        return None
    if stop != EOF:
        return None
    length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
    if pos + 4 + length != n or length < 5:
        return None
    status = buf[pos + 7] | buf[pos + 8] << 8
    if status & _MORE_RESULTS:
        return None  # several results: PyMySQL reads them (and the caller drops the rest)
    warning_count = buf[pos + 5] | buf[pos + 6] << 8
    if warning_count >= 0x8000:  # signed, as PyMySQL reads it
        warning_count -= 0x10000
    return plan, tuple(rows), warning_count, status, (seq + 1) & 0xFF


def py_skip_rows(buf: bytes | bytearray, pos: int, end: int) -> int:
    """The position of the first packet from ``pos`` that is not a complete, ordinary row packet
    (incomplete, 16 MiB or more, EOF or ERR): what the async face's response scanner would
    otherwise find one packet at a time. The pure version leaves the walk to the scanner."""
    return pos


def py_response_complete(buf: bytes, responses: int) -> bool:
    """True when ``buf`` is exactly ``responses`` whole responses, each an OK, an ERR or one
    result set, so the async face can take a first read as the answer without setting up its
    scanner; False when more is to come, and for anything the scanner should judge (several
    result sets, LOAD DATA LOCAL, packets of 16 MiB or more)."""
    n = len(buf)
    pos = 0
    state = 0  # 0: a response's first packet, 1: column definitions, 2: their EOF, 3: rows
    cols = 0
    while pos + 4 <= n:
        length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        end = pos + 4 + length
        if end > n or length >= MAX_PACKET:
            return False
        first = buf[pos + 4] if length else 0
        if state == 3:
            if first == 0xFE and length < 9:
                if length >= 5 and (buf[pos + 7] | buf[pos + 8] << 8) & _MORE_RESULTS:
                    return False
                responses -= 1
                state = 0
            elif first == 0xFF:
                responses -= 1
                state = 0
        elif state == 0:
            if responses <= 0 or not length:
                return False
            if first == 0x00:  # OK: affected rows, insert id (length-coded), then the flags
                p = pos + 5
                for _ in range(2):
                    if p >= end:
                        return False
                    c = buf[p]
                    p += 1 if c < 0xFB else 3 if c == 0xFC else 4 if c == 0xFD else 9
                if p + 2 > end or (buf[p] | buf[p + 1] << 8) & _MORE_RESULTS:
                    return False
                responses -= 1
            elif first == 0xFF:
                responses -= 1
            elif first < 0xFB:
                cols = first
                state = 1
            else:  # LOCAL INFILE (0xFB) or a wide column count: the scanner's to judge
                return False
        elif state == 1:
            cols -= 1
            if not cols:
                state = 2
        else:
            state = 3
        pos = end
    return pos == n and state == 0 and responses == 0


def py_make_dicts(rows: Sequence[tuple[Any, ...]], names: Sequence[str]) -> list[dict[str, Any]]:
    """DictCursor's rows (``dict(zip(names, row))``) for a list of tuples."""
    return [dict(zip(names, r)) for r in rows]


_rows_c: Any
try:  # the optional compiled accelerator (scripts/dev builds it in place)
    _rows_c = importlib.import_module(__name__ + "_c")
except ImportError:  # no compiler, or not built: the pure path does everything
    _rows_c = None

_accelerated = _rows_c is not None and os.environ.get("MYSQLPOOL_NO_ACCEL", "") in ("", "0")
decode_rows: Callable[..., tuple[int, int, int]] = (
    _rows_c.decode_rows if _accelerated else py_decode_rows
)
make_dicts: Callable[..., list[dict[str, Any]]] = (
    _rows_c.make_dicts if _accelerated else py_make_dicts
)
skip_rows: Callable[[Any, int, int], int] = _rows_c.skip_rows if _accelerated else py_skip_rows
scan_head: Callable[[Any, int, int], Any] = _rows_c.scan_head if _accelerated else py_scan_head
decode_response: Callable[..., Any] = (
    _rows_c.decode_response if _accelerated else py_decode_response
)
response_complete: Callable[[bytes, int], bool] = (
    _rows_c.response_complete if _accelerated else py_response_complete
)


def has_accelerator() -> bool:
    """True when the compiled decoder is built and importable (whether or not it is used)."""
    return _rows_c is not None


def accelerated() -> bool:
    """True when the compiled decoder is the one in use."""
    return _accelerated


def set_accelerated(on: bool) -> bool:
    """Use the compiled decoder (when built) or the pure one; returns what is in use now.

    For the benchmarks and the tests, which compare both in one process; applications choose
    with ``MYSQLPOOL_NO_ACCEL=1`` at start-up.
    """
    global _accelerated, decode_rows, make_dicts, skip_rows, response_complete, scan_head
    global decode_response
    _accelerated = bool(on) and _rows_c is not None
    if _accelerated:
        decode_rows = _rows_c.decode_rows
        make_dicts = _rows_c.make_dicts
        skip_rows = _rows_c.skip_rows
        response_complete = _rows_c.response_complete
        scan_head = _rows_c.scan_head
        decode_response = _rows_c.decode_response
    else:
        decode_rows = py_decode_rows
        make_dicts = py_make_dicts
        skip_rows = py_skip_rows
        response_complete = py_response_complete
        scan_head = py_scan_head
        decode_response = py_decode_response
    return _accelerated
