"""Fixtures shared by every test layer: a real MySQL-protocol server, and a password-leak guard.

Server discovery order (first that works):
  1. ``MYSQLPOOL_TEST_URL`` = ``mysql://user:password@host:port/database`` — an existing server;
  2. a throwaway MariaDB/MySQL from the local ``mariadbd``/``mysqld`` (``mysqlpool_ext._server``);
  3. testcontainers' MySQL, when ``docker info`` works and testcontainers is importable.
With none, tests that need a server are skipped — or fail when ``CI=true``.

The leak guard records every ``mysqlpool_ext`` log message (at DEBUG) and the exception text of
every failed test; if the test server's password shows up in any of it, the session fails.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

import pymysql
import pytest
from poolkit import PoolMaker

from mysqlpool_ext import ConnectionPool
from mysqlpool_ext._server import DEFAULT_PASSWORD, ThrowawayServer, find_server_binary

#: What ``make_pool`` / ``own_pool`` return: build a pool that the fixture closes afterwards.
MakePool = Callable[..., ConnectionPool]

pytest_plugins = ["pytester"]

PACKAGE_LOGGER = "mysqlpool_ext"


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class ServerInfo(Protocol):
    """What the ``mysql_server`` fixture yields, whichever way the server was found."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str: ...

    def connect_kwargs(self) -> dict[str, Any]: ...

    def root_connect_kwargs(self) -> dict[str, Any]: ...


@dataclass
class ExistingServer:
    """A server we did not start: from ``MYSQLPOOL_TEST_URL`` or a testcontainer."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    root_user: str | None = None
    root_password: str | None = field(default=None, repr=False)
    source: str = "MYSQLPOOL_TEST_URL"

    @property
    def url(self) -> str:
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        return f"mysql://{user}:{password}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    def connect_kwargs(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }

    def root_connect_kwargs(self) -> dict[str, Any]:
        if self.root_user is None:
            return self.connect_kwargs()
        return {**self.connect_kwargs(), "user": self.root_user, "password": self.root_password}


def parse_test_url(url: str) -> ExistingServer:
    """Parse ``mysql://user:pw@host:port/db`` (no dependency on the package's config module)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ValueError(f"MYSQLPOOL_TEST_URL must start with mysql://, not {parts.scheme}://")
    return ExistingServer(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")) or "mysqlpool_test",
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _no_server(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"no MySQL server: {reason}", pytrace=False)
    pytest.skip(f"no MySQL server: {reason}")


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info"], capture_output=True, timeout=15, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _check_reachable(server: ServerInfo) -> None:
    try:
        pymysql.connect(**server.connect_kwargs(), connect_timeout=10).close()
    except pymysql.MySQLError as exc:  # its messages carry user and host, never the password
        pytest.fail(
            f"MYSQLPOOL_TEST_URL server {server.host}:{server.port} is not usable: {exc!r}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def mysql_server(request: pytest.FixtureRequest) -> Iterator[ServerInfo]:
    """A real MySQL-protocol server for the whole session (see the module docstring)."""
    url = os.environ.get("MYSQLPOOL_TEST_URL")
    if url:
        existing = parse_test_url(url)
        _remember_secrets(request.config, existing.password)
        _check_reachable(existing)
        yield existing
        return

    if find_server_binary() is not None:
        with ThrowawayServer() as server:
            _remember_secrets(request.config, server.password, server.root_password)
            yield server
        return

    if _docker_works():
        try:
            from testcontainers.mysql import MySqlContainer  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            yield from _container_server(request.config, MySqlContainer)
            return

    _no_server(
        "set MYSQLPOOL_TEST_URL=mysql://user:pw@host:port/db, install MariaDB "
        "(apt-get install mariadb-server; `bash scripts/dev test` does it), "
        "or run Docker with testcontainers installed"
    )


def _container_server(config: pytest.Config, container_cls: Any) -> Iterator[ServerInfo]:
    root_password = "Root-" + DEFAULT_PASSWORD
    container = container_cls(
        "mysql:8.0",
        username="pooltest",
        password=DEFAULT_PASSWORD,
        root_password=root_password,
        dbname="mysqlpool_test",
    )
    with container:
        server = ExistingServer(
            host=container.get_container_host_ip(),
            port=int(container.get_exposed_port(3306)),
            user="pooltest",
            password=DEFAULT_PASSWORD,
            database="mysqlpool_test",
            root_user="root",
            root_password=root_password,
            source="testcontainers",
        )
        _remember_secrets(config, server.password, root_password)
        yield server


@pytest.fixture
def private_server() -> Iterator[ThrowawayServer]:
    """A throwaway server of this test's own, for tests that stop, kill or restart it."""
    if find_server_binary() is None:
        _no_server("fault tests need a local mariadbd/mysqld binary")
    with ThrowawayServer() as server:
        yield server


# Pools that always get closed, and an account per test. Counting "the pool's connections" on
# the server must not pick up anyone else's, so tests that count get a database account of their
# own (``own_user``): the process list filtered by that user is exactly what the pool opened. The
# account uses the session's test password, so the password-leak guard watches it too.
@pytest.fixture
def make_pool(db_kwargs: dict[str, Any]) -> Iterator[MakePool]:
    """``make_pool(**options)``: a pool on the test server (``db_kwargs`` + options), closed at
    the end of the test whatever happened."""
    maker = PoolMaker(db_kwargs)
    yield maker
    maker.close()


@pytest.fixture
def own_user(mysql_server: Any, admin: pymysql.connections.Connection) -> Iterator[dict[str, Any]]:
    """Connect kwargs for a fresh account of this test's own (same password, same database)."""
    user = "own_" + secrets.token_hex(4)
    with admin.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, mysql_server.password))
            cur.execute(
                f"GRANT ALL PRIVILEGES ON `{mysql_server.database}`.* TO %s@%s", (user, host)
            )
    yield {**mysql_server.connect_kwargs(), "user": user}
    with admin.cursor() as cur:
        # Kill what a failed test may have left behind, then drop the account.
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
        for (thread_id,) in cur.fetchall():
            try:
                cur.execute("KILL %s", (thread_id,))
            except pymysql.err.OperationalError:
                pass  # 1094 unknown thread: it ended on its own meanwhile
        for host in ("127.0.0.1", "localhost"):
            cur.execute("DROP USER IF EXISTS %s@%s", (user, host))


@pytest.fixture
def own_pool(own_user: dict[str, Any]) -> Iterator[Callable[..., ConnectionPool]]:
    """``own_pool(**options)``: like ``make_pool`` but on the test's own account."""
    maker = PoolMaker(own_user)
    yield maker
    maker.close()


@pytest.fixture
def db_kwargs(mysql_server: ServerInfo) -> dict[str, Any]:
    """Fresh connect kwargs (host, port, user, password, database) for ``ConnectionPool(**...)``."""
    return dict(mysql_server.connect_kwargs())


@pytest.fixture
def db_url(mysql_server: ServerInfo) -> str:
    return mysql_server.url


@pytest.fixture
def admin(mysql_server: ServerInfo) -> Iterator[pymysql.connections.Connection]:
    """A plain autocommit PyMySQL connection with the most privileged account we have."""
    conn = pymysql.connect(**mysql_server.root_connect_kwargs(), autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def server_connections(
    mysql_server: ServerInfo, admin: pymysql.connections.Connection
) -> Callable[..., int]:
    """``server_connections(user=None) -> int``: the server's connections for ``user`` (default:
    the test user), as counted in the process list, not counting the ``admin`` connection."""

    def count(user: str | None = None) -> int:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                " WHERE USER = %s AND ID <> CONNECTION_ID()",
                (user or mysql_server.user,),
            )
            row = cur.fetchone()
        return int(row[0]) if row else 0

    return count


# --------------------------------------------------------------------------------------------
# The password-leak guard
# --------------------------------------------------------------------------------------------

MIN_SECRET_LENGTH = 6  # shorter passwords (e.g. in a hand-made MYSQLPOOL_TEST_URL) match anything
_secrets_key = pytest.StashKey[set[str]]()
_records_key = pytest.StashKey[list[tuple[str, str]]]()
_handler_key = pytest.StashKey[tuple[logging.Handler, int]]()


class _RecordingHandler(logging.Handler):
    def __init__(self, sink: list[tuple[str, str]]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.append((f"log record from {record.name}", self.format(record)))
        except Exception:  # noqa: BLE001  (a broken log call must not break the guard)
            self.handleError(record)


def _remember_secrets(config: pytest.Config, *secrets: str | None) -> None:
    config.stash.setdefault(_secrets_key, set()).update(s for s in secrets if s)


def find_leaks(secrets: Iterable[str], records: Iterable[tuple[str, str]]) -> list[str]:
    """Where any secret (or its URL-quoted form) appears: one redacted line per finding."""
    needles = {
        variant
        for secret in secrets
        if len(secret) >= MIN_SECRET_LENGTH
        for variant in (secret, quote(secret, safe=""))
    }
    found = []
    for where, text in records:
        hits = [needle for needle in needles if needle in text]
        if hits:
            redacted = text
            for needle in hits:
                redacted = redacted.replace(needle, "<PASSWORD>")
            snippet = redacted.strip().splitlines()
            line = next((ln for ln in snippet if "<PASSWORD>" in ln), snippet[0] if snippet else "")
            found.append(f"{where}: {line.strip()[:300]}")
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    _remember_secrets(config, DEFAULT_PASSWORD)
    url = os.environ.get("MYSQLPOOL_TEST_URL")
    if url:
        try:
            _remember_secrets(config, parse_test_url(url).password)
        except ValueError:
            pass
    records: list[tuple[str, str]] = []
    config.stash[_records_key] = records
    handler = _RecordingHandler(records)
    package_logger = logging.getLogger(PACKAGE_LOGGER)
    config.stash[_handler_key] = (handler, package_logger.level)
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.DEBUG)  # so debug messages are formatted and checked too


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _records_key in item.config.stash:
        records = item.config.stash[_records_key]
        where = f"failure of {item.nodeid} ({report.when})"
        records.append((where, report.longreprtext))
        if call.excinfo is not None:
            records.append((where, repr(call.excinfo.value)))
            records.append((where, str(call.excinfo.value)))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _handler_key in config.stash:
        handler, level = config.stash[_handler_key]
        package_logger = logging.getLogger(PACKAGE_LOGGER)
        package_logger.removeHandler(handler)
        package_logger.setLevel(level)
    secrets: set[str] = config.stash.get(_secrets_key, set())
    records: list[tuple[str, str]] = config.stash.get(_records_key, [])
    leaks = find_leaks(secrets, records)
    if not leaks:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    lines = ["the test server's password appeared in:", *leaks]
    if reporter is not None:
        reporter.write_sep("!", "PASSWORD LEAK", red=True, bold=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- figures: what a test measured, printed at the end of the run ---------------------------------

_figures_key = pytest.StashKey[dict[str, dict[str, Any]]]()

Figures = Callable[..., None]


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """``figures(name=value, ...)``: remember what this test measured; the terminal summary prints
    every test's figures (ready for the README's "Reliability" section)."""
    store = request.config.stash.setdefault(_figures_key, {})
    entry = store.setdefault(request.node.nodeid, {})

    def record(**values: Any) -> None:
        entry.update(values)

    return record


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    store = config.stash.get(_figures_key, {})
    if not store:
        return
    terminalreporter.write_sep("=", "mysqlpool_ext measured figures")
    for test, values in store.items():
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        terminalreporter.write_line(f"{test}: {shown}")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
