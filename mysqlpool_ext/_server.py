"""A throwaway MariaDB/MySQL server for tests and the demo.

The server lives in a private temp dir, listens on a free loopback port only, and is started from
the local ``mariadbd``/``mysqld`` binary, so the demo and the test-suite see the same thing.

Why not pytest-mysql 5.0.1: its executor needs pytest, mirakuru and packaging, starts through
``mysqld_safe``/``mysqladmin`` and requires Python >= 3.11, while the demo must run without pytest
on Python 3.10, so this small stdlib launcher (PyMySQL, our one dependency, is used only to create
the test account) is simpler and sturdier.

Usage::

    with ThrowawayServer() as server:
        conn = pymysql.connect(**server.connect_kwargs())
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

__all__ = ["DEFAULT_PASSWORD", "ThrowawayServer", "find_server_binary"]

logger = logging.getLogger("mysqlpool_ext.server")

#: Distinctive on purpose: the test-suite fails if it ever shows up in a log line or an error.
DEFAULT_PASSWORD = "Pw-7f3kQ9-sEcRet"

_SEARCH_DIRS = ("/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/mysql/bin")
_SERVER_NAMES = ("mariadbd", "mysqld")
_LOG_TAIL_LINES = 40
_BIND_ERRORS = ("Address already in use", "Can't start server: Bind on TCP/IP port")


def find_server_binary() -> str | None:
    """Return the path of a ``mariadbd`` or ``mysqld`` binary, or None when there is none."""
    for name in _SERVER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    for directory in _SEARCH_DIRS:
        for name in _SERVER_NAMES:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return None


# Runs in its own process and waits for EOF on stdin, which comes when our process ends in any way
# (even SIGKILL): then it stops the server and removes the temp dir, so nothing is left behind.
_WATCHDOG = """
import os, shutil, signal, sys, time
pid, tmpdir = int(sys.argv[1]), sys.argv[2]
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.stdin.buffer.read(1) == b"":
    def alive():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 30
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive():
        os.kill(pid, signal.SIGKILL)
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _find_tool(names: Sequence[str], near: str) -> str | None:
    """Find a helper program on PATH or next to the server binary (``bin/`` beside ``sbin/``)."""
    here = Path(near).resolve().parent
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for directory in (here, here.parent / "bin", here.parent / "scripts"):
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back for a few lines: a KeyboardInterrupt between starting a child
    and recording its pid would orphan it. Raised after the block if one came. (Signals are not
    blocked: children would inherit the mask and ignore SIGTERM.) Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        caught.append(signum)

    old_int = signal.signal(signal.SIGINT, hold)
    old_term = signal.signal(signal.SIGTERM, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    if caught:
        raise KeyboardInterrupt


def _kill_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGKILL a process started with ``start_new_session`` and all of its group; wait for them."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)  # raises once no process of the group is left
        except ProcessLookupError:
            return
        time.sleep(0.02)


def _server_greets(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when the server accepts a TCP connection and sends its protocol-10 handshake.

    Needs no credentials, so polling it never logs a failed login on the server.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            header = sock.recv(5)
    except OSError:
        return False
    # 3-byte length, 1-byte sequence id, then the protocol version (10); 0xFF would be an error.
    return len(header) == 5 and header[4] == 10


class ThrowawayServer:
    """A private MariaDB/MySQL server in a temp dir on a free 127.0.0.1 port.

    ``start()`` initialises the data dir (first time only), starts the server, waits for it and
    creates ``database`` and the account ``user``/``password`` (at ``127.0.0.1`` and ``localhost``).
    ``stop()`` keeps the data dir, so ``restart()`` comes back with the same port and data.
    ``cleanup()`` (also run by ``__exit__`` and at interpreter exit) stops the server and removes
    the temp dir.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        port: int | None = None,
        datadir: str | None = None,
        server_args: Sequence[str] = (),
        user: str = "pooltest",
        password: str = DEFAULT_PASSWORD,
        database: str = "mysqlpool_test",
        binary: str | None = None,
    ) -> None:
        self.user = user
        self.password = password
        self.database = database
        self.root_password = secrets.token_urlsafe(18)
        self._auto_port = port is None
        self.port = _free_port() if port is None else port
        self.server_args: tuple[str, ...] = tuple(server_args)
        self._binary = binary
        self._tmp: str | None = tempfile.mkdtemp(prefix="mysqlpool-")
        self.tmpdir = self._tmp
        self.datadir = datadir if datadir is not None else os.path.join(self._tmp, "data")
        self.socket_path = os.path.join(self._tmp, "sock")
        self.log_path = os.path.join(self._tmp, "server.log")
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._root_has_password = False
        self._is_mariadb = True
        self._log_offset = 0
        #: Seconds the last ``start()`` took (data-dir init included), and the init alone.
        self.start_seconds: float | None = None
        self.init_seconds: float | None = None
        atexit.register(self.cleanup)

    # -- what clients need ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        user = quote(self.user, safe="")
        password = quote(self.password, safe="")
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
        return {
            "host": self.host,
            "port": self.port,
            "user": "root",
            "password": self.root_password,
            "database": self.database,
        }

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ThrowawayServer {self.host}:{self.port} {state} datadir={self.datadir!r}>"

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> ThrowawayServer:
        try:
            self.start()
        except BaseException:  # Ctrl-C during start must not leave a server behind
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def start(self, timeout: float = 30) -> None:
        """Start the server and wait until it serves the test account; raise RuntimeError if not."""
        if self._tmp is None:
            raise RuntimeError("this ThrowawayServer was cleaned up; create a new one")
        if self.running:
            return
        began = time.monotonic()
        binary = self._binary or find_server_binary()
        if binary is None:
            raise RuntimeError("no mariadbd or mysqld binary found on PATH or in /usr/sbin")
        self._binary = binary
        self._is_mariadb = self._detect_mariadb(binary)
        if not self._datadir_initialised():
            init_began = time.monotonic()
            self._initialise(binary, timeout)
            self.init_seconds = time.monotonic() - init_began
        attempts = 3 if self._auto_port and not self._root_has_password else 1
        for attempt in range(attempts):
            self._launch(binary)
            try:
                self._wait_ready(began + timeout)
                break
            except _BindError:
                self._terminate(signal.SIGKILL)
                if attempt == attempts - 1:
                    raise RuntimeError(self._failure(f"port {self.port} is taken")) from None
                self.port = _free_port()
        self._setup_accounts()
        self.start_seconds = time.monotonic() - began
        logger.info(
            "throwaway server ready on %s:%d in %.2fs (pid %s)",
            self.host,
            self.port,
            self.start_seconds,
            self.pid,
        )

    def stop(self) -> None:
        """Shut the server down (SIGTERM, then SIGKILL after 30 s); the data dir stays."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; ``restart()`` recovers from it."""
        self._terminate(signal.SIGKILL)

    def restart(self, *, server_args: Sequence[str] | None = None, timeout: float = 30) -> None:
        """Stop and start again on the same port and data dir (no re-initialisation)."""
        self.stop()
        if server_args is not None:
            self.server_args = tuple(server_args)
        self.start(timeout=timeout)

    def cleanup(self) -> None:
        """Stop the server and remove the temp dir. Idempotent; also runs at interpreter exit."""
        try:
            self.stop()
        finally:
            atexit.unregister(self.cleanup)
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _detect_mariadb(binary: str) -> bool:
        if "mariadb" in os.path.basename(binary):
            return True
        try:
            out = subprocess.run(
                [binary, "--version"],
                capture_output=True,
                text=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
                check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return True
        return "mariadb" in out.lower()

    def _datadir_initialised(self) -> bool:
        return os.path.isdir(os.path.join(self.datadir, "mysql"))

    def _initialise(self, binary: str, timeout: float) -> None:
        try:
            self._initialise_once(binary, timeout)
        except RuntimeError:
            # Seen once in many runs on a loaded machine: mariadb-install-db's bootstrap failed
            # without a clear cause. A second try on a fresh data dir is cheap (~0.5 s).
            logger.warning("data dir initialisation failed; retrying once on a fresh data dir")
            shutil.rmtree(self.datadir, ignore_errors=True)
            self._initialise_once(binary, timeout)

    def _initialise_once(self, binary: str, timeout: float) -> None:
        os.makedirs(self.datadir, exist_ok=True)
        if self._is_mariadb:
            tool = _find_tool(("mariadb-install-db", "mysql_install_db"), binary)
            if tool is None:
                raise RuntimeError("mariadb-install-db not found next to " + binary)
            cmd = [
                tool,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                f"--user={getpass.getuser()}",
                "--skip-test-db",
            ]
        else:
            cmd = [
                binary,
                "--no-defaults",
                "--initialize-insecure",
                f"--datadir={self.datadir}",
                f"--user={getpass.getuser()}",
            ]
        with open(self.log_path, "ab") as log:
            log.write(f"\n== init: {' '.join(cmd)}\n".encode())
            log.flush()
            # Own process group: mariadb-install-db is a script whose bootstrap mariadbd would
            # outlive it (and keep writing into the data dir after cleanup removed it) if only
            # the script were killed, e.g. on Ctrl-C.
            proc: subprocess.Popen[bytes] | None = None
            try:
                with deferred_interrupts():
                    proc = subprocess.Popen(
                        cmd,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                returncode = proc.wait(timeout=max(timeout, 60))
            except BaseException as exc:
                if proc is not None:
                    _kill_group(proc)
                if isinstance(exc, subprocess.TimeoutExpired):
                    raise RuntimeError(self._failure("data dir initialisation timed out")) from None
                raise
        if returncode != 0:
            raise RuntimeError(self._failure(f"data dir initialisation exited {returncode}"))

    def _server_command(self, binary: str) -> list[str]:
        cmd = [
            binary,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket_path}",
            f"--pid-file={os.path.join(self.tmpdir, 'server.pid')}",
            f"--tmpdir={self.tmpdir}",
            f"--log-error={self.log_path}",
            f"--user={getpass.getuser()}",
            "--skip-log-bin",
        ]
        if not self._is_mariadb:
            cmd.append("--mysqlx=OFF")  # its second port (33060) would clash between servers
        cmd.extend(self.server_args)
        return cmd

    def _launch(self, binary: str) -> None:
        cmd = self._server_command(binary)
        with open(self.log_path, "ab") as log:
            log.write(f"\n== start: {' '.join(cmd)}\n".encode())
            log.flush()
            # Own session: a Ctrl-C in the terminal reaches Python, whose cleanup stops the server.
            with deferred_interrupts():
                self._proc = subprocess.Popen(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                self._start_watchdog(self._proc.pid)
        self._log_offset = os.path.getsize(self.log_path)

    def _start_watchdog(self, pid: int) -> None:
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-I", "-c", _WATCHDOG, str(pid), self._tmp or ""],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:  # e.g. no usable sys.executable when embedded
            logger.warning("no watchdog for the throwaway server (%s); atexit cleanup only", exc)
            self._watchdog = None

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.kill()  # dismissed: we stop the server ourselves
            watchdog.wait()
            if watchdog.stdin is not None:
                watchdog.stdin.close()

    def _wait_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        delay = 0.02
        while True:
            if _server_greets(self.host, self.port):
                return
            code = proc.poll()
            if code is not None:
                if any(marker in self._new_log() for marker in _BIND_ERRORS):
                    raise _BindError
                raise RuntimeError(self._failure(f"server exited with code {code}"))
            if any(marker in self._new_log() for marker in _BIND_ERRORS):
                raise _BindError
            if time.monotonic() >= deadline:
                self._terminate(signal.SIGKILL)
                raise RuntimeError(self._failure("server not ready in time"))
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _setup_accounts(self) -> None:
        """Create the database and test account as root, and give root a password."""
        import pymysql  # the package's own dependency; imported late to keep this module light

        root_pw = self.root_password if self._root_has_password else ""
        conn = pymysql.connect(
            unix_socket=self.socket_path, user="root", password=root_pw, autocommit=True
        )
        try:
            with conn.cursor() as cur:
                db = self.database.replace("`", "``")
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
                for host in ("127.0.0.1", "localhost"):
                    cur.execute("CREATE USER IF NOT EXISTS %s@%s", (self.user, host))
                    cur.execute(
                        "ALTER USER %s@%s IDENTIFIED BY %s", (self.user, host, self.password)
                    )
                    # Everything, so tests can KILL, read the process list and create databases
                    # (Django's test runner makes its own test_<name> database).
                    cur.execute(
                        "GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (self.user, host)
                    )
                    if not self._root_has_password:
                        cur.execute("CREATE USER IF NOT EXISTS 'root'@%s", (host,))
                        cur.execute(
                            "GRANT ALL PRIVILEGES ON *.* TO 'root'@%s WITH GRANT OPTION", (host,)
                        )
                        cur.execute(
                            "ALTER USER 'root'@%s IDENTIFIED BY %s", (host, self.root_password)
                        )
                cur.execute("FLUSH PRIVILEGES")
        finally:
            conn.close()
        self._root_has_password = True

    def _terminate(self, sig: signal.Signals) -> None:
        self._stop_watchdog()
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                logger.warning("throwaway server pid %d ignored %s; killing it", proc.pid, sig.name)
                proc.kill()
                proc.wait()
        self._proc = None
        with contextlib.suppress(OSError):  # a SIGKILLed server leaves these behind
            os.unlink(self.socket_path)

    def _new_log(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _failure(self, what: str) -> str:
        """Describe a failed start with the tail of the server log, scrubbed of our passwords."""
        try:
            with open(self.log_path, "rb") as log:
                lines = log.read().decode("utf-8", "replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError:
            lines = ["(no server log)"]
        tail = "\n".join(lines)
        for secret in (self.password, self.root_password):
            if secret:
                tail = tail.replace(secret, "***")
        return (
            f"throwaway MySQL server on {self.host}:{self.port} failed: {what}\n"
            f"--- last lines of {self.log_path} ---\n{tail}"
        )


class _BindError(Exception):
    """The chosen port was taken between picking it and the server binding it."""
