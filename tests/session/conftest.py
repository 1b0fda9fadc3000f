"""Fixtures for the session-isolation regressions (issue 12).

``face`` comes from tests/reliability/faces.py (one test body, both faces of the pool); the
Django fixtures configure Django the way tests/django/conftest.py does, but only when a test
asks for them, so running this folder alone never loads Django for the other tests.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

HERE = Path(__file__).resolve().parent
for extra in (HERE.parent / "reliability", HERE.parent / "faults"):
    if str(extra) not in sys.path:
        sys.path.append(str(extra))

from faces import FACES, Face  # noqa: E402
from poolkit import PoolMaker  # noqa: E402
from sessionkit import LOCK_NAME, LOCK_PROCEDURE, OTHER, OTHER_DB, SHADOWED  # noqa: E402

from mysqlpool_ext import ConnectionPool  # noqa: E402

MakePool = Callable[..., ConnectionPool]


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> Face:
    """The face under test; each test using it runs once per face."""
    return FACES[request.param]


@pytest.fixture
def session_tables(admin: pymysql.connections.Connection, mysql_server: Any) -> Iterator[None]:
    """The real tables the probes read (empty), a second database to ``USE``, and the procedure
    that takes a named lock."""
    db = mysql_server.database
    with admin.cursor() as cur:
        for name in (SHADOWED, OTHER):
            cur.execute(f"DROP TABLE IF EXISTS `{db}`.{name}")
            cur.execute(f"CREATE TABLE `{db}`.{name} (id INT) ENGINE=InnoDB")
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {OTHER_DB}")
        cur.execute(f"DROP PROCEDURE IF EXISTS `{db}`.{LOCK_PROCEDURE}")
        cur.execute(f"CREATE PROCEDURE `{db}`.{LOCK_PROCEDURE}() DO GET_LOCK('{LOCK_NAME}', 0)")
    yield
    with admin.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = 5")
        for name in (SHADOWED, OTHER):
            cur.execute(f"DROP TABLE IF EXISTS `{db}`.{name}")


@pytest.fixture
def make_pool(db_kwargs: dict[str, Any], session_tables: None) -> Iterator[MakePool]:
    """``make_pool(**options)``: a pool on the shared server, closed after the test (before the
    tables are dropped: a leaked ``LOCK TABLES`` would otherwise block the drop)."""
    maker = PoolMaker(db_kwargs)
    yield maker
    maker.close()


# -- Django -------------------------------------------------------------------------------------


@pytest.fixture
def django_pool_settings(db_url: str, session_tables: None) -> Iterator[None]:
    """Django configured with the test project (tests/django/djtest_project) and ``MYSQLPOOL``
    set to one connection on the shared server for this test only."""
    django_dir = str(HERE.parent / "django")
    if django_dir not in sys.path:
        sys.path.insert(0, django_dir)
    import django
    from django.conf import settings

    if not settings.configured:
        set_dsm = "DJANGO_SETTINGS_MODULE" not in os.environ
        if set_dsm:
            os.environ["DJANGO_SETTINGS_MODULE"] = "djtest_project.settings"
        try:
            django.setup()
        finally:
            if set_dsm:
                del os.environ["DJANGO_SETTINGS_MODULE"]
    from django.test.utils import override_settings

    pools = {"default": {"URL": db_url, "SIZE": 1, "MAX_SIZE": 1, "TIMEOUT": 5}}
    with override_settings(MYSQLPOOL=pools):
        yield
