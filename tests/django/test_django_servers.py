"""The test project under real servers: gunicorn (WSGI, 2 workers x 4 threads) and uvicorn (ASGI).

32 concurrent clients for a few seconds: no request may fail, every request must see one
connection, and afterwards no worker lends a connection, the server has no open transaction and
no more connections than the pools allow; when the server stops, its pools close.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest
from djtest_load import get, get_json, run_load

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MAX_SIZE = 4
DURATION = float(os.environ.get("DJTEST_LOAD_SECONDS", "3"))

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server_user(
    mysql_server: Any, admin: pymysql.connections.Connection
) -> Iterator[tuple[str, str]]:
    """A MySQL account of the served app's own, so the process list counts only its connections.

    Yields ``(user, url)``."""
    user = "djserver_" + secrets.token_hex(3)
    password = secrets.token_urlsafe(12)
    with admin.cursor() as cur:
        cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
        cur.execute(
            f"GRANT ALL PRIVILEGES ON `{mysql_server.database}`.* TO %s@'127.0.0.1'", (user,)
        )
        cur.execute("GRANT PROCESS ON *.* TO %s@'127.0.0.1'", (user,))
    url = f"mysql://{user}:{password}@127.0.0.1:{mysql_server.port}/{mysql_server.database}"
    yield user, url
    with admin.cursor() as cur:
        cur.execute("DROP USER %s@'127.0.0.1'", (user,))


def connections_of(admin: pymysql.connections.Connection, user: str) -> list[tuple[Any, ...]]:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT ID, COMMAND, STATE FROM information_schema.PROCESSLIST WHERE USER = %s", (user,)
        )
        return list(cur.fetchall())


def open_transactions(admin: pymysql.connections.Connection, user: str) -> int:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX t"
            " JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id"
            " WHERE p.USER = %s",
            (user,),
        )
        row = cur.fetchone()
    return int(row[0]) if row else 0


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def start_server(cmd: list[str], url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "djtest_project.settings",
        "DJTEST_MYSQLPOOL_URL": url,
        "DJTEST_MAX_SIZE": str(MAX_SIZE),
        "PYTHONPATH": os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("MYSQLPOOL_URL", None)
    proc = subprocess.Popen(
        cmd, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )

    def up() -> bool:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            return get(port, "/mysqlpool/stats", timeout=1)[0] == 200
        except OSError:
            return False

    try:
        wait_for(up, 30, f"{cmd[0]} to answer")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("server did not stop on SIGTERM") from None
    return out.decode(errors="replace") if out else ""


def same_connection(path: str, body: bytes) -> str | None:
    if path.endswith("conn-ids"):
        ids = json.loads(body)["ids"]
        if len(set(ids)) != 1:
            return f"one request saw several connections: {ids}"
    return None


def worker_stats(port: int, workers: int) -> dict[int, dict[str, Any]]:
    """The stats view of every worker (requests land on a random one: ask until all answered)."""
    seen: dict[int, dict[str, Any]] = {}

    def all_seen() -> bool:
        data = get_json(port, "/mysqlpool/stats")
        seen[data["pid"]] = data["pools"]["default"]
        return len(seen) >= workers

    wait_for(all_seen, 20, f"stats from {workers} workers")
    return seen


def check_after_load(
    admin: pymysql.connections.Connection, user: str, port: int, workers: int
) -> None:
    for pid, stats in worker_stats(port, workers).items():
        # The stats view itself takes no connection, so a worker at rest lends none.
        assert stats["in_use"] == 0, (pid, stats)
        assert stats["pool_size"] <= MAX_SIZE, (pid, stats)
        assert stats["requests_errors"] == 0, (pid, stats)
    conns = connections_of(admin, user)
    assert len(conns) <= workers * MAX_SIZE, conns
    assert all(c[1] == "Sleep" for c in conns), conns
    assert open_transactions(admin, user) == 0


def test_gunicorn_32_clients_no_failure_no_leak(
    server_user: tuple[str, str], admin: pymysql.connections.Connection
) -> None:
    if shutil.which("gunicorn", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("gunicorn is not installed")
    user, url = server_user
    port = free_port()
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    cmd = [
        gunicorn,
        "-w", "2", "--threads", "4", "-b", f"127.0.0.1:{port}",
        "--graceful-timeout", "5", "djtest_project.wsgi:application",
    ]  # fmt: skip
    proc = start_server(cmd, url, port)
    try:
        result = run_load(
            port, ["/conn-ids", "/one", "/sleep", "/stream/2"], clients=32, duration=DURATION,
            validate=same_connection,
        )  # fmt: skip
        assert result.failed == 0, result.failures
        assert result.ok > 100
        check_after_load(admin, user, port, workers=2)
    finally:
        out = stop_server(proc)
    wait_for(lambda: connections_of(admin, user) == [], 10, "the pools to close at exit")
    assert "Traceback" not in out, out[-3000:]


def test_uvicorn_32_clients_no_failure_no_leak(
    server_user: tuple[str, str], admin: pymysql.connections.Connection
) -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip(
        "mysqlpool_ext._adriver", reason="the async face of the pool is not there yet"
    )
    user, url = server_user
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "djtest_project.asgi:application",
    ]  # fmt: skip
    proc = start_server(cmd, url, port)
    try:
        result = run_load(
            port, ["/async-conn-ids", "/async-one", "/conn-ids", "/async-stream/2"],
            clients=32, duration=DURATION, validate=same_connection,
        )  # fmt: skip
        assert result.failed == 0, result.failures
        assert result.ok > 100
        check_after_load(admin, user, port, workers=1)
    finally:
        out = stop_server(proc)
    wait_for(lambda: connections_of(admin, user) == [], 10, "the pools to close at exit")
    assert "Traceback" not in out, out[-3000:]
