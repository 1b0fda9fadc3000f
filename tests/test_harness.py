"""The test harness itself: the throwaway-server launcher and the password-leak guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
import pytest

from mysqlpool_ext._server import DEFAULT_PASSWORD, ThrowawayServer, find_server_binary

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
#: Where the conftest's helper modules (``poolkit``) are imported from in an inner session.
TESTS_DIR = str(Path(__file__).parent)
REPO_ROOT = str(Path(__file__).resolve().parent.parent)

needs_binary = pytest.mark.skipif(
    find_server_binary() is None, reason="needs a local mariadbd/mysqld binary"
)


def query(kwargs: dict[str, Any], sql: str, args: Any = None) -> tuple[tuple[Any, ...], ...]:
    conn = pymysql.connect(**kwargs, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return tuple(cur.fetchall())
    finally:
        conn.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- whichever server the session found ------------------------------------------------------


def test_connect_kwargs_log_in_as_the_test_user(mysql_server: Any) -> None:
    ((user,),) = query(mysql_server.connect_kwargs(), "SELECT CURRENT_USER()")
    assert user.split("@")[0] == mysql_server.user
    ((db,),) = query(mysql_server.connect_kwargs(), "SELECT DATABASE()")
    assert db == mysql_server.database


def test_url_carries_the_same_credentials(mysql_server: Any) -> None:
    parts = urlsplit(mysql_server.url)
    assert parts.scheme == "mysql"
    kwargs = {
        "host": parts.hostname,
        "port": parts.port,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/"),
    }
    assert kwargs == mysql_server.connect_kwargs()
    assert query(kwargs, "SELECT 1") == ((1,),)


def test_wrong_password_is_refused(mysql_server: Any) -> None:
    kwargs = {**mysql_server.connect_kwargs(), "password": "not-the-password"}
    with pytest.raises(pymysql.err.OperationalError) as excinfo:
        pymysql.connect(**kwargs)
    assert excinfo.value.args[0] == 1045  # ER_ACCESS_DENIED_ERROR


def test_fixtures_give_kwargs_url_and_admin(
    db_kwargs: dict[str, Any], db_url: str, admin: Any, mysql_server: Any
) -> None:
    assert db_kwargs == mysql_server.connect_kwargs()
    db_kwargs["port"] = 1  # a fresh dict per test: mutating it harms no one
    assert mysql_server.connect_kwargs()["port"] == mysql_server.port
    assert db_url == mysql_server.url
    assert admin.get_autocommit() is True


def test_server_connections_counts_the_test_users_connections(
    db_kwargs: dict[str, Any], server_connections: Any
) -> None:
    before = server_connections()
    conns = [pymysql.connect(**db_kwargs) for _ in range(3)]
    try:
        assert server_connections() == before + 3
    finally:
        for conn in conns:
            conn.close()
    # COM_QUIT is asynchronous on the server side: poll, with a deadline, until the rows go.
    deadline = time.monotonic() + 10
    while server_connections() != before:
        assert time.monotonic() < deadline, "closed connections are still listed"
        time.sleep(0.01)
    assert server_connections("no-such-user") == 0


def test_test_user_sees_and_kills_its_other_connections(db_kwargs: dict[str, Any]) -> None:
    victim = pymysql.connect(**db_kwargs)
    killer = pymysql.connect(**db_kwargs, autocommit=True)
    try:
        with killer.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s",
                (victim.thread_id(),),
            )
            assert cur.fetchone() == (1,)
            cur.execute(f"KILL {int(victim.thread_id())}")
        with pytest.raises(pymysql.err.OperationalError):
            victim.query("SELECT 1")
    finally:
        killer.close()
        victim.close()


# -- the launcher ----------------------------------------------------------------------------


@needs_binary
def test_server_listens_on_loopback_only(private_server: ThrowawayServer) -> None:
    ((bind,),) = query(private_server.root_connect_kwargs(), "SELECT @@bind_address")
    assert bind == "127.0.0.1"
    assert private_server.host == "127.0.0.1"
    assert private_server.start_seconds is not None and private_server.start_seconds < 30


@needs_binary
def test_restart_keeps_port_and_data(private_server: ThrowawayServer) -> None:
    kwargs = private_server.connect_kwargs()
    query(kwargs, "CREATE TABLE kept (id INT PRIMARY KEY)")
    query(kwargs, "INSERT INTO kept VALUES (42)")
    port, old_pid = private_server.port, private_server.pid

    private_server.restart()

    assert private_server.port == port
    assert private_server.pid != old_pid
    assert old_pid is not None and not pid_alive(old_pid)
    assert query(kwargs, "SELECT id FROM kept") == ((42,),)
    assert query(private_server.root_connect_kwargs(), "SELECT 1") == ((1,),)


@needs_binary
def test_restart_with_new_server_args(private_server: ThrowawayServer) -> None:
    private_server.restart(server_args=["--max-connections=17"])
    ((value,),) = query(private_server.root_connect_kwargs(), "SELECT @@max_connections")
    assert value == 17


@needs_binary
def test_kill_makes_connections_fail_and_restart_recovers(private_server: ThrowawayServer) -> None:
    kwargs = private_server.connect_kwargs()
    query(kwargs, "CREATE TABLE survivor (id INT PRIMARY KEY)")
    query(kwargs, "INSERT INTO survivor VALUES (1)")
    conn = pymysql.connect(**kwargs)
    try:
        private_server.kill()
        assert not private_server.running
        with pytest.raises(pymysql.err.OperationalError):
            conn.query("SELECT 1")
    finally:
        conn.close()
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(**kwargs, connect_timeout=2)

    private_server.restart()  # crash recovery, same port and data

    assert query(kwargs, "SELECT id FROM survivor") == ((1,),)


@needs_binary
def test_stop_refuses_connections_and_start_comes_back(private_server: ThrowawayServer) -> None:
    kwargs = private_server.connect_kwargs()
    private_server.stop()
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(**kwargs, connect_timeout=2)
    private_server.start()
    assert query(kwargs, "SELECT 1") == ((1,),)


@needs_binary
def test_cleanup_stops_the_server_and_removes_the_temp_dir() -> None:
    server = ThrowawayServer()
    server.start()
    tmpdir, pid = server.tmpdir, server.pid
    assert os.path.isdir(tmpdir) and os.path.isdir(server.datadir)
    assert pid is not None and pid_alive(pid)

    server.cleanup()

    assert not os.path.exists(tmpdir)
    assert not pid_alive(pid)
    server.cleanup()  # idempotent
    with pytest.raises(RuntimeError, match="cleaned up"):
        server.start()


@needs_binary
def test_server_goes_away_when_its_owner_is_killed(tmp_path: Path) -> None:
    """A test run or demo killed with SIGKILL (no atexit) leaves no server and no temp dir."""
    script = (
        "import sys, time\n"
        "from mysqlpool_ext._server import ThrowawayServer\n"
        "s = ThrowawayServer(); s.start()\n"
        "print(s.pid, s.tmpdir, flush=True)\n"
        "time.sleep(300)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO_ROOT},
    )
    try:
        assert owner.stdout is not None
        pid_text, tmpdir = owner.stdout.readline().split()
        pid = int(pid_text)
        assert pid_alive(pid) and os.path.isdir(tmpdir)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    deadline = time.monotonic() + 30
    while pid_alive(pid) or os.path.exists(tmpdir):
        assert time.monotonic() < deadline, "server or temp dir outlived its owner"
        time.sleep(0.05)


@needs_binary
def test_context_manager_cleans_up_on_error() -> None:
    with pytest.raises(ZeroDivisionError), ThrowawayServer() as server:
        tmpdir, pid = server.tmpdir, server.pid
        assert server.running
        1 / 0  # noqa: B018
    assert not os.path.exists(tmpdir)
    assert pid is not None and not pid_alive(pid)


@needs_binary
def test_failed_start_shows_the_log_tail_but_no_password() -> None:
    server = ThrowawayServer(server_args=["--no-such-option-for-the-test"])
    tmpdir = server.tmpdir
    with pytest.raises(RuntimeError) as excinfo, server:
        pass
    message = str(excinfo.value)
    assert "no-such-option-for-the-test" in message  # from the server's own log
    assert "failed" in message
    assert server.password not in message and server.root_password not in message
    assert not os.path.exists(tmpdir)


@needs_binary
def test_default_password_and_url() -> None:
    server = ThrowawayServer(port=3999, user="u", password="p w/@", database="d")
    try:
        assert server.password != DEFAULT_PASSWORD
        assert server.url == "mysql://u:p%20w%2F%40@127.0.0.1:3999/d"
        assert "p w/@" not in repr(server)
    finally:
        server.cleanup()
    default = ThrowawayServer()
    try:
        assert default.password == DEFAULT_PASSWORD
        assert default.port != 3999
    finally:
        default.cleanup()


# -- the password-leak guard -----------------------------------------------------------------


def guard_report(result: pytest.RunResult) -> str:
    """The leak guard's own lines of an inner session's output."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "PASSWORD LEAK" in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("===")), len(lines))
    return "\n".join(lines[start:end])


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytest session in a temp dir with our conftest, run in a subprocess."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([REPO_ROOT, TESTS_DIR, os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.delenv("MYSQLPOOL_TEST_URL", raising=False)
    pytester.makeconftest(CONFTEST)
    return pytester


def test_leak_guard_fails_a_session_that_logs_the_password(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import logging
        from mysqlpool_ext._server import DEFAULT_PASSWORD

        def test_logs_it():
            logging.getLogger("mysqlpool_ext.pool").debug("connecting with %s", DEFAULT_PASSWORD)
        """
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*PASSWORD LEAK*", "*log record from mysqlpool_ext.pool*connecting with <PASSWORD>*"]
    )
    assert DEFAULT_PASSWORD not in guard_report(result)


def test_leak_guard_catches_the_password_in_an_exception(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        from mysqlpool_ext._server import DEFAULT_PASSWORD

        def test_raises_it():
            raise ValueError("bad pool: " + DEFAULT_PASSWORD[::-1][::-1])
        """
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", "--tb=no")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*PASSWORD LEAK*", "*failure of *test_raises_it*<PASSWORD>*"])
    # pytest's own summary may quote the exception; the guard's report must not.
    assert DEFAULT_PASSWORD not in guard_report(result)


def test_leak_guard_passes_a_clean_session(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import logging

        def test_logs_nothing_secret():
            logging.getLogger("mysqlpool_ext").debug("connecting as %s", "pooltest")
        """
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "PASSWORD LEAK" not in result.stdout.str()


# -- no server at all ------------------------------------------------------------------------


@pytest.mark.parametrize("ci", ["", "true"])
def test_missing_server_skips_but_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([REPO_ROOT, TESTS_DIR, os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.delenv("MYSQLPOOL_TEST_URL", raising=False)
    monkeypatch.setenv("CI", ci)
    # The same conftest, on a machine with no server binary and no Docker.
    pytester.makeconftest(
        CONFTEST + "\nfind_server_binary = lambda: None\n_docker_works = lambda: False\n"
    )
    pytester.makepyfile("def test_needs_a_server(mysql_server):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    if ci:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*no MySQL server: set MYSQLPOOL_TEST_URL*"])
    else:
        result.assert_outcomes(skipped=1)
        assert result.ret == pytest.ExitCode.OK
