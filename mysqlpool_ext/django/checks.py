"""System checks: ``manage.py check`` reports a bad ``MYSQLPOOL`` naming the setting.

Ids: ``mysqlpool.E001`` the setting is not a dict of pools; ``E002`` a pool is not a dict;
``E003`` unknown key; ``E004`` bad value; ``E005`` ``DATABASE`` is not a MySQL alias;
``E006`` no server given; ``E007`` a ``MYSQLPOOL`` entry for an alias that uses the pooled ENGINE
(its pool is ``OPTIONS["pool"]``); ``W001`` pools configured but the middleware is not installed.
Bad ``OPTIONS["pool"]`` values of the pooled ENGINE and a non-zero ``CONN_MAX_AGE`` are ``E004``.
Every bad option is reported, not only the first.
No check connects to the server: ``manage.py mysqlpool_check`` does that.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from .conf import is_pool_engine, read_config

__all__ = ["check_middleware", "check_settings"]

MIDDLEWARE_PATH = "mysqlpool_ext.django.middleware.MySQLPoolMiddleware"


@checks.register()  # no "database" tag: it never connects, so it always runs
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every problem ``MYSQLPOOL`` (or the setting it falls back to) has, without connecting."""
    _, errors = read_config(settings)
    return [
        checks.Error(err.message, hint=err.hint, obj=err.setting, id=f"mysqlpool.E{err.code:03d}")
        for err in errors
    ]


@checks.register()
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Without the middleware, ``current_pool`` in a view borrows per call: it works, but
    ``LAST_INSERT_ID()``, session variables and transactions do not span the request."""
    databases = getattr(settings, "DATABASES", None) or {}
    engine = any(is_pool_engine(cfg) for cfg in databases.values())
    if not hasattr(settings, "MYSQLPOOL") and not engine:
        return []
    if MIDDLEWARE_PATH in (getattr(settings, "MIDDLEWARE", None) or []):
        return []
    return [
        checks.Warning(
            "MySQLPoolMiddleware is not in MIDDLEWARE: current_pool will borrow and give back "
            "a connection per call instead of pinning one to each request"
            + (", and the ORM will not share it" if engine else ""),
            hint=f"add {MIDDLEWARE_PATH!r} to MIDDLEWARE",
            obj="MIDDLEWARE",
            id="mysqlpool.W001",
        )
    ]
