"""``INSTALLED_APPS = [..., "mysqlpool_ext.django"]``: checks, the ``current_pool`` resolver,
closing pools when settings change (tests) and at exit, and the management commands."""

from __future__ import annotations

from django.apps import AppConfig


class MySQLPoolConfig(AppConfig):
    name = "mysqlpool_ext.django"
    label = "mysqlpool_ext"  # "django" would be a confusing label for a third-party app
    verbose_name = "MySQL connection pool"
    default = True

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from ..scope import register_resolver
        from . import checks  # noqa: F401 - registers the system checks
        from .pools import on_setting_changed, pools

        register_resolver(pools.resolve, fallback=True)
        setting_changed.connect(on_setting_changed, dispatch_uid="mysqlpool_ext.setting_changed")
