"""Byte-level differential: PyMySQL's ``_read_row_from_packet``, the pure decoder and the compiled
one on generated row packets -- odd dates, odd times, non-ASCII bytes in numeric columns, short
rows, garbage. No server: this reaches the values a server rarely sends (and the converters'
fall-backs) far more often than the server-side tests can.
"""

from __future__ import annotations

import decimal
import struct
from datetime import timedelta as _td
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysql.connections import MySQLResult
from pymysql.converters import convert_date, convert_datetime, convert_time, convert_timedelta
from pymysql.protocol import MysqlPacket

from mysqlpool_ext import _rows

CONVERTERS: list[tuple[str | None, Any]] = [
    ("ascii", int),
    ("utf8", None),
    (None, None),
    ("ascii", decimal.Decimal),
    ("ascii", convert_datetime),
    ("ascii", convert_date),
    ("ascii", convert_timedelta),
    ("ascii", float),
    ("utf8", str.upper),
    (None, convert_datetime),  # use_unicode=False: the converter gets bytes
    ("ascii", convert_time),
    ("cp1252", None),
]
PLAN = _rows.Plan(
    [SimpleNamespace(type_code=i, name=f"c{i}", table_name="t") for i in range(len(CONVERTERS))],
    (),
    CONVERTERS,
    {},
)

_d = "[0-9]"
_shapes = [
    rf"-?{_d}{{1,5}}-{_d}{{1,2}}-{_d}{{1,3}}[ T]"
    rf"{_d}{{1,2}}:{_d}{{1,3}}:{_d}{{1,2}}(\.{_d}{{0,8}})?",
    rf"{_d}{{4}}-{_d}{{2}}-{_d}{{2}} {_d}{{2}}:{_d}{{2}}:{_d}{{2}}(\.{_d}{{1,6}})?",
    rf"{_d}{{4}}-{_d}{{2}}-{_d}{{2}}",
    rf"[-+]?{_d}{{0,4}}:{_d}{{1,3}}:{_d}{{1,2}}(\.{_d}{{0,7}})?",
    rf"[-+ ]?{_d}{{0,22}}(\.{_d}{{0,5}})?(e-?{_d}{{1,3}})?",
]


def _mysql_time(td: Any) -> bytes:
    sign = "-" if td.days < 0 else ""
    total = abs(td)
    hours, rest = divmod(total.days * 86400 + total.seconds, 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return (text + (f".{total.microseconds:06d}" if total.microseconds else "")).encode()


# Values as MySQL prints them (the decoders' fast paths), then everything else.
_valid = st.one_of(
    st.dates().map(lambda d: d.isoformat().encode()),
    st.datetimes().map(lambda d: str(d).encode()),
    st.datetimes().map(lambda d: d.isoformat(" ", "milliseconds").encode()),
    st.timedeltas(min_value=-_td(hours=999), max_value=_td(hours=999)).map(_mysql_time),
    st.integers(-(2**70), 2**70).map(lambda i: str(i).encode()),
)
_field = st.one_of(
    st.none(),
    _valid,
    _valid,
    st.one_of(*(st.from_regex(s, fullmatch=True) for s in _shapes)).map(str.encode),
    st.sampled_from(
        [b"0000-00-00", b"0000-00-00 00:00:00", b"2024-02-30", b"1999-12-31 23:59:60", b""]
    ),
    st.text(max_size=12).map(lambda t: t.encode("utf-8")),
    st.binary(max_size=12),
    st.binary(min_size=251, max_size=300),  # two-byte lengths
)


def _lenenc(value: bytes | None) -> bytes:
    if value is None:
        return b"\xfb"
    n = len(value)
    if n < 0xFB:
        return bytes([n]) + value
    if n < 1 << 16:
        return b"\xfc" + struct.pack("<H", n) + value
    return b"\xfd" + struct.pack("<I", n)[:3] + value


def _packets(payloads: list[bytes], eof: bool = True) -> bytes:
    out = bytearray()
    for seq, payload in enumerate(payloads):
        out += struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload
    if eof:
        out += b"\x05\x00\x00" + bytes([len(payloads) & 0xFF]) + b"\xfe\x00\x00\x22\x00"
    return bytes(out)


def _outcome(fn: Any, *args: Any) -> Any:
    """``("ok", value)`` or ``("raised", type, message)``."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
        return ("raised", type(exc), str(exc))


def _shape(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [type(value), *(_shape(v) for v in value)]
    if (isinstance(value, decimal.Decimal) and value.is_nan()) or (
        isinstance(value, float) and value != value
    ):
        return (type(value), str(value))  # NaN equals nothing, not even itself: compare its text
    return (type(value), value)


def _pymysql_rows(payloads: list[bytes]) -> Any:
    result = MySQLResult(None)
    result.converters = CONVERTERS
    return [_shape(result._read_row_from_packet(MysqlPacket(p, "utf8"))) for p in payloads]


def _decode(decode: Any, buf: bytes) -> Any:
    out: list[Any] = []
    stop = decode(buf, 0, len(buf), 0, PLAN, out)
    return stop, [_shape(r) for r in out]


def _decoders() -> list[Any]:
    found = [_rows.py_decode_rows]
    if _rows.has_accelerator():
        found.append(_rows._rows_c.decode_rows)
    return found


@settings(max_examples=400, deadline=None)
@given(rows=st.lists(st.lists(_field, max_size=len(CONVERTERS) + 2), min_size=1, max_size=5))
def test_rows_agree_with_pymysql(rows: list[list[bytes | None]]) -> None:
    payloads = [b"".join(_lenenc(v) for v in row) for row in rows]
    if any(not p or p[0] in (0xFE, 0xFF) for p in payloads):
        return  # not a row packet (empty, EOF or ERR): the decoders stop, PyMySQL's business
    buf = _packets(payloads)
    expected = _outcome(_pymysql_rows, payloads)
    for decode in _decoders():
        got = _outcome(_decode, decode, buf)
        if expected[0] == "ok":
            assert got == ("ok", ((len(buf) - 9, len(payloads) & 0xFF, _rows.EOF), expected[1]))
        else:  # a decoder that raises hands the response to PyMySQL, which raises its own
            assert got[0] == "raised"


@settings(max_examples=600, deadline=None)
@given(col=st.integers(0, len(CONVERTERS) - 1), values=st.lists(_field, min_size=1, max_size=4))
def test_values_agree_with_pymysql(col: int, values: list[bytes | None]) -> None:
    """One value per row in one column, the others NULL: every value reaches its converter
    (in a row of random values, the first converter to raise hides the rest)."""
    payloads = [b"\xfb" * col + _lenenc(v) for v in values]
    if any(p[0] in (0xFE, 0xFF) for p in payloads):
        return
    buf = _packets(payloads)
    expected = _outcome(_pymysql_rows, payloads)
    for decode in _decoders():
        got = _outcome(_decode, decode, buf)
        if expected[0] == "ok":
            assert got == ("ok", ((len(buf) - 9, len(payloads) & 0xFF, _rows.EOF), expected[1]))
        else:  # a decoder that raises hands the response to PyMySQL, which raises its own
            assert got[0] == "raised"


@settings(max_examples=400, deadline=None)
@given(buf=st.binary(max_size=200), cut=st.integers(0, 200))
def test_decoders_agree_on_garbage(buf: bytes, cut: int) -> None:
    """Whatever the bytes, the two decoders stop at the same packet with the same rows."""
    if not _rows.has_accelerator():
        pytest.skip("compiled decoder not built")
    for data in (buf, _packets([buf[:cut], buf[cut:]], eof=False)):
        outcomes = [_outcome(_decode, decode, data)[:2] for decode in _decoders()]
        if outcomes[0][0] == "raised":  # either raise is PyMySQL's cue: the type may differ
            assert outcomes[1][0] == "raised"
        else:
            assert outcomes[0] == outcomes[1]


def test_truncated_buffers_stop_with_more() -> None:
    payload = b"".join(_lenenc(v) for v in [b"1", b"x" * 300, None, b"2.5"])
    buf = _packets([payload, payload])
    for decode in _decoders():
        for end in range(len(buf) - 9):
            out: list[Any] = []
            pos, seq, stop = decode(buf, 0, end, 0, PLAN, out)
            assert stop == _rows.MORE
            assert seq == (pos > 0)
            assert pos == (0 if end < 4 + len(payload) else 4 + len(payload))
            assert len(out) == (pos > 0)


def _skip_reference(buf: bytes, pos: int, end: int) -> int:
    """What the async face's scanner does in the rows state, one packet at a time."""
    while pos + 4 <= end:
        length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        if length >= 0xFFFFFF or pos + 4 + length > end:
            break
        first = buf[pos + 4] if length else 0
        if first == 0xFF or (first == 0xFE and length < 9):
            break
        pos += 4 + length
    return pos


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=12), max_size=8),
    start=st.integers(0, 8),
    cut=st.integers(0, 120),
)
def test_skip_rows(payloads: list[bytes], start: int, cut: int) -> None:
    if not _rows.has_accelerator():
        pytest.skip("compiled decoder not built")
    buf = _packets(payloads, eof=True)
    end = max(0, len(buf) - cut)
    start = min(start, end)
    for data in (buf, bytearray(buf)):
        assert _rows._rows_c.skip_rows(data, start, end) == _skip_reference(buf, start, end)
    assert _rows.py_skip_rows(buf, start, end) == start


def _packet(payload: bytes, seq: int = 0) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


_MORE = 0x0008  # SERVER_MORE_RESULTS_EXISTS: another result follows (the scanner's to walk)


def _ok(status: int) -> tuple[bytes, bool]:
    # affected rows 1, insert id 10000 (a 3-byte length-coded integer), flags, warnings
    payload = b"\x00\x01\xfc\x10\x27" + struct.pack("<HH", status, 0)
    return _packet(payload), not status & _MORE


def _result_set(ncols: int, rows: list[bytes], status: int) -> tuple[bytes, bool]:
    payloads = [bytes([ncols])]
    payloads += [b"\x03def" + b"c" * 20 for _ in range(ncols)]
    payloads.append(b"\xfe\x00\x00\x02\x00")
    payloads += [b"".join(_lenenc(v) for v in row) for row in rows]
    payloads.append(b"\xfe\x00\x00" + struct.pack("<H", status))
    out = b"".join(_packet(p, seq) for seq, p in enumerate(payloads))
    return out, not status & _MORE


_RESPONSE = st.one_of(
    st.builds(_ok, st.sampled_from([0x0002, 0x0002 | _MORE, 0x4002])),
    st.just((_packet(b"\xff\x28\x04#42000syntax"), True)),
    st.builds(
        _result_set,
        st.integers(1, 4),
        st.lists(st.lists(st.binary(max_size=12), min_size=1, max_size=4), max_size=5),
        st.sampled_from([0x0002, 0x0002 | _MORE, 0x0003]),
    ),
    st.just((_packet(b"\xfbdata.csv"), False)),  # LOAD DATA LOCAL: the scanner raises
    st.tuples(st.binary(max_size=30), st.just(False)),  # garbage
)


@settings(max_examples=400, deadline=None)
@given(responses=st.lists(_RESPONSE, min_size=1, max_size=3), cut=st.integers(0, 40))
def test_response_complete_agrees_with_the_scanner(
    responses: list[tuple[bytes, bool]], cut: int
) -> None:
    """The async face's first-read shortcut: the check (pure and compiled alike) says "complete"
    only where the scanner would have finished without error on the same bytes, and it does say
    it for whole OK / ERR / plain result-set answers (else the shortcut would never be taken)."""
    from mysqlpool_ext._wire_async import _Reader

    whole = b"".join(r for r, _ in responses)
    buf = whole[: max(0, len(whole) - cut)]
    count = len(responses)
    complete = _rows.py_response_complete(buf, count)
    if _rows.has_accelerator():
        assert _rows._rows_c.response_complete(buf, count) is complete
    if complete:
        reader = _Reader(None, count)  # type: ignore[arg-type] - fed directly, never reads
        assert reader.feed(buf)
        assert reader.error is None
        assert reader.result() == buf
    if cut == 0 and all(simple for _, simple in responses):
        assert complete


_RESULT_SET = st.builds(
    _result_set,
    st.integers(1, 4),
    st.lists(st.lists(st.binary(max_size=12), min_size=1, max_size=4), max_size=3),
    st.just(0x0002),
).map(lambda r: (r[0], True))


@settings(max_examples=400, deadline=None)
@given(
    head=st.one_of(_RESULT_SET, _RESPONSE.map(lambda r: (r[0], False))),
    seq=st.integers(0, 2),
    cut=st.integers(0, 40),
)
def test_scan_head_pure_and_compiled_agree(head: tuple[bytes, bool], seq: int, cut: int) -> None:
    """The walk over a result set's column definitions: same answer from both twins; a whole
    result set is found; where it finds one, the parts it names are the packets PyMySQL reads."""
    buf, result_set = head
    end = max(0, len(buf) - cut)
    found = _rows.py_scan_head(buf, end, seq)
    if _rows.has_accelerator():
        for data in (buf, bytearray(buf)):
            assert _rows._rows_c.scan_head(data, end, seq) == found
    if result_set and cut == 0 and seq == 0:
        assert isinstance(found, tuple)
    if isinstance(found, tuple):
        ncols, defs, defs_end, pos, next_seq = found
        assert buf[3] == seq and buf[4] == ncols
        assert defs < defs_end < pos <= end
        assert buf[defs_end + 4] == 0xFE  # the definitions' EOF follows them
        assert next_seq == (seq + ncols + 2) & 0xFF
    else:
        assert found is None or found == _rows.INCOMPLETE


@settings(max_examples=300, deadline=None)
@given(
    ncols=st.integers(1, 4),
    rows=st.lists(
        st.lists(st.one_of(st.none(), st.binary(max_size=10)), min_size=1, max_size=4),
        max_size=4,
    ),
    status=st.sampled_from([0x0002, 0x0003, 0x0002 | _MORE, 0x4002]),
    warnings=st.integers(0, 0xFFFF),
    known=st.booleans(),
    cut=st.integers(0, 6),
)
def test_decode_response_pure_and_compiled_agree(
    ncols: int, rows: list[list[bytes | None]], status: int, warnings: int, known: bool, cut: int
) -> None:
    """The async face's one-call decode of a whole response: both twins give the same answer
    (rows, warning count read signed as PyMySQL does, flags, next sequence number), MISS only for
    an unknown plan, None for a cut response or several results."""
    definitions = [b"\x03def" + bytes([0x61 + i]) * 20 for i in range(ncols)]
    payloads = [bytes([ncols]), *definitions, b"\xfe\x00\x00\x02\x00"]
    payloads += [b"".join(_lenenc(v) for v in row) for row in rows]
    payloads.append(b"\xfe" + struct.pack("<HH", warnings, status))
    whole = b"".join(_packet(p, seq) for seq, p in enumerate(payloads))
    buf = whole[: len(whole) - cut]
    key = b"".join(_packet(p, seq) for seq, p in enumerate(definitions, 1))
    plans = {key: PLAN} if known else {}
    found = _rows.py_decode_response(buf, 0, plans, {})
    if _rows.has_accelerator():
        assert _rows._rows_c.decode_response(buf, 0, plans, {}) == found
    first_row = 4 + 1 + len(key) + 4 + 5  # after the column count, definitions, their EOF
    expected: list[Any] = []
    try:
        _rows.py_decode_rows(whole, first_row, len(whole), ncols + 2, PLAN, expected)
    except Exception:  # noqa: BLE001 - a converter refused a value: PyMySQL reads (and raises)
        expected = []
        converter_raised = True
    else:
        converter_raised = False
    if not known:
        assert found == _rows.MISS  # asked before the rows are looked at
    elif cut or status & _MORE or converter_raised:
        assert found is None
    else:
        plan, decoded, warning_count, flags, next_seq = found
        assert plan is PLAN and decoded == tuple(expected)
        assert warning_count == struct.unpack("<h", struct.pack("<H", warnings))[0]
        assert flags == status and next_seq == len(payloads) & 0xFF
