"""Django layer: pytest-django with the test project in ``tests/django/djtest_project``.

Django is configured here, when pytest collects this directory, and only then: running another
layer (``pytest tests/core``) never loads Django. The server URL is not known at import time (the
shared server starts at session scope), so ``MYSQLPOOL`` is installed per test through
``override_settings``, which also closes the pools at the end of each test.

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

_SET_DSM = "DJANGO_SETTINGS_MODULE" not in os.environ
if _SET_DSM:
    os.environ["DJANGO_SETTINGS_MODULE"] = "djtest_project.settings"

import django  # noqa: E402

django.setup()
if _SET_DSM:
    # Settings are loaded now; do not leak the variable into other layers' subprocesses (the
    # demo's Django project would try to load this test project's settings).
    del os.environ["DJANGO_SETTINGS_MODULE"]

from django.test.utils import override_settings  # noqa: E402

from mysqlpool_ext.django.pools import pools  # noqa: E402

TABLE = "djtest_txn"


def pool_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {"default": {"URL": url, "SIZE": 1, "MAX_SIZE": 4, "TIMEOUT": 10, **extra}}


@pytest.fixture(autouse=True)
def _django_pools(request: pytest.FixtureRequest) -> Iterator[None]:
    """``MYSQLPOOL`` pointing at the session's server for each test of this directory (not for
    the session: other layers' tests must not find a Django pool behind ``current_pool``); after
    each test no connection may stay lent. Overriding closes the pools before and after."""
    if "no_server" in request.keywords:
        yield
        return
    server = request.getfixturevalue("mysql_server")
    with override_settings(MYSQLPOOL=pool_settings(server.url)):
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
