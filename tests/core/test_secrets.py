"""No password in any repr, stats, exception text or log line (DESIGN: "none ever contains a
password"). The session's leak guard checks the whole run; this checks each path on purpose."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pymysql
import pytest
from corekit import MakePool, wait_until

import mysqlpool_ext
from mysqlpool_ext import ConfigError, ConnectionPool, PoolError
from mysqlpool_ext.config import parse_url, redact_url


def assert_clean(password: str, *texts: object) -> None:
    for text in texts:
        shown = str(text)
        assert password not in shown, f"password in: {shown[:200]}"
        assert quote(password, safe="") not in shown


def error_texts(action: Callable[[], Any]) -> list[str]:
    """Run ``action``, which must raise; every text the error (and its chain) shows."""
    with pytest.raises(BaseException) as info:
        action()
    texts = []
    exc: BaseException | None = info.value
    while exc is not None:
        texts += [str(exc), repr(exc), *map(str, exc.args)]
        exc = exc.__cause__ or exc.__context__
    return texts


def test_repr_stats_and_url(make_pool: MakePool, db_kwargs: dict[str, Any]) -> None:
    password = db_kwargs["password"]
    pool = make_pool(size=1, name="core-secret")
    conn = pool.get_connection()
    assert_clean(password, repr(pool), str(pool), pool.stats(), pool.url, repr(conn), str(conn))
    assert "pooltest" in repr(pool) or db_kwargs["user"] in repr(pool)  # says where, not how
    conn.close()
    assert_clean(password, repr(conn), pool.stats(), repr(pool))
    assert_clean(password, repr(mysqlpool_ext.current_pool), repr(pool.options))
    pool.close()
    assert_clean(password, repr(pool))


def test_every_error_path(make_pool: MakePool, db_kwargs: dict[str, Any], db_url: str) -> None:
    password = db_kwargs["password"]
    pool = make_pool(size=1, name="core-errors", timeout=0)
    texts: list[str] = []
    held = pool.get_connection()
    texts += error_texts(lambda: pool.get_connection())  # timeout
    texts += error_texts(lambda: pool.get_connection(timeout=0.01, retry_num=1))
    texts += error_texts(lambda: pool.get_connection(retry_num=-1))  # type: ignore[arg-type]
    held.close()
    texts += error_texts(lambda: held.cursor())  # returned
    texts += error_texts(lambda: pool.putconn(object()))  # type: ignore[arg-type]
    texts += error_texts(lambda: mysqlpool_ext.get_pool("core-missing"))
    # Configuration errors, with the password among the arguments.
    texts += error_texts(lambda: ConnectionPool(**db_kwargs, size=-1))
    texts += error_texts(lambda: ConnectionPool(**db_kwargs, max_sise=1))
    texts += error_texts(lambda: ConnectionPool(**{**db_kwargs, "port": "x"}))
    texts += error_texts(lambda: ConnectionPool(**{**db_kwargs, "password": 12345}))
    texts += error_texts(lambda: ConnectionPool.from_url(db_url + "?size=x"))
    texts += error_texts(lambda: ConnectionPool.from_url(db_url + "?nope=1"))
    texts += error_texts(lambda: ConnectionPool.from_url(db_url.replace("mysql://", "pg://")))
    texts += error_texts(lambda: ConnectionPool.from_url(db_url.replace("mysql://", "")))
    texts += error_texts(lambda: ConnectionPool.from_url(db_url + ":99999/x"))
    # Connect errors: wrong password (the wrong one must not show either), unknown database.
    wrong = password + "-wrong"
    texts += error_texts(lambda: ConnectionPool(size=1, **{**db_kwargs, "password": wrong}))
    texts += error_texts(
        lambda: ConnectionPool(size=1, **{**db_kwargs, "database": "core_no_such_db"})
    )
    # Errors from MySQL itself, on a pooled connection.
    texts += error_texts(lambda: pool.execute_query("SELEC 1"))
    # A closed pool.
    pool.close()
    texts += error_texts(lambda: pool.get_connection())
    assert len(texts) > 40
    assert_clean(password, *texts)
    assert_clean(wrong, *texts)


def test_password_of_an_unparsable_url_is_not_echoed() -> None:
    secret = "Pw-7f3kQ9-sEcRet"
    for url in (
        f"mysql://u:{secret}@[::1/db",
        f"u:{secret}@127.0.0.1/db",
        f"mysql://u:{secret}@h:port/db",
        f"mysql://u:{quote(secret + '@:/', safe='')}@h/db?charset=nope&x=1",
    ):
        texts = error_texts(lambda url=url: ConnectionPool.from_url(url))
        assert_clean(secret, *texts)
    with pytest.raises(ConfigError):
        ConnectionPool.from_url(f"mysql://u:{secret}@h/db?password=again")


def test_debug_log_lines_of_a_whole_life(
    make_pool: MakePool,
    db_kwargs: dict[str, Any],
    admin: pymysql.connections.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Create, get, put back, retry, discard (broken, lifetime), leak, refill, close: every line
    at DEBUG and above, formatted with its arguments, is free of the password."""
    password = db_kwargs["password"]
    mysqlpool_ext.logger.setLevel("DEBUG")
    with caplog.at_level(logging.DEBUG, logger="mysqlpool_ext"):
        pool = make_pool(size=1, max_size=2, name="core-log", max_lifetime=60, leak_timeout=0.2)
        a = pool.get_connection()
        b = pool.get_connection()
        with pytest.raises(PoolError):
            pool.get_connection(timeout=0, retry_num=1)
        with admin.cursor() as cur:
            cur.execute("KILL %s", (a.thread_id(),))
        with pytest.raises(pymysql.err.OperationalError):
            a.execute_query("SELECT 1")
        a.close()  # discarded
        wait_until(lambda: any("held for" in r.message for r in caplog.records), what="leak log")
        b.close()
        leaked = pool.get_connection()
        del leaked
        gc.collect()
        with pool.connection(timeout=5):
            pass
        bad = ConnectionPool(
            size=0, lazy=True, name="core-log-bad", **{**db_kwargs, "password": "nope-123456"}
        )
        with pytest.raises(pymysql.err.OperationalError):
            bad.get_connection(timeout=1)
        bad.close()
        pool.close()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("mysqlpool_ext")]
    for word in ("create", "get connection", "put back", "retry", "discard", "leak", "closed"):
        assert any(word in line for line in lines), (word, lines)
    formatted = [logging.Formatter("%(message)s %(exc_text)s").format(r) for r in caplog.records]
    assert_clean(password, *lines, *formatted)


# --------------------------------------------------------------------------------------------
# Hostile passwords through every URL path: parse_url, from_url, Flask config, the CLI
# --------------------------------------------------------------------------------------------

#: Every character that means something in a URL, non-ASCII and spaces; each piece between the
#: delimiters is a distinct word, so a message that shows any piece of it is caught.
HOSTILE = "Ünï€ode sp ?Qmark/Slash#Hash@At+Plus%Pct end"
HOSTILE_PIECES = ("Ünï€ode", "Qmark", "Slash", "Hash", "At+Plus", "Plus%Pct")
HOSTILE_USER = "mp_hostile"


def assert_no_piece(*texts: object) -> None:
    """Neither the password, nor its encoded form, nor any piece of it."""
    assert_clean(HOSTILE, *texts)
    for text in map(str, texts):
        for piece in HOSTILE_PIECES:
            assert piece not in text, f"password piece {piece!r} in: {text[:200]}"


@pytest.fixture
def hostile(admin: pymysql.connections.Connection, mysql_server: Any) -> Iterator[dict[str, Any]]:
    """A real account whose password is :data:`HOSTILE` (and one whose password is ``a+b``):
    a URL that decodes the password wrongly cannot log in."""
    with admin.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            for user, password in ((HOSTILE_USER, HOSTILE), (HOSTILE_USER + "_plus", "a+b")):
                cur.execute("CREATE USER IF NOT EXISTS %s@%s", (user, host))
                cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
                cur.execute(f"GRANT SELECT ON `{mysql_server.database}`.* TO %s@%s", (user, host))
    base = f"{mysql_server.host}:{mysql_server.port}/{mysql_server.database}"
    yield {
        "url": f"mysql://{HOSTILE_USER}:{quote(HOSTILE, safe='')}@{base}",
        "query_url": f"mysql://{HOSTILE_USER}@{base}?password={quote(HOSTILE, safe='')}",
        "plus_url": f"mysql://{HOSTILE_USER}_plus@{base}?password=a+b",
        "raw_url": f"mysql://{HOSTILE_USER}:{HOSTILE}@{base}",
        "base": base,
    }
    with admin.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute("DROP USER IF EXISTS %s@%s", (HOSTILE_USER, host))
            cur.execute("DROP USER IF EXISTS %s@%s", (HOSTILE_USER + "_plus", host))


def test_hostile_password_round_trips_and_logs_in(hostile: dict[str, Any]) -> None:
    assert parse_url(hostile["url"])["password"] == HOSTILE
    assert parse_url(hostile["query_url"])["password"] == HOSTILE
    # A "+" in a URL is a plus, not a space (that is HTML form encoding).
    assert parse_url(hostile["plus_url"])["password"] == "a+b"
    for url in (hostile["url"], hostile["query_url"], hostile["plus_url"]):
        with ConnectionPool.from_url(url, size=1, name="core-hostile") as pool:
            assert pool.execute_query("SELECT 1", return_one=True) == (1,)
            assert_no_piece(repr(pool), pool.url, pool.server_address, pool.stats())


@pytest.mark.parametrize(
    "tail", ["&sise=4", "&size=x", "&charset=nope", "&size=1&size=2", "&password=again"]
)
def test_password_in_the_query_is_masked_in_every_config_error(
    hostile: dict[str, Any], tail: str
) -> None:
    for url in (hostile["query_url"] + tail, hostile["url"] + "?x=1" + tail):
        texts = error_texts(lambda url=url: ConnectionPool.from_url(url))
        assert_no_piece(*texts)
        assert_no_piece(redact_url(url))
    assert "password=***" in redact_url(hostile["query_url"])


@pytest.mark.parametrize("delimiter", ["?", "/", "#", "@"])
def test_unencoded_delimiter_in_the_password_is_a_clear_error_showing_none_of_it(
    hostile: dict[str, Any], delimiter: str
) -> None:
    url = f"mysql://app:Front{delimiter}Secret-rest@{hostile['base']}"
    with pytest.raises(ConfigError, match="percent-encode the password") as info:
        parse_url(url)
    assert info.value.option == "password"
    texts = error_texts(lambda: ConnectionPool.from_url(url))
    for text in [*texts, redact_url(url)]:
        assert "Front" not in text and "Secret-rest" not in text
    texts = error_texts(lambda: ConnectionPool.from_url(hostile["raw_url"]))
    assert any("percent-encode" in t for t in texts)
    assert_no_piece(*texts, redact_url(hostile["raw_url"]))


def test_hostile_password_through_flask_config(hostile: dict[str, Any], db_url: str) -> None:
    flask = pytest.importorskip("flask")
    from mysqlpool_ext.flask import MySQLPool

    ok = flask.Flask("hostile-ok")
    ok.config["MYSQLPOOL_URL"] = hostile["query_url"]
    ok.config["MYSQLPOOL_BINDS"] = {"plus": hostile["plus_url"], "enc": hostile["url"]}
    ext = MySQLPool(ok, lazy=False)
    try:
        with ok.app_context():
            for bind in (None, "plus", "enc"):
                assert ext.get_pool(bind).execute_query("SELECT 1", return_one=True) == (1,)
    finally:
        ext.close(ok)
    bad_configs: list[dict[str, Any]] = [
        {"MYSQLPOOL_URL": hostile["query_url"] + "&sise=4"},
        {"MYSQLPOOL_URL": hostile["raw_url"]},
        {"MYSQLPOOL_URL": db_url, "MYSQLPOOL_BINDS": {"r": hostile["query_url"] + "&size=x"}},
        {"MYSQLPOOL_URL": db_url, "MYSQLPOOL_BINDS": {"r": hostile["raw_url"]}},
        {"MYSQLPOOL_URL": db_url, "MYSQLPOOL_BINDS": {"r": {"url": hostile["raw_url"]}}},
    ]
    for config in bad_configs:
        app = flask.Flask("hostile-bad")
        app.config.update(config)
        texts = error_texts(lambda app=app: MySQLPool(app))
        assert texts[0].startswith(("MYSQLPOOL_URL", "MYSQLPOOL_BINDS['r']")), texts[0]
        assert_no_piece(*texts)


def test_hostile_password_through_the_cli(
    hostile: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from mysqlpool_ext.cli import main

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        assert_no_piece(out, err)
        return code, out, err

    code, out, err = cli("check", hostile["query_url"], "--plain")
    assert code == 0, err
    assert out.splitlines()[0].endswith("?password=***"), out
    code, out, err = cli("check", hostile["query_url"].replace("Qmark", "Wrong"))
    assert code == 4 and len(err.strip().splitlines()) == 1, err
    assert "Wrong" not in err
    for url in (hostile["raw_url"], hostile["query_url"] + "&sise=4"):
        code, out, err = cli("check", url)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "percent-encode" in cli("check", hostile["raw_url"])[2]
