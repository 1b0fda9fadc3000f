"""Fixtures for the lifecycle tests: the figures report.

These tests do not disturb the server, so they use the session's shared one (``db_kwargs``).
Tests record what they measured with ``figures``; the terminal summary prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

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
    terminalreporter.write_sep("=", "mysqlpool_ext reliability figures (tests/health)")
    for test, values in store.items():
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        terminalreporter.write_line(f"{test}: {shown}")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
