"""No password in any repr, stats, exception text or log line (DESIGN: "none ever contains a
password"). The session's leak guard checks the whole run; this checks each path on purpose."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pymysql
import pytest
from corekit import MakePool, wait_until

import mysqlpool_ext
from mysqlpool_ext import ConfigError, ConnectionPool, PoolError


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
