"""``manage.py mysqlpool_stats``: the pools' counters, and the server's view of their connections.

Pools live in each worker process, so a management command cannot read a running site's counters
from memory: ``--url http://127.0.0.1:8000/mysqlpool/stats`` reads them from the opt-in stats view
(:mod:`mysqlpool_ext.django.views`) of a running worker. Without ``--url`` it shows, per alias, the
server's connections for the pool's user by state (from the process list), which covers every
worker at once.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...pools import pools


class Command(BaseCommand):
    help = "Show the MySQL pools' counters (from a running site) or the server's connections."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("aliases", nargs="*", help="pool aliases (default: all)")
        parser.add_argument("--url", help="read the counters from this running stats view")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["url"]:
            try:
                with urllib.request.urlopen(options["url"], timeout=10) as resp:
                    data = json.load(resp)
            except (OSError, ValueError) as exc:
                raise CommandError(f"cannot read {options['url']}: {exc}") from None
        else:
            data = {"server": self._server_view(options["aliases"] or pools.aliases())}
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True))
            return
        for section, per_alias in data.items():
            if not isinstance(per_alias, dict):
                self.stdout.write(f"{section}: {per_alias}")
                continue
            for alias, counts in per_alias.items():
                self.stdout.write(self.style.MIGRATE_HEADING(f"{section} {alias}"))
                for key, value in counts.items():
                    self.stdout.write(f"  {key:24} {value}")

    def _server_view(self, aliases: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for alias in aliases:
            pool = pools[alias]
            user = pool._connect_kwargs.get("user")
            rows = pool.execute_query(
                "SELECT COMMAND, COUNT(*) FROM information_schema.PROCESSLIST"
                " WHERE USER = %s AND ID <> CONNECTION_ID() GROUP BY COMMAND",
                (user,),
            )
            by_state = {str(cmd).lower(): int(n) for cmd, n in rows}
            out[alias] = {
                "server_connections": sum(by_state.values()),
                **{f"server_{k}": v for k, v in sorted(by_state.items())},
                "this_process_pool_max": pool.stats()["pool_max"],
            }
        return out
