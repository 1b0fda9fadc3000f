"""``flask mysqlpool check|stats``: the app's pools through the shared diagnostics.

Imported only when Flask's command line runs one of these commands (see ``LazyCLI`` in
:mod:`.extension`). The report and the stats table are the very ones ``mysqlpool-ext check|stats``
and ``manage.py mysqlpool_check|mysqlpool_stats`` print, and one rule decides the exit code.
"""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..diagnostics import (
    DiagnosticError,
    check_pools,
    fetch_stats,
    stats_lines,
    stats_payload,
    stats_title,
)
from ..pool import ConnectionPool
from .config import EXTENSION_KEY


def app_pools(app: Flask) -> dict[str, ConnectionPool]:
    """The app's pools, from the state the extension keeps in ``app.extensions`` (this module is
    imported by the extension, lazily, so it does not import the extension back)."""
    state = app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise click.UsageError(
            f"the MySQLPool extension is not registered on app {app.name!r}: "
            "did you forget to call ext.init_app(app)?"
        )
    pools: dict[str, ConnectionPool] = state.all_pools()
    return pools


__all__ = ["mysqlpool_cli"]

mysqlpool_cli = AppGroup("mysqlpool", help="Check and inspect the app's MySQL connection pools.")


@mysqlpool_cli.command("check")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for a connection.")
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes that each open these pools (gunicorn -w), for the headroom rule.",
)
@click.option(
    "--preload", is_flag=True, help="The app runs under gunicorn --preload: count the master too."
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 on warnings too (not enough headroom, max_lifetime >= wait_timeout, ...).",
)
def check_command(timeout: float, processes: int, preload: bool, strict: bool) -> None:
    """Connect with each pool and compare the server's limits (wait_timeout, max_connections)
    with the pools' settings. Exits 1 if a pool cannot connect (with --strict: on warnings too).
    """
    report = check_pools(app_pools(current_app), timeout, processes, preload)
    for line in report.lines(strict):
        click.echo(line)
    code = report.exit_code(strict)
    if code:
        raise SystemExit(code)


@mysqlpool_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--from",
    "from_url",
    default=None,
    help="Read a running server's stats from its MYSQLPOOL_STATS_ENDPOINT URL "
    "(e.g. http://127.0.0.1:8000/_mysqlpool/stats). Without it: this command's own process.",
)
def stats_command(as_json: bool, from_url: str | None) -> None:
    """Print the pools' counters: a running server's (--from URL), or this command's own."""
    if from_url:
        try:
            pid, pools = fetch_stats(from_url)
        except DiagnosticError as exc:
            click.echo(f"Error: {exc}", err=True)
            raise SystemExit(exc.code) from None
    else:
        payload = stats_payload(app_pools(current_app))
        pid, pools = payload["pid"], payload["pools"]
    if as_json:
        click.echo(json.dumps({"pid": pid, "pools": pools}, indent=2, sort_keys=True))
        return
    for line in stats_lines(pools, stats_title(from_url, pid)):
        click.echo(line)
