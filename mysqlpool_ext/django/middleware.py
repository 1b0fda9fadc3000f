"""``MySQLPoolMiddleware``: one pooled connection per request, given back when the request ends.

Put it first (or early) in ``MIDDLEWARE``. For each request it opens a request scope
(:mod:`mysqlpool_ext.scope`): the first ``current_pool`` call in the request borrows a connection
and pins it to the request, later calls reuse it (so ``LAST_INSERT_ID()``, session variables and
explicit transactions work across statements), and when the request ends every pinned connection
goes back to its pool:

- a transaction still open is rolled back, never committed implicitly;
- a broken connection is discarded, and its capacity freed;
- this happens in ``finally``: also when the view raises;
- for a streaming response (``StreamingHttpResponse``, ``FileResponse``) it happens when the stream
  is closed by the server, and the stream's code runs inside the request's scope.

It serves WSGI and ASGI stacks alike (``sync_capable`` and ``async_capable``), so Django never
has to wrap it in a thread hop.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from pymysql.constants import SERVER_STATUS

from ..scope import (
    RequestScope,
    adopt_connection,
    current_scope,
    detach_connection,
    reset_scope,
    set_scope,
)

if TYPE_CHECKING:
    from ..pool import ConnectionPool

__all__ = ["MySQLPoolMiddleware", "orm_scope"]

logger = logging.getLogger("mysqlpool_ext")
_IN_TRANS = SERVER_STATUS.SERVER_STATUS_IN_TRANS


class MySQLPoolMiddleware:
    """Opens a request scope for ``current_pool`` and gives its connections back at the end."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            # Tell Django this instance is a coroutine function, so it calls it without a thread.
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        scope = OrmScope()
        _share_orm_connections(scope)
        token = set_scope(scope)
        response = None
        try:
            response = self.get_response(request)
        finally:
            reset_scope(token)
            response = self._finish(scope, response, True)
        return response

    async def __acall__(self, request: Any) -> Any:
        scope = OrmScope()
        _share_orm_connections(scope)
        token = set_scope(scope)
        response = None
        try:
            response = await self.get_response(request)
        finally:
            reset_scope(token)
            if response is not None and response.streaming:
                response = self._finish(scope, response, False)
            else:
                await _agive_back(scope)
        return response

    def _finish(self, scope: OrmScope, response: Any, keep: bool) -> Any:
        """Give the request's connections back now, or, for a streaming response, when its
        stream is closed (the one piece of logic both call paths share). ``keep``: see
        :func:`_give_back` (never under ASGI, where a sync stream is read in a thread of its
        own too)."""
        if response is None or not getattr(response, "streaming", False):
            _give_back(scope, keep)
            return response
        # Even when nothing is pinned yet: the stream's own code may call current_pool.
        if getattr(response, "is_async", False):
            response.streaming_content = _ascoped(response.streaming_content, scope)
        else:
            response.streaming_content = _scoped(response.streaming_content, scope, keep)
        # Backstop: a stream the server never iterates is still closed (PEP 3333 / ASGI handler),
        # and Django runs these closers then; giving back twice is a no-op.
        response._resource_closers.append(lambda: _give_back(scope, keep))
        return response


class OrmScope(RequestScope):
    """The scope of a request (or of ``orm_scope()``): the pooled ENGINE's ORM uses its
    connection, and lets go of it before the scope gives it back; ``shared`` lists the
    connections (with their pool and wrapper) the ORM held already and keeps (never given back
    by the scope); ``orm`` the ORM wrappers (one per alias and thread) using the scope's
    connections."""

    __slots__ = ("orm", "shared")

    def __init__(self) -> None:
        super().__init__()
        self.shared: list[tuple[ConnectionPool, Any, Any]] = []
        self.orm: list[Any] = []

    def transaction_ended(self, pool: ConnectionPool, conn: Any, committed: bool) -> None:
        """A ``current_pool`` block committed or rolled back on a connection the ORM uses:
        the ORM's wrappers on it run or drop their ``on_commit`` callbacks, as Django's own
        commit or rollback would."""
        wrappers = [w for w in self.orm if w.connection is conn]
        wrappers += [
            w for _, c, w in self.shared if c is conn and w is not None and w not in wrappers
        ]
        for wrapper in wrappers:
            wrapper.transaction_ended(committed)

    async def atransaction_ended(self, pool: ConnectionPool, conn: Any, committed: bool) -> None:
        """From an ``atransaction()`` block on the event loop: the callbacks run where the
        request's sync code runs (they may use the ORM, which refuses the event loop)."""
        from asgiref.sync import sync_to_async

        await sync_to_async(self.transaction_ended, thread_sensitive=True)(pool, conn, committed)


_BACKEND = "mysqlpool_ext.django.backend.base"


def _share_orm_connections(scope: OrmScope) -> None:
    """A connection the ORM already holds when the request starts (a ``TestCase``'s atomic block,
    a test's earlier queries) becomes the request's connection too, still owned by the ORM: so
    ``current_pool`` writes are in the test's transaction and roll back with it."""
    backend = sys.modules.get(_BACKEND)
    if backend is None or not backend.ORM_HELD:
        # The pooled ENGINE is not in use, or no ORM wrapper (of any thread) holds a connection
        # of its own right now: the usual start of a request, and then nothing to share.
        return
    from django.db import connections

    for wrapper in connections.all(initialized_only=True):
        if not isinstance(wrapper, backend.DatabaseWrapper) or wrapper.connection is None:
            continue
        pool = wrapper.borrowed_from
        conn = wrapper.connection
        if pool is not None and not wrapper.owned_by_scope and adopt_connection(scope, pool, conn):
            scope.shared.append((pool, conn, wrapper))


@contextmanager
def orm_scope() -> Iterator[RequestScope]:
    """A request scope outside a request: the ORM and ``current_pool`` share one connection per
    pool in the block (management commands, tasks, test code), given back at its end.

    A connection the ORM already holds (a ``TestCase``'s) is shared and stays the ORM's, so in
    a ``TestCase`` the block's ``current_pool`` writes roll back with the test. Inside a
    request (or another ``orm_scope()``: code shared by views and commands, a task run
    eagerly) it is that scope: one connection, in the request's transaction."""
    outer = current_scope()
    if isinstance(outer, OrmScope) and not outer.ended:
        yield outer
        return
    scope = OrmScope()
    if outer is not None and not outer.ended:
        # Another kind of scope (a current_pool.transaction() block outside a request): its
        # connections are shared, so the block's transaction spans the ORM too; it keeps them.
        for pool, conn in outer.pinned():
            if adopt_connection(scope, pool, conn):
                scope.shared.append((pool, conn, None))
    _share_orm_connections(scope)
    token = set_scope(scope)
    try:
        yield scope
    finally:
        reset_scope(token)
        _give_back(scope)


def _give_back(scope: RequestScope, keep: bool = True) -> None:
    """``keep``: the ORM may keep its connection for its thread's next request (WSGI and
    ``orm_scope()``: the thread goes on; not under ASGI, where each request's sync code runs
    in a thread of its own)."""
    if isinstance(scope, OrmScope):
        # The ORM lets go of the request's connection first, so it never uses it afterwards;
        # connections it owns stay with it.
        if scope.orm:
            wrappers, scope.orm = scope.orm, []
            for wrapper in wrappers:
                wrapper.release_request_connection(scope, keep)
        for pool, conn, _ in scope.shared:
            # Only if it is still the scope's: after the ORM closed it (close_all() in the
            # view), the scope may hold one it borrowed since, which it gives back.
            detach_connection(scope, pool, conn)
    try:
        scope.release()
    except Exception:
        # The pool has already discarded whatever failed; the response must still go out.
        logger.exception("django: giving back the request's connections failed")


def _clean(scope: RequestScope) -> bool:
    """True when giving back needs no round trip (no open transaction, nothing broken)."""
    conns = getattr(scope, "_conns", None)
    if conns is None:
        return False
    for _pool, conn in list(conns.values()):
        d = conn.__dict__
        if d.get("_sock") is None or d.get("_mp_broken") or d.get("server_status", 0) & _IN_TRANS:
            return False
        result = d.get("_result")
        if result is not None and (result.unbuffered_active or result.has_next):
            return False
    return True


async def _agive_back(scope: RequestScope) -> None:
    """Async path: a clean give-back is a lock and a deque, done on the loop; a rollback is a
    round trip, done in a thread so the event loop never waits on the network."""
    if scope.borrowed == 0:
        _give_back(scope, False)  # no I/O: lets the ORM go of a connection given back early
        return
    if _clean(scope):
        _give_back(scope, False)
    else:
        await asyncio.to_thread(_give_back, scope, False)


def _scoped(content: Iterable[Any], scope: RequestScope, keep: bool) -> Iterator[Any]:
    """Run each step of a sync stream inside the request's scope; give back when it ends."""
    it = iter(content)
    try:
        while True:
            token = set_scope(scope)
            try:
                chunk = next(it)
            except StopIteration:
                return
            finally:
                reset_scope(token)
            yield chunk
    finally:
        close = getattr(it, "close", None)
        try:
            if close is not None:
                close()
        finally:
            _give_back(scope, keep)


async def _ascoped(content: Any, scope: RequestScope) -> AsyncIterator[Any]:
    """The async twin of :func:`_scoped`."""
    it = content.__aiter__()
    try:
        while True:
            token = set_scope(scope)
            try:
                chunk = await it.__anext__()
            except StopAsyncIteration:
                return
            finally:
                reset_scope(token)
            yield chunk
    finally:
        aclose = getattr(it, "aclose", None)
        try:
            if aclose is not None:
                await aclose()
        finally:
            await _agive_back(scope)
