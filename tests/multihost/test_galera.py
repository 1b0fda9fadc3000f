"""A Galera cluster: every Synced node is writable; a node that is not Synced, or leaves the
cluster, stops receiving borrows while the pool keeps serving from the others."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from galera import GaleraCluster, provider
from hostkit import wait_until

from mysqlpool_ext import ConnectionPool

pytestmark = pytest.mark.skipif(
    provider() is None, reason="needs galera-4, rsync and mariadbd on this machine"
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[GaleraCluster, dict[str, Any]]]:
    c = GaleraCluster(3)
    try:
        c.start()
        password = secrets.token_urlsafe(12)
        # DDL and accounts replicate through the cluster.
        c.sql(0, "CREATE DATABASE galera_test")
        c.sql(0, "CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY %s", (password,))
        c.sql(0, "GRANT ALL ON galera_test.* TO 'app'@'127.0.0.1'")
        c.sql(0, "CREATE TABLE galera_test.t (id INT AUTO_INCREMENT PRIMARY KEY, node INT)")
        kwargs = {
            "user": "app",
            "password": password,
            "database": "galera_test",
            "ssl_disabled": True,
        }
        yield c, kwargs
    finally:
        c.cleanup()


def _hosts(c: GaleraCluster) -> list[str]:
    return [f"127.0.0.1:{p}" for p in c.ports]


def test_every_synced_node_is_a_primary_and_writes_stick_to_one(
    cluster: tuple[GaleraCluster, dict[str, Any]],
) -> None:
    c, kwargs = cluster
    with ConnectionPool(hosts=_hosts(c), size=2, max_size=3, **kwargs) as pool:
        ports = set()
        for _ in range(10):
            with pool.connection() as conn:
                conn.execute_query("INSERT INTO t (node) VALUES (@@port)")
                ports.add(conn.port)
        assert ports == {c.ports[0]}  # one writer: no certification conflicts between nodes
        wait_until(
            lambda: all(h["role"] == "primary" for h in pool.stats()["hosts"]),
            10,
            "every node checked and seen writable",
        )


def test_a_desynced_node_gets_no_borrows(
    cluster: tuple[GaleraCluster, dict[str, Any]], figures: Any
) -> None:
    c, kwargs = cluster
    with ConnectionPool(
        hosts=_hosts(c), size=2, timeout=5, topology_interval=0.3, **kwargs
    ) as pool:
        with pool.connection() as conn:
            assert conn.port == c.ports[0]
        c.sql(0, "SET GLOBAL wsrep_desync = ON")  # wsrep_local_state 2: Donor/Desynced
        t0 = time.monotonic()
        try:
            wait_until(lambda: pool.stats()["hosts"][0]["role"] == "not-synced", 10, "desync seen")
            wait_until(
                lambda: pool.stats()["hosts"][0]["connections"] == 0, 10, "its connections retired"
            )
            figures(desync_to_drained_s=time.monotonic() - t0, topology_interval_s=0.3)
            for _ in range(10):
                with pool.connection() as conn:
                    assert conn.port != c.ports[0]
                    conn.execute_query("INSERT INTO t (node) VALUES (@@port)")
        finally:
            c.sql(0, "SET GLOBAL wsrep_desync = OFF")


def test_a_node_that_leaves_the_cluster(cluster: tuple[GaleraCluster, dict[str, Any]]) -> None:
    c, kwargs = cluster
    with ConnectionPool(hosts=_hosts(c), target="any", size=3, timeout=5, **kwargs) as pool:
        counts = [h["connections"] for h in pool.stats()["hosts"]]
        assert counts == [1, 1, 1]
        c.kill(2)
        ports = set()
        for _ in range(5):
            leases = [pool.get_connection() for _ in range(3)]
            for conn in leases:
                conn.execute_query("INSERT INTO t (node) VALUES (@@port)")
                ports.add(conn.port)
                conn.close()
        assert ports == {c.ports[0], c.ports[1]}
        wait_until(
            lambda: pool.stats()["hosts"][2]["role"] == "down", 10, "the killed node seen down"
        )
