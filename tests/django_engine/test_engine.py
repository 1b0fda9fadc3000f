"""``ENGINE: "mysqlpool_ext.django.backend"`` under Django's own test runner and test Client.

The Django-side assertions live in ``engine_app/tests.py`` (TestCase, TransactionTestCase,
ATOMIC_REQUESTS, async views, streaming): they run here through ``manage.py test``, as a user's
suite would, against the session's server.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from engine_helpers import HERE, EngineAccount, django_admin


def test_engine_app_suite(engine_account: EngineAccount) -> None:
    out = django_admin(engine_account, "test", "engine_app", "--noinput", "-v", "2")
    assert "FAILED" not in out, out[-6000:]
    assert " ... ok" in out


def test_check_and_migrate(engine_account: EngineAccount) -> None:
    out = django_admin(engine_account, "check", "--database", "default")
    assert "no issues" in out, out
    out = django_admin(engine_account, "migrate", "--noinput")
    assert "Applying engine_app.0001_initial... OK" in out, out


SHIM_PROBE = r"""
import sys
import pymysql
{shim}
import django
from django.conf import settings
settings.configure(DATABASES={{"default": {{
    "ENGINE": "{engine}", "HOST": "127.0.0.1", "PORT": 1, "USER": "u", "PASSWORD": "pw",
    "NAME": "x", "OPTIONS": {options}}}}})
django.setup()
from django.db import connections
connections["default"]  # loads the backend
import pymysql.err
print("same-err-module", pymysql.err is sys.modules["pymysql.err"])
print("shim-left", "MySQLdb" in sys.modules)
from mysqlpool_ext import ConnectionPool, GetConnectionFromPoolError
try:
    ConnectionPool(host="127.0.0.1", port={port}, user="nobody", password="wrong", size=1)
except pymysql.err.OperationalError as exc:
    print("caught", exc.args[0])
print("pool-error-is-operational",
      issubclass(GetConnectionFromPoolError, pymysql.err.OperationalError))
"""


def _probe(engine: str, shim: bool, port: int, options: str = "{}") -> str:
    code = SHIM_PROBE.format(
        shim="pymysql.install_as_MySQLdb()" if shim else "",
        engine=engine,
        options=options,
        port=port,
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_stock_backend_with_the_shim_breaks_pymysql_err(mysql_server: object) -> None:
    """The problem (issue 11, item 12), reproduced: Django's backend imported through
    install_as_MySQLdb() loads PyMySQL's modules a second time as MySQLdb.*, and pymysql.err
    then names the copy, whose classes PyMySQL never raises."""
    out = _probe("django.db.backends.mysql", True, mysql_server.port)  # type: ignore[attr-defined]
    assert "same-err-module False" in out, out


@pytest.mark.parametrize("shim", [False, True], ids=["no-shim", "user-installed-shim"])
def test_engine_keeps_pymysql_errors_intact(mysql_server: object, shim: bool) -> None:
    out = _probe(
        "mysqlpool_ext.django.backend",
        shim,
        mysql_server.port,
        '{"pool": True}',  # type: ignore[attr-defined]
    )
    assert "same-err-module True" in out, out
    assert "caught 1045" in out, out
    assert "pool-error-is-operational True" in out, out
    assert ("shim-left True" if shim else "shim-left False") in out, out
