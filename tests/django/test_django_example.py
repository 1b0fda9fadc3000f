"""The example project a user copies: its checks pass and its commands work on a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANAGE = os.path.join(ROOT, "example_apps", "django_project", "manage.py")


def manage(*args: str, url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    env.pop("MYSQLPOOL_URL", None)
    env.pop("DATABASE_URL", None)
    if url is not None:
        env["MYSQLPOOL_URL"] = url
    return subprocess.run(
        [sys.executable, MANAGE, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_example_project_checks_creates_tables_and_checks_the_server(mysql_server: Any) -> None:
    for args in (("check",), ("init_shop",), ("init_shop",), ("mysqlpool_check",)):
        done = manage(*args, url=mysql_server.url)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert mysql_server.password not in done.stdout + done.stderr
    assert "wait_timeout" in done.stdout


@pytest.mark.no_server
def test_example_project_without_a_server_says_what_is_missing() -> None:
    done = manage("check", url=None)
    assert done.returncode != 0
    assert "MYSQLPOOL['default']['DATABASE']" in done.stderr
