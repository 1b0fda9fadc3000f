"""Roles change under load: a switchover, and a crash. Figures go to the README."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pymysql
from hostkit import Pair, wait_until

from mysqlpool_ext import ConnectionPool, GetConnectionFromPoolError

WRITERS = 4


@dataclass
class Log:
    """What the writers saw: (done, port, started) per successful write, (time, error) per
    failure."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    writes: list[tuple[float, int, float]] = field(default_factory=list)
    errors: list[tuple[float, BaseException]] = field(default_factory=list)


def _writer(pool: ConnectionPool, n: int, stop: threading.Event, log: Log) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            with pool.connection() as conn:
                conn.execute_query(
                    "INSERT INTO writes (writer, origin) VALUES (%s, @@server_id)", (n,)
                )
                port = conn.port
        except (pymysql.MySQLError, GetConnectionFromPoolError) as exc:
            with log.lock:
                log.errors.append((time.monotonic(), exc))
            continue
        with log.lock:
            log.writes.append((time.monotonic(), port, started))


def _rows(pair: Pair, server: Any) -> int:
    return int(pair.sql(server, "SELECT COUNT(*) FROM mysqlpool_test.writes")[0][0])


def test_switchover_under_four_writers(fresh_pair: Pair, figures: Any) -> None:
    """Old primary read_only=1, replica promoted: within seconds every write lands on the new
    primary, none on the old one after the switch, and only the writes in flight fail."""
    pair = fresh_pair
    old, new = pair.primary, pair.replica
    hosts = [pair.address(old), pair.address(new)]
    log = Log()
    stop = threading.Event()
    with ConnectionPool(
        hosts=hosts, size=WRITERS, max_size=WRITERS, timeout=10, **pair.app_kwargs()
    ) as pool:
        threads = [
            threading.Thread(target=_writer, args=(pool, n, stop, log)) for n in range(WRITERS)
        ]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(log.writes) >= 200, 20, "200 writes on the old primary")
            assert all(port == old.port for _, port, _ in log.writes)
            # The switchover, as an operator (or orchestrator) does it.
            t0 = time.monotonic()
            pair.sql(old, "SET GLOBAL read_only = 1")
            t_old_closed = time.monotonic()
            rows_on_old = _rows(pair, old)
            pair.sql(new, "STOP SLAVE")
            pair.sql(new, "SET GLOBAL read_only = 0")
            t_promoted = time.monotonic()

            def first_on_new() -> float | None:
                with log.lock:
                    return next((t for t, port, _ in log.writes if port == new.port), None)

            t_first = wait_until(first_on_new, 10, "a write on the new primary")
            wait_until(
                lambda: sum(1 for t, p, _ in log.writes if t > t_first and p == new.port) >= 200,
                20,
                "200 writes on the new primary",
            )
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        hosts_seen = {h["port"]: h["role"] for h in pool.stats()["hosts"]}

    # Nothing landed on the old primary after it went read-only (counted on the server).
    assert _rows(pair, old) == rows_on_old
    # Every write that began after the old primary closed went to the new one.
    assert all(port == new.port for _, port, began in log.writes if began >= t_old_closed)
    assert hosts_seen == {old.port: "replica", new.port: "primary"}
    # Only writes in flight failed: each one refused by the read-only server (1290), at most
    # about one per connection that was open on it, none before the switch, none once it settled.
    codes = [getattr(exc, "args", [None])[0] for _, exc in log.errors]
    assert all(code == 1290 for code in codes), log.errors[:3]
    assert len(log.errors) <= 2 * WRITERS
    assert all(t0 <= t <= t_first + 1.0 for t, _ in log.errors)
    figures(
        switchover_to_first_write_s=t_first - t0,
        promotion_to_first_write_s=t_first - t_promoted,
        read_only_took_s=t_old_closed - t0,
        errors=len(log.errors),
        writes=len(log.writes),
    )
    assert t_first - t_promoted < 3.0


def test_crash_of_one_host_with_target_any(fresh_pair: Pair, figures: Any) -> None:
    """kill -9 of one of two servers: every borrow still succeeds within the timeout, served by
    the other one, and no error reaches a borrower that was not using the dead server."""
    pair = fresh_pair
    hosts = [pair.address(pair.primary), pair.address(pair.replica)]
    timeout = 5.0
    with ConnectionPool(
        hosts=hosts, target="any", size=4, max_size=4, timeout=timeout, **pair.app_kwargs()
    ) as pool:
        counts = {h["port"]: h["connections"] for h in pool.stats()["hosts"]}
        assert counts == {pair.primary.port: 2, pair.replica.port: 2}
        pair.primary.kill()
        slowest = 0.0
        ports = set()
        for _ in range(10):
            # All four at once: the dead server's idle connections are taken too, fail their
            # liveness check, and are replaced on the live server.
            leases = []
            for _ in range(4):
                start = time.monotonic()
                conn = pool.get_connection()
                slowest = max(slowest, time.monotonic() - start)
                leases.append(conn)
            for conn in leases:
                assert conn.execute_query("SELECT 1", return_one=True) == (1,)
                ports.add(conn.port)
                conn.close()
        assert ports == {pair.replica.port}
        assert slowest < timeout

        def dead_host() -> dict[str, Any]:
            return {h["port"]: h for h in pool.stats()["hosts"]}[pair.primary.port]

        # The periodic check finds it down and closes the idle connections it still had.
        wait_until(
            lambda: dead_host()["role"] == "down" and dead_host()["connections"] == 0,
            10,
            "the dead host is seen down and its connections retired",
        )
        figures(crash_slowest_borrow_s=slowest, borrow_timeout_s=timeout)
