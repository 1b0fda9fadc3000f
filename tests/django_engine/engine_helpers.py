"""Shared by the pooled ENGINE's tests (fixtures re-exported by conftest.py).

The pooled ENGINE's tests run Django in subprocesses (Django's own test runner, gunicorn,
uvicorn): each needs its own settings, with ``DATABASES`` pointing at the session's server, which
one pytest process that already configured Django for tests/django cannot give it.

No ``__init__.py`` here, as in tests/django; a uniquely named module, since several test
directories have a ``conftest``."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pymysql
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The load generator and server helpers of tests/django (plain modules, no Django set-up).
_DJANGO_TESTS = os.path.join(os.path.dirname(HERE), "django")
if _DJANGO_TESTS not in sys.path:
    sys.path.append(_DJANGO_TESTS)


@dataclass
class EngineAccount:
    user: str
    password: str
    url: str  # mysql://user:pw@host:port/ (no database: Django's runner creates test_<NAME>)
    db: str


@pytest.fixture
def engine_account(
    mysql_server: Any, admin: pymysql.connections.Connection
) -> Iterator[EngineAccount]:
    """An account of the project's own (the process list then counts only its connections) that
    may create databases, and fresh database names for it."""
    user = "djengine_" + secrets.token_hex(3)
    password = secrets.token_urlsafe(12)
    db = "djengine_" + secrets.token_hex(3)
    with admin.cursor() as cur:
        cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
        cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'127.0.0.1'", (user,))
        for name in (db, db + "_other"):
            cur.execute(f"CREATE DATABASE `{name}`")
    url = f"mysql://{user}:{quote(password, safe='')}@127.0.0.1:{mysql_server.port}/"
    yield EngineAccount(user, password, url, db)
    with admin.cursor() as cur:
        for name in (db, db + "_other", "test_" + db, "test_" + db + "_other"):
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute("DROP USER %s@'127.0.0.1'", (user,))


def engine_env(account: EngineAccount, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "engine_project.settings",
        "DJENGINE_URL": account.url,
        "DJENGINE_DB": account.db,
        "PYTHONPATH": os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]),
        **extra,
    }
    env.pop("MYSQLPOOL_URL", None)
    env.pop("DATABASE_URL", None)
    return env


def django_admin(account: EngineAccount, *args: str, timeout: float = 300) -> str:
    """``django-admin <args>`` for the engine project; its output; fails the test on exit != 0."""
    proc = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=HERE,
        env=engine_env(account),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"django-admin {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-6000:]}"
        )
    return proc.stdout
