"""Helpers of the host-list tests: the replication pair and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pytest

from mysqlpool_ext._server import ThrowawayServer

APP_USER = "app"
DATABASE = "mysqlpool_test"


@dataclass
class Pair:
    """A primary and its replica, and an application account on both."""

    primary: ThrowawayServer
    replica: ThrowawayServer
    app_password: str = field(repr=False)

    def address(self, server: ThrowawayServer) -> str:
        return f"{server.host}:{server.port}"

    def app_kwargs(self, **extra: Any) -> dict[str, Any]:
        """Pool keyword arguments (no host: the test gives ``hosts``)."""
        return {
            "user": APP_USER,
            "password": self.app_password,
            "database": DATABASE,
            "ssl_disabled": True,
            **extra,
        }

    def root(self, server: ThrowawayServer) -> pymysql.connections.Connection:
        return pymysql.connect(**server.root_connect_kwargs(), autocommit=True)

    def sql(self, server: ThrowawayServer, statement: str, args: Any = None) -> Any:
        conn = self.root(server)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, args)
                return cur.fetchall()
        finally:
            conn.close()

    def wait_replicated(self, timeout: float = 20.0) -> None:
        """Until the replica has applied everything the primary has written."""
        pos = self.sql(self.primary, "SELECT @@global.gtid_binlog_pos")[0][0]
        got = self.sql(self.replica, "SELECT MASTER_GTID_WAIT(%s, %s)", (pos, timeout))[0][0]
        assert got == 0, f"the replica did not reach {pos} within {timeout} s"


def wait_until(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``cond`` until it returns something true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.02)
