"""Named pools, ``current_pool`` and the request scope; leaked leases coming back (invariant 8)."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pymysql
import pytest
from corekit import MakePool, session_id, wait_until

import mysqlpool_ext
from mysqlpool_ext import ConnectionPool, PoolError, current_pool, request_scope
from mysqlpool_ext.scope import current_scope


@pytest.fixture(autouse=True)
def _no_default_pool() -> Iterator[None]:
    mysqlpool_ext.set_default_pool(None)
    yield
    mysqlpool_ext.set_default_pool(None)


# -- registry ------------------------------------------------------------------------------------


def test_get_pool_by_name(make_pool: MakePool) -> None:
    orders = make_pool(size=1, name="core-orders")
    reports = make_pool(size=1, name="core-reports")
    assert mysqlpool_ext.get_pool("core-orders") is orders
    assert mysqlpool_ext.get_pool("core-reports") is reports
    with pytest.raises(PoolError) as info:
        mysqlpool_ext.get_pool("core-nope")
    message = str(info.value)
    assert "'core-nope'" in message
    assert "'core-orders'" in message and "'core-reports'" in message  # lists the open pools
    reports.close()
    with pytest.raises(PoolError) as info:
        mysqlpool_ext.get_pool("core-reports")  # closed pools are not handed out
    assert "'core-reports'" not in str(info.value).split("open pools:")[1]


def test_reused_name_means_the_latest_pool(make_pool: MakePool) -> None:
    first = make_pool(size=1, name="core-dup")
    second = make_pool(size=1, name="core-dup")
    assert mysqlpool_ext.get_pool("core-dup") is second
    second.close()
    with pytest.raises(PoolError):
        mysqlpool_ext.get_pool("core-dup")
    assert not first.closed


def test_current_pool_outside_a_scope_uses_the_default(make_pool: MakePool) -> None:
    pool = make_pool(size=1, name="core-default-set")
    make_pool(size=1, name="core-other")
    mysqlpool_ext.set_default_pool(pool)
    assert mysqlpool_ext.get_default_pool() is pool
    assert current_pool.name == "core-default-set"
    assert current_scope() is None
    first = current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
    assert pool.stats()["in_use"] == 0  # borrowed and given back per call
    assert current_pool.execute_query("SELECT 1") == ((1,),)
    with current_pool.connection() as conn:
        assert session_id(conn) == first[0]
    assert pool.stats()["in_use"] == 0
    assert current_pool.using("core-other").name == "core-other"


def test_pool_named_default_is_the_default(make_pool: MakePool) -> None:
    pool = make_pool(size=1, name="default")
    make_pool(size=1, name="core-not-default")
    assert mysqlpool_ext.get_default_pool() is pool
    assert current_pool.execute_query("SELECT 7") == ((7,),)


def test_the_only_open_pool_is_the_default(db_url: str) -> None:
    """In a fresh process (nothing else open), current_pool means the one pool there is; with
    two open and no default it says so instead of guessing."""
    code = """
import os, mysqlpool_ext
from mysqlpool_ext import ConnectionPool, PoolError, current_pool
pool = ConnectionPool.from_url(os.environ["CORE_URL"], size=1, name="only")
assert mysqlpool_ext.get_default_pool() is pool
assert current_pool.execute_query("SELECT 5") == ((5,),)
other = ConnectionPool.from_url(os.environ["CORE_URL"], size=1, name="second")
try:
    current_pool.execute_query("SELECT 1")
except PoolError as exc:
    assert "'only'" in str(exc) and "'second'" in str(exc) and "set_default_pool" in str(exc)
else:
    raise AssertionError("two pools and no default must not pick one")
other.close(); pool.close()
try:
    mysqlpool_ext.get_default_pool()
except PoolError as exc:
    assert "no pool" in str(exc)
print("ok")
"""
    env = {**os.environ, "CORE_URL": db_url}
    env.pop("MYSQLPOOL_URL", None)
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


# -- request scope -------------------------------------------------------------------------------


def test_request_scope_pins_one_connection(make_pool: MakePool) -> None:
    pool = make_pool(size=2, name="core-scope")
    mysqlpool_ext.set_default_pool(pool)
    with request_scope() as scope:
        assert current_scope() is scope
        a = current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
        b = current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
        assert a == b
        with current_pool.connection() as conn:
            assert session_id(conn) == a[0]
        assert pool.stats()["in_use"] == 1  # still pinned after the block
        assert scope.borrowed == 1
    assert current_scope() is None
    assert pool.stats()["in_use"] == 0


def test_request_scope_rolls_back_what_is_left_open(
    make_pool: MakePool, table: str, admin: pymysql.connections.Connection
) -> None:
    pool = make_pool(size=1, name="core-scope-tx")
    mysqlpool_ext.set_default_pool(pool)
    with request_scope():
        with current_pool.transaction() as conn:
            conn.execute_query(f"INSERT INTO {table} (v) VALUES ('committed')")
        current_pool.execute_query("BEGIN")
        current_pool.execute_query(f"INSERT INTO {table} (v) VALUES ('left open')")
        assert current_pool.execute_query("SELECT @@in_transaction", return_one=True) == (1,)
    with admin.cursor() as cur:
        cur.execute(f"SELECT v FROM {table}")
        assert cur.fetchall() == (("committed",),)
    assert pool.stats()["returns_rolled_back"] == 1
    with pool.connection() as conn:
        assert conn.execute_query("SELECT @@in_transaction", return_one=True) == (0,)


def test_request_scope_gives_back_on_error(make_pool: MakePool) -> None:
    pool = make_pool(size=1, name="core-scope-err")
    mysqlpool_ext.set_default_pool(pool)
    with pytest.raises(ZeroDivisionError), request_scope():
        current_pool.execute_query("SELECT 1")
        1 / 0  # noqa: B018
    assert pool.stats()["in_use"] == 0


# -- leaks ---------------------------------------------------------------------------------------


def _borrow_and_drop(pool: ConnectionPool, table: str | None = None) -> int:
    conn = pool.get_connection()  # LEAK-SITE
    if table is not None:
        conn.begin()
        conn.execute_query(f"INSERT INTO {table} (v) VALUES ('leaked')")
    cid = conn.thread_id()
    del conn  # dropped without close()
    return cid


def _leak_line() -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if line.rstrip().endswith("# LEAK-SITE"))


def test_dropped_lease_comes_back_and_says_where_it_was_taken(
    make_pool: MakePool,
    caplog: pytest.LogCaptureFixture,
    table: str,
    admin: pymysql.connections.Connection,
) -> None:
    pool = make_pool(size=2, name="core-leak")
    with caplog.at_level(logging.WARNING, logger="mysqlpool_ext"):
        leaked = _borrow_and_drop(pool, table)
        gc.collect()
        # Full capacity: both connections can be lent at once, and the leaked one is clean.
        conns = [pool.get_connection(timeout=5) for _ in range(2)]
        assert leaked in {c.thread_id() for c in conns}
        for c in conns:
            assert c.execute_query("SELECT @@in_transaction", return_one=True) == (0,)
            c.close()
    stats = pool.stats()
    assert stats["leaks"] == 1 and stats["in_use"] == 0
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "core-leak" in r.message
    ]
    assert len(warnings) == 1, [r.message for r in warnings]
    assert f"{__file__}:{_leak_line()}" in warnings[0].getMessage()
    with admin.cursor() as cur:  # what the leaker left open was rolled back, not committed
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        assert cur.fetchone() == (0,)


def test_leak_reclaimed_by_maintenance_without_a_borrow(make_pool: MakePool) -> None:
    pool = make_pool(size=1, name="core-leak-bg")
    _borrow_and_drop(pool)
    gc.collect()
    wait_until(lambda: pool.stats()["in_use"] == 0, what="the maintenance thread to reclaim")
    assert pool.stats()["leaks"] == 1 and pool.size() == 1


def test_leak_timeout_logs_the_borrowing_stack(
    make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(size=1, name="core-held", leak_timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="mysqlpool_ext"):
        conn = pool.get_connection()  # HELD-SITE
        wait_until(
            lambda: any("held for" in r.message for r in caplog.records), what="leak warning"
        )
        conn.close()
    message = next(r.getMessage() for r in caplog.records if "held for" in r.message)
    assert "'core-held'" in message and "test_leak_timeout_logs_the_borrowing_stack" in message
    assert pool.stats()["in_use"] == 0
