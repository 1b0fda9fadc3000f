"""Run by Django's own test runner (``manage.py test engine_app``) from test_engine.py: the test
database, TestCase/TransactionTestCase and the test Client exactly as a user's suite gets them."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pymysql
from asgiref.sync import async_to_sync
from django.db import OperationalError, connections, transaction
from django.db.backends.signals import connection_created
from django.test import AsyncClient, SimpleTestCase, TestCase, TransactionTestCase
from django.test.testcases import DatabaseOperationForbidden

from engine_app import views
from engine_app.models import Item
from engine_app.views import _cid, _orm_cid
from mysqlpool_ext import current_pool
from mysqlpool_ext.django import orm_scope
from mysqlpool_ext.django.backend.base import DatabaseWrapper, engine_pools


@contextmanager
def connects_heard() -> Iterator[list[object]]:
    """The wrappers ``connection_created`` announces in the block, in order."""
    seen: list[object] = []

    def hear(sender: object, connection: object, **kwargs: object) -> None:
        seen.append(connection)

    connection_created.connect(hear)
    try:
        yield seen
    finally:
        connection_created.disconnect(hear)


def lent() -> int:
    """Connections lent by the pools, besides those the test's own ORM connections hold (outside
    requests Django keeps its connection until it closes it, as with the stock backend)."""
    held = sum(1 for w in connections.all(initialized_only=True) if w.connection is not None)
    return sum(p.stats()["in_use"] for p in engine_pools()) - held


class PerTestRollback(TestCase):
    """TestCase: the request shares the test's connection, so current_pool writes roll back with
    the test like ORM writes."""

    databases = {"default", "other"}

    def test_1_write_through_both(self) -> None:
        self.assertEqual(Item.objects.count(), 0)
        self.assertEqual(self.client.get("/same").status_code, 200)
        # Test code outside a request shares the test's connection through orm_scope().
        with orm_scope():
            current_pool.execute_query("INSERT INTO engine_app_item (name) VALUES ('outside')")
        self.assertEqual(Item.objects.count(), 2)

    def test_2_nothing_leaked_from_test_1(self) -> None:
        self.assertEqual(Item.objects.count(), 0)
        self.assertEqual(Item.objects.filter(name="same").count(), 0)

    def test_3_same_connection_in_request(self) -> None:
        data = self.client.get("/same").json()
        self.assertEqual(len(set(data["ids"])), 1, data)
        self.assertEqual(data["last"], data["pk"])
        self.assertEqual(data["var"], 42)
        with connections["default"].cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            self.assertEqual(cur.fetchone()[0], data["ids"][0])  # the test's own connection

    def test_4_atomic_rolls_back_both(self) -> None:
        self.client.get("/atomic-fail")
        self.assertEqual(Item.objects.count(), 0)

    def test_5_stream_uses_the_request_connection(self) -> None:
        Item.objects.create(name="s")
        response = self.client.get("/stream")
        lines = b"".join(response.streaming_content).decode().split()
        for line in lines:
            orm, pool, count, _ = line.split(",")
            self.assertEqual(orm, pool)
            self.assertEqual(count, "1")
        self.assertEqual(len(lines), 3)


class RequestLifecycle(TransactionTestCase):
    """TransactionTestCase (no test transaction): the connection goes back at the end of every
    test-Client request, and writes commit or roll back as the view's blocks say."""

    databases = {"default", "other"}

    def test_connection_given_back_after_each_request(self) -> None:
        for _ in range(5):
            data = self.client.get("/same").json()
            self.assertEqual(len(set(data["ids"])), 1, data)
            self.assertEqual(lent(), 0)
        self.assertIsNone(connections["default"].connection)

    def test_a_thread_keeps_its_connection_between_requests(self) -> None:
        """Between two requests of a thread the ORM keeps its connection, as a persistent one
        would (no Django connect(), no give-back and borrow), while the pool still counts it as
        available (any borrower that would wait takes it). Between requests the wrapper looks
        closed, as with CONN_MAX_AGE=0."""
        wrapper = connections["default"]
        wrapper.close()
        first = self.client.get("/session").json()["id"]
        pool = engine_pools("default")[-1]
        with mock.patch.object(
            DatabaseWrapper, "connect", autospec=True, side_effect=DatabaseWrapper.connect
        ) as connect:
            for _ in range(3):
                self.assertEqual(pool.stats()["kept"], 1)
                self.assertIsNone(wrapper.connection)
                self.assertEqual(lent(), 0)
                data = self.client.get("/session").json()
                self.assertEqual(data, {"id": first, "autocommit": 1})
        self.assertEqual(connect.call_count, 0)
        wrapper.close()  # Django's close() (connections.close_all()) gives it back
        self.assertEqual(pool.stats()["kept"], 0)
        self.assertEqual(lent(), 0)

    def test_a_changed_session_is_reset_not_kept(self) -> None:
        """A request that changed its session (a variable) or left a transaction open does not
        keep its connection: it goes back, is reset or rolled back, and the next request finds
        it clean."""
        wrapper = connections["default"]
        wrapper.close()
        self.client.get("/same")  # SET @engine_var = 42
        pool = engine_pools("default")[-1]
        self.assertEqual(pool.stats()["kept"], 0)
        self.assertEqual(self.client.get("/session?var=1").json()["var"], None)
        self.client.get("/leave-open")  # BEGIN + INSERT, never ended
        self.assertEqual(pool.stats()["kept"], 0)
        self.assertEqual(self.client.get("/session").json()["autocommit"], 1)
        self.assertEqual(Item.objects.filter(name="left-open").count(), 0)
        wrapper.close()
        self.assertEqual(lent(), 0)

    def test_a_kept_connection_goes_to_a_borrower_that_would_wait(self) -> None:
        """Keeping never costs capacity: with every other connection lent, a borrower takes the
        kept one at once; the next request of its keeper simply borrows another."""
        wrapper = connections["default"]
        wrapper.close()
        first = self.client.get("/session").json()["id"]
        pool = engine_pools("default")[-1]
        others = [pool.get_connection() for _ in range(pool.options.max_size - 1)]
        try:
            started = time.monotonic()
            taker = pool.get_connection(timeout=5)  # nothing idle, no room: takes the kept one
            self.assertLess(time.monotonic() - started, 1.0)
            self.assertEqual(taker.thread_id(), first)
            self.assertEqual(pool.stats()["kept"], 0)
            for conn in others:
                conn.close()
            others = []
            data = self.client.get("/session").json()
            self.assertNotEqual(data["id"], first)
            taker.close()
        finally:
            for conn in others:
                conn.close()
        wrapper.close()
        self.assertEqual(lent(), 0)

    def test_a_kept_connection_killed_between_requests_is_replaced(self) -> None:
        wrapper = connections["default"]
        wrapper.close()
        first = self.client.get("/session").json()["id"]
        settings_dict = wrapper.settings_dict
        admin = pymysql.connect(
            host=settings_dict["HOST"],
            port=int(settings_dict["PORT"]),
            user=settings_dict["USER"],
            password=settings_dict["PASSWORD"],
            autocommit=True,
        )
        try:
            with admin.cursor() as cur:
                cur.execute(f"KILL {int(first)}")
                deadline = time.monotonic() + 10
                while True:
                    cur.execute(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s",
                        (first,),
                    )
                    if cur.fetchone()[0] == 0 or time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
        finally:
            admin.close()
        response = self.client.get("/session")
        self.assertEqual(response.status_code, 200)
        self.assertNotEqual(response.json()["id"], first)
        wrapper.close()
        self.assertEqual(lent(), 0)

    def test_with_a_connection_created_receiver_every_request_connects(self) -> None:
        """A receiver may set up each connection it hears of (the pool's reset would undo what
        it set on a kept one), so with one every request runs the full connect()."""
        connections["default"].close()
        with connects_heard() as seen:
            for _ in range(3):
                self.client.get("/session")
        self.assertEqual(len(seen), 3)
        connections["default"].close()

    def test_a_thread_per_request_server_opens_no_more_connections(self) -> None:
        """Django's runserver runs each request in a new thread: what one request kept, the
        next (another thread) takes, instead of opening a connection per request."""
        connections["default"].close()
        self.client.get("/session")  # warm: the pool's connection exists
        pool = engine_pools("default")[-1]
        opened = pool.stats()["connections_num"]
        ids = set()

        def request() -> None:
            ids.add(self.client.get("/session").json()["id"])

        for _ in range(5):
            t = threading.Thread(target=request)
            t.start()
            t.join()
        self.assertEqual(pool.stats()["connections_num"], opened)
        self.assertLessEqual(len(ids), 2, ids)  # the main thread may keep the first one
        connections["default"].close()

    def test_closing_the_pool_closes_kept_connections(self) -> None:
        wrapper = connections["default"]
        wrapper.close()
        first = self.client.get("/session").json()["id"]
        old = engine_pools("default")[-1]
        self.assertEqual(old.stats()["kept"], 1)
        wrapper.close_pool()
        self.assertTrue(old.closed)
        data = self.client.get("/session").json()
        self.assertNotEqual(data["id"], first)
        self.assertIsNot(engine_pools("default")[-1], old)
        wrapper.close()
        self.assertEqual(lent(), 0)

    def test_request_shares_a_connection_the_orm_took_outside_requests(self) -> None:
        """No test transaction here: the middleware finds the ORM's own connection only because
        the ORM holds one; the request uses it, and it stays the ORM's afterwards."""
        connections["default"].close()
        with connections["default"].cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            own = cur.fetchone()[0]
        data = self.client.get("/same").json()
        self.assertEqual(set(data["ids"]), {own}, data)
        self.assertIsNotNone(connections["default"].connection)  # still the ORM's
        connections["default"].close()
        self.assertEqual(lent(), 0)
        self.client.get("/same")  # nothing held now: the request borrows and gives back
        self.assertIsNone(connections["default"].connection)
        self.assertEqual(lent(), 0)

    def test_zero_new_connections_after_warmup(self) -> None:
        self.client.get("/same")
        before = sum(p.stats()["connections_num"] for p in engine_pools())
        ids = {tuple(self.client.get("/same").json()["ids"]) for _ in range(20)}
        after = sum(p.stats()["connections_num"] for p in engine_pools())
        self.assertEqual(after, before)
        self.assertEqual(len(ids), 1, ids)  # max_size 4, sequential requests: always the same one

    def test_atomic_rolls_back_orm_and_pool_writes(self) -> None:
        self.client.get("/atomic-fail")
        self.assertEqual(Item.objects.count(), 0)
        self.assertEqual(lent(), 0)

    def test_atomic_inside_pool_transaction_is_a_savepoint(self) -> None:
        self.client.get("/nest")
        self.assertEqual(
            sorted(Item.objects.values_list("name", flat=True)), ["nest-orm", "nest-pool"]
        )
        self.client.get("/nest-fail")
        self.assertEqual(Item.objects.filter(name__startswith="nestfail").count(), 0)
        self.assertEqual(lent(), 0)

    def test_pool_transaction_inside_atomic_is_a_savepoint(self) -> None:
        names = lambda: sorted(Item.objects.values_list("name", flat=True))  # noqa: E731
        self.client.get("/pool-tx-in-atomic?outcome=inner-fail")
        self.assertEqual(names(), [])  # the pool block did not commit the ORM's row early
        self.client.get("/pool-tx-in-atomic?outcome=pool-fail")
        self.assertEqual(names(), ["inner-pool-fail-orm", "inner-pool-fail-pool"])
        self.client.get("/pool-tx-in-atomic?outcome=ok")
        self.assertIn("inner-ok-pool", names())
        self.assertEqual(lent(), 0)

    def test_atomic_requests_roll_back_both(self) -> None:
        self.client.raise_request_exception = False
        settings_dict = connections["other"].settings_dict
        settings_dict["ATOMIC_REQUESTS"] = True
        try:
            self.assertEqual(self.client.get("/other-fail").status_code, 500)
        finally:
            settings_dict["ATOMIC_REQUESTS"] = False
        self.assertEqual(Item.objects.using("other").count(), 0)
        self.assertEqual(lent(), 0)

    def test_stream_gives_back_when_closed(self) -> None:
        Item.objects.create(name="s")
        connections["default"].close()
        response = self.client.get("/stream")
        lines = b"".join(response.streaming_content).decode().split()
        response.close()
        self.assertEqual(len(lines), 3)
        self.assertEqual(lent(), 0)

    def test_async_views_and_async_orm(self) -> None:
        pk = Item.objects.create(name="a").pk
        connections["default"].close()
        client = AsyncClient()
        connections["default"].close_pool()  # nothing kept by the threads of earlier tests

        async def go() -> list[dict[str, object]]:
            out = []
            for _ in range(5):
                out.append((await client.get(f"/aitem/{pk}")).json())
                out.append((await client.get("/asame")).json())
            return out

        for data in async_to_sync(go)():
            if "ids" in data:
                self.assertEqual(len(set(data["ids"])), 1, data)  # type: ignore[arg-type]
                self.assertEqual(data["last"], data["pk"])
            else:
                self.assertEqual(data["name"], "a")
        self.assertEqual(lent(), 0)
        # ASGI runs each request's sync code in a thread of its own: nothing is kept for it.
        self.assertEqual(sum(p.stats()["kept"] for p in engine_pools("default")), 0)

        async def stream() -> bytes:
            # Django reads a sync stream in a thread of its own too (the view's ORM queries).
            response = await client.get("/stream")
            with warnings.catch_warnings():  # "must consume synchronous iterators": it is the test
                warnings.simplefilter("ignore")
                return b"".join([chunk async for chunk in response])

        self.assertEqual(len(async_to_sync(stream)().split()), 3)
        self.assertEqual(lent(), 0)
        self.assertEqual(sum(p.stats()["kept"] for p in engine_pools("default")), 0)

    def test_outside_requests_borrow_per_use(self) -> None:
        connections["default"].close()
        self.assertEqual(lent(), 0)
        Item.objects.create(name="x")
        self.assertIsNotNone(connections["default"].connection)  # held until Django closes it
        self.assertEqual(sum(p.stats()["in_use"] for p in engine_pools()), 1)
        connections["default"].close()
        self.assertEqual(lent(), 0)

        def work() -> None:
            Item.objects.create(name="thread")
            connections.close_all()

        t = threading.Thread(target=work)
        t.start()
        t.join()
        self.assertEqual(lent(), 0)
        self.assertEqual(Item.objects.count(), 2)
        connections["default"].close()

    def test_orm_in_a_plain_request_scope_borrows_for_itself(self) -> None:
        """A scope opened by other code (mysqlpool_ext.request_scope) never lends the ORM a
        connection it would give back under the ORM's feet."""
        from mysqlpool_ext.scope import request_scope

        connections["default"].close()
        with request_scope():
            Item.objects.create(name="in-scope")
        self.assertEqual(Item.objects.count(), 1)  # the ORM's own connection, still usable
        connections["default"].close()
        self.assertEqual(lent(), 0)

    def test_isolation_level_follows_the_settings(self) -> None:
        """Set once per server connection (the pool's init_command), and a change of the setting
        gives connections set up for the new level."""

        def level() -> str:
            with connections["default"].cursor() as cur:
                var = "tx_isolation" if connections["default"].mysql_is_mariadb else (
                    "transaction_isolation"
                )  # fmt: skip
                cur.execute(f"SELECT @@SESSION.{var}")
                return str(cur.fetchone()[0])

        wrapper = connections["default"]
        options = wrapper.settings_dict["OPTIONS"]
        wrapper.close()
        self.assertEqual(level(), "READ-COMMITTED")  # Django's default
        wrapper.close()
        options["isolation_level"] = "serializable"
        try:
            self.assertEqual(level(), "SERIALIZABLE")
        finally:
            wrapper.close()
            del options["isolation_level"]
        self.assertEqual(level(), "READ-COMMITTED")
        wrapper.close()

    def test_close_pool_and_pool_false(self) -> None:
        wrapper = connections["default"]
        wrapper.close()
        old = wrapper.pool
        wrapper.close_pool()
        self.assertTrue(old.closed)
        self.assertEqual(Item.objects.count(), 0)  # a new pool, built on the next connect
        self.assertIsNot(wrapper.pool, old)
        wrapper.close()

        plain = wrapper.copy()
        plain.settings_dict["OPTIONS"]["pool"] = False
        try:
            self.assertIsNone(plain.pool)
            with plain.cursor() as cur:
                cur.execute("SELECT 1")
            self.assertIs(type(plain.connection), pymysql.connections.Connection)
        finally:
            plain.close()

    def test_every_connect_is_announced_and_follows_the_settings(self) -> None:
        """Each connect() (after the first, the pooled wrapper's short path) resets Django's
        per-connection state and sends ``connection_created``, as Django's own connect() does;
        a setting changed in place is seen on the next connect."""
        wrapper = connections["default"]
        wrapper.close()
        with connects_heard() as seen:
            for _ in range(3):
                wrapper.ensure_connection()
                wrapper.needs_rollback = True  # per-connection state connect() must reset
                wrapper.close()
            self.assertEqual(seen, [wrapper] * 3)
            self.assertIsNotNone(wrapper._reconnect)  # the last two took the short path
            self.assertEqual(self.client.get("/same").status_code, 200)
            self.assertEqual(len(seen), 4)  # the request's connect
            wrapper.ensure_connection()
            self.assertFalse(wrapper.needs_rollback)
            self.assertTrue(wrapper.get_autocommit())
            wrapper.close()
            old = wrapper.pool
            wrapper.settings_dict["OPTIONS"]["pool"]["timeout"] = 7  # a new pool for new options
            try:
                wrapper.ensure_connection()
                self.assertIsNot(wrapper.borrowed_from, old)
                self.assertEqual(wrapper.borrowed_from.options.timeout, 7)
            finally:
                wrapper.close()
                wrapper.settings_dict["OPTIONS"]["pool"]["timeout"] = old.options.timeout
            wrapper.ensure_connection()
            self.assertEqual(wrapper.borrowed_from.options.timeout, old.options.timeout)
        wrapper.close()

    def test_current_pool_is_the_engine_pool(self) -> None:
        self.assertIs(current_pool._get_current_object(), connections["default"].pool)
        self.assertIs(current_pool.using("other")._get_current_object(), connections["other"].pool)


class ClosingAndCommitting(TransactionTestCase):
    """What Django does besides queries, inside a request that shares its connection with
    current_pool: closing it, on_commit callbacks, its own state after a pool block."""

    databases = {"default", "other"}

    def names(self) -> list[str]:
        return sorted(Item.objects.values_list("name", flat=True))

    def test_closing_inside_a_transaction_rolls_it_back(self) -> None:
        for how in ("close_all", "close_old", "manual"):
            for after in ("orm", "pool"):
                self.assertEqual(
                    self.client.get(f"/close-in-atomic?how={how}&after={after}").status_code, 200
                )
        # Only the writes after the close: as with the stock backend, closing a connection
        # inside a transaction loses the transaction, and nothing commits it later.
        self.assertEqual(
            self.names(),
            sorted(
                f"{h}-{a}-after"
                for h in ("close_all", "close_old", "manual")
                for a in ("orm", "pool")
            ),
        )
        self.assertEqual(lent(), 0)

    def test_on_commit_runs_when_the_pool_block_commits_only(self) -> None:
        views.FIRED.clear()
        self.client.get("/on-commit?outcome=commit")
        self.assertEqual(views.FIRED, ["commit: pool block", "commit: later atomic"])
        views.FIRED.clear()
        self.client.get("/on-commit?outcome=rollback")
        self.assertEqual(views.FIRED, ["rollback: later atomic"])
        self.assertEqual(self.names(), ["oc-commit", "oc-commit-later", "oc-rollback-later"])

    def test_the_orm_works_after_a_pool_block_rolled_back_its_error(self) -> None:
        response = self.client.get("/error-in-pool-tx")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"count": 1})  # "before"; the block rolled back

    def test_orm_scope_inside_a_request_is_the_request_scope(self) -> None:
        data = self.client.get("/nested-orm-scope").json()
        self.assertEqual(len(set(data["ids"])), 1, data)
        self.assertEqual(Item.objects.filter(name="in-nested-scope").count(), 0)
        self.assertEqual(lent(), 0)

    def test_a_shared_connection_closed_in_the_view_leaks_nothing(self) -> None:
        """The ORM held a connection before the request (shared with it); the view closes it
        and borrows through current_pool: that one goes back at the request's end."""
        connections["default"].close()
        Item.objects.count()  # the ORM holds a connection of its own now
        self.assertIsNotNone(connections["default"].connection)
        pool = connections["default"].pool
        assert pool is not None
        for _ in range(3):
            self.assertEqual(self.client.get("/close-then-pool").status_code, 200)
            self.assertIsNone(connections["default"].connection)
            self.assertEqual(lent(), 0)
        self.assertEqual(pool.stats()["leaks"], 0)


class PoolBlocksAndTheOrm(TransactionTestCase):
    """current_pool blocks in code outside requests (commands, tasks, tests) with the ORM."""

    databases = {"default", "other"}

    def names(self) -> list[str]:
        return sorted(Item.objects.values_list("name", flat=True))

    def test_a_pool_block_inside_atomic_is_a_savepoint_even_when_empty(self) -> None:
        """In atomic() no table may have been touched yet (the server then reports no
        transaction): the block is still a savepoint, not a transaction it lost."""
        connections.close_all()
        with orm_scope(), transaction.atomic():
            with current_pool.transaction():
                pass
            with current_pool.transaction():
                current_pool.execute_query("SELECT 1")
            Item.objects.create(name="kept")
        self.assertEqual(self.names(), ["kept"])

    def test_orm_scope_inside_a_pool_block_joins_its_transaction(self) -> None:
        connections.close_all()
        with self.assertRaises(RuntimeError), current_pool.transaction():
            block_id = _cid()
            with orm_scope():
                Item.objects.create(name="in the block")
                orm_id = _orm_cid()
            raise RuntimeError("the command fails")
        self.assertEqual(block_id, orm_id)
        self.assertEqual(self.names(), [])

    def test_a_pool_statement_after_the_orm_closed_the_blocks_connection_raises(self) -> None:
        """Django closed the block's connection (its transaction rolled back): the block's next
        statement raises rather than autocommitting on another connection, sync and async."""
        from asgiref.sync import sync_to_async

        from mysqlpool_ext import TransactionLostError

        table = Item._meta.db_table
        insert = f"INSERT INTO {table} (name) VALUES (%s)"
        connections.close_all()
        reached: list[str] = []
        with (
            orm_scope(),
            self.assertRaisesRegex(TransactionLostError, "closed inside"),
            current_pool.transaction(),
        ):
            current_pool.execute_query(insert, ("before close",))
            self.assertEqual(Item.objects.count(), 1)  # the ORM on the block's connection
            connections["default"].close()
            reached.append("closed")
            current_pool.execute_query(insert, ("after close",))
            reached.append("sent")

        async def main() -> None:
            with orm_scope():
                async with current_pool.atransaction():
                    await current_pool.aexecute_query(insert, ("async before close",))

                    def orm_then_close() -> None:
                        Item.objects.count()
                        connections["default"].close()

                    await sync_to_async(orm_then_close)()
                    reached.append("async closed")
                    await current_pool.aexecute_query(insert, ("async after close",))
                    reached.append("async sent")

        with self.assertRaisesRegex(TransactionLostError, "closed inside"):
            async_to_sync(main)()
        # Nor does a block opened there borrow another connection and commit on it.
        with (
            orm_scope(),
            self.assertRaisesRegex(TransactionLostError, "closed inside"),
            current_pool.transaction(),
        ):
            self.assertEqual(Item.objects.count(), 0)
            connections["default"].close()
            with current_pool.transaction():
                current_pool.execute_query(insert, ("nested block after close",))
        self.assertEqual(reached, ["closed", "async closed"])
        self.assertEqual(self.names(), [])
        self.assertEqual(lent(), 0)

    def test_atomic_never_commits_what_a_pool_blocks_rollback_left(self) -> None:
        """Inside atomic() two threads' pool blocks are savepoints; B succeeds, then A (whose
        savepoint came first) fails: A's ROLLBACK TO undoes B's work too. atomic() must not
        commit what is left: its statements and its COMMIT raise, it rolls back, and the
        connection is usable afterwards."""
        import contextvars

        insert = f"INSERT INTO {Item._meta.db_table} (name) VALUES (%s)"
        a_opened, b_done = threading.Event(), threading.Event()
        seen: dict[str, str] = {}

        def a() -> None:
            try:
                with current_pool.transaction():
                    a_opened.set()
                    assert b_done.wait(10)
                    raise RuntimeError("A fails")
            except RuntimeError as exc:
                seen["a"] = str(exc)

        def b() -> None:
            assert a_opened.wait(10)
            with current_pool.transaction():
                current_pool.execute_query(insert, ("b",))
            seen["b"] = "ok"
            b_done.set()

        connections.close_all()
        with orm_scope():
            with self.assertRaisesRegex(OperationalError, "undid what other code"):  # noqa: SIM117
                with transaction.atomic():
                    Item.objects.create(name="orm")
                    threads = [
                        threading.Thread(target=contextvars.copy_context().run, args=(f,))
                        for f in (a, b)
                    ]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join(10)
            self.assertEqual(seen, {"a": "A fails", "b": "ok"})
            self.assertEqual(self.names(), [])
            Item.objects.create(name="after")  # the connection works again
        self.assertEqual(self.names(), ["after"])
        self.assertEqual(lent(), 0)

    def test_the_orm_refuses_a_connection_a_pool_block_gave_up(self) -> None:
        """A blocking ``current_pool.transaction()`` on the event loop could not end (an async
        statement held the connection): its transaction is still open there, so the ORM's next
        statement on it raises instead of seeming to succeed and being rolled back later."""
        from asgiref.sync import sync_to_async

        from mysqlpool_ext import PoolError, TransactionLostError
        from mysqlpool_ext.scope import current_scope

        insert = f"INSERT INTO {Item._meta.db_table} (name) VALUES (%s)"
        connections.close_all()
        outcome: list[str] = []

        async def main() -> None:
            with orm_scope():
                scope, pool = current_scope(), connections["default"].pool
                assert scope is not None and pool is not None
                await sync_to_async(Item.objects.count)()  # the ORM shares the connection
                lock = scope.use_lock(pool)
                task = None
                try:
                    with current_pool.transaction():
                        current_pool.execute_query(insert, ("block",))
                        task = asyncio.ensure_future(
                            current_pool.aexecute_query("SELECT SLEEP(0.3)")
                        )
                        for _ in range(1000):  # until the task holds the connection
                            if lock.locked():
                                break
                            await asyncio.sleep(0)
                except PoolError:
                    outcome.append("block raised")
                assert task is not None
                await task
                try:
                    await sync_to_async(Item.objects.create)(name="orm after")
                except OperationalError as exc:  # Django wraps the driver's errors
                    lost = isinstance(exc.__cause__, TransactionLostError)
                    outcome.append(
                        "orm raised" if lost and "could not end" in str(exc) else repr(exc)
                    )

        async_to_sync(main)()
        self.assertEqual(outcome, ["block raised", "orm raised"])
        connections.close_all()
        self.assertEqual(self.names(), [])
        self.assertEqual(lent(), 0)

    def test_on_commit_of_an_async_pool_block_runs_in_the_orms_thread(self) -> None:
        """``async with current_pool.atransaction():`` around ORM work (in sync_to_async): its
        on_commit callbacks run where that work ran, not on the event loop (the ORM refuses
        it there)."""
        from asgiref.sync import sync_to_async
        from django.db import transaction as tx

        connections.close_all()
        ran: list[object] = []

        def hook() -> None:
            ran.append((threading.current_thread().name, Item.objects.count()))

        @sync_to_async
        def work() -> str:
            with tx.atomic():
                Item.objects.create(name="x")
                tx.on_commit(hook)
            return threading.current_thread().name

        async def main() -> str:
            with orm_scope():
                async with current_pool.atransaction():
                    where = await work()
            return where

        where = async_to_sync(main)()
        self.assertEqual(ran, [(where, 1)])
        self.assertEqual(self.names(), ["x"])


class ConcurrentStatementsOfOneRequest(TransactionTestCase):
    """One request, statements at the same time in several threads and on the event loop: its
    one connection runs them in turn (interleaved, they corrupt the protocol: wrong rows,
    "Packet sequence number wrong")."""

    databases = {"default", "other"}

    def test_they_take_turns_on_the_one_connection(self) -> None:
        client = AsyncClient()

        async def go(mode: str) -> list[list[int]]:
            response = await client.get(f"/agather?mode={mode}")
            self.assertEqual(response.status_code, 200, response.content[:2000])
            rows: list[list[int]] = response.json()["rows"]
            return rows

        for mode in ("mixed", "threads", "mixed", "threads"):
            # Under async_to_sync the view's thread-sensitive code runs in this thread: an ORM
            # connection this thread held would be its own, not the request's.
            connections.close_all()
            rows = async_to_sync(go)(mode)
            self.assertEqual([r[0] for r in rows], [0, 1, 2, 3], mode)
            self.assertEqual(len({r[1] for r in rows}), 1, rows)  # one connection
            self.assertEqual(lent(), 0)

    def test_concurrent_requests_of_the_test_async_client(self) -> None:
        """The test AsyncClient runs the sync code of all its requests in one thread, so they
        share its ORM wrapper: each request still uses (and gives back) its own connection."""

        async def go() -> list[object]:
            responses = await asyncio.gather(*[AsyncClient().get("/aturns") for _ in range(4)])
            return [(r.status_code, r.json()) for r in responses]

        connections.close_all()
        for status, data in async_to_sync(go)():
            self.assertEqual(status, 200, data)
            rows = data["rows"]  # type: ignore[index]
            self.assertEqual([r[0] for r in rows], [1, 2])
            self.assertEqual(rows[0][1], rows[1][1])  # one connection per request
        self.assertEqual(lent(), 0)


class UndeclaredDatabases(SimpleTestCase):
    """A test that declares no database: current_pool refuses as the ORM does (the aliases
    still name the real databases, not test ones)."""

    def test_current_pool_is_forbidden_like_the_orm(self) -> None:
        with self.assertRaises(DatabaseOperationForbidden):
            Item.objects.count()
        with self.assertRaises(DatabaseOperationForbidden):
            current_pool.execute_query("SELECT 1")
        with self.assertRaises(DatabaseOperationForbidden):
            current_pool.using("other").execute_query("SELECT 1")


class OneDeclaredDatabase(TestCase):
    databases = {"default"}

    def test_current_pool_on_an_undeclared_alias_is_forbidden(self) -> None:
        self.assertEqual(current_pool.execute_query("SELECT 1", return_one=True), (1,))
        with self.assertRaises(DatabaseOperationForbidden):
            current_pool.using("other").execute_query("SELECT 1")
