"""A host list finds its servers' roles by itself: a real primary and replica on loopback."""

from __future__ import annotations

import time
from typing import Any

import pymysql
import pymysql.cursors
import pytest
from faultproxy import TcpProxy
from hostkit import DATABASE, Pair, wait_until

from mysqlpool_ext import ConnectionPool, topology


def _show_variables_count(pair: Pair, server: Any) -> int:
    rows = pair.sql(server, "SHOW GLOBAL STATUS LIKE 'Com_show_variables'")
    return int(rows[0][1])


@pytest.mark.parametrize("primary_first", [True, False])
def test_primary_target_finds_the_primary_whatever_the_order(
    pair: Pair, primary_first: bool
) -> None:
    servers = [pair.primary, pair.replica] if primary_first else [pair.replica, pair.primary]
    hosts = [pair.address(s) for s in servers]
    with ConnectionPool(
        hosts=hosts, size=2, max_size=3, topology_interval=60, **pair.app_kwargs()
    ) as pool:
        for _ in range(5):
            with pool.connection() as conn:
                assert conn.port == pair.primary.port
                conn.execute_query("INSERT INTO writes (writer, origin) VALUES (0, @@server_id)")
        roles = {h["port"]: h["role"] for h in pool.stats()["hosts"]}
        assert roles[pair.primary.port] == "primary"
        by_port = {h["port"]: h for h in topology.describe(pool)}
        assert by_port[pair.primary.port]["connections"] == 2
        assert by_port[pair.primary.port]["serves_target"] is True


def test_roles_are_read_whatever_the_cursorclass(pair: Pair) -> None:
    hosts = [pair.address(pair.replica), pair.address(pair.primary)]
    kwargs = pair.app_kwargs(cursorclass=pymysql.cursors.DictCursor, autocommit=False)
    with ConnectionPool(hosts=hosts, size=1, **kwargs) as pool, pool.connection() as conn:
        assert conn.port == pair.primary.port
        assert conn.execute_query("SELECT 1 AS one", return_one=True) == {"one": 1}


def test_role_is_checked_once_per_new_connection_not_per_borrow(pair: Pair) -> None:
    """The hot path stays as it was: 200 borrows on 2 connections, 2 role queries."""
    before = _show_variables_count(pair, pair.primary)
    with ConnectionPool(
        hosts=[pair.address(pair.primary)], size=2, topology_interval=60, **pair.app_kwargs()
    ) as pool:
        for _ in range(200):
            with pool.connection() as conn:
                conn.execute_query("SELECT 1")
        assert pool.stats()["connections_num"] == 2
    assert _show_variables_count(pair, pair.primary) - before == 2


def test_replica_target_reads_from_the_replica_and_its_writes_fail(pair: Pair) -> None:
    hosts = [pair.address(pair.primary), pair.address(pair.replica)]
    with ConnectionPool(hosts=hosts, target="replica", size=1, **pair.app_kwargs()) as pool:
        with pool.connection() as conn:
            assert conn.port == pair.replica.port
            assert conn.execute_query("SELECT @@server_id", return_one=True) == (2,)
            assert conn.execute_query("SELECT COUNT(*) FROM writes", return_one=True) is not None
        with pytest.raises(pymysql.MySQLError) as info, pool.connection() as conn:
            conn.execute_query("INSERT INTO writes (writer, origin) VALUES (1, 1)")
        assert info.value.args[0] == 1290
        # A refused write on a replica target is the application's mistake, not a role
        # change: the connection stays in the pool.
        with pool.connection() as conn:
            assert conn.port == pair.replica.port
        assert pool.stats()["connections_num"] == 1


def test_prefer_replica_and_any(pair: Pair) -> None:
    hosts = [pair.address(pair.primary), pair.address(pair.replica)]
    with (
        ConnectionPool(hosts=hosts, target="prefer-replica", size=2, **pair.app_kwargs()) as pool,
        pool.connection() as conn,
    ):
        assert conn.port == pair.replica.port
    with ConnectionPool(hosts=hosts, target="any", size=4, **pair.app_kwargs()) as pool:
        # Least connections: both servers share the pool.
        counts = {h["port"]: h["connections"] for h in pool.stats()["hosts"]}
        assert counts == {pair.primary.port: 2, pair.replica.port: 2}


def test_url_with_a_host_list(pair: Pair) -> None:
    url = (
        f"mysql://app:{pair.app_password}@{pair.address(pair.replica)},"
        f"{pair.address(pair.primary)}/{DATABASE}?target=primary&ssl_disabled=true&size=1"
    )
    with ConnectionPool.from_url(url) as pool:
        with pool.connection() as conn:
            assert conn.port == pair.primary.port
        for text in (repr(pool), pool.server_address, pool.url, str(pool.stats())):
            assert pair.app_password not in text
        assert pair.address(pair.replica) in pool.server_address


def test_one_host_blackholed_borrows_go_to_the_other(pair: Pair, figures: Any) -> None:
    """A host that accepts TCP and never answers (a dead route): each borrower tries it with
    only a share of its deadline, then the host is denied and skipped."""
    with (
        TcpProxy(pair.primary.host, pair.primary.port) as hole,
        TcpProxy(pair.replica.host, pair.replica.port) as good,
    ):
        hole.blackhole()
        hosts = [f"127.0.0.1:{hole.port}", f"127.0.0.1:{good.port}"]
        timeout = 3.0
        with ConnectionPool(
            hosts=hosts,
            target="any",
            size=0,
            max_size=4,
            timeout=timeout,
            lazy=True,
            **pair.app_kwargs(),
        ) as pool:
            slowest = 0.0
            leases = []
            for _ in range(4):
                start = time.monotonic()
                conn = pool.get_connection()
                slowest = max(slowest, time.monotonic() - start)
                leases.append(conn)
                assert conn.execute_query("SELECT @@server_id", return_one=True) == (2,)
            for conn in leases:
                conn.close()
            assert slowest < timeout
            state = {h["port"]: h for h in pool.stats()["hosts"]}
            assert state[hole.port]["role"] == "down"
            assert state[hole.port]["connections"] == 0
            assert state[good.port]["connections"] == 4
            figures(blackholed_slowest_borrow_s=slowest, borrow_timeout_s=timeout)
            # Healed: the periodic check re-admits the host.
            hole.passthrough()
            wait_until(
                lambda: topology.describe(pool)[0]["role"] == "primary",
                10,
                "the healed host is checked again",
            )


def test_a_quiet_role_change_is_found_by_the_periodic_check(pair: Pair) -> None:
    """No statement fails (nobody writes), yet the pool notices the primary went read-only:
    its idle connections are retired, and a lent one is discarded when it comes back."""
    hosts = [pair.address(pair.primary), pair.address(pair.replica)]
    with ConnectionPool(
        hosts=hosts, size=2, timeout=1, topology_interval=0.3, **pair.app_kwargs()
    ) as pool:
        lent = pool.get_connection()
        assert lent.port == pair.primary.port
        pair.sql(pair.primary, "SET GLOBAL read_only = 1")
        try:
            wait_until(lambda: pool.stats()["hosts"][0]["role"] == "replica", 5, "the check runs")
            # Retired (taken out), then discarded: the count follows the discard.
            wait_until(lambda: pool.stats()["connections_recycled"] == 1, 5, "idle one retired")
            assert pool.stats()["pool_available"] == 0
            lent.close()
            stats = pool.stats()
            assert stats["hosts"][0]["connections"] == 0
            assert stats["connections_recycled"] == 2  # the idle one, then the lent one
            # No primary now: a borrower waits, then says why.
            with pytest.raises(pymysql.MySQLError) as info:
                pool.get_connection()
            assert "no primary server among the hosts" in str(info.value)
            assert pair.app_password not in str(info.value)
        finally:
            pair.sql(pair.primary, "SET GLOBAL read_only = 0")
        # Writable again: found by the outage retries, no restart.
        with pool.connection(timeout=5) as conn:
            assert conn.port == pair.primary.port


def test_prefer_replica_falls_back_to_the_primary_and_comes_back(pair: Pair, figures: Any) -> None:
    with TcpProxy(pair.replica.host, pair.replica.port) as proxy:
        hosts = [pair.address(pair.primary), f"127.0.0.1:{proxy.port}"]
        with ConnectionPool(
            hosts=hosts,
            target="prefer-replica",
            size=1,
            timeout=3,
            topology_interval=0.3,
            **pair.app_kwargs(),
        ) as pool:

            def served_by() -> int:
                with pool.connection() as conn:
                    conn.execute_query("SELECT 1")
                    return int(conn.port)

            assert served_by() == proxy.port
            proxy.reset()  # the replica is gone: connections reset, new ones refused
            assert served_by() == pair.primary.port
            proxy.passthrough()
            back = time.monotonic()
            # Back: the check re-admits the replica and retires the primary's connections.
            wait_until(lambda: served_by() == proxy.port, 10, "reads move back to the replica")
            figures(replica_back_to_reads_s=time.monotonic() - back, topology_interval_s=0.3)


async def _async_borrow(pool: ConnectionPool) -> tuple[int, Any]:
    async with pool.aconnection() as conn:
        row = await conn.aexecute_query("SELECT @@server_id", return_one=True)
        return int(conn.port), row


def test_the_async_face_uses_the_same_topology(pair: Pair) -> None:
    import asyncio

    hosts = [pair.address(pair.primary), pair.address(pair.replica)]
    with ConnectionPool(
        hosts=hosts, target="replica", size=0, lazy=True, **pair.app_kwargs()
    ) as pool:
        port, row = asyncio.run(_async_borrow(pool))
        assert port == pair.replica.port
        assert row == (2,)


def test_describe_can_check_now(pair: Pair) -> None:
    """What ``mysqlpool-ext check`` shows: a lazy pool knows no roles until asked."""
    hosts = [pair.address(pair.replica), pair.address(pair.primary)]
    with ConnectionPool(hosts=hosts, size=0, lazy=True, **pair.app_kwargs()) as pool:
        assert [h["role"] for h in topology.describe(pool)] == ["unknown", "unknown"]
        seen = topology.describe(pool, check=True)
        assert [(h["address"], h["role"], h["serves_target"]) for h in seen] == [
            (pair.address(pair.replica), "replica", False),
            (pair.address(pair.primary), "primary", True),
        ]
        assert all(h["last_checked"] is not None and h["denied_until"] is None for h in seen)
    with ConnectionPool(size=0, lazy=True, **pair.primary.connect_kwargs()) as single:
        assert topology.describe(single, check=True) == []
