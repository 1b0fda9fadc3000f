"""Django's MySQL features, plus what a pool changes for Django's own test-suite."""

from __future__ import annotations

from typing import Any

from django.utils.functional import cached_property

from ._driver import load_django_mysql_base

load_django_mysql_base()  # Django's features module imports MySQLdb through its base module
from django.db.backends.mysql.features import (  # noqa: E402
    DatabaseFeatures as MySQLDatabaseFeatures,
)

_Base: Any = MySQLDatabaseFeatures


class DatabaseFeatures(_Base):
    @cached_property
    def django_test_skips(self) -> dict[str, set[str]]:
        skips: dict[str, set[str]] = dict(super().django_test_skips)
        if self.connection.settings_dict["OPTIONS"].get("pool", True) is not False:
            # The same two Django skips for its PostgreSQL pool: the pool checks a connection
            # before lending it after an idle spell, so Django's own check is not called.
            skips["Pool does implicit health checks"] = {
                "backends.base.test_base.ConnectionHealthChecksTests.test_health_checks_enabled",
                "backends.base.test_base.ConnectionHealthChecksTests."
                "test_set_autocommit_health_checks_enabled",
            }
        return skips
