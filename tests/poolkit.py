"""``PoolMaker``: the pools one test makes, all closed at its end whatever happened (the
``make_pool`` / ``own_pool`` fixtures of every layer are this, with other connect kwargs)."""

from __future__ import annotations

from typing import Any

from mysqlpool_ext import ConnectionPool


class PoolMaker:
    """``maker(**options)`` opens a pool on ``kwargs`` + options and remembers it."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.made: list[ConnectionPool] = []

    def __call__(self, **options: Any) -> ConnectionPool:
        pool = ConnectionPool(**{**self.kwargs, **options})
        self.made.append(pool)
        return pool

    def close(self) -> None:
        for pool in self.made:
            pool.close()

    async def aclose(self) -> None:
        for pool in self.made:
            await pool.aclose()
