"""Fixtures for host lists: a real MariaDB primary and a replica on loopback.

Two throwaway servers with binary logs and distinct server ids; the replica runs with
``--read-only=1`` and follows the primary by GTID (``MASTER_USE_GTID=slave_pos``). The tests
connect as an application account that has privileges on the test database only: ``GRANT ALL
ON *.*`` includes ``READ_ONLY ADMIN`` on MariaDB 10.11, and read_only does not bind such a user.

``pair`` is shared by the tests that only read the topology; tests that switch roles over or
kill a server take ``fresh_pair``, a pair of their own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostkit import APP_USER, DATABASE, Pair

from mysqlpool_ext._server import ThrowawayServer, find_server_binary

# The TCP proxy of the fault tests (tests/faults has no __init__: put it on the path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _need_binary() -> None:
    if find_server_binary() is None:
        reason = "host-list tests need a local mariadbd binary"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _start_all(servers: list[ThrowawayServer]) -> None:
    """Start servers side by side: each spends most of its ~3 s waiting for itself."""
    errors: list[BaseException] = []

    def start(server: ThrowawayServer) -> None:
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _make_pair() -> Pair:
    primary = ThrowawayServer(server_args=["--log-bin=binlog", "--server-id=1"])
    replica = ThrowawayServer(server_args=["--log-bin=binlog", "--server-id=2", "--read-only=1"])
    _start_all([primary, replica])
    pair = Pair(primary, replica, app_password=secrets.token_urlsafe(12))
    # Replicate from here on: both servers already have their own accounts and database.
    pos = pair.sql(primary, "SELECT @@global.gtid_binlog_pos")[0][0]
    pair.sql(replica, "SET GLOBAL gtid_slave_pos = %s", (pos,))
    pair.sql(
        replica,
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER='root', "
        "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
        (primary.port, primary.root_password),
    )
    pair.sql(replica, "START SLAVE")
    # Created on the primary, replicated: the account and the table exist on both.
    for stmt, args in [
        ("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (APP_USER, pair.app_password)),
        (f"GRANT ALL ON `{DATABASE}`.* TO %s@'127.0.0.1'", (APP_USER,)),
        (
            f"CREATE TABLE `{DATABASE}`.writes (id INT AUTO_INCREMENT PRIMARY KEY, "
            "writer INT NOT NULL, origin INT NOT NULL)",
            None,
        ),
    ]:
        pair.sql(primary, stmt, args)
    pair.wait_replicated()
    return pair


@contextlib.contextmanager
def _running_pair() -> Iterator[Pair]:
    _need_binary()
    p = _make_pair()
    try:
        yield p
    finally:
        p.replica.cleanup()
        p.primary.cleanup()


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """A primary and a replica shared by a module's read-only tests."""
    with _running_pair() as p:
        yield p


@pytest.fixture
def fresh_pair() -> Iterator[Pair]:
    """A pair of the test's own, free to be switched over or killed."""
    with _running_pair() as p:
        yield p
