"""Fixtures for fault injection: a private server per test module, and the figures report.

Each module that restarts, kills or reconfigures a server gets its own ``ThrowawayServer``
(module scope: one ~1 s start per file), so the session's shared server is never disturbed.

Every test records what it observed (recovery time, errors seen, peak server connections, time to
fail) with the ``figures`` fixture; the terminal summary prints them all, ready for the README's
"Reliability" section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from mysqlpool_ext._server import ThrowawayServer, find_server_binary

_figures_key = pytest.StashKey[dict[str, dict[str, Any]]]()

Figures = Callable[..., None]


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """``figures(name=value, ...)``: remember what this test measured, for the summary."""
    store = request.config.stash.setdefault(_figures_key, {})
    entry = store.setdefault(request.node.nodeid.split("::", 1)[-1], {})

    def record(**values: Any) -> None:
        entry.update(values)

    return record


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    store = config.stash.get(_figures_key, {})
    if not store:
        return
    terminalreporter.write_sep("=", "mysqlpool_ext reliability figures (tests/faults)")
    for test, values in store.items():
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        terminalreporter.write_line(f"{test}: {shown}")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@pytest.fixture(scope="module")
def own_server() -> Iterator[ThrowawayServer]:
    """A server of this module's own, free to be restarted, killed or reconfigured."""
    if find_server_binary() is None:
        pytest.skip("fault tests need a local mariadbd/mysqld binary")
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
