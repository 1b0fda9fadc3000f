"""The pooled ENGINE under gunicorn (WSGI, 2 workers x 4 threads) and uvicorn (ASGI), 32 clients.

Per process the server never sees more than ``max_size`` connections of the project's account;
after warm-up a second round of load opens no new server connection (the same connection IDs
before and after); every request sees one connection for the ORM and ``current_pool``; afterwards
nothing is lent and no transaction is open.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pymysql
import pytest
from djtest_load import get, get_json, run_load
from engine_helpers import HERE, EngineAccount, django_admin, engine_env
from test_django_servers import connections_of, open_transactions, stop_server, wait_for

pytestmark = pytest.mark.slow
MAX_SIZE = 4
DURATION = float(os.environ.get("DJTEST_LOAD_SECONDS", "3"))


@pytest.fixture
def seeded(engine_account: EngineAccount, admin: pymysql.connections.Connection) -> EngineAccount:
    django_admin(engine_account, "migrate", "--noinput")
    with admin.cursor() as cur:
        cur.executemany(
            f"INSERT INTO `{engine_account.db}`.engine_app_item (name) VALUES (%s)",
            [(f"item-{i}",) for i in range(20)],
        )
    return engine_account


def start(cmd: list[str], account: EngineAccount, port: int) -> subprocess.Popen[bytes]:
    env = engine_env(account, DJENGINE_MAX_SIZE=str(MAX_SIZE))
    proc = subprocess.Popen(
        cmd, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )

    def up() -> bool:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            return get(port, "/stats", timeout=1)[0] == 200
        except OSError:
            return False

    try:
        wait_for(up, 30, f"{cmd[0]} to answer")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def one_connection(path: str, body: bytes) -> str | None:
    if path in ("/same", "/asame"):
        ids = json.loads(body)["ids"]
        if len(set(ids)) != 1:
            return f"the ORM and current_pool used several connections: {ids}"
    return None


def worker_stats(port: int, workers: int) -> dict[int, dict[str, Any]]:
    seen: dict[int, dict[str, Any]] = {}

    def all_seen() -> bool:
        data = get_json(port, "/stats")
        seen[data["pid"]] = data["pools"]
        return len(seen) >= workers

    wait_for(all_seen, 20, f"stats from {workers} workers")
    return seen


def load_twice(port: int, paths: list[str], admin: Any, user: str, workers: int) -> None:
    warm = run_load(port, paths, clients=32, duration=DURATION, validate=one_connection)
    assert warm.failed == 0, warm.failures
    before = sorted(c[0] for c in connections_of(admin, user))
    result = run_load(port, paths, clients=32, duration=DURATION, validate=one_connection)
    after = sorted(c[0] for c in connections_of(admin, user))
    assert result.failed == 0, result.failures
    assert result.ok > 100, result.ok
    # Zero new server connections per request after warm-up: the very same connections.
    assert after == before, (before, after)
    assert len(after) <= workers * MAX_SIZE, after
    for pid, pools in worker_stats(port, workers).items():
        stats = pools["default"]
        assert stats["in_use"] == 0, (pid, stats)
        assert stats["pool_size"] <= MAX_SIZE, (pid, stats)
        assert stats["requests_errors"] == 0, (pid, stats)
    assert all(c[1] == "Sleep" for c in connections_of(admin, user))
    assert open_transactions(admin, user) == 0
    print(f"{result.ok / result.elapsed:.0f} req/s, {len(after)} server connections")


def test_gunicorn_32_clients(seeded: EngineAccount, admin: pymysql.connections.Connection) -> None:
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    if not shutil.which(gunicorn):
        pytest.skip("gunicorn is not installed")
    port = free_port()
    cmd = [gunicorn, "-w", "2", "--threads", "4", "-b", f"127.0.0.1:{port}",
           "--graceful-timeout", "5", "engine_project.wsgi:application"]  # fmt: skip
    proc = start(cmd, seeded, port)
    try:
        load_twice(port, ["/same", "/item/3", "/items", "/stream"], admin, seeded.user, 2)
    finally:
        out = stop_server(proc)
    wait_for(lambda: connections_of(admin, seeded.user) == [], 10, "the pools to close at exit")
    assert "Traceback" not in out, out[-3000:]


def test_uvicorn_32_clients(seeded: EngineAccount, admin: pymysql.connections.Connection) -> None:
    pytest.importorskip("uvicorn")
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "engine_project.asgi:application"]  # fmt: skip
    proc = start(cmd, seeded, port)
    try:
        load_twice(
            port, ["/asame", "/aitem/3", "/same", "/items", "/stream"], admin, seeded.user, 1
        )
    finally:
        out = stop_server(proc)
    wait_for(lambda: connections_of(admin, seeded.user) == [], 10, "the pools to close at exit")
    assert "Traceback" not in out, out[-3000:]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
