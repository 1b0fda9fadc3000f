"""Diagnostics shared by every front end: ``mysqlpool-ext check|stats``, ``flask mysqlpool
check|stats`` and ``manage.py mysqlpool_check|mysqlpool_stats``.

One module so that the three say the same thing in the same words, and one rule decides whether a
deploy may go ahead:

- **server check**: connect (a URL) or borrow (a pool), read what matters for sizing a pool
  (:class:`ServerFacts`), and turn it into findings (:func:`pool_findings`);
- **sizing advice**: :func:`headroom` compares what every process may open with what the server
  still allows, keeping a spare share for admin tools, migrations and monitoring; the preloaded
  master of ``gunicorn --preload`` counts too, because it holds what its pools opened before the
  fork;
- **the report**: :class:`CheckReport` renders the one text format and decides the exit code
  (``strict``: a warning, insufficient headroom included, fails);
- **stats**: :func:`stats_payload` (what the opt-in stats endpoints serve: numbers only, never a
  setting), :func:`fetch_stats` (read one of them over HTTP, every failure a
  :class:`DiagnosticError` with one line and an exit code) and :func:`stats_lines` (the table).

It uses only the public API of the core, and imports neither Flask nor Django.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from .config import PoolOptions, build_options, parse_url, redact_url
from .errors import ConfigError
from .pool import ConnectionPool
from .topology import describe as describe_topology

__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "HEADROOM_SPARE",
    "STATS_COLUMNS",
    "CheckReport",
    "DiagnosticError",
    "Finding",
    "Headroom",
    "PoolCheck",
    "PoolPlan",
    "ServerFacts",
    "add_check_arguments",
    "check_pools",
    "check_url",
    "counts",
    "fetch_stats",
    "pools_from_payload",
    "stats_lines",
    "stats_payload",
]

# Exit codes, stable so scripts can branch on them.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_INTERRUPTED = 130

#: MySQL error codes that mean "the server answered but refused this login".
LOGIN_REFUSED = frozenset({1044, 1045, 1049, 1251, 1698, 2059, 2061})

#: Share of the server's connection limit kept free for admin tools, migrations, monitoring and
#: the overlap of old and new workers during a deploy. The one headroom rule uses it.
HEADROOM_SPARE = 0.1

#: The stats shown in tables, in order: (stats key, column title).
STATS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("in_use", "in use"),
    ("pool_available", "idle"),
    ("requests_waiting", "waiting"),
    ("pool_size", "open"),
    ("connections_num", "opened"),
    ("requests_num", "borrows"),
    ("wait_p99_ms", "wait p99 ms"),
    ("requests_errors", "timeouts"),
)

#: Keys of which at least one is in every pool's stats (``built`` from Django's lazy pools).
_STATS_MARKERS = frozenset({"in_use", "requests_num", "pool_size", "built"})

Level = Literal["ok", "info", "warn", "FAIL"]


class DiagnosticError(Exception):
    """A failure to report as one line (no traceback), with the exit code it maps to."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


# =================================================================================================
# Server facts
# =================================================================================================


@dataclass(frozen=True)
class ServerFacts:
    """What one connection learnt about its server (no credentials)."""

    version: str
    comment: str
    tls_version: str | None
    tls_cipher: str | None
    have_ssl: str
    wait_timeout: int
    max_connections: int
    max_user_connections: int
    threads_connected: int
    #: ``@@hostname:@@port``: pools that reach one server through different names share it.
    server_key: str
    connect_ms: float
    select1_ms: float
    #: Connections the checking process itself holds on this server (they go when it exits,
    #: so they are not counted against the headroom).
    own_connections: int = 1

    @property
    def tls(self) -> bool:
        return bool(self.tls_cipher)

    @property
    def connection_limit(self) -> int:
        """``max_connections``, or ``max_user_connections`` when it is set and lower."""
        if self.max_user_connections:
            return min(self.max_connections, self.max_user_connections)
        return self.max_connections


def read_facts(conn: Any, connect_ms: float, own_connections: int = 1) -> ServerFacts:
    """Ask the server over an open PyMySQL (or pooled) connection."""
    with conn.cursor() as cur:
        began = time.perf_counter()
        cur.execute("SELECT 1")
        cur.fetchall()
        select_ms = (time.perf_counter() - began) * 1000
        cur.execute(
            "SELECT VERSION(), @@version_comment, @@wait_timeout, @@max_connections,"
            " @@max_user_connections, @@hostname, @@port"
        )
        version, comment, wait_timeout, max_conns, max_user, hostname, port = cur.fetchone()
        cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        ssl_status = {str(k): str(v) for k, v in cur.fetchall()}
        cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        row = cur.fetchone()
        threads_connected = int(row[1]) if row else 0
        cur.execute("SHOW VARIABLES LIKE 'have_ssl'")
        row = cur.fetchone()
        have_ssl = str(row[1]) if row else "unknown"
    return ServerFacts(
        version=str(version),
        comment=str(comment or ""),
        tls_version=ssl_status.get("Ssl_version") or None,
        tls_cipher=ssl_status.get("Ssl_cipher") or None,
        have_ssl=have_ssl,
        wait_timeout=int(wait_timeout),
        max_connections=int(max_conns),
        max_user_connections=int(max_user or 0),
        threads_connected=threads_connected,
        server_key=f"{hostname}:{port}",
        connect_ms=round(connect_ms, 2),
        select1_ms=round(select_ms, 3),
        own_connections=max(1, own_connections),
    )


# =================================================================================================
# What each process may hold
# =================================================================================================


@dataclass(frozen=True)
class PoolPlan:
    """One pool as configured: what a process running it may open, and what it will keep."""

    label: str
    name: str | None
    #: Where it connects, never with a password (a redacted URL or ``pool.server_address``).
    server: str
    size: int
    max_size: int
    max_lifetime: float | None
    max_idle: float | None
    host: str | None
    unix_socket: str | None

    @classmethod
    def from_options(cls, label: str, server: str, opts: PoolOptions) -> PoolPlan:
        kw = opts.connect_kwargs
        return cls(
            label=label,
            name=opts.name,
            server=server,
            size=opts.size,
            max_size=opts.max_size,
            max_lifetime=opts.max_lifetime,
            max_idle=opts.max_idle,
            host=kw.get("host"),
            unix_socket=kw.get("unix_socket"),
        )

    @classmethod
    def from_pool(cls, label: str, pool: ConnectionPool) -> PoolPlan:
        # max_size/min_size, not options: resize() may have changed them since construction.
        plan = cls.from_options(label, pool.server_address, pool.options)
        return replace(plan, size=pool.min_size, max_size=pool.max_size)

    @classmethod
    def unbuilt(cls, label: str) -> PoolPlan:
        """A pool whose settings were rejected before it could be built."""
        return cls(label, None, "(not built)", 0, 0, None, None, None, None)

    @property
    def on_this_machine(self) -> bool:
        host = self.host or "localhost"
        return bool(self.unix_socket) or host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True)
class Finding:
    level: Level
    text: str


@dataclass
class PoolCheck:
    """One pool's check: its plan, what the server said (None if it could not be reached)."""

    plan: PoolPlan
    facts: ServerFacts | None = None
    error: str | None = None
    findings: list[Finding] = field(default_factory=list)
    #: A pool on a host list: each server as the pool sees it (``topology.describe``), and what
    #: each reachable one said (the headroom rule applies per server: a pool may put all of its
    #: ``max_size`` on any one of them).
    topology: list[dict[str, Any]] = field(default_factory=list)
    target: str | None = None
    host_facts: list[ServerFacts] = field(default_factory=list)


def pool_findings(plan: PoolPlan, facts: ServerFacts) -> list[Finding]:
    """What this server means for this pool's settings: TLS, lifetimes against wait_timeout."""
    found = [
        Finding(
            "ok",
            f"server version {facts.version}"
            + (f" ({facts.comment})" if facts.comment else "")
            + f"; connection in {facts.connect_ms:.1f} ms, SELECT 1 in {facts.select1_ms:.2f} ms",
        )
    ]
    if facts.tls:
        found.append(Finding("ok", f"TLS: {facts.tls_version or '?'} ({facts.tls_cipher})"))
    elif plan.on_this_machine:
        found.append(Finding("info", "TLS: not encrypted (the server is on this machine)"))
    elif facts.have_ssl.upper() == "YES":
        found.append(
            Finding("warn", "TLS: the server offers it but this pool does not use it: add ssl_ca")
        )
    else:
        found.append(Finding("warn", "TLS: not encrypted, and the server is not on this machine"))

    wait = facts.wait_timeout
    suggested = max(1, min(1800, int(wait * 0.8)))
    lifetime = plan.max_lifetime
    if lifetime is None:
        found.append(
            Finding(
                "warn",
                f"max_lifetime is off: the server drops connections idle for wait_timeout={wait} "
                f"s; set max_lifetime below it, e.g. {suggested}",
            )
        )
    elif lifetime >= wait:
        found.append(
            Finding(
                "warn",
                f"max_lifetime={lifetime:g} s is not below wait_timeout={wait} s: the server may "
                f"close pooled connections first; use max_lifetime={suggested}",
            )
        )
    else:
        found.append(Finding("ok", f"max_lifetime={lifetime:g} s is below wait_timeout={wait} s"))
    if plan.max_idle is not None and plan.max_idle >= wait:
        found.append(
            Finding(
                "warn",
                f"max_idle={plan.max_idle:g} s is not below wait_timeout={wait} s: idle "
                "connections will fail their liveness check and be reopened; lower max_idle",
            )
        )
    return found


# =================================================================================================
# The headroom rule
# =================================================================================================


@dataclass(frozen=True)
class Headroom:
    """Connections the deployment may open on one server against what the server still allows.

    ``needed`` = processes x the sum of ``max_size`` of the pools on this server, plus, with
    ``gunicorn --preload``, the master's share: it builds the app (and fills ``size`` connections
    per pool) before forking, and keeps them. ``free`` = the server's limit minus what others hold
    now minus the spare (:data:`HEADROOM_SPARE` of the limit). Sufficient when needed <= free.
    """

    server: str
    limit: int
    connected_by_others: int
    spare: int
    per_process: int
    processes: int
    master: int

    @property
    def needed(self) -> int:
        return self.per_process * self.processes + self.master

    @property
    def free(self) -> int:
        return max(0, self.limit - self.connected_by_others - self.spare)

    @property
    def sufficient(self) -> bool:
        return self.needed <= self.free

    @property
    def processes_that_fit(self) -> int:
        if self.per_process <= 0:
            return 0
        return max(0, (self.free - self.master) // self.per_process)

    def finding(self) -> Finding:
        master = f" + {self.master} held by the preloaded master" if self.master else ""
        text = (
            f"{self.processes} process(es) x max_size {self.per_process}{master} = {self.needed} "
            f"connections at most; {self.free} free (limit {self.limit}, {self.connected_by_others}"
            f" held by others, {self.spare} kept spare): room for {self.processes_that_fit} "
            "processes"
        )
        if self.sufficient:
            return Finding("ok", "headroom: " + text)
        return Finding(
            "warn",
            "headroom: NOT ENOUGH: " + text + "; lower max_size, run fewer processes or raise "
            "max_connections",
        )


def headroom(
    facts: ServerFacts, plans: Sequence[PoolPlan], processes: int, preload: bool
) -> Headroom:
    """The one headroom rule, for the pools of ``plans`` that share the server of ``facts``."""
    limit = facts.connection_limit
    return Headroom(
        server=facts.server_key,
        limit=limit,
        connected_by_others=max(0, facts.threads_connected - facts.own_connections),
        spare=max(1, math.ceil(limit * HEADROOM_SPARE)),
        per_process=sum(p.max_size for p in plans),
        processes=max(1, processes),
        master=sum(p.size for p in plans) if preload else 0,
    )


# =================================================================================================
# The report: one format, one exit rule
# =================================================================================================


@dataclass
class CheckReport:
    checks: list[PoolCheck]
    headrooms: list[Headroom]
    processes: int = 1
    preload: bool = False

    @property
    def failures(self) -> int:
        return sum(1 for c in self.checks if c.facts is None)

    @property
    def warnings(self) -> int:
        found = [f for c in self.checks for f in c.findings]
        found += [h.finding() for h in self.headrooms]
        return sum(1 for f in found if f.level == "warn")

    @property
    def enough_headroom(self) -> bool:
        return all(h.sufficient for h in self.headrooms)

    def exit_code(self, strict: bool = False) -> int:
        """1 when a pool cannot connect; with ``strict``, also on any warning (not enough
        headroom, a lifetime the server will cut short, no TLS to a remote server)."""
        if self.failures or (strict and self.warnings):
            return EXIT_FAILURE
        return EXIT_OK

    def summary(self, strict: bool = False) -> str:
        warnings = f"{self.warnings} warning(s)"
        if self.failures:
            return f"FAIL: {self.failures} pool(s) could not connect, {warnings}"
        if strict and self.warnings:
            return f"FAIL (--strict): {warnings}"
        if self.warnings:
            return f"OK with {warnings} (--strict makes warnings fail)"
        return "OK"

    def lines(self, strict: bool = False) -> list[str]:
        """The text every front end prints, line by line."""
        out: list[str] = []
        for check in self.checks:
            plan = check.plan
            name = f"pool {plan.name!r} " if plan.name else ""
            out.append(f"[{plan.label}] {name}-> {plan.server}")
            if check.facts is None:
                error = check.error or "unknown error"
                if not error.startswith("misconfigured"):
                    error = f"cannot connect: {error}"
                out.append(_finding_line(Finding("FAIL", error)))
                continue
            out.extend(_finding_line(f) for f in check.findings)
            out.extend(_topology_lines(check))
        for room in self.headrooms:
            out.append(f"headroom on server {room.server}")
            out.append(_finding_line(room.finding()))
        if self.checks:
            out.append("advice")
            out.append(
                _finding_line(
                    Finding(
                        "info",
                        "size each process's pool to its concurrency: max_size ~ threads per "
                        "worker (gunicorn --threads); extra borrowers queue in order, not fail",
                    )
                )
            )
            if not self.preload:
                out.append(
                    _finding_line(
                        Finding(
                            "info",
                            "gunicorn --preload: the master process keeps the connections its "
                            "pools opened before forking; pass --preload to count them",
                        )
                    )
                )
        out.append(f"result: {self.summary(strict)}")
        return out

    def as_dict(self, strict: bool = False) -> dict[str, Any]:
        return {
            "pools": [
                {
                    "label": c.plan.label,
                    "name": c.plan.name,
                    "server": c.plan.server,
                    "size": c.plan.size,
                    "max_size": c.plan.max_size,
                    "error": c.error,
                    "facts": asdict(c.facts) if c.facts is not None else None,
                    "findings": [asdict(f) for f in c.findings],
                    "topology": c.topology,
                }
                for c in self.checks
            ],
            "headroom": [
                {
                    **asdict(h),
                    "needed": h.needed,
                    "free": h.free,
                    "sufficient": h.sufficient,
                    "processes_that_fit": h.processes_that_fit,
                }
                for h in self.headrooms
            ],
            "processes": self.processes,
            "preload": self.preload,
            "warnings": self.warnings,
            "failures": self.failures,
            "result": self.summary(strict),
            "exit_code": self.exit_code(strict),
        }


def _topology_lines(check: PoolCheck) -> list[str]:
    """One line per server of a host list: its role, whether the pool's target takes it, the
    pool's connections to it, and why it is skipped if it is."""
    if not check.topology:
        return []
    out = [f"topology  target={check.target}, {len(check.topology)} hosts"]
    for host in check.topology:
        mark = "<- target" if host["serves_target"] else ""
        line = f"  {host['address']:<22} {host['role']:<8} {mark:<9} {host['connections']} conn"
        if host["denied_until"]:
            line += f"  skipped: {host['last_error'] or 'no answer'}"
        out.append(line)
    return out


def _finding_line(finding: Finding) -> str:
    return f"  {finding.level:<4}  {finding.text}"


def build_report(
    checks: Sequence[PoolCheck], processes: int = 1, preload: bool = False
) -> CheckReport:
    """Fill each check's findings and apply the headroom rule per server."""
    by_server: dict[str, tuple[ServerFacts, list[PoolPlan]]] = {}
    for check in checks:
        if check.facts is None:
            continue
        check.findings = pool_findings(check.plan, check.facts)
        for facts in [check.facts, *check.host_facts]:
            _, plans = by_server.setdefault(facts.server_key, (facts, []))
            if check.plan not in plans:
                plans.append(check.plan)
    rooms = [headroom(f, plans, processes, preload) for f, plans in by_server.values()]
    return CheckReport(list(checks), rooms, max(1, processes), preload)


def check_url(url: str, processes: int = 1, preload: bool = False) -> CheckReport:
    """Connect once to ``url`` (pool options in its query count) and build the report.

    Raises :class:`DiagnosticError`: ``EXIT_USAGE`` for a bad URL, ``EXIT_AUTH`` when the server
    refused the login, ``EXIT_UNREACHABLE`` otherwise. No message contains the password.
    """
    import pymysql

    try:
        params = parse_url(url)
        opts = build_options(params)
    except ConfigError as exc:
        raise DiagnosticError(str(exc), EXIT_USAGE) from None
    if opts.hosts:
        # Several servers: check through a pool, which finds each one's role.
        with ConnectionPool(**{**params, "size": 0, "lazy": True, "name": "check"}) as pool:
            return check_pools({"url": pool}, 5.0, processes, preload)
    kwargs = dict(opts.connect_kwargs)
    kwargs.setdefault("connect_timeout", 5)
    password = kwargs.get("password")
    where = kwargs.get("unix_socket") or f"{kwargs.get('host')}:{kwargs.get('port') or 3306}"
    began = time.perf_counter()
    try:
        conn = pymysql.connect(**kwargs)
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        detail = " ".join(_scrub(str(exc.args[1] if len(exc.args) > 1 else exc), password).split())
        if code in LOGIN_REFUSED:
            raise DiagnosticError(
                f"login refused by {where} for user {kwargs.get('user')!r}: {detail} "
                f"(MySQL error {code})",
                EXIT_AUTH,
            ) from None
        raise DiagnosticError(
            f"cannot connect to {where} ({redact_url(url)}): {detail} (MySQL error {code})",
            EXIT_UNREACHABLE,
        ) from None
    except (OSError, ValueError) as exc:  # e.g. an unreadable ssl_ca file
        raise DiagnosticError(
            f"cannot connect to {where}: {_scrub(str(exc), password)}", EXIT_UNREACHABLE
        ) from None
    connect_ms = (time.perf_counter() - began) * 1000
    try:
        facts = read_facts(conn, connect_ms)
    finally:
        conn.close()
    plan = PoolPlan.from_options("url", redact_url(url), opts)
    return build_report([PoolCheck(plan, facts)], processes, preload)


def check_pools(
    pools: Mapping[str, ConnectionPool | Exception],
    timeout: float = 5.0,
    processes: int = 1,
    preload: bool = False,
) -> CheckReport:
    """Borrow a connection from each pool (label -> pool) and build the report; a pool that
    cannot connect is a failed check, not an exception. A label may map to the exception that
    kept its pool from being built (a settings error): reported as that pool's failure."""
    built = [p for p in pools.values() if not isinstance(p, Exception)]
    checks = []
    for label, pool in pools.items():
        if isinstance(pool, Exception):
            checks.append(PoolCheck(PoolPlan.unbuilt(label), error=f"misconfigured: {pool}"))
            continue
        check = PoolCheck(PoolPlan.from_pool(label, pool))
        if pool.topology is not None:
            check.target = pool.options.target
            try:
                check.topology = describe_topology(pool, check=True)
            except Exception as exc:  # noqa: BLE001 - the borrow below reports what matters
                check.error = " ".join(str(exc).split()) or type(exc).__name__
            check.host_facts = _facts_of_hosts(pool, check.topology, timeout)
        began = time.perf_counter()
        try:
            with pool.connection(timeout=timeout) as conn:
                borrowed_ms = (time.perf_counter() - began) * 1000
                own = own_connections(built, pool.server_address)
                check.facts = read_facts(conn, borrowed_ms, own)
        except Exception as exc:  # noqa: BLE001 - reported as this pool's failure
            check.error = " ".join(str(exc).split()) or type(exc).__name__
        checks.append(check)
    return build_report(checks, processes, preload)


def add_check_arguments(parser: argparse.ArgumentParser, *strict_aliases: str) -> None:
    """The options the headroom rule and the exit code read, declared once for the argparse
    front ends (``mysqlpool-ext check``, ``manage.py mysqlpool_check``) so that they take the same
    options with the same meaning; ``flask mysqlpool check`` declares the same names with click.
    ``strict_aliases``: other spellings a front end has accepted for ``--strict``."""
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="worker processes that will each open the pools (gunicorn -w), for the headroom "
        "rule (default: 1)",
    )
    parser.add_argument(
        "--preload",
        action="store_true",
        help="the app runs under gunicorn --preload: count the master's connections too",
    )
    parser.add_argument(
        "--strict",
        *strict_aliases,
        dest="strict",
        action="store_true",
        help="exit 1 on warnings too (not enough headroom, max_lifetime >= wait_timeout, ...)",
    )


def _facts_of_hosts(
    pool: ConnectionPool, hosts: list[dict[str, Any]], timeout: float
) -> list[ServerFacts]:
    """What each reachable server of a host list says about its limits (one short connection
    each, with the pool's own settings); an unreachable one is shown in the topology lines."""
    import pymysql

    found = []
    for host in hosts:
        if host["denied_until"] or host["role"] in ("down", "unknown"):
            continue
        kwargs = {
            **pool.options.connect_kwargs,
            "host": host["host"],
            "port": host["port"],
            "connect_timeout": max(1, int(timeout)),
        }
        began = time.perf_counter()
        try:
            conn = pymysql.connect(**kwargs)
        except Exception:  # noqa: BLE001 - the topology line says the host is down
            continue
        try:
            found.append(
                read_facts(conn, (time.perf_counter() - began) * 1000, host["connections"])
            )
        finally:
            conn.close()
    return found


def own_connections(pools: Iterable[ConnectionPool], server_address: str) -> int:
    """Connections this process's pools hold to ``server_address`` right now, computed from
    public facts (``stats()["pool_size"]``): they leave with the checking process, so the headroom
    rule must not count them as someone else's."""
    return sum(
        int(p.stats().get("pool_size", 0)) for p in pools if p.server_address == server_address
    )


def _scrub(text: str, secret: Any) -> str:
    """Belt and braces: PyMySQL messages carry no password, but never print one if they did."""
    if isinstance(secret, str) and secret:
        text = text.replace(secret, "***")
    return text


# =================================================================================================
# Stats
# =================================================================================================


def counts(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers (and booleans) only: a stats endpoint may be reachable by more people than the
    config is, so names, hosts and settings stay out."""
    return {k: v for k, v in stats.items() if isinstance(v, (int, float))}


def stats_payload(pools: Mapping[str, ConnectionPool]) -> dict[str, Any]:
    """What a stats endpoint serves: ``{"pid": ..., "pools": {label: counts}}``. The pid says
    which worker answered: each process has its own pools."""
    return {"pid": os.getpid(), "pools": {label: counts(p.stats()) for label, p in pools.items()}}


def pools_from_payload(payload: Any) -> dict[str, dict[str, Any]]:
    """The pools in a stats endpoint's JSON: ``{"pools": {name: stats}}``, ``{name: stats}``, a
    single stats dict or a list of them. Dicts that are not pool stats are left out, so JSON that
    is not a stats payload yields ``{}``."""
    if isinstance(payload, dict) and isinstance(payload.get("pools"), (dict, list)):
        payload = payload["pools"]
    found: dict[str, Any] = {}
    if isinstance(payload, list):
        found = {str(p.get("name", i)): p for i, p in enumerate(payload) if isinstance(p, dict)}
    elif isinstance(payload, dict):
        if _STATS_MARKERS & payload.keys():
            found = {str(payload.get("name", "default")): payload}
        else:
            found = {str(k): v for k, v in payload.items() if isinstance(v, dict)}
    return {k: v for k, v in found.items() if _STATS_MARKERS & v.keys()}


def fetch_stats(url: str, timeout: float = 5.0) -> tuple[int | None, dict[str, dict[str, Any]]]:
    """GET a stats endpoint: (the pid that answered, its pools). Every failure is a
    :class:`DiagnosticError` with one line: not http(s), refused, HTTP error, not JSON, no stats.
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise DiagnosticError(f"not an http(s) URL: {redact_http_url(url)!r}", EXIT_USAGE)
    target, headers = _http_credentials(url)
    url = str(redact_http_url(url))  # what every message below shows
    request = urllib.request.Request(target, headers={"Accept": "application/json"})
    for name, value in headers.items():
        # Not sent on to where a redirect points (another host must not get the password).
        request.add_unredirected_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        hint = (
            " (is the stats endpoint on? Flask: MYSQLPOOL_STATS_ENDPOINT; Django: "
            "mysqlpool_ext.django.views.stats in urls.py)"
            if exc.code == 404
            else ""
        )
        raise DiagnosticError(f"{url}: HTTP {exc.code} {exc.reason}{hint}", EXIT_FAILURE) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DiagnosticError(f"cannot reach {url}: {reason}", EXIT_UNREACHABLE) from None
    try:
        payload = json.loads(body)
    except ValueError:
        raise DiagnosticError(f"{url}: the response is not JSON", EXIT_FAILURE) from None
    pools = pools_from_payload(payload)
    if not pools:
        raise DiagnosticError(
            f"{url}: no pool stats in the response (is it a mysqlpool stats endpoint?)",
            EXIT_FAILURE,
        )
    pid = payload.get("pid") if isinstance(payload, dict) else None
    return (pid if isinstance(pid, int) else None), pools


def redact_http_url(url: object) -> object:
    """``url`` with the password of its ``user:password@`` part (HTTP basic auth for a stats
    endpoint behind a login) replaced, for messages and titles."""
    if not isinstance(url, str):
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}:***@{host}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _http_credentials(url: str) -> tuple[str, dict[str, str]]:
    """(the URL without ``user:password@``, an ``Authorization`` header for them): urllib
    does not send credentials written in a URL (it would look the whole ``user:pw@host`` up
    as a host name)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    host = parts.netloc.rpartition("@")[2]
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    bare = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, {"Authorization": f"Basic {token}"}


def stats_title(source: str | None, pid: int | None) -> str:
    """Whose numbers these are. Without a source they are the calling process's own pools: a
    command-line process, not the running server, which is worth saying plainly."""
    if source:
        source = str(redact_http_url(source))
        return f"pool stats from {source}" + (f" (process {pid})" if pid is not None else "")
    return (
        f"pool stats of this command's own process (pid {pid}), not of a running server: "
        "use --from URL (the app's stats endpoint) for a server's"
    )


def stats_rows(pools: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of the stats table: one row per stat, one column per pool."""
    names = sorted(pools)
    keys = sorted({k for p in pools.values() for k in p if k != "name"})
    return ["stat", *names], [[key, *(pools[n].get(key, "") for n in names)] for key in keys]


def stats_lines(pools: Mapping[str, Mapping[str, Any]], title: str) -> list[str]:
    header, rows = stats_rows(pools)
    return table_lines(title, header, rows)


# =================================================================================================
# Rendering
# =================================================================================================


def fmt_number(value: Any) -> str:
    """Thousands separators for ints, a few significant digits for floats, str for the rest."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def table_lines(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """An aligned plain-text table: first column left, the others right."""
    cells = [[fmt_number(c) for c in row] for row in rows]
    widths = [len(h) for h in header]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))
        ]
        return "  ".join(parts).rstrip()

    return ([title] if title else []) + [line(list(header))] + [line(row) for row in cells]


def get_console(plain: bool = False, *, stderr: bool = False) -> Any:
    """A ``rich.console.Console`` for a terminal; None (plain text) when rich is missing, when
    ``--plain`` was given, or when the output is a pipe or a file, so logs stay greppable."""
    if plain:
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    console = Console(stderr=stderr, highlight=False)
    return console if console.is_terminal else None


def print_table(
    console: Any,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    file: Any = None,
) -> None:
    """The same table drawn by rich on a terminal, else :func:`table_lines`."""
    if console is None:
        out = file if file is not None else sys.stdout
        for text in table_lines(title, header, rows):
            print(text, file=out)
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*(fmt_number(c) for c in row))
    console.print(table)
