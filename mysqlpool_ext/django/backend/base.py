"""The pooled MySQL backend: Django's MySQL ``DatabaseWrapper`` on PyMySQL and a ConnectionPool.

Like Django's PostgreSQL pool, a pool is built per alias on first use from the alias's connection
parameters, ``get_new_connection`` borrows from it, ``_close`` gives back, and ``close_pool()``
closes it. What differs, and why:

- **The driver is PyMySQL**, with no ``install_as_MySQLdb()`` (see :mod:`._driver`).
- **Connection setup happens once per server connection.** The session settings Django's MySQL
  backend sends after every connect (the isolation level, ``READ COMMITTED`` by default) go into
  the pool's ``init_command``, which the server runs when the connection opens and again when the
  pool resets a session. ``autocommit`` is the connect-time mode (Django's ``AUTOCOMMIT``), so a
  borrow costs no round trip. Only a server whose ``sql_auto_is_null`` is on (not a default
  anywhere) gets ``SET SQL_AUTO_IS_NULL = 0`` per borrow, as Django sends it.
- **Inside a request scope** (``MySQLPoolMiddleware``) the ORM uses the request's connection, the
  one ``current_pool`` uses: ``LAST_INSERT_ID()``, session variables and transactions span both.
  ``_close`` then only lets go of it; the middleware gives it back when the request ends.
  Outside requests the ORM borrows when Django connects and gives back when Django closes.
- A pool is kept per set of connection parameters, so a test database (Django changes ``NAME``)
  or a ``connection.copy()`` with other ``OPTIONS`` never borrows from a pool opened for other
  parameters. A superseded pool with nothing lent is closed.
"""

from __future__ import annotations

import copy
import time
import weakref
from collections.abc import Callable
from typing import Any

import pymysql
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, IntegrityError, ProgrammingError
from django.db.backends import utils as backend_utils
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.utils import DEFAULT_DB_ALIAS  # noqa: F401 - re-exported for readers
from django.utils.asyncio import async_unsafe
from pymysql.constants import FIELD_TYPE, SERVER_STATUS

from ...connection import Connection
from ...errors import ConfigError
from ...pool import ConnectionPool
from ...scope import (
    RequestScope,
    adopt_connection,
    check_usable,
    current_scope,
    detach_connection,
)
from ..conf import engine_pool_options
from ..engine_pools import ENGINE_POOLS
from ..middleware import OrmScope
from ._driver import load_django_mysql_base
from .features import DatabaseFeatures

_mysql = load_django_mysql_base()
_MySQLCursorWrapper: Any = _mysql.CursorWrapper
_MySQLDatabaseWrapper: Any = _mysql.DatabaseWrapper

__all__ = ["ORM_HELD", "DatabaseWrapper", "close_all_pools", "engine_pools"]

NO_DB_ALIAS = "__no_db__"  # django.db.backends.base.base.NO_DB_ALIAS, stable since Django 1.x
_IN_TRANS = SERVER_STATUS.SERVER_STATUS_IN_TRANS
_AUTOCOMMIT = SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT

#: PyMySQL's converters with Django's TIME handling (what Django's backend builds from MySQLdb's).
django_conversions = {
    **pymysql.converters.conversions,
    FIELD_TYPE.TIME: backend_utils.typecast_time,
}


# alias -> [(the pool's keyword arguments, the pool)], newest last.
def engine_pools(alias: str | None = None) -> list[ConnectionPool]:
    """The open pools this backend built (for ``alias``, or all), newest last."""
    return ENGINE_POOLS.all(alias)


def close_all_pools(timeout: float = 0.0) -> None:
    """Close every pool of the backend (settings changed; at exit; before forking on purpose)."""
    ENGINE_POOLS.close(None, timeout)


def _snapshot(value: Any) -> Any:
    """A copy of the settings' containers (tests change them in place: ``NAME``, ``OPTIONS``),
    sharing every other object, so that equality later tells whether they changed. Unlike
    ``deepcopy`` it cannot fail on an object that refuses to be copied (an ``SSLContext``)."""
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_snapshot(v) for v in value)
    return value


class CursorWrapper(_MySQLCursorWrapper):
    """Django's cursor wrapper, mapping PyMySQL's errors (not whatever ``MySQLdb`` is).

    ``lock``: on a request's connection, its :meth:`RequestScope.use_lock`, held while a
    statement runs (PyMySQL's cursor reads the whole result then, so fetching needs none);
    ``pool`` its pool."""

    lock: Any = None
    pool: Any = None

    def execute(self, query: Any, args: Any = None) -> Any:
        return self._run(self.cursor.execute, query, args)

    def executemany(self, query: Any, args: Any) -> Any:
        return self._run(self.cursor.executemany, query, args)

    def _run(self, method: Callable[[Any, Any], Any], query: Any, args: Any) -> Any:
        """The server reports some constraint failures as OperationalError: Django's code
        expects IntegrityError for those, as its own MySQL cursor wrapper raises it."""
        lock = self.lock
        if lock is not None:
            lock.acquire()
        try:
            pool, conn = self.pool, self.cursor.connection
            if pool is not None and conn is not None:  # a closed cursor: PyMySQL's error
                # Given up by a current_pool block that could not end its transaction: run,
                # the statement would seem to succeed and be rolled back with it.
                check_usable(pool, conn)
            return method(query, args)
        except pymysql.err.OperationalError as e:
            if e.args[0] in self.codes_for_integrityerror:
                raise IntegrityError(*tuple(e.args)) from e
            raise
        finally:
            if lock is not None:
                lock.release()


class DatabaseWrapper(_MySQLDatabaseWrapper):
    Database = pymysql
    features_class = DatabaseFeatures

    connection: Any
    run_on_commit: list[Any]
    savepoint_ids: list[Any]
    atomic_blocks: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conn_pool: ConnectionPool | None = None  # the pool self.connection came from
        self._conn_scope: OrmScope | None = None  # the scope that owns self.connection
        self._connecting = False  # between get_new_connection() and init_connection_state()
        self._pool_cache: tuple[dict[str, Any], Any, ConnectionPool | None] | None = None
        # After a connect() into a pool: (a copy of settings_dict, that pool, the connect
        # parameters). While the settings stay equal, the next connect() skips building the
        # parameters again and asking which pool they mean (see connect()).
        self._reconnect: tuple[dict[str, Any], ConnectionPool, dict[str, Any]] | None = None
        # Between two requests of this thread: (the pool, the connection kept for the next one).
        # While kept, the wrapper looks closed to Django (``connection`` is None); the pool lends
        # it to anyone who would otherwise wait. See release_request_connection() and _take_back().
        self._kept: tuple[ConnectionPool, Any] | None = None
        # Inside ensure_connection()'s call of the base class's method (see there).
        self._mp_ensuring = False

    # -- the pool ------------------------------------------------------------------------------

    @property
    def borrowed_from(self) -> ConnectionPool | None:
        """The pool the current connection came from (None: no connection, or not pooled)."""
        return self._conn_pool

    @property
    def owned_by_scope(self) -> bool:
        """Whether a request scope owns the current connection (the ORM only uses it)."""
        return self._conn_scope is not None

    def get_connection_params(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = super().get_connection_params()
        kwargs.pop("pool", None)
        kwargs["conv"] = django_conversions
        return kwargs

    @property
    def pool(self) -> ConnectionPool | None:
        """The pool this alias's connections come from now (None: ``OPTIONS["pool"]`` is False,
        or this is Django's no-database alias)."""
        return self._pool_for(self.get_connection_params())

    def _pool_kwargs(self, conn_params: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(conn_params)
        kwargs["autocommit"] = bool(self.settings_dict["AUTOCOMMIT"])
        # Once per server connection: Django's per-connect SET, as the pool's init_command.
        if self.isolation_level:
            setup = f"SET SESSION TRANSACTION ISOLATION LEVEL {self.isolation_level.upper()}"
            user_init = kwargs.get("init_command")
            if user_init:
                # Two statements in one init_command need MULTI_STATEMENTS (mysqlclient, which
                # Django documents, always sets it; PyMySQL does not).
                kwargs["init_command"] = f"{user_init}; {setup}"
                kwargs["client_flag"] = (
                    int(kwargs.get("client_flag", 0)) | pymysql.constants.CLIENT.MULTI_STATEMENTS
                )
            else:
                kwargs["init_command"] = setup
        kwargs.setdefault("name", self.alias)
        kwargs.update(options)
        return kwargs

    def _pool_for(self, conn_params: dict[str, Any]) -> ConnectionPool | None:
        if self.alias == NO_DB_ALIAS:
            return None
        # Every Django connect() asks: answer from the last answer while the settings are the
        # same (two dict comparisons) instead of validating them again.
        # (get_connection_params() set self.isolation_level, which is not in conn_params.)
        extra = (
            self.settings_dict["OPTIONS"].get("pool", True),
            self.isolation_level,
            self.settings_dict["AUTOCOMMIT"],
        )
        cached = self._pool_cache
        if cached is not None and cached[1] == extra and cached[0] == conn_params:
            pool = cached[2]
            if pool is None or not pool.closed:
                return pool
        pool = self._find_or_build_pool(conn_params)
        self._pool_cache = (dict(conn_params), copy.deepcopy(extra), pool)
        return pool

    def _find_or_build_pool(self, conn_params: dict[str, Any]) -> ConnectionPool | None:
        try:
            options = engine_pool_options(self.alias, self.settings_dict)
        except ConfigError as exc:
            raise ImproperlyConfigured(str(exc)) from None
        if options is None:
            return None
        kwargs = self._pool_kwargs(conn_params, options)

        def build() -> ConnectionPool:
            max_age = self.settings_dict.get("CONN_MAX_AGE", 0)
            if max_age != 0:
                # Checked when the pool is built, as Django's PostgreSQL pool does (and by
                # ``manage.py check``).
                raise ImproperlyConfigured(
                    f"DATABASES[{self.alias!r}]['CONN_MAX_AGE'] must be 0 with a pool (it is "
                    f"{max_age!r}): the pool keeps connections open, Django must give each one "
                    "back when it is done with it"
                )
            try:
                return ConnectionPool(**kwargs)
            except ConfigError as exc:
                where = f"DATABASES[{self.alias!r}]"
                if exc.option in options:
                    where += f"['OPTIONS']['pool'][{exc.option!r}]"
                raise ImproperlyConfigured(f"{where}: {exc}") from None

        return ENGINE_POOLS.find_or_build(self.alias, kwargs, build)

    def close_pool(self) -> None:
        """Close this alias's pools (Django's PostgreSQL backend has the same method)."""
        ENGINE_POOLS.close(self.alias)

    # -- connections ---------------------------------------------------------------------------
    @async_unsafe
    def connect(self) -> None:
        """Django's ``connect()``; a pooled wrapper runs it once per request (``CONN_MAX_AGE``
        is 0), so after the first one it takes the parameters and the pool from the last one
        while the settings are unchanged: the same steps, in the same order, without rebuilding
        the connect parameters and comparing them with the pool's."""
        again = self._reconnect
        settings_dict = self.settings_dict
        if again is None or again[1].closed or again[0] != settings_dict:
            self._reconnect = None
            super().connect()
            pool, cached = self._conn_pool, self._pool_cache
            if pool is not None and cached is not None:
                self._reconnect = (_snapshot(settings_dict), pool, cached[0])
            return
        self.check_settings()
        self._reset_connection_state(settings_dict)
        self.connection = self._borrow(again[1], again[2])
        self.set_autocommit(settings_dict["AUTOCOMMIT"])
        self.init_connection_state()
        connection_created.send(sender=self.__class__, connection=self)
        self.run_on_commit = []

    def _reset_connection_state(self, settings_dict: dict[str, Any]) -> None:
        """What Django's ``connect()`` resets before it connects, in its order (a test compares
        the attributes with Django's own ``connect()``)."""
        self.in_atomic_block = False
        self.savepoint_ids = []
        self.atomic_blocks = []
        self.needs_rollback = False
        self.health_check_enabled = settings_dict["CONN_HEALTH_CHECKS"]
        max_age = settings_dict["CONN_MAX_AGE"]  # 0: the pool refuses anything else
        self.close_at = None if max_age is None else time.monotonic() + max_age
        self.closed_in_transaction = False
        self.errors_occurred = False
        self.health_check_done = True

    @async_unsafe
    def ensure_connection(self) -> None:
        """Django's ``ensure_connection()``; a connection kept since this thread's last request
        is taken back first (:meth:`_take_back`).

        A connection of another request's scope is let go of first: requests whose sync code
        runs in one thread by turns (the test ``AsyncClient``, which opens no thread context
        per request) share this thread's wrapper, and the first request's end would give back
        the connection the others still use."""
        scope = self._conn_scope
        if (
            scope is not None
            and not self.in_atomic_block
            and (current := current_scope()) is not scope
            and isinstance(current, OrmScope)
        ):
            if self in scope.orm:
                scope.orm.remove(self)
            self._conn_scope = self._conn_pool = None
            self.connection = None  # that scope's: it gives it back
        if self.connection is None:
            kept = self._kept
            if kept is not None:
                self._kept = None
                if self._take_back(kept[0], kept[1]):
                    return
            if self._mp_ensuring:
                # Re-entered through a wrapper of the base class's method that calls this bound
                # method back (Django's test_utils does): Django's own body, or it would recurse
                # for ever.
                if self.in_atomic_block and self.closed_in_transaction:
                    raise ProgrammingError("Cannot open a new connection in an atomic block.")
                with self.wrap_database_errors:
                    self.connect()
                return
            # The base class's method as it is now: SimpleTestCase wraps it to refuse threads'
            # connections to databases a test did not declare.
            self._mp_ensuring = True
            try:
                super().ensure_connection()
            finally:
                self._mp_ensuring = False

    def _take_back(self, pool: ConnectionPool, conn: Any) -> bool:
        """Connect by using again the connection kept since this thread's last request: True if
        done, else it went back to the pool (or someone else has it) and Django connects.

        A persistent connection (``CONN_MAX_AGE``) costs nothing between requests; a pooled
        wrapper would pay Django's ``connect()`` and ``close()`` and the pool's borrow and
        give-back on every request. The pool kept the connection for this thread only because
        giving it back would have left it as it was, and lends it to any borrower that would
        otherwise wait (``ConnectionPool.keep``). What ``connect()`` would do besides borrowing
        is done here (the state it resets) or known to be a no-op for this connection:

        - the settings are those the connection's pool was chosen for (``_reconnect``);
        - its session is in its connect-time state, with autocommit on, as ``AUTOCOMMIT`` asks;
        - ``init_connection_state`` has nothing to send (``sql_auto_is_null`` is off);
        - nobody listens to ``connection_created``: a receiver may set up each connection it
          hears of, and hears of every connect, so with one this is a full ``connect()``.

        Only inside a request scope that holds no connection of this pool yet: the connection
        becomes the request's, shared with ``current_pool``, as a borrow would.
        """
        again = self._reconnect
        settings_dict = self.settings_dict
        scope = current_scope()
        if (
            again is None
            or again[1] is not pool
            or not isinstance(scope, OrmScope)
            or scope.holds(pool)
            or not settings_dict["AUTOCOMMIT"]
            or connection_created.receivers
            or self.in_atomic_block
            or self.features.__dict__.get("is_sql_auto_is_null_enabled", True)
            or again[0] != settings_dict
            or not pool.take_kept(conn)
        ):
            pool.release_kept(conn)  # back to the pool (a no-op if another borrower took it)
            return False
        if not conn.server_status & _AUTOCOMMIT or scope.pin(pool, conn) is not conn:
            conn.close()
            return False
        self._reset_connection_state(settings_dict)
        self.connection = conn
        self.autocommit = True
        self.run_on_commit = []
        self._conn_pool = pool
        self._conn_scope = scope
        scope.orm.append(self)
        return True

    def release_kept(self) -> None:
        """Give back the connection kept for this thread's next request, if any."""
        kept = self._kept
        if kept is not None:
            self._kept = None
            kept[0].release_kept(kept[1])  # a no-op if another borrower took it

    @async_unsafe
    def close(self) -> None:
        """Django's ``close()``; also gives back a connection kept between requests, so that
        ``connections.close_all()`` (end of a thread, a task, a test) leaves nothing kept."""
        self.release_kept()
        super().close()

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        return self._borrow(self._pool_for(conn_params), conn_params)

    def _borrow(self, pool: ConnectionPool | None, conn_params: dict[str, Any]) -> Any:
        self._conn_pool = pool
        self._conn_scope = None
        self._connecting = True
        if pool is None:
            return pymysql.connect(**conn_params)
        scope = current_scope()
        if isinstance(scope, OrmScope):
            # Only a scope that lets the ORM go of its connection before giving it back (the
            # middleware's, orm_scope()); in another scope the ORM borrows for itself.
            conn = scope.connection_for(pool)
            self._conn_scope = scope
            scope.orm.append(self)
            return conn
        conn = pool.get_connection()
        ORM_HELD.add(self)
        return conn

    def set_autocommit(
        self, autocommit: bool, force_begin_transaction_with_broken_autocommit: bool = False
    ) -> None:
        conn = self.connection
        if (
            self._connecting
            and autocommit is True
            and self._conn_pool is not None
            and conn.autocommit_mode is True
            and conn.server_status & _AUTOCOMMIT
            and not self.run_commit_hooks_on_set_autocommit_on
        ):
            # Django's connect() asking for the mode the pool opened the session in (and its
            # reset restores): PyMySQL would send nothing, and connect() has just done what the
            # checks around it check. This is all that would change.
            self.autocommit = True
            return
        super().set_autocommit(autocommit, force_begin_transaction_with_broken_autocommit)

    def init_connection_state(self) -> None:
        connecting, self._connecting = self._connecting, False
        if self._conn_pool is None or not connecting:
            # No pool, or called by hand: exactly what Django's MySQL backend does.
            super().init_connection_state()
            return
        # On connect: the version check (once per process); the session settings are already
        # in place (the pool's init_command).
        BaseDatabaseWrapper.init_connection_state(self)
        if self.features.is_sql_auto_is_null_enabled:
            with self.cursor() as cursor:
                cursor.execute("SET SQL_AUTO_IS_NULL = 0")

    @async_unsafe
    def create_cursor(self, name: Any = None) -> Any:
        cursor = CursorWrapper(self.connection.cursor())
        scope = self._conn_scope
        cursor.pool = self._conn_pool
        if scope is not None:
            cursor.lock = scope.use_lock(self._conn_pool)  # type: ignore[arg-type]
        return cursor

    def _locked(self, action: Callable[[], Any], check: bool = True) -> Any:
        """``action`` (a round trip on the connection) under the request's use lock, if the
        connection is a request's: another thread of the request may be using it. ``check``:
        first raise if a current_pool block gave the connection up (its transaction is still
        open); a ROLLBACK or a ping is always safe."""
        scope = self._conn_scope
        pool = self._conn_pool
        if scope is None:
            if check and pool is not None:
                with self.wrap_database_errors:  # Django's atomic() then rolls back
                    check_usable(pool, self.connection)
            return action()
        with scope.use_lock(pool):  # type: ignore[arg-type]
            if check:
                with self.wrap_database_errors:
                    check_usable(pool, self.connection)  # type: ignore[arg-type]
            return action()

    def _commit(self) -> None:
        self._locked(lambda: BaseDatabaseWrapper._commit(self))

    def _set_autocommit(self, autocommit: bool) -> None:
        self._locked(lambda: super(DatabaseWrapper, self)._set_autocommit(autocommit))

    def _rollback(self) -> None:
        try:
            self._locked(lambda: BaseDatabaseWrapper._rollback(self), check=False)
        except pymysql.err.NotSupportedError:
            pass

    def is_usable(self) -> bool:
        if self.connection is None:
            return False
        try:
            self._locked(self.connection.ping, check=False)
        except pymysql.err.Error:
            return False
        return True

    def close_if_health_check_failed(self) -> None:
        if self._conn_pool is not None:
            return  # the pool checks a connection before lending it after an idle spell
        super().close_if_health_check_failed()

    def get_autocommit(self) -> bool:
        """False while ``current_pool.transaction()`` (a BEGIN on this same connection) is open,
        so ``atomic()`` inside it nests as a savepoint instead of committing it."""
        autocommit: bool = super().get_autocommit()
        if autocommit and not self.in_atomic_block and self._conn_pool is not None:
            conn = self.connection
            if isinstance(conn, Connection) and conn.server_status & _IN_TRANS:
                return False
        return autocommit

    def _close(self) -> None:
        conn = self.connection
        if conn is None or self._conn_pool is None:
            super()._close()
            return
        scope, pool = self._conn_scope, self._conn_pool
        self._conn_scope = None
        self._conn_pool = None
        if scope is not None:
            # The request's connection: the middleware gives it back when the request ends,
            # unless it broke (then the scope must not hand it out again), or a transaction is
            # open: closing a connection inside a transaction rolls it back (the server does
            # when the socket closes), so Django believes it gone. Left open, the next statement
            # of the request (or the ORM's next connect: SET autocommit=1) would commit it.
            if self in scope.orm:
                scope.orm.remove(self)
            if (
                not conn.open
                or self.in_atomic_block
                or not self.autocommit
                or conn.server_status & _IN_TRANS
            ):
                detached = detach_connection(scope, pool, conn)
                if detached is not None:
                    detached.close()  # the pool rolls back (or discards it)
            return
        ORM_HELD.discard(self)
        with self.wrap_database_errors:
            try:
                if self.in_atomic_block or not self.autocommit:
                    # Closed inside a transaction: a closed socket would make the server roll
                    # back; a pooled connection must too. Django knows a transaction may be open
                    # even when the last packet's status flags do not say so (a result set's
                    # EOF packet, e.g. MariaDB's INSERT ... RETURNING, does not update them).
                    conn.rollback()
            finally:
                conn.close()
        self.connection = None

    def transaction_ended(self, committed: bool) -> None:
        """A ``current_pool.transaction()`` block on this wrapper's connection ended its
        transaction (COMMIT, or ROLLBACK). Django saw none of it (the block sent them itself),
        and ``get_autocommit()`` made it treat the block as a manual transaction: do what its
        ``commit()`` and ``set_autocommit(True)``, or its ``rollback()``, would do.
        """
        if self.in_atomic_block:
            return  # the block was a savepoint of Django's transaction, not a transaction
        try:
            self.validate_thread_sharing()
        except DatabaseError:
            # Another thread's wrapper (the block ran in a thread of its own): its callbacks
            # may use the ORM, which is that thread's; not run here. (The request's end drops
            # what is left, as Django does when a connection closes.)
            return
        if committed:
            self.run_and_clear_commit_hooks()
        else:
            self.run_on_commit = []
            self.needs_rollback = False
            self.errors_occurred = False

    def release_request_connection(self, scope: RequestScope, keep: bool = False) -> None:
        """End of ``scope``'s request: stop using its connection (the scope gives it back).

        ``keep``: the thread that ran the request will likely run the next one with this
        wrapper (WSGI): keep the connection for it when the pool allows (``pool.keep``), taken
        out of the scope; :meth:`_take_back` uses it again. No I/O, so the async middleware may
        call it on the event loop."""
        if self._conn_scope is not scope:
            return
        pool = self._conn_pool
        self._conn_scope = None
        self._conn_pool = None
        self.run_on_commit = []
        if keep and not self.in_atomic_block and pool is not None and self._kept is None:
            conn = detach_connection(scope, pool)
            if conn is not None:
                if pool.keep(conn):
                    self._kept = (pool, conn)
                else:
                    adopt_connection(scope, pool, conn)  # the scope gives it back
        if self.in_atomic_block:
            # What Django's close() does to a connection closed inside atomic().
            self.closed_in_transaction = True
            self.needs_rollback = True
        else:
            self.connection = None


#: The wrappers (of every thread) that hold a pooled connection of their own, borrowed outside a
#: request scope: only then can a request find one to share (``middleware._share_orm_connections``),
#: so the middleware asks nothing of Django's connection handler while this is empty. Weak: a
#: wrapper of a finished thread must stay collectable, so that the pool reclaims its connection.
ORM_HELD: weakref.WeakSet[DatabaseWrapper] = weakref.WeakSet()


def _register_current_pool() -> None:
    """``current_pool`` means this alias's pool even without the app in ``INSTALLED_APPS``."""
    from ...scope import register_resolver
    from ..pools import pools

    register_resolver(pools.resolve, fallback=True)


_register_current_pool()
