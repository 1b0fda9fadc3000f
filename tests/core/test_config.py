"""Bad input: every option validated at construction (property-based), unknown names get a
suggestion, connect failures are clear, malformed URLs are ConfigErrors without the password, and
the process can build a correct pool right after any of them."""

from __future__ import annotations

import math
import socket
import time
from typing import Any
from urllib.parse import quote

import hypothesis.strategies as st
import pymysql
import pytest
from hypothesis import HealthCheck, given, settings

import mysqlpool_ext
from mysqlpool_ext import ConfigError, ConnectionPool, GetConnectionFromPoolError, PoolError

# Maintenance threads of pools from earlier examples draw backoff jitter from `random` while
# hypothesis generates the next example; hypothesis takes that for a strategy using `random`.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

# -- values of every shape ----------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, 1e300, 4e10]),  # beyond float / time_t range
    st.integers(min_value=-3, max_value=40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e6),
    st.text(max_size=8),
    st.sampled_from(["ping", "rollback", "session", "5", "", "None", "utf8mb4", "latin1", "x"]),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
    st.just(math.pi),
)

POOL_ONLY = [
    "size",
    "max_size",
    "timeout",
    "max_lifetime",
    "max_idle",
    "check",
    "check_window",
    "reset",
    "leak_timeout",
    "reconnect_backoff_max",
    "name",
]
CONNECT = ["port", "connect_timeout", "read_timeout", "write_timeout", "autocommit", "charset"]
KNOWN = POOL_ONLY + CONNECT
UNKNOWN = st.text(min_size=1, max_size=12).filter(
    lambda k: k.isidentifier() and k not in KNOWN and k not in _connect_params()
)


def _connect_params() -> frozenset[str]:
    from mysqlpool_ext.config import CONNECT_PARAMS, POOL_OPTION_NAMES

    return CONNECT_PARAMS | POOL_OPTION_NAMES


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def unreachable() -> dict[str, Any]:
    """Connect kwargs for 127.0.0.1 on a port nobody listens on."""
    return dict(_UNREACHABLE)


class _Unreachable(dict):  # type: ignore[type-arg]
    """Hypothesis prints a failing example's arguments: keep the password out of that."""

    def __repr__(self) -> str:
        return f"<connect kwargs for 127.0.0.1:{self['port']}, password hidden>"


_UNREACHABLE = _Unreachable(
    host="127.0.0.1",
    port=closed_port(),
    user="nobody",
    password="Pw-7f3kQ9-sEcRet",  # the session's password: the leak guard watches it
    connect_timeout=1,
)


def build(base: dict[str, Any], options: dict[str, Any]) -> ConnectionPool | ConfigError:
    """ConnectionPool(**base, **options, lazy=True): a pool or the ConfigError; anything else
    escapes and fails the property."""
    try:
        return ConnectionPool(**{**base, **options, "lazy": True})
    except ConfigError as exc:
        return exc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(KNOWN), value=ANY_VALUE)
def test_one_option_any_value(key: str, value: Any) -> None:
    """Any single value of any option: a pool, or a ConfigError (a ValueError) naming it."""
    unreachable = _UNREACHABLE
    result = build(unreachable, {key: value})
    if isinstance(result, ConfigError):
        assert isinstance(result, ValueError) and isinstance(result, PoolError)
        message = str(result)
        assert repr(key) in message, message
        assert unreachable["password"] not in message
        return
    try:
        assert not result.closed
        stats = result.stats()
        assert stats["pool_min"] <= stats["pool_max"]
        if key in ("size", "max_size") and value is not None:
            assert stats["pool_min" if key == "size" else "pool_max"] == value
    finally:
        result.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options=st.dictionaries(st.one_of(st.sampled_from(KNOWN), UNKNOWN), ANY_VALUE, max_size=6))
def test_any_options(options: dict[str, Any]) -> None:
    """Any mix of options, unknown names included: a pool, or a ConfigError naming one of them."""
    unreachable = _UNREACHABLE
    result = build(unreachable, options)
    if isinstance(result, ConfigError):
        message = str(result)
        assert any(repr(k) in message for k in options), message
        assert unreachable["password"] not in message
        unknown = [k for k in options if k not in _connect_params()]
        if unknown:
            assert "unknown option" in message
        return
    assert all(k in _connect_params() for k in options)
    result.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    options=st.fixed_dictionaries(
        {},
        optional={
            "size": st.integers(0, 3),
            "max_size": st.integers(1, 4),
            "timeout": st.one_of(st.integers(0, 5), st.floats(0, 1e300)),
            "max_lifetime": st.one_of(st.none(), st.floats(0.001, 1e300)),
            "max_idle": st.one_of(st.none(), st.floats(0.001, 1e300)),
            "check": st.sampled_from(["ping", None]),
            "check_window": st.floats(0, 1e300),
            "reset": st.sampled_from(["rollback", "session", None]),
            "leak_timeout": st.one_of(st.none(), st.floats(0.001, 1e300)),
        },
    )
)
def test_valid_options_make_a_working_pool(mysql_server: Any, options: dict[str, Any]) -> None:
    """Whatever the validator accepts works: borrow up to max_size, run a query, give back."""
    # (the server object, not db_kwargs: hypothesis prints the arguments of a failing example)
    result = build(mysql_server.connect_kwargs(), options)
    if isinstance(result, ConfigError):
        assert "max_size" in str(result)  # the only cross-option rule: max_size >= size
        assert options.get("max_size", 1) < options.get("size", 5)
        return
    pool = result
    try:
        conns = [pool.get_connection(timeout=10) for _ in range(pool.stats()["pool_max"])]
        for conn in conns:
            assert conn.execute_query("SELECT 1") == ((1,),)
        for conn in conns:
            conn.close()
        assert pool.stats()["in_use"] == 0
    finally:
        pool.close()


def test_huge_pool_timeout_waits_instead_of_crashing(db_kwargs: dict[str, Any]) -> None:
    """A valid but enormous timeout must mean "wait a long time", not OverflowError."""
    import threading

    pool = ConnectionPool(size=1, timeout=1e300, **db_kwargs)
    try:
        held = pool.get_connection()
        got: list[Any] = []

        def waiter() -> None:
            try:
                with pool.connection() as conn:
                    got.append(conn.execute_query("SELECT 1"))
            except Exception as exc:  # noqa: BLE001 - asserted below
                got.append(exc)

        t = threading.Thread(target=waiter)
        t.start()
        from corekit import wait_until

        wait_until(lambda: pool.stats()["requests_waiting"] == 1 or bool(got), what="queue")
        held.close()
        t.join(10)
        assert got == [((1,),)]
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("max_sise", "max_size"),
        ("sise", "size"),
        ("max_lifetme", "max_lifetime"),
        ("databse", "database"),
        ("pasword", "password"),
        ("conect_timeout", "connect_timeout"),
    ],
)
def test_unknown_option_gets_a_suggestion(db_kwargs: dict[str, Any], typo: str, meant: str) -> None:
    with pytest.raises(ConfigError) as info:
        ConnectionPool(**db_kwargs, **{typo: 3})
    message = str(info.value)
    assert f"unknown option {typo!r}" in message
    assert f"did you mean {meant!r}" in message
    assert db_kwargs["password"] not in message


def test_retry_num_validated(db_kwargs: dict[str, Any]) -> None:
    pool = ConnectionPool(size=1, name="core-retry", **db_kwargs)
    try:
        for bad in (-1, 1.5, "2", True, None):
            with pytest.raises(ConfigError, match="retry_num"):
                pool.get_connection(retry_num=bad)  # type: ignore[arg-type]
        assert pool.stats()["in_use"] == 0
    finally:
        pool.close()


# -- connect failures ----------------------------------------------------------------------------


def test_wrong_password_is_a_clear_1045_and_the_next_pool_works(
    db_kwargs: dict[str, Any],
) -> None:
    wrong = "Wrong-" + db_kwargs["password"][::-1]
    with pytest.raises(pymysql.err.OperationalError) as info:
        ConnectionPool(size=2, name="core-badpw", **{**db_kwargs, "password": wrong})
    exc = info.value
    assert exc.args[0] == 1045
    text = str(exc) + repr(exc)
    assert "'core-badpw'" in text and "Access denied" in text
    assert wrong not in text and db_kwargs["password"] not in text
    assert not isinstance(exc, PoolError)  # MySQL's own error stays PyMySQL's
    with pytest.raises(PoolError, match="core-badpw"):
        mysqlpool_ext.get_pool("core-badpw")  # the failed pool is not left registered
    # The same process builds a correct pool right after.
    good = ConnectionPool(size=2, name="core-goodpw", **db_kwargs)
    try:
        assert good.execute_query("SELECT 1") == ((1,),)
    finally:
        good.close()


def test_wrong_password_on_a_lazy_pool_fails_fast(db_kwargs: dict[str, Any]) -> None:
    """A permanent error (1045) reaches the borrower at once, not after the pool's timeout."""
    wrong = "Wrong-" + db_kwargs["password"][::-1]
    pool = ConnectionPool(
        size=1, lazy=True, timeout=20, name="core-lazybad", **{**db_kwargs, "password": wrong}
    )
    try:
        start = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as info:
            pool.get_connection()
        assert time.monotonic() - start < 5
        assert info.value.args[0] == 1045
        assert wrong not in str(info.value)
        assert pool.stats()["pool_size"] == 0  # no capacity lost to the failed attempt
    finally:
        pool.close()


def test_unreachable_host_is_a_clear_error(unreachable: dict[str, Any]) -> None:
    start = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as info:
        ConnectionPool(size=1, name="core-nohost", **unreachable)
    assert time.monotonic() - start < 5
    exc = info.value
    assert exc.args[0] == 2003
    text = str(exc)
    assert "'core-nohost'" in text and f"127.0.0.1:{unreachable['port']}" in text
    assert unreachable["password"] not in text


def test_unreachable_lazy_pool_times_out_saying_why(unreachable: dict[str, Any]) -> None:
    pool = ConnectionPool(size=0, max_size=2, lazy=True, name="core-down", **unreachable)
    try:
        start = time.monotonic()
        with pytest.raises(GetConnectionFromPoolError) as info:
            pool.get_connection(timeout=0.5)
        assert time.monotonic() - start < 3
        message = str(info.value)
        assert "'core-down'" in message and "unreachable" in message
        assert unreachable["password"] not in message
        assert pool.stats()["in_use"] == 0
    finally:
        pool.close()


def test_good_pool_after_failures(db_kwargs: dict[str, Any], unreachable: dict[str, Any]) -> None:
    for bad in ({"size": -1}, {"max_sise": 1}, {"port": "x"}):
        with pytest.raises(ConfigError):
            ConnectionPool(**{**db_kwargs, **bad})
    with pytest.raises(pymysql.err.OperationalError):
        ConnectionPool(size=1, **unreachable)
    with ConnectionPool(size=1, **db_kwargs) as pool:
        assert pool.execute_query("SELECT 2") == ((2,),)


# -- URLs ----------------------------------------------------------------------------------------

URL_PASSWORD = "Pw-7f3kQ9-sEcRet"


@pytest.mark.parametrize(
    "url",
    [
        f"postgres://u:{URL_PASSWORD}@127.0.0.1/db",
        f"mysql://u:{URL_PASSWORD}@127.0.0.1:notaport/db",
        f"mysql://u:{URL_PASSWORD}@127.0.0.1:99999/db",
        f"mysql://u:{URL_PASSWORD}@127.0.0.1:0/db",
        f"mysql://u:{URL_PASSWORD}@[::1/db",
        f"mysql://u:{URL_PASSWORD}@/db",
        f"mysql://u:{URL_PASSWORD}@127.0.0.1/db/extra",
        f"mysql://u:{URL_PASSWORD}@127.0.0.1/db?size=abc",
        f"mysql://u:{URL_PASSWORD}@127.0.0.1/db?max_sise=3",
        f"mysql://u:{URL_PASSWORD}@127.0.0.1/db?size=2&size=3",
        f"mysql://u:{URL_PASSWORD}@127.0.0.1/db?size=-1",
        f"mysql://u:{URL_PASSWORD}@127.0.0.1/db?autocommit=maybe",
        f"mysql://u:{quote(URL_PASSWORD + '/?#@', safe='')}@127.0.0.1/db?timeout=soon",
        f"{URL_PASSWORD}",
        f"u:{URL_PASSWORD}@127.0.0.1/db",
        f"//u:{URL_PASSWORD}@127.0.0.1/db",
        f"mysql:u:{URL_PASSWORD}@127.0.0.1/db",
        f"mysql:/u:{URL_PASSWORD}@127.0.0.1/db",
        "junk",
        "",
        "mysql://",
    ],
)
def test_malformed_url_is_a_config_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        ConnectionPool.from_url(url)
    text = str(info.value) + repr(info.value)
    assert URL_PASSWORD not in text
    assert quote(URL_PASSWORD, safe="") not in text
    assert info.value.__cause__ is None or URL_PASSWORD not in str(info.value.__cause__)


def test_url_that_is_not_a_string() -> None:
    with pytest.raises(ConfigError):
        ConnectionPool.from_url(3306)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    host=st.text(max_size=10).filter(lambda t: "@" not in t),  # "@" there moves the userinfo
    port=st.text(max_size=6).filter(lambda t: "@" not in t),
    db=st.text(max_size=8),
    query=st.text(max_size=20),
)
def test_any_url_parses_or_is_a_config_error(host: str, port: str, db: str, query: str) -> None:
    from mysqlpool_ext.config import parse_url

    url = f"mysql://u:{URL_PASSWORD}@{host}:{port}/{db}?{query}"
    try:
        kwargs = parse_url(url)
    except ConfigError as exc:
        assert URL_PASSWORD not in str(exc)
        return
    assert kwargs["password"] == URL_PASSWORD
    # "h1,h2" in the netloc is a host list (mysqlpool_ext.topology): "hosts" instead of "host".
    assert kwargs.get("host") or kwargs.get("unix_socket") or kwargs.get("hosts")


@pytest.fixture
def special_user(admin: pymysql.connections.Connection, mysql_server: Any) -> Any:
    """An account whose password needs percent-encoding in a URL."""
    user, password = "core_url", "p@ss:w/rd%?#&+ =x"  # (non-ASCII: tests/core/test_secrets.py)
    with admin.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute("CREATE USER IF NOT EXISTS %s@%s", (user, host))
            cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
            cur.execute(f"GRANT ALL ON `{mysql_server.database}`.* TO %s@%s", (user, host))
    yield user, password
    with admin.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute("DROP USER IF EXISTS %s@%s", (user, host))


def test_from_url_happy_path(special_user: tuple[str, str], mysql_server: Any) -> None:
    user, password = special_user
    url = (
        f"mysql://{user}:{quote(password, safe='')}@{mysql_server.host}:{mysql_server.port}"
        f"/{mysql_server.database}?size=3&max_size=4&charset=utf8mb4&connect_timeout=5"
        "&autocommit=false&name=core-url&check=none"
    )
    pool = ConnectionPool.from_url(url)
    try:
        assert pool.name == "core-url"
        assert pool.size() == 3
        stats = pool.stats()
        assert (stats["pool_min"], stats["pool_max"]) == (3, 4)
        row = pool.execute_query(
            "SELECT USER(), DATABASE(), @@autocommit, @@character_set_connection",
            return_one=True,
        )
        assert row[0].startswith(f"{user}@")
        assert row[1:] == (mysql_server.database, 0, "utf8mb4")
        for text in (repr(pool), str(pool.stats()), pool.url):
            assert password not in text and quote(password, safe="") not in text
    finally:
        pool.close()


def test_from_url_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, db_url: str, mysql_server: Any
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("MYSQLPOOL_URL", raising=False)
    with pytest.raises(ConfigError, match="MYSQLPOOL_URL"):
        ConnectionPool.from_url()
    monkeypatch.setenv("MYSQLPOOL_URL", db_url + "?size=2&name=core-env")
    pool = ConnectionPool.from_url()
    try:
        assert (pool.name, pool.size()) == ("core-env", 2)
        assert pool.execute_query("SELECT DATABASE()", return_one=True) == (mysql_server.database,)
    finally:
        pool.close()
    # Keyword arguments override the URL.
    pool = ConnectionPool.from_url(size=1, name="core-env-kw")
    try:
        assert (pool.name, pool.size()) == ("core-env-kw", 1)
    finally:
        pool.close()
    # DATABASE_URL is a fallback, only when it is a MySQL URL.
    monkeypatch.delenv("MYSQLPOOL_URL")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@h/db")
    with pytest.raises(ConfigError):
        ConnectionPool.from_url()
    monkeypatch.setenv("DATABASE_URL", db_url + "?size=1&name=core-dburl")
    pool = ConnectionPool.from_url()
    try:
        assert pool.name == "core-dburl"
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("init_command=SET%20@x=1", {"init_command": "SET @x=1"}),
        ("init_command=SET @x=1", {"init_command": "SET @x=1"}),
        ("user=me@corp", {"user": "me@corp"}),
        ("password=a+b%2Bc", {"password": "a+b+c"}),
        ("program_name=a%26b&size=2", {"program_name": "a&b", "size": 2}),
    ],
)
def test_query_values_are_percent_decoded_and_may_hold_an_at(
    query: str, expected: dict[str, Any]
) -> None:
    """An "@" inside a free-text value is not mistaken for a misplaced password, and values are
    decoded as URL text ("+" stays a plus), not as an HTML form."""
    from mysqlpool_ext.config import parse_url

    kwargs = parse_url(f"mysql://h/db?{query}")
    assert {k: kwargs[k] for k in expected} == expected


def test_an_empty_reset_in_a_url_is_an_error_not_none() -> None:
    """``?reset=`` (a template's blank variable) must not turn the session reset off: that
    would let one borrower's session state reach the next. ``none`` says it on purpose."""
    from mysqlpool_ext.config import parse_url

    with pytest.raises(ConfigError, match="parameter 'reset' is empty") as info:
        parse_url("mysql://u:secret@h/db?reset=")
    assert "secret" not in str(info.value)
    assert parse_url("mysql://h/db?reset=none")["reset"] is None


@pytest.mark.parametrize(
    "key", ["check", "timeout", "max_lifetime", "max_idle", "autocommit", "size"]
)
def test_any_empty_typed_parameter_is_an_error_not_none(key: str) -> None:
    """A blank ``?timeout=`` would mean "wait for ever", ``?check=`` "never check a connection
    before lending it", ``?max_lifetime=`` "never recycle": none of that by accident."""
    from mysqlpool_ext.config import parse_url

    with pytest.raises(ConfigError, match=f"parameter '{key}' is empty") as info:
        parse_url(f"mysql://u:secret@h/db?{key}=%20")
    assert "secret" not in str(info.value)
    assert info.value.option == key
    assert parse_url("mysql://h/db?check=none&timeout=null")["check"] is None
    assert parse_url("mysql://h/db?charset=")["charset"] == ""  # text, passed on as it is
