"""Fixtures for the Flask extension: apps built the way a user builds them, against the real server.

``make_app(**config)`` returns a Flask app with ``MySQLPool`` set up and closes its pools at the end
of the test; ``table`` is a fresh InnoDB table per test; ``shop_url`` points at a database of the
Flask tests' own (the example app's tables live there, away from other layers' tables).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pymysql
import pytest
from flask import Flask

from mysqlpool_ext.flask import MySQLPool

SHOP_DB = "mysqlpool_flask_shop"


@pytest.fixture(autouse=True)
def _no_url_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension reads MYSQLPOOL_URL / DATABASE_URL from the environment: tests say it."""
    monkeypatch.delenv("MYSQLPOOL_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)


@pytest.fixture
def make_app(db_url: str) -> Iterator[Callable[..., Flask]]:
    """``make_app(ext=None, name=..., **config)``: a Flask app with the extension initialised."""
    made: list[tuple[MySQLPool, Flask]] = []

    def make(ext: MySQLPool | None = None, name: str = "testapp", **config: Any) -> Flask:
        app = Flask(name)
        app.config["MYSQLPOOL_URL"] = db_url
        app.config.update(config)
        ext = ext or MySQLPool()
        ext.init_app(app)
        made.append((ext, app))
        return app

    yield make
    for ext, app in made:
        ext.close(app)


@pytest.fixture
def table(admin: pymysql.connections.Connection, mysql_server: Any) -> Iterator[str]:
    """A fresh table ``flask_t (id AUTO_INCREMENT, v VARCHAR)`` in the test database."""
    name = "flask_t"
    db = mysql_server.database
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{db}`.{name}")
        cur.execute(
            f"CREATE TABLE `{db}`.{name} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50))"
            " ENGINE=InnoDB"
        )
    yield name
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{db}`.{name}")


@pytest.fixture
def rows(admin: pymysql.connections.Connection, mysql_server: Any) -> Callable[[str], list[Any]]:
    """``rows(table)``: what the server has committed, read on a separate connection."""

    def read(name: str) -> list[Any]:
        with admin.cursor() as cur:
            cur.execute(f"SELECT v FROM `{mysql_server.database}`.{name} ORDER BY id")
            return [r[0] for r in cur.fetchall()]

    return read


@pytest.fixture(scope="session")
def shop_url(mysql_server: Any) -> str:
    """A URL for a database of the Flask tests' own (the example app creates its tables there)."""
    conn = pymysql.connect(**mysql_server.root_connect_kwargs(), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {SHOP_DB}")
            cur.execute(f"CREATE DATABASE {SHOP_DB}")
    finally:
        conn.close()
    parts = urlsplit(mysql_server.url)
    return urlunsplit(parts._replace(path=f"/{SHOP_DB}"))
