"""Django layer: pytest-django with the test project in ``tests/django/djtest_project``.

Django is configured here, when pytest collects this directory, and only then: running another
layer (``pytest tests/core``) never loads Django. The server URL is not known at import time (the
shared server starts at session scope), so ``MYSQLPOOL`` is installed by the session fixture
``django_mysqlpool`` through ``override_settings``, which also closes the pools at the end.

This directory has no ``__init__.py`` on purpose: a package here would be imported as ``django``
(its directory name) and shadow Django itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djtest_project.settings")

import django  # noqa: E402

django.setup()

from django.test.utils import override_settings  # noqa: E402

from mysqlpool_ext.django.pools import pools  # noqa: E402

TABLE = "djtest_txn"


def pool_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {"default": {"URL": url, "SIZE": 1, "MAX_SIZE": 4, "TIMEOUT": 10, **extra}}


@pytest.fixture(scope="session")
def django_mysqlpool(mysql_server: Any) -> Iterator[dict[str, Any]]:
    """``MYSQLPOOL`` pointing at the session's server, for every test of this directory."""
    value = pool_settings(mysql_server.url)
    override = override_settings(MYSQLPOOL=value)
    override.enable()
    try:
        yield value
    finally:
        override.disable()
        pools.close_all()


@pytest.fixture(autouse=True)
def _django_pools(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that need a server get MYSQLPOOL; after each test no connection may stay lent."""
    if "no_server" in request.keywords:
        yield
        return
    request.getfixturevalue("django_mysqlpool")
    yield
    for pool in pools.all(initialized_only=True):
        assert pool.stats()["in_use"] == 0, f"pool {pool.name!r} still lends a connection"


@pytest.fixture
def txn_table(admin: pymysql.connections.Connection) -> Iterator[Callable[[], list[str]]]:
    """A fresh InnoDB table; yields ``rows()``: what is committed in it (read by ``admin``)."""
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
        cur.execute(
            f"CREATE TABLE {TABLE} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB"
        )

    def rows() -> list[str]:
        with admin.cursor() as cur:
            cur.execute(f"SELECT v FROM {TABLE} ORDER BY id")
            return [r[0] for r in cur.fetchall()]

    yield rows
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {TABLE}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_server: a Django test that needs no MySQL server")
