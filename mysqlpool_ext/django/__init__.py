"""Django integration: ``INSTALLED_APPS += ["mysqlpool_ext.django"]`` and the middleware.

    MYSQLPOOL = {"default": {"URL": "mysql://app:secret@127.0.0.1:3306/shop", "SIZE": 10}}
    MIDDLEWARE = ["mysqlpool_ext.django.middleware.MySQLPoolMiddleware", ...]

    from mysqlpool_ext import current_pool
    def user(request, uid):
        row = current_pool.execute_query("SELECT ...", (uid,), dictcursor=True, return_one=True)

See :mod:`mysqlpool_ext.django.conf` for the settings, :mod:`.middleware` for the request scope.
This package imports Django lazily: importing it does not configure settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ..pool import ConnectionPool
    from ..scope import RequestScope

__all__ = ["close_pools", "get_pool", "orm_scope"]


def get_pool(alias: str = "default") -> ConnectionPool:
    """The Django pool for ``alias``, built on first use."""
    from .pools import get_pool as _get_pool

    return _get_pool(alias)


def close_pools(timeout: float = 0.0) -> None:
    """Close every Django pool built so far."""
    from .pools import close_pools as _close_pools

    _close_pools(timeout)


def orm_scope() -> AbstractContextManager[RequestScope]:
    """Outside a request: the ORM and ``current_pool`` share one connection in the block."""
    from .middleware import orm_scope as _orm_scope

    return _orm_scope()


def __getattr__(name: str) -> Any:
    if name == "pools":
        from .pools import pools

        return pools
    raise AttributeError(name)
