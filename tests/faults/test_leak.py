"""Fault 7: a borrower drops its connection without giving it back; and leak_timeout."""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import pytest

from mysqlpool_ext import ConnectionPool, GetConnectionFromPoolError

pytestmark = pytest.mark.faults


def leaky_handler(pool: ConnectionPool) -> int:
    """Borrows and forgets to give back, as buggy request handlers do."""
    conn = pool.get_connection()  # LEAK-SITE
    return int(conn.execute_query("SELECT 1", return_one=True)[0])


def line_of(marker: str) -> int:
    with open(__file__) as source:
        return next(
            i for i, line in enumerate(source, 1) if marker in line and "line_of" not in line
        )


def test_leaked_connection_is_reclaimed_and_logged(
    db_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture, figures: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="mysqlpool_ext")
    with ConnectionPool(size=1, max_size=1, timeout=0.2, **db_kwargs) as pool:
        assert leaky_handler(pool) == 1
        gc.collect()
        started = time.monotonic()
        with pool.connection(timeout=5) as conn:  # the only slot: it must be back
            reclaimed_s = time.monotonic() - started
            assert conn.execute_query("SELECT 1") == ((1,),)
        stats = pool.stats()
    warnings = [r.getMessage() for r in caplog.records if "garbage-collected" in r.getMessage()]
    figures(reclaimed_s=reclaimed_s, leaks=stats["leaks"], log=warnings[0] if warnings else "")
    assert stats["leaks"] == 1
    assert len(warnings) == 1
    assert f"test_leak.py:{line_of('LEAK-SITE')}" in warnings[0]


def test_leak_without_gc_still_times_out(db_kwargs: dict[str, Any]) -> None:
    """Control: a borrower that keeps its reference really holds the slot."""
    with ConnectionPool(size=1, max_size=1, timeout=0.2, **db_kwargs) as pool:
        kept = pool.get_connection()
        with pytest.raises(GetConnectionFromPoolError):
            pool.get_connection()
        kept.close()


def test_leak_timeout_logs_the_borrowers_stack(
    db_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture, figures: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="mysqlpool_ext")
    with ConnectionPool(size=1, leak_timeout=0.3, **db_kwargs) as pool:
        held = pool.get_connection()  # HELD-SITE
        deadline = time.monotonic() + 5
        while not any("leak_timeout" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no leak_timeout warning within 5 s"
            time.sleep(0.05)
        logged_after = time.monotonic() - (deadline - 5)
        held.close()
    message = next(r.getMessage() for r in caplog.records if "leak_timeout" in r.getMessage())
    figures(logged_after_s=logged_after)
    assert f'test_leak.py", line {line_of("HELD-SITE")}' in message
    assert "test_leak_timeout_logs_the_borrowers_stack" in message
