"""The pool's exceptions.

They sit under PyMySQL's own ``pymysql.err.Error`` so that DB-API ``except`` clauses written for
PyMySQL keep catching them; the two "could not get a connection" errors are also
``OperationalError`` because that is what PyMySQL raises when it cannot reach the server, and code
that retries on ``OperationalError`` should retry on a pool timeout too. Errors that come from MySQL
itself stay PyMySQL's exceptions. Every message names the pool; none ever contains a password.

The base classes are taken from ``pymysql.err`` as PyMySQL's own modules bound it: after
``pymysql.install_as_MySQLdb()`` and Django's MySQL backend, the *attribute* ``pymysql.err`` can
point at a second copy of that module (imported again as ``MySQLdb.err``), whose classes PyMySQL
never raises.
"""

from __future__ import annotations

import sys

import pymysql
from pymysql.err import Error, InterfaceError, OperationalError

__all__ = [
    "ConfigError",
    "ConnectionReturnedError",
    "GetConnectionFromPoolError",
    "PoolClosedError",
    "PoolError",
    "PoolTimeout",
    "TransactionLostError",
    "restore_pymysql_modules",
]


class PoolError(Error):
    """Base class of every error raised by the pool itself."""


class GetConnectionFromPoolError(PoolError, OperationalError):
    """No connection could be handed out before the deadline (the seed's name for it)."""


PoolTimeout = GetConnectionFromPoolError
"""psycopg_pool's name for the same error."""


class PoolClosedError(PoolError, OperationalError):
    """The pool was closed: it lends nothing any more."""


class ConnectionReturnedError(PoolError, InterfaceError):
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


class TransactionLostError(PoolError, OperationalError):
    """A block ended without an error, but its open transaction could not be committed.

    The connection was lost (killed, the server restarted, the network failed) after the
    transaction began; the server rolled it back. Raised so that a block which ends normally
    always means "committed".
    """


def restore_pymysql_modules() -> None:
    """Undo a side effect of ``pymysql.install_as_MySQLdb()``.

    Once ``MySQLdb`` *is* the ``pymysql`` package, ``import MySQLdb.converters`` (Django's MySQL
    backend does it) loads second copies of PyMySQL's submodules under ``MySQLdb.*`` and rebinds
    the package attributes ``pymysql.err``, ``pymysql.converters``... to the copies. PyMySQL keeps
    raising its original classes, so ``except pymysql.err.OperationalError`` stops matching
    anything. Pointing the attributes back at the modules PyMySQL itself uses repairs that; the
    ``MySQLdb.*`` copies are left alone for whoever imported them.
    """
    package = sys.modules.get("pymysql") or pymysql
    for name in ("err", "constants", "converters", "times", "charset", "cursors", "connections"):
        original = sys.modules.get(f"pymysql.{name}")
        if original is not None and getattr(package, name, None) is not original:
            setattr(package, name, original)


# At import, before any other module of the package reads PyMySQL's submodules by attribute.
restore_pymysql_modules()
