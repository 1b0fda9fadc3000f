"""Issue 11, items 8-10 and 12-16: connect storms, permanent errors on a lazy pool, a password
that must never be shown, the MySQLdb shim, per-call validation, given-back connections,
``stats()`` while the server refuses connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import textwrap
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from faces import Face, MakePool

from mysqlpool_ext import (
    ConfigError,
    ConnectionPool,
    ConnectionReturnedError,
    GetConnectionFromPoolError,
)
from mysqlpool_ext._server import ThrowawayServer

ROOT = Path(__file__).resolve().parents[2]


def global_status(admin: pymysql.connections.Connection, name: str) -> int:
    with admin.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
        row = cur.fetchone()
    assert row is not None, name
    return int(row[1])


# -- item 8 -------------------------------------------------------------------------------------


def failing_check(conn: Any) -> None:
    """A liveness check that always says "dead" (a proxy that answers pings wrongly, a check
    query that lost its privileges)."""
    raise pymysql.err.OperationalError(2013, "the check says this connection is dead")


async def test_failing_check_does_not_storm_the_server(
    face: Face, make_pool: MakePool, admin: pymysql.connections.Connection, figures: Any
) -> None:
    """One 1-second borrow whose every candidate fails its check: replacement connects must
    back off like reconnects do, not open a connection per microsecond."""
    pool = make_pool(size=1, max_size=1, check=failing_check, check_window=0)
    before = global_status(admin, "Connections")
    start = time.monotonic()
    try:
        # Bounded from outside too: today the async face's borrow retries failed checks with
        # no deadline at all, and would spin until the test run's timeout.
        conn = await asyncio.wait_for(face.get_connection(pool, timeout=1), 3)
    except pymysql.err.Error:
        ended = "raised"
    except asyncio.TimeoutError:
        ended = "still borrowing after 3 s"
    else:
        conn.close()
        ended = "lent a connection that failed its check"
    elapsed = time.monotonic() - start
    opened = global_status(admin, "Connections") - before
    figures(connections_opened=opened, borrow_s=round(elapsed, 3), ended=ended)
    assert opened <= 20, f"one 1 s borrow opened {opened} server connections ({ended})"
    assert ended == "raised", ended


def test_defer_connect_is_a_config_error(make_pool: MakePool) -> None:
    """The pool cannot honour ``defer_connect=True`` (it spins creating unconnected objects)."""
    with pytest.raises(ConfigError) as info:
        make_pool(size=0, lazy=True, defer_connect=True)
    assert "defer_connect" in str(info.value)


# -- item 9 -------------------------------------------------------------------------------------

BAD_SETTINGS = {
    "init_command": ({"init_command": "SELEC 1"}, 1064),
    "sql_mode": ({"sql_mode": "NOT_A_SQL_MODE"}, 1231),
    "ssl_ca": ({"ssl_ca": "/nonexistent/mysqlpool-ca.pem"}, None),
}


@pytest.mark.parametrize("bad", list(BAD_SETTINGS))
async def test_permanent_config_error_reaches_lazy_borrower_at_once(
    face: Face, bad: str, make_pool: MakePool, figures: Any
) -> None:
    """A lazy pool (Flask's default) with a setting the server rejects: the borrower gets the
    real error within a second, as an eager pool's constructor does, not "unreachable" after
    the whole timeout."""
    options, code = BAD_SETTINGS[bad]
    pool = make_pool(size=1, lazy=True, timeout=3, **options)
    start = time.monotonic()
    with pytest.raises(Exception) as info:
        conn = await face.get_connection(pool)
        conn.close()
    elapsed = time.monotonic() - start
    figures(seconds_to_error=round(elapsed, 3), error=type(info.value).__name__)
    assert not isinstance(info.value, GetConnectionFromPoolError), f"{info.value}"
    if code is not None:
        assert info.value.args[0] == code, f"{info.value!r}"
    assert elapsed < 1.0, f"the error took {elapsed:.2f} s"


def test_permanent_refill_error_logged_once(
    make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    """The maintenance thread of a lazy pool with a bad ``init_command``: in a 2 s window the
    error is logged once (then with backoff), and the pool's name appears once per line."""
    caplog.set_level(logging.WARNING, logger="mysqlpool_ext")
    pool = make_pool(size=1, lazy=True, init_command="SELEC 1", name="once")
    window = time.monotonic() + 2.0
    while time.monotonic() < window:  # an observation window: nothing to wait *for*
        time.sleep(0.05)
    pool.close()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) <= 1, f"{len(lines)} warnings in 2 s: {lines}"
    assert all(line.count("'once'") <= 1 for line in lines), lines


# -- item 10 ------------------------------------------------------------------------------------

#: A password PyMySQL cannot encode (latin-1); referenced by name, so that no source line shown
#: in a traceback contains it.
ODD_PASSWORD = "Geheim-\u20ac-PW"


def shown(exc: BaseException) -> str:
    """Everything a user sees of an exception: message, repr, and the whole formatted chain."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


async def test_unencodable_password_never_shown(
    face: Face, make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    """The connect error (eager pool), the borrow error (lazy pool) and every log line must not
    contain the password, nor the part before the character PyMySQL could not encode."""
    caplog.set_level(logging.DEBUG, logger="mysqlpool_ext")
    texts: list[str] = []
    with pytest.raises(Exception) as eager:
        make_pool(size=1, password=ODD_PASSWORD)
    texts.append(shown(eager.value))
    pool = make_pool(size=1, lazy=True, timeout=1, password=ODD_PASSWORD)
    with pytest.raises(Exception) as lazy:
        conn = await face.get_connection(pool)
        conn.close()
    texts.append(shown(lazy.value))
    for record in caplog.records:
        texts.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            texts.append(shown(record.exc_info[1]))
    leaks = [t for t in texts if "Geheim" in t]
    assert not leaks, f"the password appeared in {len(leaks)} of {len(texts)} texts"


# -- item 12 ------------------------------------------------------------------------------------

SHIM_SCRIPT = textwrap.dedent(
    """
    import json, os
    import pymysql
    pymysql.install_as_MySQLdb()
    import django
    from django.conf import settings
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.mysql", "NAME": os.environ["DB"]}},
        INSTALLED_APPS=[],
    )
    django.setup()
    import django.db.backends.mysql.base  # loads MySQLdb.* submodules: the shim takes effect

    import MySQLdb
    from mysqlpool_ext import ConnectionPool, GetConnectionFromPoolError
    out = {}
    try:
        ConnectionPool(
            host=os.environ["HOST"], port=int(os.environ["PORT"]), user=os.environ["USER_"],
            password="certainly-not-the-password", database=os.environ["DB"], size=1,
        )
    except Exception as exc:
        out["error"] = type(exc).__name__
        out["code"] = exc.args[0] if exc.args else None
        out["is_pymysql_operational"] = isinstance(exc, pymysql.err.OperationalError)
    out["pool_error_is_operational"] = issubclass(
        GetConnectionFromPoolError, pymysql.err.OperationalError
    )
    out["pool_error_is_mysqldb_operational"] = issubclass(
        GetConnectionFromPoolError, MySQLdb.OperationalError
    )
    print(json.dumps(out))
    """
)


def test_mysqldb_shim_with_django_keeps_error_handling(mysql_server: Any) -> None:
    """In a subprocess (the shim rebinds ``pymysql.err`` for the whole process): after
    ``install_as_MySQLdb()`` and loading Django's MySQL backend, a wrong password is still
    error 1045, and the pool's timeout error is still an ``OperationalError`` for user code."""
    env = {
        **os.environ,
        "HOST": mysql_server.host,
        "PORT": str(mysql_server.port),
        "USER_": mysql_server.user,
        "DB": mysql_server.database,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-c", SHIM_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["code"] == 1045, out
    assert out["is_pymysql_operational"], out
    assert out["pool_error_is_operational"], out
    assert out["pool_error_is_mysqldb_operational"], out


# -- item 13 ------------------------------------------------------------------------------------

BAD_TIMEOUTS = {"str": "1", "nan": math.nan, "negative": -1}


@pytest.mark.parametrize("call", ["get_connection", "connection", "execute_query"])
@pytest.mark.parametrize("value", list(BAD_TIMEOUTS))
async def test_per_call_timeout_is_validated(
    request: pytest.FixtureRequest, face: Face, call: str, value: str, make_pool: MakePool
) -> None:
    """``timeout`` given to one call is validated like the option: a ``ConfigError`` naming it."""
    pool = make_pool(size=1, max_size=1)
    timeout: Any = BAD_TIMEOUTS[value]
    with pytest.raises(ConfigError) as info:
        if call == "get_connection":
            (await face.get_connection(pool, timeout=timeout)).close()
        elif call == "connection":
            async with face.connection(pool, timeout=timeout):
                pass
        else:
            await face.execute_query(pool, "SELECT 1", timeout=timeout)
    assert info.value.option == "timeout" or "timeout" in str(info.value)


@pytest.mark.parametrize("charset", [0, []], ids=["zero", "empty-list"])
def test_charset_must_be_a_name(charset: Any, make_pool: MakePool) -> None:
    with pytest.raises(ConfigError) as info:
        make_pool(size=0, lazy=True, charset=charset)
    assert info.value.option == "charset" or "charset" in str(info.value)


# -- item 14 ------------------------------------------------------------------------------------


async def test_returned_connection_raises_when_called_not_on_lookup(
    face: Face, make_pool: MakePool
) -> None:
    """``hasattr``/``getattr(..., default)`` are questions, not uses: they must answer. Calling
    a method (or running a query) is a use: ``ConnectionReturnedError``."""
    pool = make_pool(size=1, max_size=1)
    conn = await face.get_connection(pool)
    conn.close()
    assert hasattr(conn, "commit")
    assert getattr(conn, "no_such_attribute", None) is None
    with pytest.raises(ConnectionReturnedError):
        conn.commit()
    with pytest.raises(ConnectionReturnedError):
        await face.query(conn, "SELECT 1")


# -- item 16 ------------------------------------------------------------------------------------


@pytest.fixture
def refusing_server(private_server: ThrowawayServer) -> Iterator[tuple[ThrowawayServer, str]]:
    """A private server at its ``max_connections`` for an application account (no global
    privileges, so no reserved admin slot): every new connection of that account gets 1040.
    Yields the server and the account's name (its password is the server's)."""
    root = pymysql.connect(**private_server.root_connect_kwargs(), autocommit=True)
    user = "refused_app"
    hogs: list[pymysql.connections.Connection] = []
    try:
        kwargs = private_server.connect_kwargs()
        with root.cursor() as cur:
            for host in ("127.0.0.1", "localhost"):
                cur.execute(
                    "CREATE USER %s@%s IDENTIFIED BY %s", (user, host, private_server.password)
                )
                cur.execute(f"GRANT ALL ON `{kwargs['database']}`.* TO %s@%s", (user, host))
            cur.execute("SET GLOBAL max_connections = 10")  # MariaDB's minimum
        for _ in range(20):
            try:
                hogs.append(pymysql.connect(**{**kwargs, "user": user}))
            except pymysql.err.OperationalError as exc:
                assert exc.args[0] == 1040, exc
                break
        else:
            pytest.fail("max_connections was never reached")
        yield private_server, user
    finally:
        for hog in hogs:
            hog.close()
        root.close()


async def test_stats_do_not_call_a_refusing_server_unreachable(
    face: Face, refusing_server: tuple[ThrowawayServer, str], figures: Any
) -> None:
    server, user = refusing_server
    pool = ConnectionPool(**{**server.connect_kwargs(), "user": user}, size=1, lazy=True, timeout=1)
    try:
        with pytest.raises(pymysql.err.OperationalError) as info:
            (await face.get_connection(pool)).close()
        stats = pool.stats()
        figures(error=str(info.value)[-80:], stats_keys=sorted(k for k in stats if "server" in k))
        assert stats["server_unreachable"] is False, stats
    finally:
        pool.close()
