"""The result-set decoder against PyMySQL's own cursor, on a real server: the same values and types.

Every query runs through plain PyMySQL (the reference: ``pymysql.connect``, a cursor) and through
ours, both faces (``mysqlpool_ext.Connection`` -> ``_fastresult.read_result_sync``; the pool's
async face -> ``read_result_async``), with the compiled decoder and with the pure one. Rows,
Python types, descriptions and the result's attributes must be PyMySQL's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.converters
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysql.constants import FIELD_TYPE, SERVER_STATUS

from mysqlpool_ext import Connection, ConnectionPool, _fastresult, _rows, _wire_async

DECODERS = [
    pytest.param(False, id="pure"),
    pytest.param(
        True,
        id="accel",
        marks=pytest.mark.skipif(
            not _rows.has_accelerator(), reason="compiled decoder not built (bash scripts/dev)"
        ),
    ),
]


@pytest.fixture(params=DECODERS)
def accel(request: pytest.FixtureRequest) -> Iterator[bool]:
    before = _rows.accelerated()
    assert _rows.set_accelerated(request.param) == request.param
    try:
        yield request.param
    finally:
        _rows.set_accelerated(before)


# -- the table: every column type ---------------------------------------------------------------

COLUMNS = [
    ("ti", "TINYINT"),
    ("tiu", "TINYINT UNSIGNED"),
    ("si", "SMALLINT"),
    ("siu", "SMALLINT UNSIGNED"),
    ("mi", "MEDIUMINT"),
    ("miu", "MEDIUMINT UNSIGNED"),
    ("i", "INT"),
    ("iu", "INT UNSIGNED"),
    ("bi", "BIGINT"),
    ("biu", "BIGINT UNSIGNED"),
    ("f", "FLOAT"),
    ("d", "DOUBLE"),
    ("dec", "DECIMAL(65,30)"),
    ("dec2", "DECIMAL(10,2)"),
    ("dt", "DATE"),
    ("tm", "TIME"),
    ("tm6", "TIME(6)"),
    ("dtm", "DATETIME"),
    ("dtm3", "DATETIME(3)"),
    ("dtm6", "DATETIME(6)"),
    ("ts", "TIMESTAMP NULL"),
    ("ts6", "TIMESTAMP(6) NULL"),
    ("yr", "YEAR"),
    ("ch", "CHAR(10) CHARACTER SET utf8mb4"),
    ("vc", "VARCHAR(300) CHARACTER SET utf8mb4"),
    ("vl", "VARCHAR(300) CHARACTER SET latin1"),
    ("vb", "VARCHAR(300) CHARACTER SET binary"),
    ("tx", "TEXT CHARACTER SET utf8mb4"),
    ("mtx", "MEDIUMTEXT CHARACTER SET utf8mb4"),
    ("bn", "BINARY(4)"),
    ("vbn", "VARBINARY(300)"),
    ("bl", "BLOB"),
    ("lbl", "LONGBLOB"),
    ("b1", "BIT(1)"),
    ("b64", "BIT(64)"),
    ("en", "ENUM('a','bé','c')"),
    ("st", "SET('x','y','z')"),
    ("js", "JSON"),
    ("geo", "GEOMETRY"),
]

# Rows as SQL literals (None: NULL); columns not named are NULL.
ROWS: list[dict[str, str]] = [
    {},  # all NULL
    {
        "ti": "-128",
        "tiu": "255",
        "si": "-32768",
        "siu": "65535",
        "mi": "-8388608",
        "miu": "16777215",
        "i": "-2147483648",
        "iu": "4294967295",
        "bi": "-9223372036854775808",
        "biu": "18446744073709551615",
        "f": "-3.40282e38",
        "d": "-1.7976931348623157e308",
        "dec": "-99999999999999999999999999999999999.999999999999999999999999999999",
        "dec2": "-99999999.99",
        "dt": "'1000-01-01'",
        "tm": "'-838:59:59'",
        "tm6": "'-838:59:58.999999'",
        "dtm": "'1000-01-01 00:00:00'",
        "dtm3": "'1000-01-01 00:00:00.001'",
        "dtm6": "'9999-12-31 23:59:59.999999'",
        "ts": "'1970-01-02 00:00:01'",
        "ts6": "'2038-01-19 03:14:07.999999'",
        "yr": "1901",
        "ch": "''",
        "vc": "''",
        "vl": "''",
        "vb": "''",
        "tx": "''",
        "mtx": "''",
        "bn": "x'00000000'",
        "vbn": "''",
        "bl": "''",
        "lbl": "''",
        "b1": "b'0'",
        "b64": "b'0'",
        "en": "'a'",
        "st": "''",
        "js": "'null'",
        "geo": "ST_GeomFromText('POINT(0 0)')",
    },
    {
        "ti": "127",
        "tiu": "0",
        "si": "32767",
        "siu": "0",
        "mi": "8388607",
        "miu": "0",
        "i": "2147483647",
        "iu": "0",
        "bi": "9223372036854775807",
        "biu": "0",
        "f": "1.5",
        "d": "0.1",
        "dec": "0.000000000000000000000000000001",
        "dec2": "0.00",
        "dt": "'9999-12-31'",
        "tm": "'838:59:59'",
        "tm6": "'00:00:00.000001'",
        "dtm": "'2024-02-29 23:59:59'",
        "dtm3": "'2024-02-29 10:11:12.5'",
        "dtm6": "'2024-02-29 10:11:12.000001'",
        "ts": "CURRENT_TIMESTAMP",
        "ts6": "'2024-01-01 00:00:00.5'",
        "yr": "2155",
        "ch": "'héllo 🐍'",
        "vc": "'日本語 ✓ 🐍 \\\\ '' \"'",
        "vl": "'déjà vu €'",
        "vb": "'\\0\\n'",
        "tx": "REPEAT('é', 300)",
        "mtx": "REPEAT('ab🐍', 30000)",
        "bn": "x'ff00ff00'",
        "vbn": "x'00ff'",
        "bl": "x'00010203fffe'",
        "lbl": "REPEAT(x'00ff', 40000)",
        "b1": "b'1'",
        "b64": "b'" + "1" * 64 + "'",
        "en": "'bé'",
        "st": "'x,z'",
        "js": """'{"a": [1, 2.5, "é", null, true], "b": {}}'""",
        "geo": "ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))')",
    },
    {  # zero and invalid dates (kept by this session's sql_mode), odd times
        "dt": "'0000-00-00'",
        "dtm": "'0000-00-00 00:00:00'",
        "dtm3": "'2020-02-30 00:00:00'",
        "dtm6": "'0000-00-00 00:00:00.000000'",
        "ts": "'0000-00-00 00:00:00'",
        "tm": "'00:00:00'",
        "tm6": "'-00:00:00.5'",
        "yr": "0",
        "dec": "0",
        "f": "-0",
        "d": "1e-300",
        "st": "'x,y,z'",
        "en": "''",
        "js": "'[]'",
        "vc": "'   trailing   '",
        "ch": "'a'",
    },
]


@pytest.fixture
def types_table(admin: pymysql.connections.Connection, db_kwargs: dict[str, Any]) -> Iterator[str]:
    name = f"rows_types_{uuid.uuid4().hex[:8]}"
    db = db_kwargs["database"]
    with admin.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES', time_zone = '+00:00'")
        cols = ", ".join(f"`{c}` {t}" for c, t in COLUMNS)
        cur.execute(
            f"CREATE TABLE `{db}`.`{name}` (id INT PRIMARY KEY, {cols}) "
            "DEFAULT CHARSET=utf8mb4 ENGINE=InnoDB"
        )
        for n, row in enumerate(ROWS):
            names = ", ".join(["id", *(f"`{c}`" for c in row)])
            values = ", ".join([str(n), *row.values()])
            cur.execute(f"INSERT INTO `{db}`.`{name}` ({names}) VALUES ({values})")
    yield f"`{db}`.`{name}`"
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{db}`.`{name}`")


# -- running a query both ways ------------------------------------------------------------------


def _shape(value: Any) -> Any:
    """Values with their exact types, so ``1 == 1.0 == True`` cannot hide a difference."""
    if isinstance(value, (list, tuple)):
        return (type(value), [_shape(v) for v in value])
    if isinstance(value, dict):
        return (dict, [(k, _shape(v)) for k, v in value.items()])
    if isinstance(value, float) and value != value:
        return (float, "nan")
    return (type(value), value)


def _result_attrs(conn: Any) -> dict[str, Any]:
    result = conn._result
    state = {
        k: getattr(result, k, None)
        for k in (
            "affected_rows",
            "insert_id",
            "warning_count",
            "message",
            "field_count",
            "description",
            "has_next",
            "unbuffered_active",
            "connection",
            "server_status",  # None after a result set: PyMySQL reads it from OK packets only
        )
    }
    state["fields"] = [vars(f) for f in getattr(result, "fields", [])]
    state["converters"] = getattr(result, "converters", None)
    state["attributes"] = sorted(vars(result))
    state["conn_affected"] = conn._affected_rows
    return state


def _run(conn: Any, query: str, args: Any, cursorclass: Any) -> tuple[Any, Any, Any, Any]:
    cur = conn.cursor(cursorclass)
    try:
        count = cur.execute(query, args)
        rows = cur.fetchall()
        return count, rows, cur.description, _result_attrs(conn)
    finally:
        cur.close()


def compare(
    db_kwargs: dict[str, Any],
    query: str,
    args: Any = None,
    *,
    cursorclass: Any = None,
    setup: tuple[str, ...] = (),
    fast: bool = True,
    **connect: Any,
) -> Any:
    """Run ``query`` on plain PyMySQL and on ours (sync face, then async face); assert the same.

    ``fast``: the decoder must read the result itself (PyMySQL's reader is never called), so a
    decoder that gave every result to PyMySQL could not pass unnoticed.
    """
    kwargs = {**db_kwargs, **connect}
    ref = pymysql.connect(**kwargs)
    ours = Connection(**kwargs)
    try:
        for conn in (ref, ours):
            with conn.cursor() as cur:
                for sql in setup:
                    cur.execute(sql)
        expected = _run(ref, query, args, cursorclass)
        for _ in range(2):  # the first run makes the plan, the second reuses it
            with _count(_fastresult, "_base_read_query_result") as slow:
                got = _run(ours, query, args, cursorclass)
            assert _shape(got[1]) == _shape(expected[1])
            assert got == expected
            if fast:
                assert slow == [], "PyMySQL read the result, not the decoder"
    finally:
        ref.close()
        ours.close()
    if cursorclass in (None, pymysql.cursors.DictCursor) and not setup and args is None:
        dicts = cursorclass is pymysql.cursors.DictCursor
        _compare_async(kwargs, query, expected[1], dicts, fast)
    return expected[1]


@contextlib.contextmanager
def _count(module: Any, name: str) -> Iterator[list[int]]:
    """Count the calls of ``module.name`` within the block."""
    calls: list[int] = []
    original = getattr(module, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    setattr(module, name, counting)
    try:
        yield calls
    finally:
        setattr(module, name, original)


def _compare_async(
    kwargs: dict[str, Any], query: str, expected: Any, dicts: bool, fast: bool
) -> None:
    async def main() -> None:
        pool = ConnectionPool(size=1, max_size=1, **kwargs)
        try:
            for _ in range(2):
                with _count(_wire_async, "_parse") as slow:
                    got = await pool.aexecute_query(query, dictcursor=dicts)
                assert _shape(got) == _shape(expected)
                if fast:
                    assert slow == [], "PyMySQL parsed the result, not the decoder"
        finally:
            await pool.aclose()

    asyncio.run(main())


# -- the tests ----------------------------------------------------------------------------------


def test_every_column_type(db_kwargs: dict[str, Any], types_table: str, accel: bool) -> None:
    rows = compare(db_kwargs, f"SELECT * FROM {types_table} ORDER BY id")
    assert len(rows) == len(ROWS)
    # The decoder really met the kinds it specialises (not all strings by accident).
    full = rows[2]
    assert isinstance(full[COLUMNS.index(("dtm6", "DATETIME(6)")) + 1], datetime.datetime)
    assert isinstance(full[COLUMNS.index(("dec", "DECIMAL(65,30)")) + 1], decimal.Decimal)
    assert isinstance(full[COLUMNS.index(("tm", "TIME")) + 1], datetime.timedelta)
    zero = rows[3]
    assert zero[COLUMNS.index(("dtm", "DATETIME")) + 1] == "0000-00-00 00:00:00"


@pytest.mark.parametrize(
    "connect",
    [
        pytest.param({}, id="default"),
        pytest.param({"charset": "latin1"}, id="latin1"),
        pytest.param({"charset": "utf8mb4", "use_unicode": False}, id="use_unicode_false"),
        pytest.param({"binary_prefix": True}, id="binary_prefix"),
    ],
)
@pytest.mark.parametrize("cursor", ["tuple", "dict"])
def test_types_by_connection_options(
    db_kwargs: dict[str, Any], types_table: str, accel: bool, connect: dict[str, Any], cursor: str
) -> None:
    cursorclass = pymysql.cursors.DictCursor if cursor == "dict" else None
    # Without use_unicode PyMySQL hands DECIMAL's bytes to Decimal(), which refuses them
    # (test_converter_error_is_pymysqls): leave those columns out here.
    cols = "*"
    if connect.get("use_unicode") is False:
        cols = ", ".join(c for c, _ in COLUMNS if not c.startswith("dec"))
    compare(
        db_kwargs,
        f"SELECT {cols} FROM {types_table} ORDER BY id",
        cursorclass=cursorclass,
        **connect,
    )


def test_custom_conv(db_kwargs: dict[str, Any], types_table: str, accel: bool) -> None:
    conv = dict(pymysql.converters.conversions)
    conv[FIELD_TYPE.DATETIME] = str
    conv[FIELD_TYPE.LONG] = lambda s: ("long", s)
    conv[FIELD_TYPE.NEWDECIMAL] = float
    conv[FIELD_TYPE.TIME] = pymysql.converters.convert_time
    del conv[FIELD_TYPE.DATE]
    compare(db_kwargs, f"SELECT * FROM {types_table} ORDER BY id", conv=conv)


def test_decoders_changed_in_place_are_noticed(
    db_kwargs: dict[str, Any], types_table: str, accel: bool
) -> None:
    """PyMySQL looks converters up per result set: a decoders dict changed after connecting
    applies to the next result set. The decoder's cached plan must notice."""
    query = f"SELECT i, dtm FROM {types_table} ORDER BY id"
    with Connection(**db_kwargs) as ours:
        first = ours.execute_query(query)
        assert isinstance(first[2][1], datetime.datetime)
        ours.decoders[FIELD_TYPE.DATETIME] = str
        second = ours.execute_query(query)
        assert second[2][1] == str(first[2][1])


EXPRESSIONS = [
    "SELECT 1",
    "SELECT NULL",
    "SELECT 1, NULL, 'x', 2.5, 1e100, -0.0, CAST(1 AS UNSIGNED)",
    "SELECT 1 AS a, 2 AS a, NULL AS b",
    "SELECT JSON_OBJECT('k', 'é', 'n', 1.5), JSON_ARRAY(1, NULL)",
    "SELECT _latin1 X'636166E9', _binary X'FF00', X'C3A9', _utf8mb4'🐍', _latin1 X'80'",
    "SELECT REPEAT('x', 250), REPEAT('y', 251), REPEAT('z', 65535), REPEAT('w', 65536)",
    "SELECT REPEAT('é', 70000), REPEAT(x'00', 1 << 20)",
    "SELECT CAST('2020-01-01 10:00:00.5' AS DATETIME(1)), CAST('10:00:00.25' AS TIME(2))",
    "SELECT CAST('-00:00:01' AS TIME), CAST('100:00:00' AS TIME), MAKETIME(-1, 2, 3)",
    "SELECT DATE('2024-02-29'), CURDATE() > '2000-01-01', NOW(6) > '2000-01-01'",
    "SELECT 18446744073709551615, -9223372036854775808, 12345678901234567890123",
    "SELECT 0.1 + 0.2, 1/3, CAST(1 AS DECIMAL(65, 30)), -CAST(0 AS DECIMAL)",
    "SELECT b'101', 0x41, CAST(65 AS BINARY), CONVERT('ä' USING latin1)",
    "SELECT ST_GeomFromText('POINT(1 2)'), ST_AsText(ST_GeomFromText('POINT(1 2)'))",
    "SELECT * FROM (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT NULL) t",
    "SELECT seq, CONCAT('r', seq), seq / 7 FROM seq_1_to_300",
    "SELECT 1 FROM DUAL WHERE FALSE",
    "SELECT 'only', 'columns' LIMIT 0",
]


@pytest.mark.parametrize("query", EXPRESSIONS)
def test_expressions(db_kwargs: dict[str, Any], accel: bool, query: str) -> None:
    compare(db_kwargs, query)


def test_wide_result(db_kwargs: dict[str, Any], accel: bool) -> None:
    """More column definitions than one read of the socket holds."""
    cols = ", ".join(f"{i} AS column_with_a_rather_long_name_{i}" for i in range(600))
    compare(db_kwargs, f"SELECT {cols}")
    compare(db_kwargs, f"SELECT {cols}", cursorclass=pymysql.cursors.DictCursor)


def test_value_over_16_mib(
    db_kwargs: dict[str, Any], admin: pymysql.connections.Connection, accel: bool
) -> None:
    """A row of 16 MiB or more spans several packets: PyMySQL reads it; the result is the same
    and the connection stays in step for the next query."""
    with admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_allowed_packet")
        (before,) = cur.fetchone()
        cur.execute("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
    try:
        size = 17 * 1024 * 1024
        query = f"SELECT 1, REPEAT('a', {size}), 'after', REPEAT(x'ff', 10)"
        rows = compare(db_kwargs, query, fast=False)
        assert len(rows[0][1]) == size
        with Connection(**db_kwargs) as ours:
            assert len(ours.execute_query(query)[0][1]) == size
            assert ours.execute_query("SELECT 2") == ((2,),)
            # a 16 MiB row among ordinary ones
            got = ours.execute_query(
                f"SELECT n, IF(n = 2, REPEAT('b', {size}), 'x') FROM "
                "(SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) t ORDER BY n"
            )
            assert [len(r[1]) for r in got] == [1, size, 1]
    finally:
        with admin.cursor() as cur:
            cur.execute(f"SET GLOBAL max_allowed_packet = {int(before)}")


def test_multi_result_sets(db_kwargs: dict[str, Any], accel: bool) -> None:
    from pymysql.constants import CLIENT

    kwargs = {**db_kwargs, "client_flag": CLIENT.MULTI_STATEMENTS}
    query = "SELECT 1, 'a'; SELECT 2.5, NOW() > '2000-01-01'; DO 1; SELECT NULL"
    results = []
    for cls in (pymysql.connect, Connection):
        conn = cls(**kwargs)
        try:
            cur = conn.cursor()
            cur.execute(query)
            got = [cur.fetchall()]
            while cur.nextset():
                got.append(cur.fetchall())
            got.append(conn.query("SELECT 3"))
            results.append(_shape(got))
        finally:
            conn.close()
    assert results[0] == results[1]


def test_errors_are_pymysqls(db_kwargs: dict[str, Any], accel: bool) -> None:
    for query in ("SELECT * FROM no_such_table_xyz", "SELEKT 1"):
        errors = []
        for cls in (pymysql.connect, Connection):
            conn = cls(**db_kwargs)
            try:
                with pytest.raises(pymysql.err.MySQLError) as info:
                    conn.cursor().execute(query)
                errors.append((type(info.value), info.value.args))
                assert conn.cursor().execute("SELECT 5") == 1  # still in step
            finally:
                conn.close()
        assert errors[0] == errors[1]


def test_error_in_the_middle_of_rows(db_kwargs: dict[str, Any], accel: bool) -> None:
    """An ERR packet after some rows (here: a statement timeout while rows stream)."""
    query = (
        "SET STATEMENT max_statement_time=0.3 FOR "
        "SELECT seq, SLEEP(IF(seq = 3000, 1, 0)) FROM seq_1_to_5000"
    )
    outcomes = []
    for cls in (pymysql.connect, Connection):
        conn = cls(**db_kwargs)
        try:
            try:
                rows = conn.cursor().execute(query)
                outcomes.append(("rows", rows))
            except pymysql.err.MySQLError as exc:
                outcomes.append((type(exc), exc.args[0]))
            cur = conn.cursor()
            cur.execute("SELECT 6")
            assert cur.fetchall() == ((6,),)
        finally:
            conn.close()
    assert outcomes[0] == outcomes[1]


def test_converter_error_is_pymysqls(db_kwargs: dict[str, Any], accel: bool) -> None:
    """A converter that raises (Decimal() of bytes, without use_unicode): PyMySQL's exception."""
    errors = []
    for cls in (pymysql.connect, Connection):
        conn = cls(**db_kwargs, use_unicode=False)
        try:
            with pytest.raises(TypeError) as info:
                conn.cursor().execute("SELECT 1, CAST(1.5 AS DECIMAL(4,2))")
            errors.append(info.value.args)
        finally:
            conn.close()
    assert errors[0] == errors[1]


_TRANS_BITS = SERVER_STATUS.SERVER_STATUS_IN_TRANS | SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT


def test_eof_status_flags_are_kept(
    db_kwargs: dict[str, Any], types_table: str, accel: bool
) -> None:
    """PyMySQL does not store the status flags of the EOF that ends a result set; ours does:
    after a SELECT in a fresh transaction the flags say so, as a ping (OK packet) would."""
    with Connection(**db_kwargs, autocommit=False) as conn:
        conn.query("ROLLBACK")
        assert not conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS
        conn.execute_query(f"SELECT id FROM {types_table}")
        assert conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS
        assert conn._result.server_status is None  # as PyMySQL leaves a result set's
        seen = conn.server_status & _TRANS_BITS
        conn.ping(reconnect=False)
        assert conn.server_status & _TRANS_BITS == seen
        conn.query("ROLLBACK")

    async def main() -> None:
        pool = ConnectionPool(size=1, max_size=1, **db_kwargs, autocommit=False)
        try:
            async with pool.aconnection() as conn:
                await conn.aexecute_query(f"SELECT id FROM {types_table}")
                assert conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS
        finally:
            await pool.aclose()

    asyncio.run(main())


_HOSTILE = "\\' , CURRENT_USER(), @@version -- "
_NBE = SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES


@pytest.mark.parametrize("session_mode", ["", "NO_BACKSLASH_ESCAPES"])
@pytest.mark.parametrize("face", ["connection", "pool", "sscursor", "async"])
def test_a_statements_own_sql_mode_never_changes_how_parameters_are_escaped(
    db_kwargs: dict[str, Any], accel: bool, session_mode: str, face: str
) -> None:
    """PyMySQL escapes parameters by the NO_BACKSLASH_ESCAPES flag of the last OK packet. The
    EOF that ends a result set carries the flag of *that statement's* sql_mode (``SET STATEMENT
    sql_mode=... FOR SELECT``), which is gone with it: taken as the session's, the next value
    would be escaped the wrong way — an SQL injection. The flag stays PyMySQL's."""
    other = "" if session_mode else "NO_BACKSLASH_ESCAPES"
    setup = [
        f"SET SESSION sql_mode='{session_mode}'",
        f"SET STATEMENT sql_mode='{other}' FOR SELECT 1",
    ]
    ref = pymysql.connect(**db_kwargs)
    try:
        with ref.cursor() as cur:
            for sql in setup:
                cur.execute(sql)
                cur.fetchall()
            expected_flag = ref.server_status & _NBE
            cur.execute("SELECT %s", (_HOSTILE,))
            assert cur.fetchall() == ((_HOSTILE,),)
    finally:
        ref.close()

    if face == "async":

        async def main() -> tuple[Any, int]:
            pool = ConnectionPool(size=1, max_size=1, **db_kwargs)
            try:
                async with pool.aconnection() as conn:
                    for sql in setup:
                        await conn.aexecute_query(sql)
                    flag = conn.server_status & _NBE
                    return await conn.aexecute_query("SELECT %s", (_HOSTILE,)), flag
            finally:
                await pool.aclose()

        rows, flag = asyncio.run(main())
        assert (flag, [tuple(r) for r in rows]) == (expected_flag, [(_HOSTILE,)])
        return
    pool = ConnectionPool(size=1, max_size=1, **db_kwargs) if face == "pool" else None
    conn = pool.get_connection() if pool is not None else Connection(**db_kwargs)
    try:
        cursorclass = pymysql.cursors.SSCursor if face == "sscursor" else None
        with conn.cursor(cursorclass) as cur:
            for sql in setup:
                cur.execute(sql)
                cur.fetchall()
            assert conn.server_status & _NBE == expected_flag
            cur.execute("SELECT %s", (_HOSTILE,))
            assert [tuple(r) for r in cur.fetchall()] == [(_HOSTILE,)]
    finally:
        conn.close()
        if pool is not None:
            pool.close()


def test_unbuffered_cursor_is_pymysqls(db_kwargs: dict[str, Any], accel: bool) -> None:
    query = "SELECT seq, CONCAT('v', seq), NOW() > '2000-01-01' FROM seq_1_to_500"
    compare(db_kwargs, query, cursorclass=pymysql.cursors.SSCursor, fast=False)
    compare(db_kwargs, query, cursorclass=pymysql.cursors.SSDictCursor, fast=False)


# -- generated data -----------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0x1FFFF), max_size=80
)
_row = st.tuples(
    st.none() | st.integers(-(2**63), 2**63 - 1),
    st.none() | _text,
    st.none() | st.decimals(min_value=-(10**12), max_value=10**12, places=4, allow_nan=False),
    st.none()
    | st.datetimes(
        min_value=datetime.datetime(1000, 1, 1), max_value=datetime.datetime(9999, 12, 31)
    ),
    st.none() | st.binary(max_size=300),
    st.none() | st.floats(min_value=-1e300, max_value=1e300, allow_subnormal=False),
    st.none()
    | st.timedeltas(
        min_value=datetime.timedelta(hours=-838), max_value=datetime.timedelta(hours=838)
    ),
)


@pytest.fixture
def gen_table(admin: pymysql.connections.Connection, db_kwargs: dict[str, Any]) -> Iterator[str]:
    name = f"`{db_kwargs['database']}`.`rows_gen_{uuid.uuid4().hex[:8]}`"
    with admin.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, a BIGINT, "
            "b VARCHAR(100) CHARACTER SET utf8mb4, c DECIMAL(20,4), d DATETIME(6), "
            "e VARBINARY(300), f DOUBLE, g TIME(6))"
        )
    yield name
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(_row, max_size=40))
def test_generated_rows(
    db_kwargs: dict[str, Any], gen_table: str, accel: bool, rows: list[tuple[Any, ...]]
) -> None:
    with Connection(**db_kwargs, autocommit=True) as conn:
        conn.query(f"DELETE FROM {gen_table}")
        if rows:
            conn.cursor().executemany(
                f"INSERT INTO {gen_table} (a, b, c, d, e, f, g) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                rows,
            )
    compare(db_kwargs, f"SELECT a, b, c, d, e, f, g FROM {gen_table} ORDER BY id")


def test_read_timeout_in_the_middle_of_rows(db_kwargs: dict[str, Any], accel: bool) -> None:
    """The server stalls after some rows: PyMySQL's error (2013, closed), the same for ours."""
    query = "SELECT seq, REPEAT('x', 1000), SLEEP(IF(seq = 60, 3, 0)) FROM seq_1_to_100"
    outcomes = []
    for cls in (pymysql.connect, Connection):
        conn = cls(**db_kwargs, read_timeout=0.5)
        try:
            with pytest.raises(pymysql.err.OperationalError) as info:
                conn.cursor().execute(query)
            outcomes.append((info.value.args[0], conn.open))
        finally:
            conn.close()
    assert outcomes[0] == outcomes[1] == (2013, False)
