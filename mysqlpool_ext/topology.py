"""Several servers behind one pool: which host to connect to, and what each host is right now.

A pool built with ``hosts=[...]`` (or a URL listing ``h1:3306,h2:3307``) lends connections only to
servers that fit its ``target``: ``"primary"`` (writable), ``"replica"`` (read-only),
``"prefer-replica"`` (replicas, the primary while none is up) or ``"any"``. Nobody tells the pool
which server is which, and the answer changes (a switchover, a crash, a Galera node that leaves
the cluster), so it asks the servers themselves:

- when a connection is opened, one query reads its role (``read_only``, ``super_read_only`` where
  the server has it, ``innodb_read_only``; on Galera ``wsrep_ready`` and ``wsrep_local_state``).
  A connection is checked once, when it is new, never per borrow: the hot path stays as it is;
- every ``topology_interval`` seconds the maintenance thread checks every host with a short-lived
  connection of its own, and at once when a borrower's statement fails in a way that says the
  server changed (1290/1836/1874: it refuses writes; a lost connection). A host that no longer
  fits the target has its idle connections retired and its lent ones discarded when given back;
- a host that cannot be reached is denied for a window that grows with its failures (the pool's
  reconnect backoff), so borrowers do not pay a connect timeout for it again and again; the
  periodic check re-admits it as soon as it answers.

Opening tries every candidate within the borrower's remaining deadline, each with a share of it,
so one blackholed host cannot spend the whole budget. Replicas are spread by least connections,
ties broken round-robin; a primary target sticks to the writer it already uses (on a Galera
cluster every node is writable, and writing through one node avoids certification conflicts).

This module knows the servers; the pool's policy (:mod:`mysqlpool_ext._core`) knows nothing of
hosts and is reached only through the connector and one small method that retires slots.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql.cursors
from pymysql.err import MySQLError, OperationalError

from ._core import describe as describe_error
from ._core import is_transient
from ._protocol import IN_TRANS, LOST_CONNECTION_CODES
from .connection import Connection

if TYPE_CHECKING:
    from .pool import ConnectionPool

__all__ = [
    "REFUSED_WRITE_CODES",
    "HostState",
    "Topology",
    "describe",
    "read_role",
]

_monotonic = time.monotonic

PRIMARY = "primary"
REPLICA = "replica"
NOT_SYNCED = "not-synced"  # a Galera node that is not Synced (donor, joining, out of the cluster)
DOWN = "down"
UNKNOWN = "unknown"

#: The server refuses writes: it is (no longer) the primary. 1290 ER_OPTION_PREVENTS_STATEMENT
#: (read_only), 1836 ER_READ_ONLY_MODE, 1874 ER_INNODB_READ_ONLY.
REFUSED_WRITE_CODES = frozenset({1290, 1836, 1874})

_ROLE_VARIABLES = (
    "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
    "('read_only', 'super_read_only', 'innodb_read_only', 'wsrep_on')"
)
_WSREP_STATUS = "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state')"
#: Galera's wsrep_local_state for "Synced".
_SYNCED = "4"

Opener = Callable[[str, int, float], Connection]


@dataclass(eq=False)
class HostState:
    """What the pool knows of one server of its list."""

    host: str
    port: int
    index: int
    role: str = UNKNOWN
    connections: int = 0  # this pool's open connections to it
    last_checked: float | None = None  # wall clock (time.time()) of the last role check
    denied_until: float = 0.0  # monotonic; skipped by borrowers until then
    failures: int = 0  # consecutive connect failures: the deny window grows with them
    last_error: str | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def read_role(raw: Connection) -> str:
    """Ask a server what it is: ``primary``, ``replica`` or ``not-synced``.

    One ``SHOW GLOBAL VARIABLES`` (only the variables the server has come back, so the same
    statement serves MariaDB, MySQL 5.7/8 and Galera builds) and, on a node with wsrep on, one
    ``SHOW GLOBAL STATUS``. The session is left exactly as it was, so the connection still
    goes back without a reset.
    """
    d = raw.__dict__
    before = (d.get("_mp_used", False), d.get("_mp_dirty", False), d.get("_mp_errored", False))
    try:
        with raw.cursor(pymysql.cursors.Cursor) as cur:  # tuples, whatever cursorclass says
            cur.execute(_ROLE_VARIABLES)
            values = {str(k).lower(): str(v).upper() for k, v in cur.fetchall()}
            role: str | None = None
            if values.get("wsrep_on") == "ON":
                cur.execute(_WSREP_STATUS)
                status = {str(k).lower(): str(v).upper() for k, v in cur.fetchall()}
                if status.get("wsrep_ready") != "ON" or status.get("wsrep_local_state") != _SYNCED:
                    role = NOT_SYNCED
        if role is None:
            read_only = any(
                values.get(name) in ("ON", "1")
                for name in ("read_only", "super_read_only", "innodb_read_only")
            )
            role = REPLICA if read_only else PRIMARY
        if raw.server_status & IN_TRANS:  # autocommit off: leave no transaction behind
            raw.rollback()
    finally:
        # The probe is the pool's, not a borrower's: it must not make give-back reset anything.
        d["_mp_used"], d["_mp_dirty"], d["_mp_errored"] = before
    return role


class Topology:
    """The hosts of one pool, their roles, and the choice of where to connect."""

    def __init__(
        self,
        pool_name: str,
        hosts: tuple[tuple[str, int], ...],
        target: str,
        interval: float,
        backoff_max: float,
    ) -> None:
        self.pool_name = pool_name
        self.hosts = [HostState(h, p, i) for i, (h, p) in enumerate(hosts)]
        self.target = target
        self.interval = interval
        self.backoff_max = backoff_max
        self.lock = threading.Lock()
        self._turn = itertools.count()
        #: Set from any thread (a borrower's failed statement): check every host at once.
        self.recheck = False
        self.next_check = _monotonic() + interval
        #: Wakes the pool's maintenance thread (set by the pool).
        self.wake: Callable[[], None] = lambda: None
        self.checks = 0
        self.primary_changes = 0

    # -- what fits the target ------------------------------------------------------------------
    def accepts(self, role: str) -> bool:
        if self.target == PRIMARY:
            return role == PRIMARY
        if self.target == REPLICA:
            return role == REPLICA
        return role in (PRIMARY, REPLICA)  # prefer-replica, any

    def wanted(self, host: HostState) -> bool:
        """Should this host keep its connections? (prefer-replica: not the primary while a
        replica is up.)"""
        if not self.accepts(host.role):
            return False
        if self.target == "prefer-replica" and host.role == PRIMARY:
            return not any(h.role == REPLICA for h in self.hosts)
        return True

    def candidates(self, now: float) -> list[HostState]:
        """Hosts to try, best first; denied hosts left out. Those of a role that does not fit
        come last: roles change, and trying them is how a promotion is found between checks."""
        with self.lock:
            up = [h for h in self.hosts if h.denied_until <= now]
            turn = next(self._turn)
        if not up:
            return []
        shift = turn % len(up)
        up = up[shift:] + up[:shift]  # round-robin among equals (sort is stable)
        target = self.target

        def rank(h: HostState) -> tuple[int, int, int]:
            if target == PRIMARY:
                fit = 0 if h.role == PRIMARY else 1 if h.role == UNKNOWN else 2
                # Stick to the writer in use; then the order of the list.
                return fit, -h.connections, h.index
            # Spread by least connections; a host not checked yet may well fit: try it too.
            if target in (REPLICA, "prefer-replica"):
                fit = 0 if h.role in (REPLICA, UNKNOWN) else 1 if h.role == PRIMARY else 2
                return fit, h.connections, 0
            fit = 0 if h.role in (PRIMARY, REPLICA, UNKNOWN) else 2
            return fit, h.connections, 0

        return sorted(up, key=rank)

    # -- opening -------------------------------------------------------------------------------
    def open(self, connect: Opener, timeout: float | None, connect_timeout: float) -> Connection:
        """Open a connection to the best host that fits the target, within ``timeout``.

        Each candidate gets a share of what is left (a refused connect fails at once, so the
        next one gets nearly all of it); ``timeout`` None (the maintenance thread) gives each
        the full ``connect_timeout``. Raises a transient connect error (2003) when no host
        fits, so the pool treats it as an outage and retries with backoff while borrowers wait.
        """
        start = _monotonic()
        deadline = None if timeout is None else start + timeout
        tried: list[str] = []
        cands = self.candidates(start)
        # prefer-replica: a primary found before every host was tried is kept open as the
        # fallback while the rest are tried (roles are unknown until asked).
        fallback: tuple[Connection, HostState] | None = None
        for i, host in enumerate(cands):
            per = connect_timeout
            if deadline is not None:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    tried.append(f"{host.address} (not tried: no time left)")
                    break
                per = min(connect_timeout, remaining / (len(cands) - i))
            try:
                raw = connect(host.host, host.port, per)
            except Exception as exc:
                if not is_transient(exc):
                    _quit(fallback)
                    raise  # a wrong password or database: configuration, not topology
                self.deny(host, exc)
                tried.append(f"{host.address} ({describe_error(exc)})")
                continue
            try:
                role = read_role(raw)
            except Exception as exc:
                raw._force_close()
                if isinstance(exc, MySQLError) and not is_transient(exc) and not _lost(exc):
                    _quit(fallback)
                    raise
                self.deny(host, exc)
                tried.append(f"{host.address} ({describe_error(exc)})")
                continue
            self.note(host, role)
            if not self.accepts(role):
                raw.quit()
                tried.append(f"{host.address} ({role})")
                continue
            if (
                self.target == "prefer-replica"
                and role == PRIMARY
                and fallback is None
                and any(h.role != PRIMARY for h in cands[i + 1 :])
            ):
                fallback = (raw, host)
                continue
            _quit(fallback)
            self.bind(raw, host)
            return raw
        if fallback is not None:  # no replica answered: the primary it is
            self.bind(*fallback)
            return fallback[0]
        if not cands:
            with self.lock:
                soonest = min(self.hosts, key=lambda h: h.denied_until)
                wait = max(0.0, soonest.denied_until - start)
            tried.append(f"every host is down; {soonest.address} is retried in {wait:.1f} s")
        detail = f"no {self.target} server among the hosts: {'; '.join(tried)}"
        err = OperationalError(2003, f"pool {self.pool_name!r}: {detail}")
        err.mp_detail = detail
        raise err

    def bind(self, raw: Connection, host: HostState) -> None:
        """A new connection to ``host`` joins the pool: count it, and let its errors reach us."""
        d = raw.__dict__
        d["_mp_host"] = host
        d["_mp_topology_hook"] = self.on_error
        with self.lock:
            host.connections += 1

    def released(self, raw: Connection) -> None:
        """A connection was closed (or dropped after a fork): uncount it, once."""
        host = raw.__dict__.pop("_mp_host", None)
        if host is not None:
            with self.lock:
                host.connections -= 1

    def after_fork(self) -> None:
        """In a forked child: the parent's connections are not ours."""
        with self.lock:
            for h in self.hosts:
                h.connections = 0

    # -- learning ------------------------------------------------------------------------------
    def note(self, host: HostState, role: str) -> None:
        with self.lock:
            before = host.role
            host.role = role
            host.last_checked = time.time()
            host.failures = 0
            host.denied_until = 0.0
            host.last_error = None
            if before not in (UNKNOWN, DOWN) and (before == PRIMARY) != (role == PRIMARY):
                self.primary_changes += 1  # a host became, or stopped being, a primary

    def deny(self, host: HostState, exc: BaseException) -> None:
        """The host did not answer: skip it for a window that grows with its failures (the
        pool's reconnect backoff, with jitter); the periodic check re-admits it earlier."""
        with self.lock:
            host.failures += 1
            cap = max(self.backoff_max, 2 * self.interval)
            window = min(cap, 0.25 * 2 ** min(host.failures - 1, 16))
            host.denied_until = _monotonic() + window * (0.5 + 0.5 * random.random())
            host.role = DOWN
            host.last_checked = time.time()
            host.last_error = describe_error(exc)

    def on_error(self, raw: Connection, code: int, lost: bool) -> None:
        """From a borrower's failed statement (connection._fail, any thread): a refused write on
        a primary target, or a lost connection, may mean the topology changed — check now.
        Must be cheap and never raise: it runs on every statement error."""
        if code in REFUSED_WRITE_CODES and self.target == PRIMARY:
            # This server is no longer writable: never lend this connection again.
            raw.__dict__["_mp_retired"] = True
        elif not lost:
            return
        self.recheck = True
        self.wake()

    # -- the periodic check (maintenance thread) -----------------------------------------------
    def due_in(self, now: float) -> float:
        return 0.0 if self.recheck else max(0.0, self.next_check - now)

    def check_hosts(
        self, connect: Opener, connect_timeout: float, retire: Callable[[HostState], None]
    ) -> float:
        """Check every host's role with a short-lived connection; retire the connections of
        hosts that no longer fit. Returns the delay until the next check: short while no host
        fits (a switchover in progress: the promotion is noticed within a fraction of a second)."""
        self.recheck = False
        self.checks += 1
        probe_timeout = min(connect_timeout, max(1.0, min(self.interval, 2.0)))
        for host in self.hosts:
            try:
                raw = connect(host.host, host.port, probe_timeout)
            except Exception as exc:  # noqa: BLE001 - any failure: the host is down for us
                self.deny(host, exc)
                continue
            try:
                role = read_role(raw)
            except Exception as exc:  # noqa: BLE001
                self.deny(host, exc)
                continue
            finally:
                raw.quit()
            self.note(host, role)
        for host in self.hosts:
            if host.connections and not self.wanted(host):
                retire(host)
        delay = self.interval if self.usable() else min(self.interval, 0.2)
        self.next_check = _monotonic() + delay
        return delay

    def usable(self) -> bool:
        """Some host fits the target (as of the last check)."""
        return any(self.accepts(h.role) for h in self.hosts)

    # -- reporting -----------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """Per host: address, role, this pool's connections to it, when its role was last
        checked and until when it is skipped (both wall clock, None when not applicable)."""
        now_m, now_w = _monotonic(), time.time()
        with self.lock:
            return [
                {
                    "address": h.address,
                    "host": h.host,
                    "port": h.port,
                    "role": h.role,
                    "serves_target": self.accepts(h.role),
                    "connections": h.connections,
                    "last_checked": h.last_checked,
                    "denied_until": (
                        now_w + (h.denied_until - now_m) if h.denied_until > now_m else None
                    ),
                    "last_error": h.last_error,
                }
                for h in self.hosts
            ]


def _quit(held: tuple[Connection, HostState] | None) -> None:
    if held is not None:
        held[0].quit()


def _lost(exc: BaseException) -> bool:
    return isinstance(exc, MySQLError) and bool(exc.args) and exc.args[0] in LOST_CONNECTION_CODES


def describe(pool: ConnectionPool, *, check: bool = False) -> list[dict[str, Any]]:
    """The topology a pool sees, one dict per host (see :meth:`Topology.snapshot`); an empty list
    for a pool with a single ``host=`` (it checks no roles). For ``mysqlpool-ext check``, stats
    and metrics.

    ``check=True`` checks every host's role first, in the calling thread (a pool just built
    with ``lazy=True`` knows no roles yet: what ``check`` should show is what is true now)."""
    if check:
        return pool.check_topology()
    topology = pool.topology
    return [] if topology is None else topology.snapshot()
