"""mysqlpool_ext: a connection pool for PyMySQL, for threads and asyncio, with Flask and Django
integrations.

    import mysqlpool_ext
    pool = mysqlpool_ext.ConnectionPool(size=4, host="127.0.0.1", user="app", password="...",
                                        database="shop")
    with pool.connection() as conn:
        conn.execute_query("SELECT 1")

The core depends on PyMySQL only; ``mysqlpool_ext.flask`` and ``mysqlpool_ext.django`` are
optional adapters.
"""

from __future__ import annotations

from .config import PoolOptions
from .connection import Connection, RowCount
from .errors import (
    ConfigError,
    ConnectionReturnedError,
    GetConnectionFromPoolError,
    PoolClosedError,
    PoolError,
    PoolTimeout,
    TransactionLostError,
)
from .pool import ConnectionPool, logger
from .registry import get_default_pool, get_pool, set_default_pool
from .scope import current_pool, request_scope

__version__ = "0.1.0"


__all__ = [
    "ConfigError",
    "Connection",
    "ConnectionPool",
    "ConnectionReturnedError",
    "GetConnectionFromPoolError",
    "PoolClosedError",
    "PoolError",
    "PoolOptions",
    "PoolTimeout",
    "RowCount",
    "TransactionLostError",
    "__version__",
    "current_pool",
    "get_default_pool",
    "get_pool",
    "logger",
    "request_scope",
    "set_default_pool",
]
