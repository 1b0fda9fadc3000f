"""``manage.py mysqlpool_check``: connect with each pool and check it against the server.

What ``manage.py check`` cannot see because it never connects: the server answers and accepts the
credentials; whether the connection is encrypted; ``wait_timeout`` against ``MAX_LIFETIME``; and
the headroom: ``MAX_SIZE`` x worker processes (``--processes``, plus the master with
``--preload``) for every pool on a server must fit in what that server still allows.

The report and the rule are :mod:`mysqlpool_ext.diagnostics`', the same as ``mysqlpool-ext
check`` and ``flask mysqlpool check``. Exits 1 when a pool cannot connect; ``--strict`` makes
warnings (not enough headroom among them) fail too, so it can gate a deploy.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....diagnostics import add_check_arguments, check_pools
from ....pool import ConnectionPool
from ...pools import pools


class Command(BaseCommand):
    help = "Connect with each MySQL pool and check it against the server's settings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("aliases", nargs="*", help="pool aliases (default: all)")
        parser.add_argument(
            "--timeout", type=float, default=5.0, help="seconds to wait for a connection"
        )
        add_check_arguments(parser, "--fail-on-warning")

    def handle(self, *args: Any, **options: Any) -> None:
        aliases = options["aliases"] or pools.aliases()
        if not aliases:
            raise CommandError(
                "no pool is configured: set MYSQLPOOL, a MySQL DATABASES['default'] "
                "or MYSQLPOOL_URL"
            )
        if options["processes"] < 1:
            raise CommandError("--processes must be at least 1")
        built: dict[str, ConnectionPool | Exception] = {}
        for alias in aliases:
            try:
                built[alias] = pools[alias]
            except (ImproperlyConfigured, KeyError) as exc:
                built[alias] = exc
        report = check_pools(built, options["timeout"], options["processes"], options["preload"])
        strict = options["strict"]
        *lines, result = report.lines(strict)
        for line in lines:
            self.stdout.write(line)
        code = report.exit_code(strict)
        if code:
            raise CommandError(result, returncode=code)
        self.stdout.write(self.style.SUCCESS(result))
