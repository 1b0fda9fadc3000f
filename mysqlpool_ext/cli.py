"""The ``mysqlpool-ext`` command line: ``demo``, ``check URL`` and ``stats URL``.

Only the standard library and PyMySQL are imported up front, so the core's one-dependency promise
holds for the CLI too. ``rich`` (extra ``[cli]``) is imported lazily: with it, tables and the demo's
live view are drawn; without it (or with ``--plain``) the same facts are printed as plain text.

Exit codes are stable so scripts can branch on them: 0 ok, 1 failure, 2 bad usage or malformed URL,
3 server not reachable, 4 login refused (user, password or database), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["EXIT_AUTH", "EXIT_FAILURE", "EXIT_UNREACHABLE", "EXIT_USAGE", "main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_INTERRUPTED = 130

PROG = "mysqlpool-ext"

#: MySQL error codes that mean "the server answered but refused this login".
_LOGIN_REFUSED = {1044, 1045, 1049, 1251, 1698, 2059, 2061}

#: The stats columns shown in tables, in order: (stats key, column title).
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


class CLIError(Exception):
    """A failure to report as one line on stderr, with a given exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


# -- output ---------------------------------------------------------------------------------------


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


def print_table(
    console: Any,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    file: Any = None,
) -> None:
    """A table with rich when available, else aligned plain text (first column left, rest right)."""
    cells = [[fmt_number(c) for c in row] for row in rows]
    if console is not None:
        from rich.table import Table

        table = Table(title=title, title_justify="left", header_style="bold")
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for row in cells:
            table.add_row(*row)
        console.print(table)
        return
    out = file if file is not None else sys.stdout
    widths = [len(h) for h in header]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))
        ]
        return "  ".join(parts).rstrip()

    if title:
        print(title, file=out)
    print(line(list(header)), file=out)
    for row in cells:
        print(line(row), file=out)


# -- check ------------------------------------------------------------------------------------


def _scrub(text: str, secret: str | None) -> str:
    """Belt and braces: PyMySQL messages carry no password, but never print one if they did."""
    if secret:
        text = text.replace(secret, "***")
    return text


def _connect_for_check(url: str) -> tuple[Any, dict[str, Any], Any, float]:
    """Parse ``url`` and connect once: (connection, connect kwargs, pool options, connect ms)."""
    import pymysql

    from .config import build_options, parse_url, redact_url
    from .errors import ConfigError

    try:
        opts = build_options(parse_url(url))
    except ConfigError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    kwargs = dict(opts.connect_kwargs)
    kwargs.setdefault("connect_timeout", 5)
    password = kwargs.get("password")
    where = kwargs.get("unix_socket") or f"{kwargs.get('host')}:{kwargs.get('port') or 3306}"
    began = time.perf_counter()
    try:
        conn = pymysql.connect(**kwargs)
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        detail = _scrub(str(exc.args[1] if len(exc.args) > 1 else exc), password)
        detail = " ".join(detail.split())
        if code in _LOGIN_REFUSED:
            raise CLIError(
                f"login refused by {where} for user {kwargs.get('user')!r}: {detail} "
                f"(MySQL error {code})",
                EXIT_AUTH,
            ) from None
        raise CLIError(
            f"cannot connect to {where} ({redact_url(url)}): {detail} (MySQL error {code})",
            EXIT_UNREACHABLE,
        ) from None
    except (OSError, ValueError) as exc:  # e.g. an unreadable ssl_ca file
        detail = _scrub(str(exc), password)
        raise CLIError(f"cannot connect to {where}: {detail}", EXIT_UNREACHABLE) from None
    connect_ms = (time.perf_counter() - began) * 1000
    return conn, kwargs, opts, connect_ms


def check_server(url: str) -> dict[str, Any]:
    """Connect to ``url`` and gather what matters for sizing a pool (no password in the result)."""
    from .config import redact_url

    conn, kwargs, opts, connect_ms = _connect_for_check(url)
    try:
        with conn.cursor() as cur:
            began = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchall()
            select_ms = (time.perf_counter() - began) * 1000
            cur.execute(
                "SELECT VERSION(), @@version_comment, @@wait_timeout, @@max_connections,"
                " @@max_user_connections"
            )
            version, comment, wait_timeout, max_connections, max_user = cur.fetchone()
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_%%'")
            ssl_status = {k: v for k, v in cur.fetchall()}
            cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
            row = cur.fetchone()
            threads_connected = int(row[1]) if row else 0
            cur.execute("SHOW VARIABLES LIKE 'have_ssl'")
            row = cur.fetchone()
            have_ssl = row[1] if row else "unknown"
    finally:
        conn.close()
    cipher = ssl_status.get("Ssl_cipher") or ""
    return {
        "url": redact_url(url),
        "server_version": str(version),
        "server_comment": str(comment or ""),
        "tls": bool(cipher),
        "tls_version": ssl_status.get("Ssl_version") or None,
        "tls_cipher": cipher or None,
        "server_have_ssl": str(have_ssl),
        "wait_timeout": int(wait_timeout),
        "max_connections": int(max_connections),
        "max_user_connections": int(max_user or 0),
        "threads_connected": threads_connected,
        "connect_ms": round(connect_ms, 2),
        "select1_ms": round(select_ms, 3),
        "pool_size": opts.size,
        "pool_max_size": opts.max_size,
        "max_lifetime": opts.max_lifetime,
        "max_idle": opts.max_idle,
        "user": kwargs.get("user"),
    }


def advice(info: Mapping[str, Any]) -> list[str]:
    """Plain-language advice on ``max_lifetime`` and pool sizes from what the server said."""
    tips: list[str] = []
    wait_timeout = info["wait_timeout"]
    lifetime = info["max_lifetime"]
    max_idle = info["max_idle"]
    suggested = max(1, min(1800, int(wait_timeout * 0.8)))
    if lifetime is None:
        tips.append(
            f"max_lifetime is off: set it below wait_timeout ({wait_timeout} s), "
            f"e.g. max_lifetime={suggested}, so connections are recycled before the server "
            "drops them"
        )
    elif lifetime >= wait_timeout:
        tips.append(
            f"max_lifetime={lifetime:g} s is not below wait_timeout={wait_timeout} s: the server "
            f"may close pooled connections first; use max_lifetime={suggested}"
        )
    else:
        tips.append(
            f"max_lifetime={lifetime:g} s is below wait_timeout={wait_timeout} s: good "
            "(connections are recycled before the server would drop them)"
        )
    if max_idle is not None and max_idle >= wait_timeout:
        tips.append(
            f"max_idle={max_idle:g} s is not below wait_timeout={wait_timeout} s: idle connections "
            "will fail their liveness check and be reopened; lower max_idle"
        )
    limit = info["max_connections"]
    if info["max_user_connections"]:
        limit = min(limit, info["max_user_connections"])
    budget = int(limit * 0.8) - info["threads_connected"]
    per_process = info["pool_max_size"]
    processes = budget // per_process if per_process else 0
    tips.append(
        f"max_connections={info['max_connections']}, {info['threads_connected']} in use now: "
        f"with max_size={per_process} per process, about {max(processes, 0)} processes "
        "(e.g. gunicorn workers) fit while leaving 20 % spare for admin tools and migrations"
    )
    if processes < 1:
        tips.append(
            "that is less than one process: lower max_size or raise max_connections on the server"
        )
    tips.append(
        "size each process's pool to its concurrency: max_size ~ threads per worker "
        "(gunicorn --threads); extra borrowers queue in order rather than fail"
    )
    if not info["tls"] and info["server_have_ssl"].upper() == "YES":
        tips.append("the server offers TLS but this connection does not use it: add ssl_ca=...")
    return tips


def cmd_check(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("MYSQLPOOL_URL")
    if not url:
        raise CLIError("no URL given and MYSQLPOOL_URL is not set", EXIT_USAGE)
    info = check_server(url)
    tips = advice(info)
    if args.json:
        print(json.dumps({**info, "advice": tips}, indent=2))
        return 0
    console = get_console(args.plain)
    tls = (
        f"in use ({info['tls_version']}, {info['tls_cipher']})"
        if info["tls"]
        else f"not in use (server have_ssl={info['server_have_ssl']})"
    )
    rows = [
        ("server", info["url"]),
        ("version", f"{info['server_version']} ({info['server_comment']})"),
        ("TLS", tls),
        ("wait_timeout", f"{info['wait_timeout']} s"),
        ("max_connections", f"{info['max_connections']} ({info['threads_connected']} in use)"),
        ("connect", f"{info['connect_ms']:.1f} ms (what a pool saves on each borrow)"),
        ("SELECT 1", f"{info['select1_ms']:.2f} ms on the open connection"),
    ]
    if console is not None:
        from rich.table import Table

        table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows:
            table.add_row(key, str(value))
        console.print(table)
        console.print("[bold]advice[/bold]")
        for tip in tips:
            console.print(f"  • {tip}")
    else:
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key.ljust(width)}  {value}")
        print("advice")
        for tip in tips:
            print(f"  - {tip}")
    return 0


# -- stats ------------------------------------------------------------------------------------


def pools_from_payload(payload: Any) -> dict[str, dict[str, Any]]:
    """Accept the stats endpoint's JSON in any of its reasonable shapes: ``{"pools": {name:
    stats}}``, ``{name: stats}``, a single ``stats`` dict, or a list of stats dicts."""
    if isinstance(payload, dict) and isinstance(payload.get("pools"), (dict, list)):
        payload = payload["pools"]
    if isinstance(payload, list):
        return {str(p.get("name", i)): p for i, p in enumerate(payload) if isinstance(p, dict)}
    if isinstance(payload, dict):
        if "requests_num" in payload or "in_use" in payload:
            return {str(payload.get("name", "default")): payload}
        return {str(k): v for k, v in payload.items() if isinstance(v, dict)}
    return {}


def fetch_json(url: str, timeout: float = 5.0) -> tuple[Any, Mapping[str, str]]:
    """GET ``url`` and decode its JSON body; errors become :class:`CLIError` with a clear line."""
    if not url.startswith(("http://", "https://")):
        raise CLIError(f"not an http(s) URL: {url!r}", EXIT_USAGE)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            headers = dict(response.headers.items())
    except urllib.error.HTTPError as exc:
        hint = " (is the app's MYSQLPOOL_STATS_ENDPOINT on?)" if exc.code == 404 else ""
        raise CLIError(f"{url}: HTTP {exc.code} {exc.reason}{hint}", EXIT_FAILURE) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CLIError(f"cannot reach {url}: {reason}", EXIT_UNREACHABLE) from None
    try:
        return json.loads(body), headers
    except ValueError:
        raise CLIError(f"{url}: the response is not JSON", EXIT_FAILURE) from None


def cmd_stats(args: argparse.Namespace) -> int:
    payload, _ = fetch_json(args.url)
    pools = pools_from_payload(payload)
    if not pools:
        raise CLIError(f"{args.url}: no pool stats in the response", EXIT_FAILURE)
    pid = payload.get("pid") if isinstance(payload, dict) else None
    if args.json:
        print(json.dumps({"pid": pid, "pools": pools}, indent=2, sort_keys=True))
        return 0
    console = get_console(args.plain)
    names = sorted(pools)
    keys = sorted({k for p in pools.values() for k in p if k != "name"})
    rows = [[key, *(pools[n].get(key, "") for n in names)] for key in keys]
    # Each worker process has its own pools: say which one answered.
    title = f"pool stats from {args.url}" + (f" (process {pid})" if pid is not None else "")
    print_table(console, title, ["stat", *names], rows)
    return 0


# -- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


# -- parser -----------------------------------------------------------------------------------

_EXIT_CODES = """\
exit codes:
  0    success
  1    failure (the demo failed, the stats endpoint answered an error)
  2    bad usage or malformed URL
  3    server not reachable (refused, timed out, unknown host)
  4    login refused (wrong user or password, no access to the database)
  130  interrupted (Ctrl-C)
"""


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=fmt,
        description=(
            "mysqlpool_ext: a connection pool for PyMySQL, for threads and asyncio, "
            "with Flask and Django integrations."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} demo                      watch the pool serve a web app (about 25 s)\n"
            f"  {PROG} check mysql://app:secret@127.0.0.1:3306/shop\n"
            f"  {PROG} stats http://127.0.0.1:8000/_mysqlpool/stats\n\n"
            f"Also runs as `python -m mysqlpool_ext`. `{PROG} COMMAND --help` for details.\n\n"
            + _EXIT_CODES
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True

    plain = argparse.ArgumentParser(add_help=False)
    plain.add_argument(
        "--plain", action="store_true", help="plain text output, even when rich is installed"
    )

    demo = sub.add_parser(
        "demo",
        parents=[plain],
        formatter_class=fmt,
        help="start a throwaway MariaDB, serve the example app, load it, show the pool at work",
        description=(
            "Start a throwaway MariaDB in a temp dir (or use MYSQLPOOL_URL / --url), load a\n"
            "small schema, serve the example Flask app under gunicorn and drive concurrent HTTP\n"
            "traffic at it, showing the pool's stats live. Then the same traffic through a\n"
            "handler that opens a new PyMySQL connection per request, for contrast, and a\n"
            "summary cross-checked against the server's own counters. Ctrl-C at any moment\n"
            "stops everything and removes the temp dirs."
        ),
        epilog=_EXIT_CODES,
    )
    demo.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        metavar="S",
        help="how long to drive traffic at each version (default: 8)",
    )
    demo.add_argument(
        "--quick", action="store_true", help="a short run (2 s per version, 16 clients) for tests"
    )
    demo.add_argument(
        "--clients",
        type=int,
        default=32,
        metavar="N",
        help="concurrent HTTP clients (default: 32)",
    )
    demo.add_argument(
        "--workers", type=int, default=2, metavar="N", help="gunicorn workers (default: 2)"
    )
    demo.add_argument(
        "--threads",
        type=int,
        default=4,
        metavar="N",
        help="threads per worker; each worker's pool gets as many connections (default: 4)",
    )
    demo.add_argument(
        "--app",
        choices=("flask", "django", "builtin"),
        default="flask",
        help="which app to serve: the example Flask app (default), the example Django project, "
        "or a minimal built-in WSGI app (used when the example app is not available)",
    )
    demo.add_argument(
        "--url",
        metavar="URL",
        help="use this server instead of a throwaway one (default: $MYSQLPOOL_URL if set)",
    )
    demo.add_argument(
        "--no-contrast",
        action="store_true",
        help="skip the new-connection-per-request run",
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on stdout (progress goes to stderr)",
    )
    demo.set_defaults(func=cmd_demo)

    check = sub.add_parser(
        "check",
        parents=[plain],
        formatter_class=fmt,
        help="connect to a server and advise on max_lifetime and pool sizes",
        description=(
            "Connect once and print the server version, whether TLS is in use, wait_timeout and\n"
            "max_connections, with advice for max_lifetime and pool sizes. Pool options in the\n"
            "URL's query (size, max_size, max_lifetime, ...) are taken into account.\n"
            "The password is never printed."
        ),
        epilog=_EXIT_CODES,
    )
    check.add_argument(
        "url",
        nargs="?",
        metavar="URL",
        help="mysql://user:password@host:port/database?size=4 (default: $MYSQLPOOL_URL)",
    )
    check.add_argument("--json", action="store_true", help="print the facts as JSON")
    check.set_defaults(func=cmd_check)

    stats = sub.add_parser(
        "stats",
        parents=[plain],
        formatter_class=fmt,
        help="print a running app's pool stats from its opt-in stats endpoint",
        description=(
            "Read a running app's pool stats from its stats endpoint (off by default: Flask\n"
            "MYSQLPOOL_STATS_ENDPOINT, or the Django equivalent) and print them, one column per\n"
            "pool. The endpoint shows counts only, never connection settings."
        ),
        epilog=_EXIT_CODES,
    )
    stats.add_argument("url", metavar="URL", help="the endpoint, e.g. http://127.0.0.1:8000/...")
    stats.add_argument("--json", action="store_true", help="print the stats as JSON")
    stats.set_defaults(func=cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; errors are one line on stderr and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CLIError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
