"""Fixtures for fault injection: a private server per test module.

Each module that restarts, kills or reconfigures a server gets its own ``ThrowawayServer``
(module scope: one ~1 s start per file), so the session's shared server is never disturbed.

Every test records what it observed (recovery time, errors seen, peak server connections, time to
fail) with the ``figures`` fixture (tests/conftest.py); the terminal summary prints them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pymysql
import pytest

from mysqlpool_ext._server import ThrowawayServer, find_server_binary


@pytest.fixture(scope="module")
def own_server() -> Iterator[ThrowawayServer]:
    """A server of this module's own, free to be restarted, killed or reconfigured."""
    if find_server_binary() is None:
        reason = "fault tests need a local mariadbd/mysqld binary"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(reason, pytrace=False)  # under CI a missing server is a failure
        pytest.skip(reason)
    with ThrowawayServer() as server:
        yield server


@pytest.fixture
def root(own_server: ThrowawayServer) -> Iterator[pymysql.connections.Connection]:
    """An autocommit root connection to ``own_server`` (reopened per test: tests restart it)."""
    conn = pymysql.connect(**own_server.root_connect_kwargs(), autocommit=True)
    try:
        yield conn
    finally:
        conn.close()
