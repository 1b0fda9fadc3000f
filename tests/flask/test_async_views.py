"""Async views with the Flask test client: Flask runs them through asgiref, in an event loop of
another thread, and the request's connection must still be the one the sync hooks used."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, g

from mysqlpool_ext import current_pool
from mysqlpool_ext.flask import EXTENSION_KEY

pytest.importorskip("asgiref", reason="async views need flask[async]")

MakeApp = Callable[..., Flask]


def conn_id() -> int:
    return int(current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0])


def in_use(app: Flask) -> int:
    return int(app.extensions[EXTENSION_KEY].pool.stats()["in_use"])


async def aconn_id() -> int:
    row = await current_pool.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
    return int(row[0])


def test_async_view_shares_the_request_connection(
    make_app: MakeApp, table: str, rows: Callable[[str], list[Any]]
) -> None:
    app = make_app()

    @app.before_request
    def sync_hook() -> None:
        g.hook_conn = conn_id()

    @app.post("/")
    async def view() -> Any:
        first = await aconn_id()
        await current_pool.aexecute_query(f"INSERT INTO {table} (v) VALUES ('a')")
        last = await current_pool.aexecute_query("SELECT LAST_INSERT_ID()", return_one=True)
        return {"hook": g.hook_conn, "first": first, "second": await aconn_id(), "last": last[0]}

    body = app.test_client().post("/").get_json()
    assert body["hook"] == body["first"] == body["second"]
    assert body["last"] == 1
    assert rows(table) == ["a"]
    assert in_use(app) == 0


def test_async_view_teardown_rolls_back_and_atransaction_commits(
    make_app: MakeApp, table: str, rows: Callable[[str], list[Any]]
) -> None:
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    @app.post("/forgot")
    async def forgot() -> Any:
        await current_pool.aexecute_query("BEGIN")
        await current_pool.aexecute_query(f"INSERT INTO {table} (v) VALUES ('uncommitted')")
        return {"ok": True}

    @app.post("/raises")
    async def raises() -> Any:
        await current_pool.aexecute_query("BEGIN")
        await current_pool.aexecute_query(f"INSERT INTO {table} (v) VALUES ('doomed')")
        raise RuntimeError("boom")

    @app.post("/tx")
    async def tx() -> Any:
        async with current_pool.atransaction() as conn:
            await conn.aexecute_query(f"INSERT INTO {table} (v) VALUES ('committed')")
        return {"ok": True}

    client = app.test_client()
    assert client.post("/forgot").status_code == 200
    assert in_use(app) == 0
    assert client.post("/raises").status_code == 500
    assert in_use(app) == 0
    assert client.post("/tx").status_code == 200
    assert in_use(app) == 0
    assert rows(table) == ["committed"]
    with app.app_context():  # the connections went back usable, sync side included
        assert current_pool.execute_query("SELECT 1", return_one=True) == (1,)


# -- statements of one request at the same time ------------------------------------------------


def test_async_hooks_and_view_each_gather_on_the_request_connection(make_app: MakeApp) -> None:
    """Flask runs each async hook and the view in an event loop of its own: the request's
    async lock (one statement at a time) must not belong to the first loop only."""
    import asyncio

    app = make_app(MYSQLPOOL_SIZE=2, MYSQLPOOL_TIMEOUT=3)

    @app.before_request
    async def hook() -> None:
        rows = await asyncio.gather(*(aconn_id() for _ in range(3)))
        g.hook_ids = sorted(set(rows))

    @app.get("/gather")
    async def view() -> dict[str, Any]:
        rows = await asyncio.gather(*(aconn_id() for _ in range(5)))
        return {"hook": g.hook_ids, "view": sorted(set(rows))}

    client = app.test_client()
    for _ in range(2):
        response = client.get("/gather")
        assert response.status_code == 200, response.get_data()[:500]
        data = response.get_json()
        assert len(data["hook"]) == 1 and data["hook"] == data["view"]
    assert in_use(app) == 0


def test_a_blocking_call_on_the_loop_while_an_async_one_runs_raises(make_app: MakeApp) -> None:
    """One task of a request awaits a statement; another calls the blocking API on the same
    loop: waiting for the connection would stop the loop for ever, so it raises."""
    import asyncio
    import threading

    from mysqlpool_ext import PoolError

    app = make_app(MYSQLPOOL_SIZE=2, MYSQLPOOL_TIMEOUT=3)

    @app.get("/mixed")
    async def view() -> dict[str, Any]:
        await aconn_id()  # the request's connection is pinned
        started = asyncio.Event()

        async def slow() -> Any:
            started.set()
            return await current_pool.aexecute_query("SELECT 'async', SLEEP(0.3)", return_one=True)

        async def blocking() -> str:
            await started.wait()  # slow() now holds the connection, waiting for its answer
            try:
                current_pool.execute_query("SELECT 'sync'")
            except PoolError as exc:
                return str(exc)
            return "no error"

        row, message = await asyncio.gather(slow(), blocking())
        return {"row": list(row), "message": message}

    result: dict[str, Any] = {}

    def request() -> None:
        result["response"] = app.test_client().get("/mixed")

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the request hung"
    data = result["response"].get_json()
    assert data["row"] == ["async", 0]
    assert "await the async API" in data["message"]
    assert in_use(app) == 0


@pytest.mark.parametrize(
    ("scenario", "outer_says", "inner_says"),
    [
        # Both blocks start at once; the failing one sent BEGIN first. Deciding BEGIN or
        # SAVEPOINT before that BEGIN was answered made both send BEGIN: the second BEGIN
        # committed the failing block's work so far, then the other block committed the rest.
        ("at_once", "rolled back", "released"),
        # The failing outer block ends while the other's savepoint is open: that one's work
        # went with the transaction, and it says so when it ends.
        ("outer_fails_first", "rolled back", "lost: the transaction this block was a savepoint"),
        # The outer block succeeds while the failing block's savepoint is still open: it must
        # not commit the other's work before that block knows its fate.
        ("outer_ends_first", "lost: not committed", "rolled back"),
    ],
)
def test_transaction_blocks_of_one_request_at_the_same_time(
    make_app: MakeApp,
    table: str,
    rows: Callable[[str], list[Any]],
    scenario: str,
    outer_says: str,
    inner_says: str,
) -> None:
    """``asyncio.gather`` of two ``atransaction()`` blocks of one request: they share its one
    connection, so the second to start is a savepoint of the first's transaction. Whatever
    the order they end in, a failed block's work is never committed."""
    import asyncio

    from mysqlpool_ext import TransactionLostError

    app = make_app(MYSQLPOOL_SIZE=2, MYSQLPOOL_TIMEOUT=3)

    @app.get("/two")
    async def view() -> dict[str, Any]:
        if scenario != "at_once":
            # Pinned: the block that starts first is the outer one. (At once, both borrow, and
            # the one whose borrow ends first begins the transaction.)
            await current_pool.aexecute_query("SELECT 1")
        outer_in, inner_in = asyncio.Event(), asyncio.Event()
        outer_done, inner_done = asyncio.Event(), asyncio.Event()
        outer_fails = scenario != "outer_ends_first"

        async def block(name: str, fails: bool, body: Any) -> str:
            try:
                async with current_pool.atransaction():
                    await current_pool.aexecute_query(
                        f"INSERT INTO {table} (v) VALUES (%s)", (name,)
                    )
                    await body()
                    if fails:
                        raise ValueError("the block fails")
            except ValueError:
                return "rolled back"
            except TransactionLostError as exc:
                return f"lost: {exc}"
            return "released"

        async def outer_body() -> None:
            outer_in.set()
            await inner_in.wait()
            if scenario == "at_once":
                await inner_done.wait()

        async def inner_body() -> None:
            inner_in.set()
            if scenario != "at_once":
                await outer_done.wait()  # still open when the outer block ends

        async def outer() -> str:
            try:
                return await block("outer", outer_fails, outer_body)
            finally:
                outer_done.set()

        async def inner() -> str:
            if scenario != "at_once":
                await outer_in.wait()
            try:
                return await block("inner", not outer_fails, inner_body)
            finally:
                inner_done.set()

        outer_task = asyncio.ensure_future(outer())
        inner_task = asyncio.ensure_future(inner())
        return {"r": [await outer_task, await inner_task]}

    response = app.test_client().get("/two")
    assert response.status_code == 200, response.get_data()[:500]
    said = response.get_json()["r"]
    if scenario == "at_once":
        # Either began the transaction (the one whose borrow ended first); or the succeeding
        # one was done before the failing one began (then its row is committed, rightly).
        assert said[0] == "rolled back" or said[0].startswith("lost: the transaction"), said
        assert said[1] == "released" or said[1].startswith("lost: not committed"), said
        assert "outer" not in rows(table)  # the failing block's row
    else:
        assert said[0].startswith(outer_says), said
        assert said[1].startswith(inner_says), said
        assert rows(table) == []
    assert in_use(app) == 0
