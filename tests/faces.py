"""One test body for both faces of a pool (imported as ``faces``: pytest puts this folder on
sys.path; tests/session's conftest adds it too).

A regression test is written once, as ``async def test_x(face, ...)``, against the methods below;
the ``face`` fixture runs it with the blocking face (``connection()``, ``transaction()``,
``get_connection()``, ``execute_query()``, ``close()``) and with the asyncio face
(``aconnection()``, ``atransaction()``, ``aget_connection()``, ``aexecute_query()``, ``aclose()``).
The blocking face blocks the test's event loop while it runs, which is what a blocking caller does;
Tests that need concurrency on the blocking face use threads.

Why not two hand-written copies: the two faces of the pool drifted exactly because they were
written twice (STYLE.md, "One source for two faces"); their guards must not drift too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from typing import Any

from mysqlpool_ext import Connection, ConnectionPool

#: What the ``make_pool`` fixtures return: build a pool that the fixture closes afterwards.
MakePool = Callable[..., ConnectionPool]

Acm = AbstractAsyncContextManager[Any]


class Face:
    """The blocking face, behind ``await`` so one test body serves both."""

    name = "sync"

    def connection(self, pool: ConnectionPool, timeout: float | None = None) -> Acm:
        return _wrap(pool.connection(timeout))

    def transaction(self, pool: ConnectionPool, timeout: float | None = None) -> Acm:
        return _wrap(pool.transaction(timeout))

    async def get_connection(self, pool: ConnectionPool, timeout: float | None = None) -> Any:
        return pool.get_connection(timeout)

    async def query(self, conn: Connection, sql: str, args: Any = (), **kw: Any) -> Any:
        return conn.execute_query(sql, args, **kw)

    async def execute_query(self, pool: ConnectionPool, sql: str, args: Any = (), **kw: Any) -> Any:
        return pool.execute_query(sql, args, **kw)

    async def close(self, pool: ConnectionPool) -> None:
        pool.close()

    def __repr__(self) -> str:
        return self.name


class AsyncFace(Face):
    """The asyncio face of the same pool."""

    name = "async"

    def connection(self, pool: ConnectionPool, timeout: float | None = None) -> Acm:
        return pool.aconnection(timeout)

    def transaction(self, pool: ConnectionPool, timeout: float | None = None) -> Acm:
        return pool.atransaction(timeout)

    async def get_connection(self, pool: ConnectionPool, timeout: float | None = None) -> Any:
        return await pool.aget_connection(timeout)

    async def query(self, conn: Connection, sql: str, args: Any = (), **kw: Any) -> Any:
        return await conn.aexecute_query(sql, args, **kw)

    async def execute_query(self, pool: ConnectionPool, sql: str, args: Any = (), **kw: Any) -> Any:
        return await pool.aexecute_query(sql, args, **kw)

    async def close(self, pool: ConnectionPool) -> None:
        await pool.aclose()


FACES: dict[str, Face] = {"sync": Face(), "async": AsyncFace()}


@asynccontextmanager
async def _wrap(cm: AbstractContextManager[Any]) -> AsyncIterator[Any]:
    """A blocking context manager behind ``async with``: an exception raised in the body reaches
    the wrapped ``__exit__`` exactly as it would in a plain ``with``."""
    with cm as value:
        yield value
