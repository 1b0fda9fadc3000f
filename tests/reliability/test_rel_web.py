"""Issue 11 items 5 and 15: the pool inside web apps.

5. A README-style Flask app (lazy pool, the Flask default) under ``gunicorn --preload -w 2
   --threads 4``: requests must be answered (they hung forever: the workers inherited a lock the
   master's fill thread held at fork), and the master must not keep ``size`` server connections
   open for ever next to the workers' own.
15. Inside a request scope ``with current_pool.connection() as c: c.begin(); INSERT ...`` must
   behave as it does outside a request: the block commits.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from faces import Face, MakePool

import mysqlpool_ext
from mysqlpool_ext import current_pool, request_scope

ROOT = Path(__file__).resolve().parents[2]
WORKERS, THREADS, POOL_SIZE = 2, 4, 4

APP = textwrap.dedent(
    """
    import os

    from flask import Flask

    from mysqlpool_ext import current_pool
    from mysqlpool_ext.flask import MySQLPool

    app = Flask(__name__)
    app.config["MYSQLPOOL_URL"] = os.environ["PRELOAD_APP_DB_URL"]
    app.config["MYSQLPOOL_SIZE"] = int(os.environ["PRELOAD_APP_POOL_SIZE"])
    pool = MySQLPool(app)


    @app.get("/one")
    def one():
        (value,) = current_pool.execute_query("SELECT 1", return_one=True)
        return {"one": value}
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, timeout: float) -> int:
    """One GET on a fresh TCP connection (``Connection: close``, so both workers get some)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture
def preloaded_app(
    own_user: dict[str, Any], tmp_path: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """gunicorn ``--preload`` serving the README-style app on the test's own account."""
    (tmp_path / "preload_app.py").write_text(APP)
    url = (
        f"mysql://{quote(own_user['user'], safe='')}:{quote(own_user['password'], safe='')}"
        f"@{own_user['host']}:{own_user['port']}/{own_user['database']}"
    )
    port = _free_port()
    env = {
        **os.environ,
        "PRELOAD_APP_DB_URL": url,
        "PRELOAD_APP_POOL_SIZE": str(POOL_SIZE),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    for name in ("MYSQLPOOL_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--preload",
                "--workers",
                str(WORKERS),
                "--threads",
                str(THREADS),
                "--bind",
                f"127.0.0.1:{port}",
                "--graceful-timeout",
                "5",
                "--timeout",
                "30",
                "preload_app:app",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 20
        while True:  # the master binds the port before it forks: wait until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("gunicorn did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.05)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_preloaded_app_answers_requests(
    preloaded_app: tuple[int, subprocess.Popen[bytes]], figures: Any
) -> None:
    """Sixteen requests, eight at a time, each allowed 5 s: every one must be answered."""
    port, _ = preloaded_app
    with concurrent.futures.ThreadPoolExecutor(WORKERS * THREADS) as ex:
        futures = [ex.submit(get, port, "/one", 5.0) for _ in range(2 * WORKERS * THREADS)]
        outcomes = []
        for fut in futures:
            try:
                outcomes.append(fut.result())
            except OSError as exc:  # socket.timeout included: a hung request
                outcomes.append(type(exc).__name__)
    answered = outcomes.count(200)
    figures(answered=answered, requests=len(outcomes))
    assert answered == len(outcomes), f"{answered} of {len(outcomes)} answered: {outcomes}"


def db_sockets(pid: int, server_port: int) -> int:
    """Established TCP connections to the database port held in process ``pid``'s own file
    table (read from /proc: socket inodes of its fds, matched in /proc/net/tcp{,6})."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if fields[3] == "01" and remote_port == server_port and fields[9] in inodes:
                count += 1
    return count


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_preload_master_keeps_no_connections(
    preloaded_app: tuple[int, subprocess.Popen[bytes]], mysql_server: Any, figures: Any
) -> None:
    """The master only forks and supervises workers: once they run, it must hold no server
    connection (today it keeps its ``size`` connections for ever, and each worker inherits
    one more socket). Polled for 3 s after the first request, so a close at fork has time."""
    port, proc = preloaded_app
    try:
        get(port, "/one", 3.0)
    except OSError:
        pass  # item 5's other test is about requests; this one is about the master
    deadline = time.monotonic() + 3
    while (held := db_sockets(proc.pid, mysql_server.port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    figures(master_db_connections=held)
    assert held == 0, f"the gunicorn master holds {held} connections to the server"


# -- item 15 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["outside-request", "inside-request"])
async def test_connection_block_commits_in_and_out_of_a_request(
    request: pytest.FixtureRequest,
    face: Face,
    where: str,
    table: str,
    committed: Callable[[], list[str]],
    make_pool: MakePool,
) -> None:
    """The same code — borrow with ``current_pool.connection()``, BEGIN, INSERT, leave the block
    — commits outside a request; inside one it must too (not be rolled back at the request's
    end). The row must be committed when the block ends."""
    pool = make_pool(size=1, max_size=1)
    mysqlpool_ext.set_default_pool(pool)
    try:
        with request_scope() if where == "inside-request" else contextlib.nullcontext():
            if face.name == "sync":
                with current_pool.connection() as conn:
                    conn.begin()
                    conn.execute_query(f"INSERT INTO {table} (v) VALUES ('kept')")
            else:
                async with current_pool.aconnection() as conn:
                    await conn.aexecute_query("BEGIN")
                    await conn.aexecute_query(f"INSERT INTO {table} (v) VALUES ('kept')")
            at_block_end = committed()
        at_request_end = committed()
    finally:
        mysqlpool_ext.set_default_pool(None)
    assert (at_block_end, at_request_end) == (["kept"], ["kept"])


async def test_current_pool_aconnection_uses_the_request_connection(make_pool: MakePool) -> None:
    """Inside a request, ``current_pool.aconnection()`` is the request's pinned connection, as
    ``connection()`` is for the blocking face (it used to borrow a second one)."""
    pool = make_pool(size=2, max_size=2)
    mysqlpool_ext.set_default_pool(pool)
    try:
        with request_scope():
            (pinned,) = await current_pool.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
            async with current_pool.aconnection() as conn:
                (inside,) = await conn.aexecute_query("SELECT CONNECTION_ID()", return_one=True)
                assert pool.stats()["in_use"] == 1
            assert inside == pinned
    finally:
        mysqlpool_ext.set_default_pool(None)
