"""Where an async borrower is: a connection held past ``leak_timeout`` is reported with the
borrower's own line, whichever async entry point borrowed it (``PoolCore.lend`` starts from a
depth each entry point gives, then skips the pool's own frames)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import pytest
from aiokit import MakePool


async def _held_report(caplog: pytest.LogCaptureFixture) -> str:
    for _ in range(200):  # the maintenance thread reports within a few of its ticks
        found = [r.getMessage() for r in caplog.records if "leak_timeout" in r.getMessage()]
        if found:
            return found[0]
        await asyncio.sleep(0.025)
    raise AssertionError("no leak_timeout warning within 5 s")


def _here() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno + 1  # the line after the call: the borrowing line


@pytest.mark.parametrize("entry", ["aget_connection", "aconnection", "aexecute_query"])
async def test_async_borrower_line_is_reported(
    entry: str, make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mysqlpool_ext")
    pool = make_pool(size=1, max_size=1, leak_timeout=0.2)
    report: Any = None
    if entry == "aget_connection":
        line = _here()
        conn = await pool.aget_connection()
        report = await _held_report(caplog)
        await pool.aputconn(conn)
    elif entry == "aconnection":
        line = _here()
        async with pool.aconnection() as conn:
            report = await _held_report(caplog)
    else:

        async def query() -> Any:
            line = _here()
            return await pool.aexecute_query("SELECT SLEEP(1)"), line

        task = asyncio.ensure_future(query())  # runs while this task reads the log
        report = await _held_report(caplog)
        rows, line = await task
        assert rows == ((0,),)
    where = "query" if entry == "aexecute_query" else "test_async_borrower_line_is_reported"
    assert f'test_aio_borrower_site.py", line {line}, in {where}' in report, report


def test_aexecute_query_is_a_coroutine_function_to_introspection() -> None:
    """Written as a plain function that returns its coroutine (one frame fewer per suspension);
    frameworks that ask whether to await it must still hear yes."""
    import asyncio
    import inspect
    import sys

    from mysqlpool_ext import ConnectionPool, current_pool
    from mysqlpool_ext.connection import Connection

    for func in (ConnectionPool.aexecute_query, Connection.aexecute_query,
                 current_pool.aexecute_query):  # fmt: skip
        assert asyncio.iscoroutinefunction(func)
        if sys.version_info >= (3, 12):
            assert inspect.iscoroutinefunction(func)
