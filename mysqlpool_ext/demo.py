"""``mysqlpool-ext demo``: the pool doing its job in a real web app, from one command.

What it does, in order:

1. starts a throwaway MariaDB with the launcher the tests use (or uses ``--url`` /
   ``MYSQLPOOL_URL``) and loads a small schema;
2. serves the example Flask app (or the Django project, or a minimal built-in WSGI app) under
   gunicorn, as a subprocess: ``--workers`` processes x ``--threads`` threads, each worker with its
   own pool of ``--threads`` connections;
3. drives ``--clients`` concurrent HTTP clients at it for ``--seconds`` (stdlib ``http.client``, one
   TCP connection per request with ``Connection: close``, so gunicorn spreads the load over its
   workers), showing a progress bar and each worker's pool stats, read from the app's opt-in stats
   endpoint;
4. drives the same traffic at the same SQL through a handler that opens a new PyMySQL connection
   per request, for contrast;
5. prints a summary cross-checked against the server's own counters (``Connections`` and
   ``Questions`` from ``SHOW GLOBAL STATUS``).

Ctrl-C (or SIGTERM) at any moment stops gunicorn and the server and removes the temp dirs; if this
process is killed outright, watchdog processes do the same.

The gunicorn side imports this module too: :func:`wsgi_app` is the factory it calls in each worker.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .diagnostics import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    STATS_COLUMNS,
    DiagnosticError,
    fetch_stats,
    fmt_number,
    get_console,
    print_table,
    stats_payload,
)

__all__ = ["BuiltinApp", "example_apps_root", "run_demo", "wsgi_app"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Where the demo reads pool stats (the apps' opt-in endpoint).
STATS_PATH = "/_mysqlpool/stats"
#: Answered by the demo's own middleware in each worker, without touching the database.
PID_PATH = "/-/demo/pid"
#: The new-connection-per-request handler, mounted by the middleware next to the app.
NAIVE_PREFIX = "/-/demo/naive"
PID_HEADER = "X-Mysqlpool-Demo-Pid"

USERS = 1000
USER_PATH = "/users/{id}"


@dataclass(frozen=True)
class AppProfile:
    """What the demo must know of an app: its users table and where its stats endpoint is.

    ``GET /users/<id>`` in each example app runs ``SELECT id, name FROM <table> WHERE id=%s``;
    the new-connection-per-request handler runs the very same statement on the same table.
    """

    table: str
    stats_path: str

    @property
    def schema(self) -> str:
        # The same DDL as the example apps' own (example_apps/*/): creating it first is harmless.
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            " id INT AUTO_INCREMENT PRIMARY KEY,"
            " name VARCHAR(100) NOT NULL,"
            " email VARCHAR(190) NOT NULL UNIQUE"
            ") ENGINE=InnoDB"
        )

    @property
    def user_sql(self) -> str:
        return f"SELECT id, name FROM {self.table} WHERE id=%s"


PROFILES = {
    "builtin": AppProfile("users", STATS_PATH),
    "flask": AppProfile("users", STATS_PATH),  # STATS_PATH is set as MYSQLPOOL_STATS_ENDPOINT
    "django": AppProfile("shop_users", "/mysqlpool/stats"),  # shopsite/urls.py
}
#: The built-in app's table and query (the Flask example's too).
SCHEMA = PROFILES["builtin"].schema
USER_SQL = PROFILES["builtin"].user_sql

_ENV_URL = "MYSQLPOOL_DEMO_URL"
_ENV_APP = "MYSQLPOOL_DEMO_APP"
_ENV_POOL_SIZE = "MYSQLPOOL_DEMO_POOL_SIZE"

_PACKAGE_DIR = Path(__file__).resolve().parent
#: In a checkout the package's parent holds ``example_apps/`` and the package itself.
_REPO_ROOT = _PACKAGE_DIR.parent
#: In a wheel the example apps travel inside the package (pyproject's ``force-include``), byte for
#: byte the files of ``example_apps/``: the demo serves what the repository shows.
_SHIPPED_APPS = _PACKAGE_DIR / "_demo_apps"


def example_apps_root() -> Path | None:
    """The directory holding the ``example_apps`` package: the copy shipped in the wheel, else
    the checkout's; None when neither is there (e.g. a wheel built without them)."""
    for root in (_SHIPPED_APPS, _REPO_ROOT):
        if (root / "example_apps" / "__init__.py").is_file():
            return root
    return None


# =================================================================================================
# The gunicorn side: runs in each worker
# =================================================================================================


def wsgi_app() -> WSGIApp:
    """gunicorn's factory (``mysqlpool_ext.demo:wsgi_app()``): the chosen app plus the demo's
    middleware. Called in each worker after the fork, so each worker builds its own pool."""
    url = os.environ[_ENV_URL]
    kind = os.environ.get(_ENV_APP, "builtin")
    size = int(os.environ.get(_ENV_POOL_SIZE, "4"))
    if kind == "flask":
        inner = _flask_app(url, size)
    elif kind == "django":
        inner = _django_app(url, size)
    else:
        inner = BuiltinApp(url, size)
    return _DemoMiddleware(inner, url, PROFILES.get(kind, PROFILES["builtin"]).user_sql)


def _json_response(start_response: Callable[..., Any], status: str, payload: Any) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


class BuiltinApp:
    """A minimal WSGI app on the pool, for when Flask or the example app is not installed.

    Its stats endpoint answers like the Flask and Django ones: ``{"pid": ..., "pools": {...}}``.
    ``close()`` closes its pool (a gunicorn worker just exits; a test must not leave it open).
    """

    def __init__(self, url: str, size: int) -> None:
        from .pool import ConnectionPool

        self.pool = ConnectionPool.from_url(url, size=size, max_size=size, name="default")
        self.user_re = re.compile(r"/users/(\d+)")

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == STATS_PATH:
            payload = stats_payload({self.pool.name: self.pool})
            return _json_response(start_response, "200 OK", payload)
        match = self.user_re.fullmatch(path)
        if match is None:
            return _json_response(start_response, "404 Not Found", {"error": "not found"})
        row = self.pool.execute_query(USER_SQL, (int(match[1]),), dictcursor=True, return_one=True)
        if row is None:
            return _json_response(start_response, "404 Not Found", {"error": "no such user"})
        return _json_response(start_response, "200 OK", row)

    def close(self) -> None:
        self.pool.close()


def _flask_app(url: str, size: int) -> WSGIApp:
    # Imported by name from example_apps_root(), which the driver put on PYTHONPATH.
    create_app = importlib.import_module("example_apps.flask_app").create_app
    app: WSGIApp = create_app(
        {
            "MYSQLPOOL_URL": url,
            "MYSQLPOOL_SIZE": size,
            "MYSQLPOOL_MAX_SIZE": size,
            "MYSQLPOOL_STATS_ENDPOINT": STATS_PATH,
        }
    )
    return app


def _django_app(url: str, size: int) -> WSGIApp:
    # example_apps/django_project/shopsite/settings.py reads these.
    os.environ["MYSQLPOOL_URL"] = url
    os.environ["SHOP_POOL_SIZE"] = os.environ["SHOP_POOL_MAX_SIZE"] = str(size)
    os.environ["DJANGO_SETTINGS_MODULE"] = "example_apps.django_project.shopsite.settings"
    app: WSGIApp = importlib.import_module("django.core.wsgi").get_wsgi_application()
    return app


class _DemoMiddleware:
    """Tags every response with the worker's pid (so the demo can tell the workers' stats apart)
    and mounts the new-connection-per-request handler beside the app."""

    def __init__(self, app: WSGIApp, url: str, user_sql: str) -> None:
        from .config import build_options, parse_url

        self.app = app
        self.user_sql = user_sql
        self.pid = str(os.getpid())
        self.connect_kwargs = build_options(parse_url(url)).connect_kwargs
        self.user_re = re.compile(re.escape(NAIVE_PREFIX) + r"/users/(\d+)")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def tagged(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            return start_response(status, [*headers, (PID_HEADER, self.pid)], *exc)

        path = environ.get("PATH_INFO", "")
        if path == PID_PATH:
            return _json_response(tagged, "200 OK", {"pid": os.getpid()})
        if path.startswith(NAIVE_PREFIX):
            return self.naive(path, tagged)
        return self.app(environ, tagged)

    def naive(self, path: str, start_response: Callable[..., Any]) -> list[bytes]:
        """What many apps do without a pool: connect, query, close — on every request."""
        import pymysql
        import pymysql.cursors

        match = self.user_re.fullmatch(path)
        if match is None:
            return _json_response(start_response, "404 Not Found", {"error": "not found"})
        conn = pymysql.connect(**self.connect_kwargs, cursorclass=pymysql.cursors.DictCursor)
        try:
            with conn.cursor() as cur:
                cur.execute(self.user_sql, (int(match[1]),))
                row = cur.fetchone()
        finally:
            conn.close()
        if row is None:
            return _json_response(start_response, "404 Not Found", {"error": "no such user"})
        return _json_response(start_response, "200 OK", row)


# =================================================================================================
# The driver side
# =================================================================================================


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


class _Say:
    """Progress messages: rich-styled on a terminal, plain lines elsewhere; stderr with --json."""

    def __init__(self, console: Any, to_stderr: bool) -> None:
        self.console = console
        self.file = sys.stderr if to_stderr else sys.stdout

    def __call__(self, message: str) -> None:
        if self.console is not None:
            self.console.print(message)
        else:
            print(re.sub(r"\[/?[a-z ]+\]", "", message), file=self.file, flush=True)


# -- the database -------------------------------------------------------------------------------


class _ServerCounters:
    """The server's own view: ``SHOW GLOBAL STATUS`` through one connection opened up front."""

    def __init__(self, connect_kwargs: dict[str, Any]) -> None:
        import pymysql

        self.conn = pymysql.connect(**connect_kwargs, autocommit=True)
        #: Our own statements, so they can be told apart from the app's in ``Questions``.
        self.reads = 0

    def read(self) -> dict[str, int]:
        """Connections, Questions, Threads_connected (and ``own_reads``: SHOWs sent so far)."""
        self.reads += 1
        with self.conn.cursor() as cur:
            cur.execute(
                "SHOW GLOBAL STATUS WHERE Variable_name IN"
                " ('Connections', 'Questions', 'Threads_connected')"
            )
            values = {name.lower(): int(value) for name, value in cur.fetchall()}
        values["own_reads"] = self.reads
        return values

    def load_schema(self, profile: AppProfile) -> None:
        """The users table with ids 1..USERS (INSERT IGNORE: rows already there stay)."""
        rng = random.Random(42)
        first = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Ken", "Margaret"]
        last = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Thompson"]
        rows = [
            (i, f"{rng.choice(first)} {rng.choice(last)}", f"demo-user{i}@example.com")
            for i in range(1, USERS + 1)
        ]
        with self.conn.cursor() as cur:
            cur.execute(profile.schema)
            cur.executemany(
                f"INSERT IGNORE INTO {profile.table} (id, name, email) VALUES (%s, %s, %s)", rows
            )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


# -- gunicorn -----------------------------------------------------------------------------------

# Stops gunicorn when the demo process dies without cleaning up (SIGKILL): EOF on stdin.
_WATCHDOG = """
import os, shutil, signal, sys, time
pid, tmpdir = int(sys.argv[1]), sys.argv[2]
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.stdin.buffer.read(1) == b"":
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(tmpdir, ignore_errors=True)
"""


class _Gunicorn:
    """gunicorn serving :func:`wsgi_app` on a free loopback port, in its own session."""

    def __init__(self, tmpdir: str, url: str, app: str, workers: int, threads: int) -> None:
        self.tmpdir = tmpdir
        self.port = _free_port()
        self.workers = workers
        self.log_path = os.path.join(tmpdir, "gunicorn.log")
        env = dict(os.environ)
        roots = [example_apps_root(), _REPO_ROOT]
        paths = [
            *(str(r) for r in roots if r is not None),
            *filter(None, env.get("PYTHONPATH", "").split(os.pathsep)),
        ]
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(paths),
                _ENV_URL: url,
                _ENV_APP: app,
                _ENV_POOL_SIZE: str(threads),
            }
        )
        self.cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            "gthread",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--log-level",
            "warning",
            "--graceful-timeout",
            "5",
            "--timeout",
            "60",
            "mysqlpool_ext.demo:wsgi_app()",
        ]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        from ._server import deferred_interrupts

        # A Ctrl-C between the fork and recording the pid would orphan gunicorn: hold it back.
        with deferred_interrupts(), open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # our cleanup stops it, not the terminal's Ctrl-C
            )
            self.watchdog = subprocess.Popen(
                [sys.executable, "-I", "-c", _WATCHDOG, str(self.proc.pid), self.tmpdir],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise DiagnosticError(
                    f"gunicorn exited with code {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                status, _, _ = http_get(self.port, PID_PATH, timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DiagnosticError(
                    f"gunicorn did not answer within {timeout:g} s:\n{self.tail()}"
                )
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return "(no gunicorn log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait()
            if watchdog.stdin is not None:
                watchdog.stdin.close()


def http_get(
    port: int, path: str, timeout: float = 30.0
) -> tuple[int, bytes, http.client.HTTPMessage]:
    """One GET on a fresh TCP connection with ``Connection: close`` (no keep-alive, on purpose)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        return response.status, body, response.headers
    finally:
        conn.close()


# -- stats from the workers -----------------------------------------------------------------------


class _StatsPoller:
    """Reads the stats endpoint in a loop; keeps the latest answer of each worker (by pid)."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.path = path
        self.latest: dict[str, dict[str, dict[str, Any]]] = {}
        self.seen_at: dict[str, float] = {}
        self.errors = 0
        self.last_error = ""
        self._lock = threading.Lock()

    def poll_once(self) -> None:
        # The fetcher of `mysqlpool-ext stats`: one reader of stats endpoints for every front end.
        try:
            answered_pid, pools = fetch_stats(f"http://127.0.0.1:{self.port}{self.path}", 5)
        except DiagnosticError as exc:
            with self._lock:
                self.errors += 1
                self.last_error = str(exc)
            return
        pid = str(answered_pid if answered_pid is not None else "?")
        with self._lock:
            self.latest[pid] = pools
            self.seen_at[pid] = time.monotonic()

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self._lock:
            return {pid: dict(pools) for pid, pools in self.latest.items()}

    def fresh_from_all(self, workers: int, since: float, timeout: float = 5.0) -> bool:
        """Poll until ``workers`` distinct workers have answered after ``since``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                fresh = sum(1 for t in self.seen_at.values() if t >= since)
            if fresh >= workers:
                return True
            if time.monotonic() > deadline:
                return False
            self.poll_once()

    def wait_warm(self, workers: int, timeout: float = 10.0) -> bool:
        """Wait until every worker answered and each pool built so far holds ``size``
        connections (Flask's pools fill in the background; Django's are built at first use)."""
        deadline = time.monotonic() + timeout
        while True:
            since = time.monotonic()
            if not self.fresh_from_all(workers, since, max(0.0, deadline - since)):
                return False
            warm = all(
                stats.get("pool_size", 0) >= stats.get("pool_min", 0)
                for pools in self.snapshot().values()
                for stats in pools.values()
            )
            if warm:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        while not stop.is_set():
            self.poll_once()
            stop.wait(interval)


# -- the load -----------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    """What one run of traffic produced, from the client's side and the server's."""

    name: str
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_before: dict[str, int] = field(default_factory=dict)
    server_after: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return _percentile(self.latencies, q) * 1000

    def server_delta(self, key: str) -> int:
        return self.server_after.get(key, 0) - self.server_before.get(key, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_ok": self.ok,
            "errors": self.errors,
            "error_samples": self.error_samples[:5],
            "seconds": round(self.elapsed, 3),
            "requests_per_second": round(self.rps, 1),
            "p50_ms": round(self.percentile_ms(0.50), 2),
            "p99_ms": round(self.percentile_ms(0.99), 2),
            "server_connections": self.server_delta("connections"),
            # Questions counts our own SHOW GLOBAL STATUS reads too: take them out.
            "server_questions": self.server_delta("questions") - self.server_delta("own_reads"),
        }


class _Load:
    """``clients`` threads, each sending GETs one after another until the deadline."""

    def __init__(self, port: int, path_for: Callable[[int], str], clients: int) -> None:
        self.port = port
        self.path_for = path_for
        self.clients = clients
        self.stop = threading.Event()
        self.ok = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self._lock = threading.Lock()
        self._latencies: list[list[float]] = []
        self._threads: list[threading.Thread] = []
        self.started = 0.0
        self.finished = 0.0

    def start(self, seconds: float) -> None:
        self.started = time.monotonic()
        deadline = self.started + seconds
        for i in range(self.clients):
            samples: list[float] = []
            self._latencies.append(samples)
            thread = threading.Thread(
                target=self._client, args=(i, deadline, samples), daemon=True, name=f"client-{i}"
            )
            thread.start()
            # Only started threads: a Ctrl-C inside start() leaves none join() cannot wait on.
            self._threads.append(thread)

    def _client(self, seed: int, deadline: float, samples: list[float]) -> None:
        rng = random.Random(seed)
        clock = time.perf_counter
        ok = errors = 0
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                path = self.path_for(rng.randint(1, USERS))
                began = clock()
                try:
                    status, body, _ = http_get(self.port, path)
                except (OSError, http.client.HTTPException) as exc:
                    errors += 1
                    self._note_error(f"{type(exc).__name__}: {exc}")
                    continue
                if status == 200:
                    samples.append(clock() - began)
                    ok += 1
                else:
                    errors += 1
                    self._note_error(f"HTTP {status}: {body[:200]!r}")
                self._flush(ok, errors)
                ok = errors = 0
        finally:
            self._flush(ok, errors)

    def _note_error(self, text: str) -> None:
        with self._lock:
            if len(self.error_samples) < 20:
                self.error_samples.append(text)

    def _flush(self, ok: int, errors: int) -> None:
        with self._lock:
            self.ok += ok
            self.errors += errors

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.ok, self.errors

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def join(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.finished = time.monotonic()

    def latencies(self) -> list[float]:
        merged = [x for samples in self._latencies for x in samples]
        merged.sort()
        return merged


# -- live view ----------------------------------------------------------------------------------


def _stats_rows(snapshot: dict[str, dict[str, dict[str, Any]]]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for pid in sorted(snapshot):
        for name, stats in sorted(snapshot[pid].items()):
            label = f"worker {pid}" + (f" / {name}" if name != "default" else "")
            # A lazy pool not built yet (Django builds them at first use) has no numbers: "-".
            rows.append([label, *(stats.get(key, "-") for key, _ in STATS_COLUMNS)])
    return rows


_STATS_HEADER = ["pool", *(title for _, title in STATS_COLUMNS)]


class _LiveView:
    """A progress bar plus the per-worker pool table (rich), or a plain line a second."""

    def __init__(self, console: Any, title: str, seconds: float, plain_file: Any) -> None:
        self.console = console
        self.title = title
        self.seconds = seconds
        self.plain_file = plain_file
        self.live: Any = None
        self.progress: Any = None
        self.task: Any = None
        self._last_plain = 0.0

    def __enter__(self) -> _LiveView:
        if self.console is not None and self.console.is_terminal:
            from rich.live import Live
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.progress.add_task(self.title, total=self.seconds, detail="")
            # Refreshed by update() only: no extra thread competing with the load for the GIL.
            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def update(
        self, elapsed: float, ok: int, errors: int, server: dict[str, int], rows: list[list[Any]]
    ) -> None:
        rate = ok / elapsed if elapsed > 0 else 0.0
        detail = (
            f"{ok:,} requests  {rate:,.0f} req/s  {errors} errors  "
            f"{server.get('connections', 0):,} server connections opened"
        )
        if self.live is not None:
            from rich.console import Group
            from rich.table import Table

            self.progress.update(self.task, completed=min(elapsed, self.seconds), detail=detail)
            parts: list[Any] = [self.progress]
            if rows:
                table = Table(header_style="bold", title_justify="left")
                for i, name in enumerate(_STATS_HEADER):
                    table.add_column(name, justify="left" if i == 0 else "right")
                for row in rows:
                    table.add_row(*(fmt_number(c) for c in row))
                parts.append(table)
            self.live.update(Group(*parts), refresh=True)
            return
        now = time.monotonic()
        if now - self._last_plain < 1.0:
            return
        self._last_plain = now
        pools = "; ".join(
            f"{row[0]}: in use {row[1]}, idle {row[2]}, waiting {row[3]}, opened {row[5]}"
            for row in rows
        )
        line = f"  {elapsed:4.1f}/{self.seconds:g} s  {detail}"
        print(line + (f"  | {pools}" if pools else ""), file=self.plain_file, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)


# -- the demo itself ----------------------------------------------------------------------------


def _choose_app(requested: str | None, say: _Say) -> str:
    """The app to serve. An explicit ``--app`` that cannot be served is an error (the user asked
    for it); without ``--app`` the Flask example when it can be served, else the built-in app."""
    if requested == "builtin":
        return "builtin"
    candidates = [requested] if requested else ["flask"]
    for app in candidates:
        framework = "flask" if app == "flask" else "django"
        extra = "demo" if app == "flask" else "demo,django"
        if importlib.util.find_spec(framework) is None:
            problem = (
                f'{framework.capitalize()} is not installed: pip install "mysqlpool_ext[{extra}]"'
            )
        elif example_apps_root() is None:
            problem = "the example apps are not part of this installation"
        else:
            return app
        if requested:
            raise DiagnosticError(f"cannot serve --app {requested}: {problem}", EXIT_USAGE)
        say(f"[yellow]{problem}; serving the built-in minimal WSGI app (--app builtin)[/yellow]")
    return "builtin"


def _drive(
    name: str,
    port: int,
    path_for: Callable[[int], str],
    args: argparse.Namespace,
    counters: _ServerCounters,
    console: Any,
    plain_file: Any,
    poller: _StatsPoller | None,
) -> PhaseResult:
    """Run one phase of traffic with the live view; return its result."""
    result = PhaseResult(name)
    result.server_before = counters.read()
    load = _Load(port, path_for, args.clients)
    stop_polling = threading.Event()
    poll_thread = None
    if poller is not None:
        poll_thread = threading.Thread(target=poller.run, args=(stop_polling,), daemon=True)
        poll_thread.start()
    try:
        with _LiveView(console, name, args.seconds, plain_file) as view:
            load.start(args.seconds)
            while load.alive():
                time.sleep(0.25)
                ok, errors = load.counts()
                server = counters.read()
                delta = {k: v - result.server_before.get(k, 0) for k, v in server.items()}
                rows = _stats_rows(poller.snapshot()) if poller is not None else []
                view.update(time.monotonic() - load.started, ok, errors, delta, rows)
    finally:
        load.stop.set()
        stop_polling.set()
        load.join()
        if poll_thread is not None:
            poll_thread.join(10)
    result.server_after = counters.read()
    result.ok, result.errors = load.counts()
    result.error_samples = list(load.error_samples)
    result.elapsed = load.finished - load.started
    result.latencies = load.latencies()
    return result


def _sum_stats(snapshot: dict[str, dict[str, dict[str, Any]]], key: str) -> int:
    return sum(int(stats.get(key, 0)) for pools in snapshot.values() for stats in pools.values())


def run_demo(args: argparse.Namespace) -> int:
    """The ``demo`` command (see the module docstring). Returns the exit code."""
    if args.quick:
        args.seconds = min(args.seconds, 2.0)
        args.clients = min(args.clients, 16)
    if args.seconds <= 0 or args.clients < 1 or args.workers < 1 or args.threads < 1:
        raise DiagnosticError(
            "--seconds, --clients, --workers and --threads must be positive", EXIT_USAGE
        )
    if importlib.util.find_spec("gunicorn") is None:
        raise DiagnosticError(
            'the demo serves its app with gunicorn: pip install "mysqlpool_ext[demo]"'
        )
    console = get_console(args.plain, stderr=args.json)
    plain_file = sys.stderr if args.json else sys.stdout
    say = _Say(console, args.json)

    previous_term = None
    if threading.current_thread() is threading.main_thread():
        previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    tmpdir = tempfile.mkdtemp(prefix="mysqlpool-demo-")
    server: Any = None
    gunicorn: _Gunicorn | None = None
    counters: _ServerCounters | None = None
    try:
        app = _choose_app(args.app, say)
        url, server = _database(args, say)
        from .config import build_options, parse_url, redact_url

        connect_kwargs = build_options(parse_url(url)).connect_kwargs
        try:
            counters = _ServerCounters(connect_kwargs)
        except Exception as exc:  # noqa: BLE001 - one clear line, whatever PyMySQL raised
            raise DiagnosticError(
                f"cannot connect to {redact_url(url)}: {exc}", EXIT_UNREACHABLE
            ) from None
        profile = PROFILES[app]
        counters.load_schema(profile)
        say(f"loaded the schema: table {profile.table}, ids 1..{USERS}")
        baseline = counters.read()

        say(
            f"starting gunicorn: {args.workers} workers x {args.threads} threads, app={app}, "
            f"a pool of {args.threads} connections per worker"
        )
        gunicorn = _Gunicorn(tmpdir, url, app, args.workers, args.threads)
        gunicorn.start()
        say(f"serving on http://127.0.0.1:{gunicorn.port}  (stats: {profile.stats_path})")

        poller = _StatsPoller(gunicorn.port, profile.stats_path)
        poller.wait_warm(args.workers)
        before = poller.snapshot()

        say(
            f"\n[bold]1. pooled[/bold]: {args.clients} clients x {args.seconds:g} s "
            f"-> GET {USER_PATH} (one SELECT through the pool)"
        )
        pooled = _drive(
            "pool",
            gunicorn.port,
            lambda i: USER_PATH.format(id=i),
            args,
            counters,
            console,
            plain_file,
            poller,
        )
        after_at = time.monotonic()
        all_fresh = poller.fresh_from_all(args.workers, after_at, timeout=10)
        after = poller.snapshot()
        server_since_start = {k: v - baseline.get(k, 0) for k, v in pooled.server_after.items()}

        naive: PhaseResult | None = None
        if not args.no_contrast:
            say(
                f"\n[bold]2. new connection per request[/bold]: the same traffic and SQL, "
                "pymysql.connect() + close() in every request, in a plain WSGI handler beside "
                f"the app (no framework cost) -> GET {NAIVE_PREFIX}{USER_PATH}"
            )
            naive = _drive(
                "new conn/request",
                gunicorn.port,
                lambda i: NAIVE_PREFIX + USER_PATH.format(id=i),
                args,
                counters,
                console,
                plain_file,
                None,
            )

        summary = _summary(
            args, app, pooled, naive, before, after, all_fresh, server_since_start, redact_url(url)
        )
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            _print_summary(console, summary)
        failed = pooled.errors or (naive is not None and naive.errors)
        return EXIT_FAILURE if failed else 0
    except KeyboardInterrupt:
        say("\n[bold]interrupted[/bold]: stopping gunicorn and the server, removing temp files")
        return EXIT_INTERRUPTED
    finally:
        # A second Ctrl-C must not cut the cleanup short (the watchdogs would still finish it).
        old_int = None
        if threading.current_thread() is threading.main_thread():
            old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if gunicorn is not None:
                gunicorn.stop()
            if counters is not None:
                counters.close()
            if server is not None:
                server.cleanup()
            shutil.rmtree(tmpdir, ignore_errors=True)
        finally:
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)
            if previous_term is not None:
                signal.signal(signal.SIGTERM, previous_term)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _database(args: argparse.Namespace, say: _Say) -> tuple[str, Any]:
    """The server's URL and, when we started it, the ThrowawayServer to clean up."""
    url = args.url or os.environ.get("MYSQLPOOL_URL")
    if url:
        from .config import redact_url

        say(f"using the server at {redact_url(url)}")
        return url, None
    import secrets

    from ._server import ThrowawayServer, find_server_binary

    binary = find_server_binary()
    if binary is None:
        raise DiagnosticError(
            "no mariadbd/mysqld binary found to start a throwaway server: install MariaDB "
            "(e.g. apt-get install mariadb-server) or pass --url "
            "mysql://user:password@host:port/database",
            EXIT_UNREACHABLE,
        )
    server = ThrowawayServer(
        user="demo", password=secrets.token_urlsafe(16), database="mysqlpool_demo"
    )
    say(f"starting a throwaway MariaDB ({binary}) in {server.tmpdir} ...")
    try:
        server.start()
    except BaseException:
        server.cleanup()
        raise
    say(f"server ready on 127.0.0.1:{server.port} in {server.start_seconds:.1f} s")
    return server.url, server


def _summary(
    args: argparse.Namespace,
    app: str,
    pooled: PhaseResult,
    naive: PhaseResult | None,
    before: dict[str, dict[str, dict[str, Any]]],
    after: dict[str, dict[str, dict[str, Any]]],
    all_fresh: bool,
    server_since_start: dict[str, int],
    url: str,
) -> dict[str, Any]:
    pool_part = pooled.as_dict()
    pool_part.update(
        {
            # Totals since each worker's pool was created: every connection the pools ever opened
            # and every borrow; the server's counters over the same span should agree.
            "pool_connections_opened": _sum_stats(after, "connections_num"),
            "server_connections_since_gunicorn_start": server_since_start.get("connections", 0),
            "app_borrows": _sum_stats(after, "requests_num") - _sum_stats(before, "requests_num"),
            "pool_timeouts": _sum_stats(after, "requests_errors"),
            "workers_reporting": len(after),
            "stats_complete": all_fresh,
            "pool_stats": after,
        }
    )
    summary: dict[str, Any] = {
        "server": url,
        "app": app,
        "clients": args.clients,
        "seconds": args.seconds,
        "workers": args.workers,
        "threads": args.threads,
        "pool": pool_part,
    }
    if naive is not None:
        summary["new_connection_per_request"] = naive.as_dict()
        if naive.rps > 0:
            summary["speedup"] = round(pooled.rps / naive.rps, 1)
    return summary


def _print_summary(console: Any, summary: dict[str, Any]) -> None:
    pool = summary["pool"]
    naive = summary.get("new_connection_per_request")
    columns = ["", "pool (mysqlpool_ext)"] + (["new connection per request"] if naive else [])

    def row(label: str, key: str, fmt: Callable[[Any], str] = fmt_number) -> list[Any]:
        cells = [label, fmt(pool[key])]
        if naive:
            cells.append(fmt(naive[key]))
        return cells

    per_request = [
        "server connections per request",
        f"{pool['server_connections'] / max(pool['requests_ok'], 1):.4f}",
    ]
    if naive:
        per_request.append(f"{naive['server_connections'] / max(naive['requests_ok'], 1):.2f}")
    rows = [
        row("requests served", "requests_ok"),
        row("errors", "errors"),
        row("requests/s", "requests_per_second", lambda v: f"{v:,.0f}"),
        row("latency p50 (ms)", "p50_ms", lambda v: f"{v:,.1f}"),
        row("latency p99 (ms)", "p99_ms", lambda v: f"{v:,.1f}"),
        row("server: new connections", "server_connections"),
        row("server: queries", "server_questions"),
        per_request,
    ]
    title = (
        f"summary: {summary['clients']} clients x {summary['seconds']:g} s, gunicorn "
        f"{summary['workers']} workers x {summary['threads']} threads, app={summary['app']}"
    )
    print_table(console, title, columns, rows)
    lines = [
        f"cross-check: the clients got {pool['requests_ok']:,} OK responses; the app's pools lent "
        f"{pool['app_borrows']:,} connections ({pool['workers_reporting']} workers reporting); "
        f"the pools opened {pool['pool_connections_opened']:,} connections in all and the server "
        f"counted {pool['server_connections_since_gunicorn_start']:,} new connections since "
        "gunicorn started.",
    ]
    if naive and naive["requests_per_second"] > 0:
        lines.append(
            f"the pool served {summary['speedup']:g}x the requests per second of a new "
            f"connection per request: {pool['server_connections']:,} new server connections "
            f"during {pool['requests_ok']:,} requests, against {naive['server_connections']:,} "
            f"for {naive['requests_ok']:,}."
        )
    for errors in (pool["error_samples"], (naive or {}).get("error_samples", [])):
        for sample in errors[:3]:
            lines.append(f"error sample: {sample}")
    for line in lines:
        if console is not None:
            console.print(line)
        else:
            print(textwrap.fill(line, width=100, subsequent_indent="  "))
