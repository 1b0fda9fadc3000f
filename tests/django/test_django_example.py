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


ADMIN_PROBE = """
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from mysqlpool_ext import current_pool
from example_apps.django_project.shop.models import Product, Review

assert type(connections["default"]).__module__ == "mysqlpool_ext.django.backend.base"
User.objects.filter(username="probe").delete()
User.objects.create_superuser("probe", "probe@example.com", "probe-pw-123")
c = Client(HTTP_HOST="localhost")
assert c.login(username="probe", password="probe-pw-123")
for path in ("/admin/", "/admin/shop/product/", "/admin/shop/review/add/"):
    r = c.get(path)
    assert r.status_code == 200, (path, r.status_code)
pid = Product.objects.order_by("id").first().pk
r = c.post("/admin/shop/review/add/", {"product": pid, "stars": 5, "text": "great"})
assert r.status_code == 302, r.status_code
n = current_pool.execute_query("SELECT COUNT(*) FROM shop_review", return_one=True)[0]
assert n == Review.objects.count() >= 1, n
assert Client(HTTP_HOST="localhost").get(f"/orm/products/{pid}").json()["id"] == pid
assert len(Client(HTTP_HOST="localhost").get("/orm/products").json()["products"]) >= 2
print("admin-ok")
"""


def test_example_project_orm_and_admin_on_the_pooled_engine(mysql_server: Any) -> None:
    for args in (("init_shop",), ("migrate", "--noinput")):
        done = manage(*args, url=mysql_server.url)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    done = manage("shell", "-c", ADMIN_PROBE, url=mysql_server.url)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "admin-ok" in done.stdout
