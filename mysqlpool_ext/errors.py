"""The pool's exceptions.

They sit under PyMySQL's own ``pymysql.err.Error`` so that DB-API ``except`` clauses written for
PyMySQL keep catching them; the two "could not get a connection" errors are also
``OperationalError`` because that is what PyMySQL raises when it cannot reach the server, and code
that retries on ``OperationalError`` should retry on a pool timeout too. Errors that come from MySQL
itself stay PyMySQL's exceptions. Every message names the pool; none ever contains a password.
"""

from __future__ import annotations

import pymysql

__all__ = [
    "ConfigError",
    "ConnectionReturnedError",
    "GetConnectionFromPoolError",
    "PoolClosedError",
    "PoolError",
    "PoolTimeout",
]


class PoolError(pymysql.err.Error):
    """Base class of every error raised by the pool itself."""


class GetConnectionFromPoolError(PoolError, pymysql.err.OperationalError):
    """No connection could be handed out before the deadline (the seed's name for it)."""


PoolTimeout = GetConnectionFromPoolError
"""psycopg_pool's name for the same error."""


class PoolClosedError(PoolError, pymysql.err.OperationalError):
    """The pool was closed: it lends nothing any more."""


class ConnectionReturnedError(PoolError, pymysql.err.InterfaceError):
    """A connection was used after it went back to the pool.

    Using it would mean sharing its socket with whoever borrowed it next, which is exactly the
    ``Packet sequence number wrong`` failure the pool exists to prevent.
    """


class ConfigError(PoolError, ValueError):
    """An option is invalid; the message names the option (never its value when it is secret).

    ``option`` is the name of the offending option (None when the error is about a whole URL or
    setting), so that framework adapters can map it to their own setting names without parsing
    the message.
    """

    def __init__(self, *args: object, option: str | None = None) -> None:
        super().__init__(*args)
        self.option = option
