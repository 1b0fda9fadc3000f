"""Fixtures for the core tests (``make_pool``, ``own_user`` and ``own_pool`` are shared by every
layer: tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest


@pytest.fixture
def table(admin: pymysql.connections.Connection, mysql_server: Any) -> str:
    """A fresh InnoDB table ``core_t (id AUTO_INCREMENT, v VARCHAR)``; its qualified name."""
    name = f"`{mysql_server.database}`.core_t"
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(
            f"CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50)) ENGINE=InnoDB"
        )
    return name
