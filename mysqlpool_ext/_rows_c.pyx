# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled twin of ``mysqlpool_ext._rows.py_decode_rows`` / ``py_make_dicts``.

Optional: ``bash scripts/dev`` builds it in place when Cython and a C compiler are there, and
``_rows`` falls back to the pure path when it is missing (or ``MYSQLPOOL_NO_ACCEL=1``). Same
signature, same stops, same values: the fast paths below only handle the shapes MySQL prints
(plain integers, ``YYYY-MM-DD HH:MM:SS[.ffffff]``, ``YYYY-MM-DD``, ``[-]HHH:MM:SS[.ffffff]``) and
give every other value to PyMySQL's own converter, exactly as ``_rows`` does.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.datetime cimport date_new, datetime_new, import_datetime, timedelta_new
from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_Append
from cpython.long cimport PyLong_FromLongLong
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport (
    PyUnicode_Decode,
    PyUnicode_DecodeASCII,
    PyUnicode_DecodeLatin1,
    PyUnicode_DecodeUTF8,
)

from decimal import Decimal

from pymysql.converters import convert_date, convert_datetime, convert_timedelta

import_datetime()

cdef enum:
    MORE = 0
    EOF = 1
    OTHER = 2

cdef enum:
    K_RAW = 0
    K_STR = 1
    K_INT = 2
    K_FLOAT = 3
    K_DECIMAL = 4
    K_DATETIME = 5
    K_DATE = 6
    K_TIMEDELTA = 7
    K_CALL = 8

cdef object _Decimal = Decimal
cdef object _convert_datetime = convert_datetime
cdef object _convert_date = convert_date
cdef object _convert_timedelta = convert_timedelta

cdef int _DAYS[13]
_DAYS[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


cdef inline bint _digits(const unsigned char* s, Py_ssize_t n, int* out):
    """n ASCII digits -> out; False if any is not a digit."""
    cdef int v = 0
    cdef Py_ssize_t i
    for i in range(n):
        if s[i] < 48 or s[i] > 57:
            return False
        v = v * 10 + (s[i] - 48)
    out[0] = v
    return True


cdef inline bint _valid_date(int y, int m, int d):
    if y < 1 or y > 9999 or m < 1 or m > 12 or d < 1:
        return False
    if m == 2 and (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        return d <= 29
    return d <= _DAYS[m]


cdef inline bint _fraction(const unsigned char* s, Py_ssize_t n, int* us):
    """``.`` + 1 to 6 digits (or nothing) -> microseconds, padded as PyMySQL pads them."""
    cdef int v = 0
    cdef Py_ssize_t i
    if n == 0:
        us[0] = 0
        return True
    if n < 2 or n > 7 or s[0] != 46:
        return False
    if not _digits(s + 1, n - 1, &v):
        return False
    for i in range(7 - n):
        v *= 10
    us[0] = v
    return True


cdef object _datetime(const unsigned char* s, Py_ssize_t n):
    cdef int y, mo, d, h, mi, sec, us
    if (
        n >= 19
        and s[4] == 45 and s[7] == 45 and s[10] == 32 and s[13] == 58 and s[16] == 58
        and _digits(s, 4, &y) and _digits(s + 5, 2, &mo) and _digits(s + 8, 2, &d)
        and _digits(s + 11, 2, &h) and _digits(s + 14, 2, &mi) and _digits(s + 17, 2, &sec)
        and _fraction(s + 19, n - 19, &us)
        and _valid_date(y, mo, d) and h < 24 and mi < 60 and sec < 60
    ):
        return datetime_new(y, mo, d, h, mi, sec, us, None)
    return _convert_datetime(PyUnicode_DecodeASCII(<const char*>s, n, NULL))


cdef object _date(const unsigned char* s, Py_ssize_t n):
    cdef int y, mo, d
    if (
        n == 10 and s[4] == 45 and s[7] == 45
        and _digits(s, 4, &y) and _digits(s + 5, 2, &mo) and _digits(s + 8, 2, &d)
        and _valid_date(y, mo, d)
    ):
        return date_new(y, mo, d)
    return _convert_date(PyUnicode_DecodeASCII(<const char*>s, n, NULL))


cdef object _timedelta(const unsigned char* s, Py_ssize_t n):
    """``convert_timedelta`` for ``[-]H{1,3}:MM:SS[.f{1,6}]``: the same normalised value."""
    cdef Py_ssize_t i = 0, j
    cdef int sign = 1, h, mi, sec, us
    cdef long long total
    if n > 0 and s[0] == 45:
        sign = -1
        i = 1
    j = i
    while j < n and j - i < 4 and s[j] != 58:
        j += 1
    if (
        1 <= j - i <= 3 and j + 6 <= n and s[j] == 58 and s[j + 3] == 58
        and _digits(s + i, j - i, &h) and _digits(s + j + 1, 2, &mi)
        and _digits(s + j + 4, 2, &sec) and _fraction(s + j + 6, n - j - 6, &us)
    ):
        total = (<long long>h) * 3600 + mi * 60 + sec
        return timedelta_new(0, <int>(sign * total), sign * us)
    return _convert_timedelta(PyUnicode_DecodeASCII(<const char*>s, n, NULL))


cdef object _int(const unsigned char* s, Py_ssize_t n):
    cdef Py_ssize_t i = 0
    cdef long long v = 0
    cdef bint neg = False
    if n > 0 and s[0] == 45:
        neg = True
        i = 1
    if n - i < 1 or n - i > 18:
        return int(PyUnicode_DecodeASCII(<const char*>s, n, NULL))
    while i < n:
        if s[i] < 48 or s[i] > 57:
            return int(PyUnicode_DecodeASCII(<const char*>s, n, NULL))
        v = v * 10 + (s[i] - 48)
        i += 1
    return PyLong_FromLongLong(-v if neg else v)


def decode_rows(bytes buf, Py_ssize_t pos, Py_ssize_t end, int seq, plan, list out):
    """See ``mysqlpool_ext._rows.py_decode_rows``: the same contract, compiled."""
    cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef tuple kinds = plan.kinds
    cdef tuple encodings = plan.c_encodings
    cdef tuple functions = plan.functions
    cdef Py_ssize_t ncols = len(kinds)
    cdef Py_ssize_t length, p, stop, size, i
    cdef unsigned int c
    cdef int kind
    cdef int* kind_of
    cdef int* enc_of
    cdef int mode
    cdef Py_ssize_t filled
    cdef const unsigned char* v
    cdef tuple row_t
    cdef object value, enc, fn
    if end > len(buf):
        raise ValueError("end is past the buffer")
    kind_of = <int*>PyMem_Malloc(2 * max(ncols, 1) * sizeof(int))
    if kind_of == NULL:
        raise MemoryError()
    enc_of = kind_of + max(ncols, 1)
    try:
        for i in range(ncols):
            kind_of[i] = kinds[i]
            enc = encodings[i]
            # Codecs CPython also takes these fast paths for (no name lookup per value).
            if enc in (b"utf8", b"utf-8", b"utf_8"):
                enc_of[i] = 1
            elif enc in (b"latin1", b"latin-1", b"iso-8859-1", b"iso8859-1"):
                enc_of[i] = 2
            elif enc == b"ascii":
                enc_of[i] = 3
            else:
                enc_of[i] = 0
        while True:
            if pos + 4 > end:
                return pos, seq, MORE
            length = b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16)
            p = pos + 4
            stop = p + length
            if stop > end:
                return pos, seq, MORE
            if b[pos + 3] != seq or length >= 0xFFFFFF or length == 0:
                return pos, seq, OTHER
            c = b[p]
            if c == 0xFE and length < 9:
                return pos, seq, EOF
            if c == 0xFF:
                return pos, seq, OTHER
            row_t = PyTuple_New(ncols)
            filled = 0
            for i in range(ncols):
                if p >= stop:
                    break  # fewer fields than columns: PyMySQL stops there too
                c = b[p]
                if c < 0xFB:
                    size = c
                    p += 1
                elif c == 0xFB:
                    p += 1
                    Py_INCREF(None)
                    PyTuple_SET_ITEM(row_t, i, None)
                    filled += 1
                    continue
                elif c == 0xFC and p + 3 <= stop:
                    size = b[p + 1] | (b[p + 2] << 8)
                    p += 3
                elif c == 0xFD and p + 4 <= stop:
                    size = b[p + 1] | (b[p + 2] << 8) | (b[p + 3] << 16)
                    p += 4
                elif c == 0xFE and p + 9 <= stop:
                    if b[p + 5] or b[p + 6] or b[p + 7] or b[p + 8] or b[p + 4] & 0x80:
                        return pos, seq, OTHER  # >= 2 GiB: cannot be in this packet anyway
                    size = (
                        <Py_ssize_t>b[p + 1] | (<Py_ssize_t>b[p + 2] << 8)
                        | (<Py_ssize_t>b[p + 3] << 16) | (<Py_ssize_t>b[p + 4] << 24)
                    )
                    p += 9
                else:
                    return pos, seq, OTHER
                if size > stop - p:
                    return pos, seq, OTHER
                v = b + p
                p += size
                kind = kind_of[i]
                if kind == K_STR:
                    mode = enc_of[i]
                    if mode == 1:
                        value = PyUnicode_DecodeUTF8(<const char*>v, size, NULL)
                    elif mode == 2:
                        value = PyUnicode_DecodeLatin1(<const char*>v, size, NULL)
                    elif mode == 3:
                        value = PyUnicode_DecodeASCII(<const char*>v, size, NULL)
                    else:
                        value = PyUnicode_Decode(<const char*>v, size, <bytes>encodings[i], NULL)
                elif kind == K_INT:
                    value = _int(v, size)
                elif kind == K_DATETIME:
                    value = _datetime(v, size)
                elif kind == K_DECIMAL:
                    value = _Decimal(PyUnicode_DecodeASCII(<const char*>v, size, NULL))
                elif kind == K_RAW:
                    value = PyBytes_FromStringAndSize(<const char*>v, size)
                elif kind == K_FLOAT:
                    value = float(PyUnicode_DecodeASCII(<const char*>v, size, NULL))
                elif kind == K_DATE:
                    value = _date(v, size)
                elif kind == K_TIMEDELTA:
                    value = _timedelta(v, size)
                else:
                    enc = encodings[i]
                    if enc is None:
                        value = PyBytes_FromStringAndSize(<const char*>v, size)
                    else:
                        value = PyUnicode_Decode(<const char*>v, size, <bytes>enc, NULL)
                    fn = functions[i]
                    if fn is not None:
                        value = fn(value)
                Py_INCREF(value)
                PyTuple_SET_ITEM(row_t, i, value)
                filled += 1
            if filled < ncols:
                row_t = row_t[:filled]
            PyList_Append(out, row_t)
            pos = stop
            seq = (seq + 1) & 0xFF
    finally:
        PyMem_Free(kind_of)


def make_dicts(rows, tuple names):
    """DictCursor's rows (``dict(zip(names, row))``) for a sequence of tuples."""
    cdef list result = []
    cdef tuple row
    cdef dict d
    cdef Py_ssize_t i, n
    cdef Py_ssize_t width = len(names)
    for row in rows:
        d = {}
        n = min(len(row), width)
        for i in range(n):
            PyDict_SetItem(d, names[i], row[i])
        PyList_Append(result, d)
    return result


cdef const unsigned char* _bytes_of(buf, Py_ssize_t end) except NULL:
    """The bytes of a ``bytes`` or ``bytearray``, checked to hold at least ``end`` of them."""
    if isinstance(buf, bytearray):
        if end > PyByteArray_GET_SIZE(buf):
            raise ValueError("end is past the buffer")
        return <const unsigned char*>PyByteArray_AS_STRING(buf)
    if end > len(<bytes>buf):
        raise ValueError("end is past the buffer")
    return <const unsigned char*>PyBytes_AS_STRING(<bytes>buf)


def skip_rows(buf, Py_ssize_t pos, Py_ssize_t end):
    """See ``mysqlpool_ext._rows.py_skip_rows``: the same answer, compiled."""
    cdef const unsigned char* b
    cdef Py_ssize_t length
    b = _bytes_of(buf, end)
    while pos + 4 <= end:
        length = b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16)
        if length >= 0xFFFFFF or pos + 4 + length > end:
            return pos
        if length and (b[pos + 4] == 0xFF or (b[pos + 4] == 0xFE and length < 9)):
            return pos
        pos += 4 + length
    return pos


def response_complete(bytes buf, int responses):
    """See ``mysqlpool_ext._rows.py_response_complete``: the same walk, compiled."""
    cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t n = len(buf)
    cdef Py_ssize_t pos = 0, length, end, p
    cdef int state = 0  # 0 first packet, 1 column definitions, 2 their EOF, 3 rows
    cdef unsigned long long cols = 0
    cdef unsigned char first, c
    cdef unsigned int status
    while pos + 4 <= n:
        length = b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16)
        end = pos + 4 + length
        if end > n or length >= 0xFFFFFF:
            return False
        first = b[pos + 4] if length else 0
        if state == 3:
            if first == 0xFE and length < 9:
                status = (b[pos + 7] | (b[pos + 8] << 8)) if length >= 5 else 0
                if status & 0x0008:  # SERVER_MORE_RESULTS_EXISTS: the scanner walks those
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
                    c = b[p]
                    p += 1 if c < 0xFB else 3 if c == 0xFC else 4 if c == 0xFD else 9
                if p + 2 > end or (b[p] | (b[p + 1] << 8)) & 0x0008:
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


def scan_head(buf, Py_ssize_t end, int seq):
    """See ``mysqlpool_ext._rows.py_scan_head``: the same walk, compiled."""
    cdef const unsigned char* b
    cdef Py_ssize_t length, pos, start, i, ncols
    b = _bytes_of(buf, end)
    if end < 4:
        return -1
    length = b[0] | (b[1] << 8) | (b[2] << 16)
    if 4 + length > end:
        return -1
    if b[3] != seq or length == 0 or length >= 9:
        return None
    if b[4] < 0xFB:
        ncols = b[4]
    elif b[4] == 0xFC and length >= 3:
        ncols = b[5] | (b[6] << 8)
    elif b[4] == 0xFD and length >= 4:
        ncols = b[5] | (b[6] << 8) | (b[7] << 16)
    else:
        return None
    if ncols == 0:
        return None
    pos = 4 + length
    seq = (seq + 1) & 0xFF
    start = pos
    for i in range(ncols + 1):
        if pos + 4 > end:
            return -1
        length = b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16)
        if pos + 4 + length > end:
            return -1
        if b[pos + 3] != seq or length == 0 or length >= 0xFFFFFF or b[pos + 4] == 0xFF:
            return None
        seq = (seq + 1) & 0xFF
        pos += 4 + length
    if length >= 9 or b[pos - length] != 0xFE:
        return None
    return ncols, start, pos - 4 - length, pos, seq


def decode_response(bytes buf, int seq, dict plans, dict decoders):
    """See ``mysqlpool_ext._rows.py_decode_response``: the same answers, compiled."""
    cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t n = len(buf)
    cdef Py_ssize_t pos, length, i
    cdef int stop, status, warning_count
    cdef tuple type_codes, known
    cdef list rows
    walk = scan_head(buf, n, seq)
    if type(walk) is not tuple:
        return None
    _, start, defs_end, pos, seq = walk
    plan = plans.get(buf[start:defs_end])
    if plan is None:
        return -2
    type_codes = plan.type_codes
    known = plan.decoders
    for i in range(len(type_codes)):  # Plan.still_valid
        if decoders.get(type_codes[i]) is not known[i]:
            return -2
    rows = []
    try:
        pos, seq, stop = decode_rows(buf, pos, n, seq, plan, rows)
    except Exception:
        return None
    if stop != EOF:
        return None
    length = b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16)
    if pos + 4 + length != n or length < 5:
        return None
    status = b[pos + 7] | (b[pos + 8] << 8)
    if status & 0x0008:
        return None
    warning_count = <short>(b[pos + 5] | (b[pos + 6] << 8))
    return plan, tuple(rows), warning_count, status, (seq + 1) & 0xFF
