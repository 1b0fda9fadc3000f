"""``mysqlpool-ext demo`` end to end: its own throwaway server, gunicorn, real HTTP traffic.

The summary is checked against the server's own counters, and Ctrl-C (SIGINT) must leave no
process and no temp dir behind, whenever it comes.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mysqlpool_ext._server import find_server_binary
from mysqlpool_ext.cli import EXIT_INTERRUPTED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_server_binary() is None, reason="the demo needs a local mariadbd"),
]


def demo_env(tmp: Path) -> dict[str, str]:
    """The demo's environment: a private TMPDIR (to check it is left empty) and no URL."""
    env = {k: v for k, v in os.environ.items() if k not in ("MYSQLPOOL_URL", "DATABASE_URL")}
    env["TMPDIR"] = str(tmp)
    return env


def leftovers(tmp: Path) -> list[str]:
    """Processes still running with our private TMPDIR in their environment (all the demo's
    children inherit it: mariadbd, gunicorn and its workers, the watchdogs)."""
    needle = f"TMPDIR={tmp}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        if needle + b"\0" in environ + b"\0" and state != "Z":
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


def wait_gone(tmp: Path, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = leftovers(tmp)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.fixture
def private_tmp(tmp_path: Path) -> Iterator[Path]:
    tmp = tmp_path / "demo-tmp"
    tmp.mkdir()
    yield tmp
    # Whatever the test's outcome, do not leave a server running for the rest of the session.
    for line in leftovers(tmp):
        os.kill(int(line.split()[0]), signal.SIGKILL)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("app", ["flask", "django", "builtin"])
def test_demo_end_to_end_matches_the_servers_counters(private_tmp: Path, app: str) -> None:
    if app != "builtin":  # builtin: the fallback when Flask is not installed
        pytest.importorskip(app)
        pytest.importorskip(f"example_apps.{'flask_app' if app == 'flask' else 'django_project'}")
    result = subprocess.run(
        [sys.executable, "-m", "mysqlpool_ext", "demo", "--quick", "--json", "--app", app],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env=demo_env(private_tmp),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["app"] == app, result.stderr  # the example app, not the built-in fallback
    pool, naive = summary["pool"], summary["new_connection_per_request"]
    workers, threads = summary["workers"], summary["threads"]

    # The client's count and the app's own count agree: one borrow per request.
    assert pool["errors"] == 0 and naive["errors"] == 0
    assert pool["requests_ok"] > 200
    assert pool["stats_complete"] and pool["workers_reporting"] == workers
    assert pool["app_borrows"] == pool["requests_ok"]
    # Connections: the pools opened at most workers x threads and the server saw exactly those
    # (Flask's pools open at start-up, Django's at first use, so maybe during the traffic).
    assert 1 <= pool["pool_connections_opened"] <= workers * threads
    assert pool["server_connections_since_gunicorn_start"] == pool["pool_connections_opened"]
    assert pool["server_connections"] <= pool["pool_connections_opened"]
    if app != "django":  # the demo waits for the pools to fill before sending traffic
        assert pool["server_connections"] == 0
    # One SELECT per request, as the server counted it (its Questions, minus our own SHOWs),
    # plus the set-up statements of each connection opened during the traffic: PyMySQL's SET
    # NAMES and autocommit, the pool's session tracking, an init_command (Django's isolation).
    extra = pool["server_questions"] - pool["requests_ok"]
    assert 0 <= extra <= 4 * pool["server_connections"], pool
    assert naive["server_connections"] >= naive["requests_ok"] > 0
    assert pool["requests_per_second"] > naive["requests_per_second"]
    assert summary["speedup"] > 1

    assert summary["server"].count(":***@") == 1
    assert "password" not in result.stdout.lower()
    assert list(private_tmp.iterdir()) == []
    assert wait_gone(private_tmp) == []


class _Lines:
    """The demo's stdout, line by line, readable with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} line in time; got {self.seen}") from None
            if line is None:
                raise AssertionError(f"the demo ended before {marker!r}; got {self.seen}")
            self.seen.append(line)
            if marker in line:
                return

    def rest(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return "".join(self.seen)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize(
    "moment",
    ["starting a throwaway MariaDB", "starting gunicorn", "1. pooled", "2. new connection"],
)
def test_sigint_at_any_moment_stops_everything_and_removes_the_temp_dirs(
    private_tmp: Path, moment: str
) -> None:
    # Long enough to be inside the phase when the signal comes; short for the second phase.
    seconds = "1.5" if moment == "2. new connection" else "60"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mysqlpool_ext", "demo", "--plain", "--seconds", seconds],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=demo_env(private_tmp),
    )
    try:
        lines = _Lines(proc)
        lines.wait_for(moment, timeout=60)
        if moment == "1. pooled":  # the detector below must see what it is meant to catch
            running = " ".join(leftovers(private_tmp))
            assert "mariadbd" in running and "gunicorn" in running, running
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        output = lines.rest(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == EXIT_INTERRUPTED, output
    assert "interrupted" in output
    assert "Traceback" not in output
    assert wait_gone(private_tmp) == []
    assert list(private_tmp.iterdir()) == []
