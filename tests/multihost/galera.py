"""A 3-node Galera cluster on loopback, for the host-list tests.

Each node is a ``mariadbd`` with the Galera library (``galera-4``, installed with Debian's
``mariadb-server``), its own data dir, client port, group-communication port, IST and SST ports.
The first node bootstraps the cluster (``--wsrep-new-cluster``); the other two join it and get
their data by rsync SST.

Learned the hard way: with ``mariadbd --user=root`` the joiner's SST fails (the rsync daemon
that ``wsrep_sst_rsync`` starts drops to ``nobody`` and cannot write the root-owned data dir:
"cannot stat destination ... Permission denied"). Run as root, the nodes therefore run as
``nobody``, with data dirs it owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any

import pymysql

PROVIDER_PATHS = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/libgalera_smm.so")


def provider() -> str | None:
    found = next((p for p in PROVIDER_PATHS if os.path.exists(p)), None)
    if found is None or shutil.which("rsync") is None or shutil.which("wsrep_sst_rsync") is None:
        return None
    if shutil.which("mariadbd") is None or shutil.which("mariadb-install-db") is None:
        return None
    return found


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class GaleraCluster:
    """Three nodes; ``ports[i]`` is node i's client port. Root has no password (socket only)."""

    host = "127.0.0.1"

    def __init__(self, size: int = 3) -> None:
        lib = provider()
        assert lib is not None
        self.lib = lib
        self.size = size
        self.tmp = tempfile.mkdtemp(prefix="mysqlpool-galera-")
        os.chmod(self.tmp, 0o755)
        ports = _free_ports(4 * size)
        self.ports = ports[0::4]
        self.gcomm = ports[1::4]
        self.ist = ports[2::4]
        self.sst = ports[3::4]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size
        self.run_as = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def dir(self, i: int) -> str:
        return os.path.join(self.tmp, f"n{i}")

    def socket_path(self, i: int) -> str:
        return os.path.join(self.dir(i), "sock")

    def _init(self, i: int) -> None:
        d = self.dir(i)
        os.makedirs(d)
        if os.geteuid() == 0:
            shutil.chown(d, self.run_as)
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={d}/data",
                "--auth-root-authentication-method=normal",
                f"--user={self.run_as}",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def _launch(self, i: int, bootstrap: bool) -> None:
        d = self.dir(i)
        members = ",".join(f"127.0.0.1:{p}" for p in self.gcomm)
        cmd = [
            "mariadbd",
            "--no-defaults",
            f"--datadir={d}/data",
            f"--port={self.ports[i]}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket_path(i)}",
            f"--pid-file={d}/pid",
            f"--log-error={d}/err.log",
            f"--tmpdir={d}",
            f"--user={self.run_as}",
            "--binlog-format=ROW",
            "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2",
            "--innodb-buffer-pool-size=32M",
            "--wsrep-on=ON",
            f"--wsrep-provider={self.lib}",
            "--wsrep-cluster-name=mysqlpool-test",
            f"--wsrep-node-name=n{i}",
            "--wsrep-node-address=127.0.0.1",
            f"--wsrep-cluster-address=gcomm://{members}",
            "--wsrep-provider-options="
            f"gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm[i]};"
            f"ist.recv_addr=127.0.0.1:{self.ist[i]};gcache.size=16M",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst[i]}",
            "--wsrep-sst-method=rsync",
        ]
        if bootstrap:
            cmd.append("--wsrep-new-cluster")
        self.procs[i] = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def root(self, i: int) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=self.socket_path(i), user="root", autocommit=True)

    def sql(self, i: int, statement: str, args: Any = None) -> Any:
        conn = self.root(i)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, args)
                return cur.fetchall()
        finally:
            conn.close()

    def state(self, i: int) -> dict[str, str]:
        try:
            rows = self.sql(
                i,
                "SHOW GLOBAL STATUS WHERE Variable_name IN "
                "('wsrep_cluster_size', 'wsrep_local_state', 'wsrep_ready')",
            )
        except pymysql.MySQLError:
            return {}
        return {str(k): str(v) for k, v in rows}

    def _wait_synced(self, i: int, cluster_size: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state(i)
            if st.get("wsrep_local_state") == "4" and int(st.get("wsrep_cluster_size", 0)) >= (
                cluster_size
            ):
                return
            proc = self.procs[i]
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"galera node {i} exited: {self.log_tail(i)}")
            time.sleep(0.1)
        raise RuntimeError(f"galera node {i} not synced in {timeout} s: {self.log_tail(i)}")

    def log_tail(self, i: int) -> str:
        try:
            with open(os.path.join(self.dir(i), "err.log"), errors="replace") as f:
                return "".join(f.readlines()[-15:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 90) -> None:
        failed: list[int] = []

        def init(i: int) -> None:
            try:
                self._init(i)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
                failed.append(i)

        inits = [threading.Thread(target=init, args=(i,)) for i in range(self.size)]
        for t in inits:
            t.start()
        for t in inits:
            t.join()
        for i in failed:  # three at once on 2 cores sometimes fail: once more, alone (or raise)
            shutil.rmtree(self.dir(i), ignore_errors=True)
            self._init(i)
        self._launch(0, bootstrap=True)
        self._wait_synced(0, 1, timeout)
        for i in range(1, self.size):
            self._launch(i, bootstrap=False)
        for i in range(1, self.size):
            self._wait_synced(i, self.size, timeout)

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def cleanup(self) -> None:
        for i in range(self.size):
            self.kill(i)
        shutil.rmtree(self.tmp, ignore_errors=True)
