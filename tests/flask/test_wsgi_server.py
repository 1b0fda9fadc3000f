"""The example shop under a real WSGI server (gunicorn, 2 workers x 8 threads) with 32 clients.

Zero failed requests; afterwards every worker's pool reports nothing in use (the stats endpoint),
the server's process list shows no connection left in a transaction and no more than the pools'
capacity, and stopping gunicorn closes every connection properly (atexit: no aborted clients).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from flask import Flask

ROOT = Path(__file__).resolve().parents[2]
WORKERS, THREADS, POOL_SIZE = 2, 8, 4
CLIENTS, LOAD_SECONDS = 32, 3.0
STATS = "/_mysqlpool/stats"
SHOP_DB = "mysqlpool_flask_shop"  # the database of the shop_url fixture (conftest.py)

pytestmark = pytest.mark.skipif(
    shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None
    and shutil.which("gunicorn") is None,
    reason="gunicorn is not installed",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(
    port: int, method: str, path: str, body: Any = None, timeout: float = 10, raw: bool = False
) -> tuple[int, Any]:
    """One request on a fresh TCP connection (``Connection: close``: both workers get traffic)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if raw:
            return resp.status, data.decode()
        return resp.status, json.loads(data) if data else None
    finally:
        conn.close()


@pytest.fixture
def gunicorn_shop(shop_url: str, tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {
        **os.environ,
        "MYSQLPOOL_URL": shop_url,
        "FLASK_MYSQLPOOL_STATS_ENDPOINT": STATS,
        "FLASK_MYSQLPOOL_SIZE": str(POOL_SIZE),
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(WORKERS),
            "--threads",
            str(THREADS),
            "--bind",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "10",
            "example_apps.flask_app.app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    "gunicorn did not start:\n" + (tmp_path / "gunicorn.log").read_text()[-3000:]
                )
            time.sleep(0.1)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


def _load(port: int) -> tuple[int, list[str]]:
    """32 clients for a few seconds over the shop's endpoints; returns (requests, failures)."""
    deadline = time.monotonic() + LOAD_SECONDS
    failures: list[str] = []
    counts = [0] * CLIENTS
    lock = threading.Lock()

    def client(n: int) -> None:
        i = 0
        while time.monotonic() < deadline and i < 100_000:
            i += 1
            kind = (n + i) % 6
            try:
                if kind == 0:
                    status, body = request(port, "GET", "/users/1")
                    ok = status == 200 and body == {"id": 1, "name": "Ada"}
                elif kind == 1:
                    email = f"c{n}-{i}-{time.monotonic_ns()}@example.com"
                    status, body = request(port, "POST", "/users", {"name": "L", "email": email})
                    ok = status == 201 and body["email"] == email
                    if ok:  # LAST_INSERT_ID() was this request's: the row reads back as ours
                        status, got = request(port, "GET", f"/users/{body['id']}")
                        ok = status == 200 and got["id"] == body["id"]
                elif kind == 2:
                    status, body = request(
                        port, "POST", "/orders", {"user_id": 1, "product_id": 2, "qty": 1}
                    )
                    ok = status in (201, 409)  # 409: sold out, the transaction rolled back
                elif kind == 3:
                    status, body = request(port, "GET", "/products")
                    ok = status == 200 and len(body) == 2
                elif kind == 4:
                    status, body = request(port, "GET", "/async/users/2")
                    ok = status == 200 and body == {"id": 2, "name": "Grace"}
                else:
                    status, text = request(port, "GET", "/users.csv", raw=True)
                    ok = status == 200 and text.startswith("id,name,email\n1,Ada,")
                    body = text[:100]
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                ok, status, body = False, -1, repr(exc)
            with lock:
                counts[n] += 1
                if not ok and len(failures) < 20:
                    failures.append(f"kind {kind}: {status} {body!r}"[:300])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LOAD_SECONDS + 60)
    return sum(counts), failures


def _worker_stats(port: int) -> dict[int, dict[str, Any]]:
    """Each worker's pool counters: ask until both workers have answered (bounded)."""
    seen: dict[int, dict[str, Any]] = {}
    for _ in range(300):
        status, body = request(port, "GET", STATS)
        assert status == 200
        seen[body["pid"]] = body["pools"]["default"]
        if len(seen) == WORKERS:
            break
    return seen


def _shop_connections(admin: pymysql.connections.Connection) -> list[tuple[Any, ...]]:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT p.ID, p.COMMAND, t.trx_id FROM information_schema.PROCESSLIST p"
            " LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID"
            " WHERE p.DB = %s AND p.ID <> CONNECTION_ID()",
            (SHOP_DB,),
        )
        return list(cur.fetchall())


def _aborted_clients(admin: pymysql.connections.Connection) -> int:
    with admin.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")
        row = cur.fetchone()
    return int(row[1])


def test_32_clients_no_failures_no_leaks(
    gunicorn_shop: tuple[int, subprocess.Popen[bytes]],
    admin: pymysql.connections.Connection,
    make_app: Callable[..., Flask],
) -> None:
    port, proc = gunicorn_shop
    aborted_before = _aborted_clients(admin)
    total, failures = _load(port)
    assert failures == [], f"{len(failures)}+ failed of {total} requests: {failures}"
    assert total > 200, f"only {total} requests in {LOAD_SECONDS} s"

    stats = _worker_stats(port)
    assert len(stats) == WORKERS, f"only workers {sorted(stats)} answered"
    for pid, pool in stats.items():
        assert pool["in_use"] == 0, (pid, pool)
        assert pool["requests_errors"] == 0, (pid, pool)
        assert pool["leaks"] == 0, (pid, pool)
        assert pool["pool_size"] <= POOL_SIZE, (pid, pool)
        assert pool["requests_num"] > 0, (pid, pool)

    # `flask mysqlpool stats --from URL` reads the same endpoint of the running server.
    result = (
        make_app()
        .test_cli_runner()
        .invoke(args=["mysqlpool", "stats", "--json", "--from", f"http://127.0.0.1:{port}{STATS}"])
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pools"]["default"]["in_use"] == 0

    conns = _shop_connections(admin)
    assert len(conns) <= WORKERS * POOL_SIZE, conns
    assert [c for c in conns if c[2] is not None] == [], "connections left in a transaction"
    assert all(c[1] == "Sleep" for c in conns), conns

    proc.terminate()
    proc.wait(30)
    deadline = time.monotonic() + 10
    while _shop_connections(admin) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _shop_connections(admin) == []
    # Closed with COM_QUIT by the atexit hook, not dropped: the server counts no aborted client.
    assert _aborted_clients(admin) == aborted_before
