"""``current_pool`` blocks on a request's one connection, with code of the request running at the
same time (``asyncio.gather``) and code that outlives a block: whatever the interleaving, a failed
transaction's work is never committed, and nothing is left in an ended scope."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from corekit import MakePool

from mysqlpool_ext import ConnectionPool, current_pool, request_scope
from mysqlpool_ext.registry import set_default_pool


@pytest.fixture
def pool(make_pool: MakePool) -> Iterator[ConnectionPool]:
    pool = make_pool(size=1, max_size=4, timeout=5)
    pool.execute_query("CREATE TABLE IF NOT EXISTS req_blocks (v VARCHAR(40))")
    pool.execute_query("DELETE FROM req_blocks")
    set_default_pool(pool)
    yield pool
    set_default_pool(None)
    pool.execute_query("DROP TABLE IF EXISTS req_blocks")


def rows(pool: ConnectionPool) -> list[str]:
    return [r[0] for r in pool.execute_query("SELECT v FROM req_blocks ORDER BY v")]


async def test_a_plain_block_never_ends_another_blocks_transaction(pool: ConnectionPool) -> None:
    """A ``connection()`` block entered before another task's ``transaction()`` began ends
    after it: it must not COMMIT that transaction (whose block then fails)."""
    began, plain_done = asyncio.Event(), asyncio.Event()

    async def plain() -> None:
        async with current_pool.aconnection():
            await current_pool.aexecute_query("SELECT 1")
            await began.wait()
        plain_done.set()

    async def failing() -> str:
        try:
            async with current_pool.atransaction():
                await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('failed')")
                began.set()
                await plain_done.wait()
                raise RuntimeError("the transaction fails")
        except RuntimeError:
            return "rolled back"

    with request_scope():
        results = await asyncio.gather(plain(), failing())
    assert results[1] == "rolled back"
    assert rows(pool) == []


async def test_a_task_started_in_a_block_outside_a_request_outlives_it(
    pool: ConnectionPool,
) -> None:
    """Outside a request a ``transaction()`` block is a scope of its own; a task it started
    that runs on after the block borrows per call again (not "the scope has ended")."""
    block_ended = asyncio.Event()

    async def later() -> Any:
        await block_ended.wait()
        return await current_pool.aexecute_query("SELECT 'later'", return_one=True)

    async with current_pool.atransaction():
        await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('in block')")
        task = asyncio.ensure_future(later())
    block_ended.set()
    assert await task == ("later",)
    assert rows(pool) == ["in block"]
    assert pool.stats()["in_use"] == 0


def test_statements_of_a_lost_savepoint_block_raise(pool: ConnectionPool) -> None:
    """A thread of the request opens a savepoint block inside the request's transaction; the
    outer block ends first: it rolls back (committing would commit the other's work before it
    knows its fate) and says so; the other block's next statement raises instead of running
    (and committing) on its own, and nothing is committed."""
    import contextvars
    import threading

    from mysqlpool_ext import TransactionLostError

    inner_open, outer_ended = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def inner() -> None:
        try:
            with current_pool.transaction():
                current_pool.execute_query("INSERT INTO req_blocks VALUES ('inner')")
                inner_open.set()
                assert outer_ended.wait(10)
                current_pool.execute_query("INSERT INTO req_blocks VALUES ('after the end')")
        except TransactionLostError as exc:
            seen["inner"] = str(exc)

    with request_scope():
        thread = threading.Thread(target=contextvars.copy_context().run, args=(inner,))
        with (
            pytest.raises(TransactionLostError, match="not committed"),
            current_pool.transaction(),
        ):
            current_pool.execute_query("INSERT INTO req_blocks VALUES ('outer')")
            thread.start()
            assert inner_open.wait(10)
        outer_ended.set()
        thread.join(10)
    assert seen["inner"].startswith("the transaction this block was a savepoint of")
    assert rows(pool) == []


async def test_a_sync_block_that_cannot_end_on_the_loop_leaves_nothing_to_lose(
    pool: ConnectionPool,
) -> None:
    """A blocking ``with current_pool.transaction():`` on the event loop ends while an async
    statement of the request holds the connection: it cannot wait for it (the loop would stop)
    and raises. Its transaction is still open on the connection, so every later statement of
    the request there (current_pool, sync or async, or a new block) must raise too: run, it
    would seem to succeed and be rolled back with that transaction when the request ends."""
    from mysqlpool_ext import PoolError, TransactionLostError
    from mysqlpool_ext.scope import current_scope

    with request_scope():
        scope = current_scope()
        assert scope is not None
        lock = scope.use_lock(pool)
        task = None
        with (
            pytest.raises(PoolError, match="would wait for ever"),
            current_pool.transaction(),
        ):
            current_pool.execute_query("INSERT INTO req_blocks VALUES ('block')")
            task = asyncio.ensure_future(current_pool.aexecute_query("SELECT SLEEP(0.3)"))
            for _ in range(1000):  # until the task holds the connection
                if lock.locked():
                    break
                await asyncio.sleep(0)
            assert lock.locked()
        assert task is not None
        await task
        with pytest.raises(TransactionLostError, match="could not end"):
            await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('async after')")
        with pytest.raises(TransactionLostError, match="could not end"):
            current_pool.execute_query("INSERT INTO req_blocks VALUES ('sync after')")
        with pytest.raises(TransactionLostError, match="could not end"):
            async with current_pool.atransaction():
                await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('new block')")
    assert rows(pool) == []
    assert pool.stats()["in_use"] == 0


async def _siblings(first_ends: str, first_fails: bool) -> dict[str, str]:
    """Two tasks of one request each open a savepoint block inside the request's transaction,
    A before B; ``first_ends`` says which block ends first. What each block saw."""
    from mysqlpool_ext import TransactionLostError

    a_open, b_open = asyncio.Event(), asyncio.Event()
    first_done = asyncio.Event()
    seen: dict[str, str] = {}

    async def block(name: str) -> None:
        first = name == first_ends
        try:
            if name == "B":
                await a_open.wait()
            async with current_pool.atransaction():
                await current_pool.aexecute_query(f"INSERT INTO req_blocks VALUES ('{name}')")
                (a_open if name == "A" else b_open).set()
                await b_open.wait()
                if not first:
                    await first_done.wait()
                    await current_pool.aexecute_query(
                        f"INSERT INTO req_blocks VALUES ('{name} later')"
                    )
                elif first_fails:
                    raise RuntimeError(f"{name} fails")
            seen[name] = "ok"
        except RuntimeError as exc:
            seen[name] = str(exc)
        except TransactionLostError:
            seen[name] = "lost"
        finally:
            if first:
                first_done.set()

    await asyncio.gather(block("A"), block("B"))
    return seen


@pytest.mark.parametrize("first_ends", ["A", "B"])
async def test_sibling_savepoint_blocks_may_succeed_in_any_order(
    pool: ConnectionPool, first_ends: str
) -> None:
    with request_scope():
        async with current_pool.atransaction():
            await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('owner')")
            seen = await _siblings(first_ends, first_fails=False)
    assert seen == {"A": "ok", "B": "ok"}
    later = "B later" if first_ends == "A" else "A later"
    assert rows(pool) == sorted(["A", "B", later, "owner"])


async def test_a_savepoint_rolled_back_under_an_open_sibling_loses_it(pool: ConnectionPool) -> None:
    """A's ROLLBACK TO SAVEPOINT undoes B's work too (B's savepoint came after A's): B is told
    (its next statement and its end raise), and as B had sent statements since A's savepoint,
    the owner does not commit what is left either."""
    from mysqlpool_ext import TransactionLostError

    with request_scope(), pytest.raises(TransactionLostError, match="not committed"):
        async with current_pool.atransaction():
            await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('owner')")
            seen = await _siblings("A", first_fails=True)
    assert seen == {"A": "A fails", "B": "lost"}
    assert rows(pool) == []


async def test_a_rollback_never_undoes_an_earlier_siblings_work_unseen(
    pool: ConnectionPool,
) -> None:
    """B opens its savepoint; then A (a sibling block, or the owner's code in another task)
    writes and succeeds; then B fails: its ROLLBACK TO undoes A's write too (done after B's
    savepoint), so the owner must not commit what is left."""
    from mysqlpool_ext import TransactionLostError

    for writer in ("sibling block", "owner task"):
        with request_scope(), pytest.raises(TransactionLostError, match="not committed"):
            async with current_pool.atransaction():
                await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('owner')")
                results = await _earlier_writes_later_fails(writer)
                assert [str(r) for r in results] == ["None", "B fails"]
        assert rows(pool) == [], writer
        assert pool.stats()["in_use"] == 0


async def _earlier_writes_later_fails(writer: str) -> list[Any]:
    b_opened, a_done = asyncio.Event(), asyncio.Event()

    async def a() -> None:
        await b_opened.wait()
        if writer == "sibling block":
            async with current_pool.atransaction():
                await current_pool.aexecute_query(f"INSERT INTO req_blocks VALUES ('{writer}')")
        else:
            await current_pool.aexecute_query(f"INSERT INTO req_blocks VALUES ('{writer}')")
        a_done.set()

    async def b() -> None:
        async with current_pool.atransaction():
            b_opened.set()
            await asyncio.wait_for(a_done.wait(), 10)
            raise RuntimeError("B fails")

    return await asyncio.gather(a(), b(), return_exceptions=True)


async def test_a_child_block_in_a_task_is_lost_with_its_failed_parent(pool: ConnectionPool) -> None:
    """A savepoint block P starts a task that opens a block of its own (P's child); P fails:
    its ROLLBACK TO destroys the child's savepoint, so the child is lost (its later statement
    raises, none of its work is committed). The owner's own work stands: the child's work was
    P's to undo."""
    from mysqlpool_ext import TransactionLostError

    child_opened, parent_failed = asyncio.Event(), asyncio.Event()

    async def child() -> str:
        try:
            async with current_pool.atransaction():
                await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('child')")
                child_opened.set()
                await parent_failed.wait()
                await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('child later')")
        except TransactionLostError:
            return "lost"
        return "ok"

    with request_scope():
        async with current_pool.atransaction():
            await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('owner')")
            task = None
            with pytest.raises(RuntimeError):
                async with current_pool.atransaction():
                    await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('parent')")
                    task = asyncio.ensure_future(child())
                    await child_opened.wait()
                    raise RuntimeError("the parent fails")
            parent_failed.set()
            assert task is not None
            assert await task == "lost"
    assert rows(pool) == ["owner"]


def test_a_savepoint_the_server_already_dropped_gives_nothing_up(pool: ConnectionPool) -> None:
    """The server ended the transaction under a savepoint block (a deadlock does; here a
    ROLLBACK): the block's ROLLBACK TO gets 1305. That is an answer, not a broken connection:
    the request goes on using it."""
    with request_scope():
        with (
            pytest.raises(RuntimeError),
            current_pool.transaction(),
            current_pool.transaction(),
        ):
            current_pool.execute_query("INSERT INTO req_blocks VALUES ('x')")
            current_pool.execute_query("ROLLBACK")
            raise RuntimeError("the inner block fails")
        current_pool.execute_query("INSERT INTO req_blocks VALUES ('after')")
        cid = current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
    assert rows(pool) == ["after"]
    # Not discarded: the same server connection is lent again.
    assert pool.execute_query("SELECT CONNECTION_ID()", return_one=True) == cid


async def test_a_sibling_that_succeeded_is_never_undone_unseen(pool: ConnectionPool) -> None:
    """B (opened after A) succeeds first; then A fails: its ROLLBACK TO SAVEPOINT undoes B's
    finished work as well. Committing would drop B's work silently: the owner rolls back and
    says so."""
    from mysqlpool_ext import TransactionLostError

    a_open, b_done = asyncio.Event(), asyncio.Event()

    async def a() -> None:
        async with current_pool.atransaction():
            await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('A')")
            a_open.set()
            await b_done.wait()
            raise RuntimeError("A fails")

    async def b() -> None:
        await a_open.wait()
        async with current_pool.atransaction():
            await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('B')")
        b_done.set()

    with request_scope(), pytest.raises(TransactionLostError, match="not committed"):
        async with current_pool.atransaction():
            await current_pool.aexecute_query("INSERT INTO req_blocks VALUES ('owner')")
            results = await asyncio.gather(a(), b(), return_exceptions=True)
            assert [str(r) for r in results] == ["A fails", "None"]
    assert rows(pool) == []
