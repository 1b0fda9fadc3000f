"""Helpers for the async tests (imported as ``aiokit``: pytest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mysqlpool_ext import ConnectionPool

MakePool = Callable[..., ConnectionPool]

_D = (
    "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4"
    " UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8"
    " UNION ALL SELECT 9)"
)


def seq(n: int, *cols: str) -> str:
    """``SELECT seq[, cols] FROM <1..n> ORDER BY seq``, portable to MySQL and MariaDB."""
    num = "a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 1"
    extra = "".join(", " + c.replace("seq", f"({num})") for c in cols)
    return (
        f"SELECT {num} AS seq{extra} FROM {_D} a, {_D} b, {_D} c, {_D} e, {_D} f"
        f" WHERE {num} <= {n} ORDER BY seq"
    )


class Ticker:
    """Measures how late the event loop runs a task that wants to wake every ``period`` s.

    A blocked loop (a blocking connect, query or lock) shows up as a large ``worst`` lag.
    """

    def __init__(self, period: float = 0.002) -> None:
        self.period = period
        self.worst = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.period)
            lag = time.perf_counter() - start - self.period
            self.worst = max(self.worst, lag)
            self.ticks += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
