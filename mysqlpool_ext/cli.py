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
from collections.abc import Callable, Sequence

from .diagnostics import (
    EXIT_AUTH,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    DiagnosticError,
    add_check_arguments,
    check_url,
    fetch_stats,
    get_console,
    print_table,
    stats_rows,
    stats_title,
)

__all__ = ["EXIT_AUTH", "EXIT_FAILURE", "EXIT_UNREACHABLE", "EXIT_USAGE", "CLIError", "main"]

PROG = "mysqlpool-ext"

#: A failure reported as one line on stderr with its exit code (the diagnostics' own error, so
#: the demo and the diagnostics raise it without importing this module).
CLIError = DiagnosticError

#: Exit status after the reader of our output went away (``... | head -1``): 128 + SIGPIPE, as a
#: shell would report a process killed by it.
EXIT_BROKEN_PIPE = 141


# -- check ------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("MYSQLPOOL_URL")
    if not url:
        raise CLIError("no URL given and MYSQLPOOL_URL is not set", EXIT_USAGE)
    if args.processes < 1:
        raise CLIError("--processes must be at least 1", EXIT_USAGE)
    report = check_url(url, processes=args.processes, preload=args.preload)
    if args.json:
        print(json.dumps(report.as_dict(args.strict), indent=2))
    else:
        for line in report.lines(args.strict):
            print(line)
    return report.exit_code(args.strict)


# -- stats ------------------------------------------------------------------------------------


def cmd_stats(args: argparse.Namespace) -> int:
    pid, pools = fetch_stats(args.url)
    if args.json:
        print(json.dumps({"pid": pid, "pools": pools}, indent=2, sort_keys=True))
        return 0
    header, rows = stats_rows(pools)
    print_table(get_console(args.plain), stats_title(args.url, pid), header, rows)
    return 0


# -- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


# -- parser -----------------------------------------------------------------------------------

_EXIT_CODES = """\
exit codes:
  0    success
  1    failure (the demo failed, the stats endpoint answered an error, check --strict
       found a warning such as not enough headroom)
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

    def command(
        name: str, func: Callable[[argparse.Namespace], int], summary: str, description: str
    ) -> argparse.ArgumentParser:
        """A subcommand: ``--plain``, the exit codes under its help, and ``func`` to run it."""
        subparser = sub.add_parser(
            name,
            parents=[plain],
            formatter_class=fmt,
            help=summary,
            description=description,
            epilog=_EXIT_CODES,
        )
        subparser.set_defaults(func=func)
        return subparser

    demo = command(
        "demo",
        cmd_demo,
        "start a throwaway MariaDB, serve the example app, load it, show the pool at work",
        (
            "Start a throwaway MariaDB in a temp dir (or use MYSQLPOOL_URL / --url), load a\n"
            "small schema, serve the example Flask app under gunicorn and drive concurrent HTTP\n"
            "traffic at it, showing the pool's stats live. Then the same traffic through a\n"
            "handler that opens a new PyMySQL connection per request, for contrast, and a\n"
            "summary cross-checked against the server's own counters. Ctrl-C at any moment\n"
            "stops everything and removes the temp dirs."
        ),
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
        default=None,
        help="which app to serve: the example Flask app, the example Django project, or a "
        "minimal built-in WSGI app. Default: flask when Flask is installed, else builtin. "
        "An --app that cannot be served here is an error.",
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

    check = command(
        "check",
        cmd_check,
        "connect to a server and advise on max_lifetime and pool sizes",
        (
            "Connect once and print the server version, whether TLS is in use, wait_timeout and\n"
            "max_connections, with advice for max_lifetime and pool sizes. Pool options in the\n"
            "URL's query (size, max_size, max_lifetime, ...) are taken into account.\n"
            "Headroom: --processes N x max_size (+ size for a --preload master) must fit in\n"
            "max_connections minus what others hold minus a 10 percent spare; --strict makes a\n"
            "warning (such as not enough headroom) exit 1, so the check can gate a deploy.\n"
            "The same report as `flask mysqlpool check` and `manage.py mysqlpool_check`.\n"
            "The password is never printed."
        ),
    )
    check.add_argument(
        "url",
        nargs="?",
        metavar="URL",
        help="mysql://user:password@host:port/database?size=4 (default: $MYSQLPOOL_URL)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    add_check_arguments(check)

    stats = command(
        "stats",
        cmd_stats,
        "print a running app's pool stats from its opt-in stats endpoint",
        (
            "Read a running app's pool stats from its stats endpoint (off by default: Flask\n"
            "MYSQLPOOL_STATS_ENDPOINT, or the Django equivalent) and print them, one column per\n"
            "pool. The endpoint shows counts only, never connection settings."
        ),
    )
    stats.add_argument("url", metavar="URL", help="the endpoint, e.g. http://127.0.0.1:8000/...")
    stats.add_argument("--json", action="store_true", help="print the stats as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; errors are one line on stderr and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
        sys.stdout.flush()  # inside the try: a closed pipe is reported here, not at exit
        return code
    except CLIError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head -1``): not an error worth a traceback. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again (Python's own advice).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
