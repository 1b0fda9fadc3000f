"""Request-scope edge cases: racing borrows, concurrent tasks of one request, late threads,
and the order in which framework resolvers are asked."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

from corekit import MakePool

from mysqlpool_ext import ConnectionPool, PoolError, current_pool, request_scope
from mysqlpool_ext.scope import register_resolver, unregister_resolver


async def test_gathered_tasks_of_one_request_share_one_connection(make_pool: MakePool) -> None:
    pool = make_pool(size=2, max_size=4, name="scope-gather")
    with request_scope() as scope:
        ids = await asyncio.gather(
            *(
                current_pool.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
                for _ in range(8)
            )
        )
        assert len({row[0] for row in ids}) == 1, ids  # one connection, tasks took turns
        assert scope.borrowed == 1
    stats = pool.stats()
    assert stats["in_use"] == 0 and stats["leaks"] == 0, stats


def test_thread_outliving_its_request_cannot_pin_a_connection(make_pool: MakePool) -> None:
    pool = make_pool(size=1, name="scope-late")
    with request_scope():
        ctx = contextvars.copy_context()
    errors: list[BaseException] = []

    def late() -> None:
        try:
            ctx.run(current_pool.execute_query, "SELECT 1")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    t = threading.Thread(target=late)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], PoolError), errors
    assert "request scope" in str(errors[0]) and "scope-late" in str(errors[0])
    assert pool.stats()["in_use"] == 0


def test_fallback_resolvers_are_asked_after_context_bound_ones(make_pool: MakePool) -> None:
    bound = make_pool(size=1, name="scope-bound")
    fallback = make_pool(size=1, name="scope-fallback")
    active = {"bound": True}

    def bound_resolver(name: str | None) -> ConnectionPool | None:
        return bound if active["bound"] and name is None else None

    def fallback_resolver(name: str | None) -> ConnectionPool | None:
        return fallback if name is None else None

    register_resolver(fallback_resolver, fallback=True)
    register_resolver(bound_resolver)
    try:
        assert current_pool.name == "scope-bound"
        active["bound"] = False
        assert current_pool.name == "scope-fallback"
    finally:
        unregister_resolver(bound_resolver)
        unregister_resolver(fallback_resolver)


def test_racing_second_borrow_goes_back(make_pool: MakePool) -> None:
    pool = make_pool(size=2, name="scope-race")
    with request_scope() as scope:
        first = scope.connection_for(pool)
        extra: Any = pool.get_connection()
        assert scope._pin(pool, extra) is first  # the loser's connection is given back
        assert pool.stats()["in_use"] == 1
    assert pool.stats()["in_use"] == 0
