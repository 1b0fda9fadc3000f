"""``manage.py mysqlpool_check``: connect with each pool and check it against the server.

What ``manage.py check`` cannot see because it never connects:

- the server answers and accepts the credentials; its version;
- whether the connection is encrypted (TLS), and with which cipher;
- ``wait_timeout`` against the pool's ``max_lifetime``: the server closes connections idle longer
  than ``wait_timeout``; a pool that keeps them longer hands out dead ones (caught by the liveness
  check, at a cost), so ``max_lifetime`` should be shorter;
- ``max_connections`` headroom: ``MAX_SIZE`` x worker processes (``--processes``) for every pool
  must fit in what the server still allows.

Exits non-zero when a pool cannot connect or a check fails (``--fail-on-warning`` makes warnings
count too), so it can gate a deploy.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...pools import pools


class Command(BaseCommand):
    help = "Connect with each MySQL pool and check it against the server's settings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("aliases", nargs="*", help="pool aliases (default: all)")
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="worker processes that will each open these pools (gunicorn -w), default 1",
        )
        parser.add_argument(
            "--fail-on-warning", action="store_true", help="exit non-zero on warnings too"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        aliases = options["aliases"] or pools.aliases()
        if not aliases:
            raise CommandError(
                "no pool is configured: set MYSQLPOOL, a MySQL DATABASES['default'] "
                "or MYSQLPOOL_URL"
            )
        processes = max(1, options["processes"])
        failures = warnings = 0
        needed_by_server: dict[tuple[str, int], int] = {}
        headroom_by_server: dict[tuple[str, int], int] = {}
        for alias in aliases:
            self.stdout.write(self.style.MIGRATE_HEADING(f"pool {alias!r}"))
            try:
                pool = pools[alias]
                facts = self._facts(pool)
            except ImproperlyConfigured as exc:
                self.stdout.write(self.style.ERROR(f"  misconfigured: {exc}"))
                failures += 1
                continue
            except Exception as exc:  # noqa: BLE001 - report every pool, then fail
                self.stdout.write(self.style.ERROR(f"  cannot connect: {exc}"))
                failures += 1
                continue
            self.stdout.write(f"  server      {pool.url}")
            self.stdout.write(f"  version     {facts['version']}")
            if facts["cipher"]:
                self.stdout.write(f"  TLS         yes ({facts['cipher']})")
            else:
                self.stdout.write(
                    self.style.WARNING("  TLS         no (the connection is not encrypted)")
                )
                if facts["host"] not in ("127.0.0.1", "::1", "localhost", None):
                    warnings += 1
            lifetime = pool.options.max_lifetime
            wait = facts["wait_timeout"]
            if lifetime is None or lifetime >= wait:
                warnings += 1
                self.stdout.write(
                    self.style.WARNING(
                        f"  lifetime    MAX_LIFETIME={lifetime} is not below the server's "
                        f"wait_timeout={wait}s: set MAX_LIFETIME below {wait}"
                    )
                )
            else:
                self.stdout.write(
                    f"  lifetime    MAX_LIFETIME={lifetime:g}s < wait_timeout={wait}s"
                )
            key = (facts["server_id"], facts["port"])
            needed_by_server[key] = needed_by_server.get(key, 0) + pool.max_size * processes
            headroom_by_server[key] = facts["max_connections"] - facts["connected"]
            self.stdout.write(
                f"  capacity    MAX_SIZE={pool.max_size} x {processes} process(es); server "
                f"max_connections={facts['max_connections']}, connected now={facts['connected']}"
            )
        for key, needed in needed_by_server.items():
            headroom = headroom_by_server[key]
            if needed > headroom:
                warnings += 1
                self.stdout.write(
                    self.style.WARNING(
                        f"headroom: the pools may open {needed} connections but the server "
                        f"has room for {headroom} more: raise max_connections or lower MAX_SIZE"
                    )
                )
            else:
                self.stdout.write(
                    f"headroom: {needed} needed at most, {headroom} free on the server"
                )
        if failures or (warnings and options["fail_on_warning"]):
            raise CommandError(f"{failures} pool(s) failed, {warnings} warning(s)")
        self.stdout.write(self.style.SUCCESS(f"OK ({warnings} warning(s))"))

    @staticmethod
    def _facts(pool: Any) -> dict[str, Any]:
        with pool.connection() as conn:
            version = conn.execute_query("SELECT VERSION()", return_one=True)[0]
            cipher = conn.execute_query("SHOW SESSION STATUS LIKE 'Ssl_cipher'", return_one=True)
            variables = dict(
                conn.execute_query(
                    "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                    "('wait_timeout', 'max_connections', 'server_id', 'port')"
                )
            )
            connected = conn.execute_query(
                "SHOW GLOBAL STATUS LIKE 'Threads_connected'", return_one=True
            )
            host = conn.host
        return {
            "version": version,
            "cipher": cipher[1] if cipher else "",
            "wait_timeout": int(variables.get("wait_timeout", 28800)),
            "max_connections": int(variables.get("max_connections", 151)),
            "server_id": str(variables.get("server_id", "")) + "@" + str(host),
            "port": int(variables.get("port", 0)),
            "connected": int(connected[1]) if connected else 0,
            "host": host,
        }
