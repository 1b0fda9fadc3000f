"""``manage.py mysqlpool_stats``: the pools' counters, and the server's view of their connections.

Pools live in each worker process, so a management command cannot read a running site's counters
from memory: ``--from http://127.0.0.1:8000/mysqlpool/stats`` reads them from the opt-in stats view
(:mod:`mysqlpool_ext.django.views`) of a running worker, through the same fetcher and table as
``mysqlpool-ext stats`` and ``flask mysqlpool stats --from``. Without it, it shows per alias the
server's connections for the pool's user by state (from the process list), which covers every
worker at once.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....diagnostics import DiagnosticError, fetch_stats, stats_lines, stats_title
from ...pools import pools


class Command(BaseCommand):
    help = "Show the MySQL pools' counters (from a running site) or the server's connections."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("aliases", nargs="*", help="pool aliases (default: all)")
        parser.add_argument(
            "--from",
            "--url",
            dest="url",
            help="read the counters from this running stats view (http://.../mysqlpool/stats)",
        )
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["url"]
        if url:
            try:
                pid, per_pool = fetch_stats(url)
            except DiagnosticError as exc:
                raise CommandError(str(exc), returncode=exc.code) from None
            data: dict[str, Any] = {"pid": pid, "pools": per_pool}
            title = stats_title(url, pid)
        else:
            per_pool = self._server_view(options["aliases"] or pools.aliases())
            data = {"server": per_pool}
            title = "the server's connections for each pool's user (every process at once)"
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True))
            return
        for line in stats_lines(per_pool, title):
            self.stdout.write(line)

    @staticmethod
    def _server_view(aliases: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for alias in aliases:
            pool = pools[alias]
            user = pool.options.connect_kwargs.get("user")
            rows = pool.execute_query(
                "SELECT COMMAND, COUNT(*) FROM information_schema.PROCESSLIST"
                " WHERE USER = %s AND ID <> CONNECTION_ID() GROUP BY COMMAND",
                (user,),
            )
            by_state = {str(cmd).lower(): int(n) for cmd, n in rows}
            out[alias] = {
                "server_connections": sum(by_state.values()),
                **{f"server_{k}": v for k, v in sorted(by_state.items())},
                "this_process_pool_max": pool.max_size,
            }
        return out
