"""The Flask extension: ``MySQLPool(app)`` gives every request one pooled connection.

    from flask import Flask
    from mysqlpool_ext import current_pool
    from mysqlpool_ext.flask import MySQLPool

    app = Flask(__name__)
    app.config["MYSQLPOOL_URL"] = "mysql://app:secret@127.0.0.1:3306/shop"
    MySQLPool(app)                 # or ext = MySQLPool(); ext.init_app(app) in a factory

    @app.get("/users/<int:uid>")
    def user(uid):
        return current_pool.execute_query(
            "SELECT id, name FROM users WHERE id=%s", (uid,), dictcursor=True, return_one=True
        )

How it fits together (Flask-SQLAlchemy's shape, the core's request scope):

- ``init_app`` reads ``MYSQLPOOL_*`` keys with ``app.config.setdefault``, validates them (a bad
  value is a :class:`~mysqlpool_ext.ConfigError` naming the key), builds the app's pools and keeps
  them in ``app.extensions["mysqlpool"]``: the extension object holds no per-app state, so one
  ``MySQLPool()`` serves any number of apps (app factory, tests).
- A resolver registered with :func:`mysqlpool_ext.scope.register_resolver` makes
  ``current_pool`` mean the current app's pool inside an app context.
- A ``before_request`` hook opens a :class:`~mysqlpool_ext.scope.RequestScope`; the first
  ``current_pool`` call of the request borrows a connection and pins it to the request, so
  ``LAST_INSERT_ID()``, session variables and transactions behave. ``teardown_request`` /
  ``teardown_appcontext`` give everything back — an open transaction is rolled back, never
  committed — after the view returned, raised, or finished streaming (Flask defers both teardowns
  until a ``stream_with_context`` generator is exhausted or closed).
- Outside a request (CLI commands, a thread that pushed ``app.app_context()``) each call borrows
  and gives back at once.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import GeneratorType
from typing import TYPE_CHECKING, Any

import click
from flask import Flask, current_app, g, has_app_context, jsonify, request

from .. import registry
from ..config import url_from_env
from ..diagnostics import stats_payload
from ..errors import ConfigError, PoolError
from ..pool import ConnectionPool
from ..scope import (
    RequestScope,
    current_pool,
    current_scope,
    register_resolver,
    reset_scope,
    set_scope,
)
from .config import (
    DEFAULT_LABEL,
    EXTENSION_KEY,
    SHOWN_KEYS,
    bind_layers,
    build_pool,
    check_option_name,
    default_layers,
    stats_endpoint,
    unknown_keys,
)

if TYPE_CHECKING:
    import contextvars

    from flask.wrappers import Response

__all__ = ["EXTENSION_KEY", "FlaskContextError", "MySQLPool", "app_pools"]

#: Where the per-app state lives: ``app.extensions["mysqlpool"]``.
_G_KEY = "_mysqlpool_scope"


class FlaskContextError(RuntimeError):
    """``current_pool`` (or the extension) was used where no app's pool can be found: outside an
    application context, or in an app that ``init_app`` was not called for.

    A programming error, like Flask's own "working outside of application context"; so not a
    ``pymysql.Error``, which an ``except pymysql.Error`` around the query would swallow."""


# --------------------------------------------------------------------------------------------
# Per-app state
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _AppState:
    """What ``init_app`` built for one app: ``app.extensions["mysqlpool"]``."""

    ext: MySQLPool
    app_name: str
    pool: ConnectionPool | None
    binds: dict[str, ConnectionPool] = field(default_factory=dict)
    stats_endpoint: str | None = None

    def all_pools(self) -> dict[str, ConnectionPool]:
        """Label -> pool, the default one first (labelled ``"default"``)."""
        pools = {DEFAULT_LABEL: self.pool} if self.pool is not None else {}
        pools.update(self.binds)
        return pools

    def pool_for(self, name: str | None) -> ConnectionPool | None:
        """The pool for ``current_pool`` (name None) or ``current_pool.using(name)``."""
        if name is None or name == DEFAULT_LABEL:
            if self.pool is None:
                binds = ", ".join(map(repr, self.binds)) or "none"
                raise FlaskContextError(
                    f"app {self.app_name!r} has no default pool: MYSQLPOOL_URL is not set "
                    f"(binds: {binds}); use current_pool.using(name) for a bind"
                )
            return self.pool
        pool = self.binds.get(name)
        if pool is None:
            if _non_flask_pool(name) is not None:
                return None  # a pool the user built outside Flask: let the core find it
            binds = ", ".join(map(repr, self.binds)) or "none"
            raise FlaskContextError(
                f"app {self.app_name!r}: no pool named {name!r} in MYSQLPOOL_BINDS (binds: {binds})"
            )
        return pool

    def close(self, timeout: float = 0.0) -> None:
        for pool in self.all_pools().values():
            pool.close(timeout)


_flask_pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()
_states: weakref.WeakSet[_AppState] = weakref.WeakSet()
_atexit_lock = threading.Lock()
_atexit_registered = False


def _reinit_after_fork() -> None:
    # A thread of the parent may have held the lock at fork time: the child gets a new one.
    global _atexit_lock
    _atexit_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def _close_all_at_exit() -> None:
    """Close every Flask app's pools when the process exits (gunicorn workers included): a quit
    message per connection beats leaving the server to notice dead sockets."""
    for state in list(_states):
        state.close()


def _register_atexit() -> None:
    global _atexit_registered
    with _atexit_lock:
        if not _atexit_registered:
            atexit.register(_close_all_at_exit)
            _atexit_registered = True


def _get_state(app: Flask) -> _AppState:
    state = app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise FlaskContextError(
            f"the MySQLPool extension is not registered on app {app.name!r}: "
            "did you forget to call ext.init_app(app)?"
        )
    return state


def _current_state() -> _AppState:
    if not has_app_context():
        raise FlaskContextError(
            "working outside of a Flask application context: the pools belong to an app. "
            "Push one with `with app.app_context():` (background threads and scripts too)."
        )
    return _get_state(current_app)


# --------------------------------------------------------------------------------------------
# The resolver behind ``current_pool``
# --------------------------------------------------------------------------------------------


def _non_flask_pool(name: str | None) -> ConnectionPool | None:
    """The pool the core's registry would pick, if it is not one of a Flask app's pools (or it
    was made the default on purpose with ``set_default_pool``)."""
    try:
        pool = registry.get_default_pool() if name is None else registry.get_pool(name)
    except PoolError:
        return None
    if pool not in _flask_pools:
        return pool
    if name is None and registry.explicit_default_pool() is pool:
        return pool
    return None


def _resolve(name: str | None) -> ConnectionPool | None:
    """``current_pool``'s resolver: inside an app context, that app's pool; else None (the core
    then falls back to its registry) — unless the fallback would hand out a Flask app's pool
    without its app context, which is an error worth explaining."""
    if has_app_context():
        state = current_app.extensions.get(EXTENSION_KEY)
        if state is not None:
            return state.pool_for(name)
        if _non_flask_pool(name) is not None:
            return None
        raise FlaskContextError(
            f"current_pool was used in app {current_app.name!r}, which has no MySQLPool: "
            "did you forget to call ext.init_app(app)?"
        )
    if _non_flask_pool(name) is not None:
        return None
    if any(not p.closed for p in list(_flask_pools)):
        raise FlaskContextError(
            "current_pool was used outside a Flask application context, and the pools belong "
            "to a Flask app. Push one with `with app.app_context():` (background threads and "
            "scripts too), or give code outside Flask its own pool with "
            "mysqlpool_ext.set_default_pool(pool)."
        )
    return None


register_resolver(_resolve)


# --------------------------------------------------------------------------------------------
# The request scope
# --------------------------------------------------------------------------------------------


class _RequestEntry:
    """One request's scope, and how to end it exactly once."""

    __slots__ = ("deferred", "done", "request", "scope", "token")

    def __init__(self, request: object) -> None:
        self.request = request  # the request's WSGI environ: which request it is for
        self.scope = RequestScope()
        self.token: contextvars.Token[RequestScope | None] = set_scope(self.scope)
        self.deferred = False
        self.done = False

    def close(self) -> None:
        """Give back what the request borrowed: an open transaction is rolled back by the pool,
        never committed; a broken connection is discarded. A second call does nothing."""
        if self.done:
            return
        self.done = True
        try:
            reset_scope(self.token)
        except (ValueError, RuntimeError):
            # The token belongs to another contextvars.Context (a server that finished the
            # response elsewhere): at least do not leave our released scope installed here.
            if current_scope() is self.scope:
                set_scope(None)
        self.scope.release()


def _open_request_scope() -> None:
    """``before_request``: make room for the request's connections (the first query borrows).

    The scope goes into the core's contextvar (what ``current_pool`` reads) and onto ``g`` (what
    the other hooks read). Sync views and streamed bodies run in this thread's context, and
    asgiref copies this context into the event loop that runs an async view: all of them see it.

    ``g`` holds a list, one entry per request: a request of the same app made inside a request
    (``app.test_client()`` in a view, an internal dispatch) shares its app context, so its ``g``.
    """
    entries = g.get(_G_KEY)
    if entries is None:
        entries = []
        setattr(g, _G_KEY, entries)
    entries.append(_RequestEntry(request.environ))


def _current_entry() -> _RequestEntry | None:
    """This request's entry (the one opened for this request's WSGI environ)."""
    entries: list[_RequestEntry] | None = g.get(_G_KEY)
    if not entries:
        return None
    current = request.environ
    for entry in reversed(entries):
        if entry.request is current:
            return entry
    return None


def _defer_for_streaming(response: Response) -> Response:
    """``after_request`` (runs last): a generator body may still query while it streams, so the
    request keeps its scope until the generator is exhausted or closed (the WSGI server closes it
    when the client goes away), and gives back then.

    The generator is wrapped rather than relying on Flask's teardown timing, which differs
    between versions (2.3 delays the teardown until a ``stream_with_context`` generator ends;
    3.1 tears down after the view *and* again after the generator). Other bodies — lists, files,
    the WSGI iterable of an error page — cannot reach ``current_pool`` and are not deferred.
    """
    entry = _current_entry()
    body = response.response
    if entry is not None and not entry.done and isinstance(body, GeneratorType):
        # If an error after this hook replaces the response, Flask runs the hooks again on the
        # error response: its body is no generator, so the teardown gives back as usual.
        entry.deferred = True
        response.response = _finish_after(body, entry)
    elif entry is not None:
        entry.deferred = False
    return response


class _finish_after:  # named like the generator function it replaced
    """The streamed body, giving the request's connections back when it is exhausted or
    closed. A class, not a generator: a server never iterates the body of a HEAD request or
    of a 204 or 304 response, only closes it, and closing a generator that never started does
    not run its ``finally``."""

    __slots__ = ("body", "entry")

    def __init__(self, body: Iterator[Any], entry: _RequestEntry) -> None:
        self.body = body
        self.entry = entry

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self.body
        finally:
            self.close()

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.entry.close()


def _add_stats_rule(app: Flask, path: str) -> None:
    """The stats endpoint's URL rule, unless it is there: also on ``init_app()`` again with
    the endpoint turned on or moved (an old path keeps answering: Flask cannot remove a rule).
    Before any pool is built: Flask refuses new rules once the app has served a request."""
    paths = {r.rule for r in app.url_map.iter_rules() if r.endpoint == "mysqlpool_stats"}
    if path in paths:
        return
    try:
        app.add_url_rule(path, endpoint="mysqlpool_stats", view_func=_stats_view)
    except AssertionError:
        raise ConfigError(
            f"MYSQLPOOL_STATS_ENDPOINT={path!r}: Flask adds no URL rule to app {app.name!r} "
            "after it served a request; set it before the first request"
        ) from None


def _close_request_scope(exc: BaseException | None = None) -> None:
    """``teardown_request``: give back what the request borrowed, unless a streamed response
    still needs it (then the response's ``close()`` does)."""
    entry = _current_entry()
    if entry is None:
        return
    entries: list[_RequestEntry] = g.get(_G_KEY)
    entries.remove(entry)
    if not entry.deferred:
        entry.close()


def _close_left_scopes(exc: BaseException | None = None) -> None:
    """``teardown_appcontext``, the safety net: an app context can outlive requests (a test
    that pushed ``app.app_context()`` and then made requests), and a request's teardown may not
    have run. Gives back every request's scope still open but not streaming."""
    entries: list[_RequestEntry] | None = g.pop(_G_KEY, None)
    for entry in entries or ():
        if not entry.deferred:
            entry.close()


# --------------------------------------------------------------------------------------------
# The extension
# --------------------------------------------------------------------------------------------


class MySQLPool:
    """The Flask extension. ``MySQLPool(app)`` or ``MySQLPool()`` + ``init_app(app)``.

    ``defaults`` are pool options (``size=4``, ``max_lifetime=600``, ``url="mysql://..."``...)
    used when the app's config does not set them: the lowest layer, below ``MYSQLPOOL_URL`` and
    the ``MYSQLPOOL_*`` keys. The object keeps no per-app state: one extension can serve many apps.
    """

    def __init__(self, app: Flask | None = None, **defaults: Any) -> None:
        self._defaults: dict[str, Any] = {}
        for name, value in defaults.items():
            if name == "url":
                self._defaults["url"] = value
            else:
                self._defaults[check_option_name(name, "MySQLPool()")] = value
        if app is not None:
            self.init_app(app)

    # -- setup ----------------------------------------------------------------------------------
    def init_app(self, app: Flask) -> None:
        """Read the app's ``MYSQLPOOL_*`` config, build its pools, hook the request scope."""
        old = app.extensions.get(EXTENSION_KEY)
        if old is not None and any(not p.closed for p in old.all_pools().values()):
            raise RuntimeError(
                f"MySQLPool is already set up on app {app.name!r}; call ext.close(app) first"
            )
        config = app.config
        env_url = url_from_env()
        config.setdefault("MYSQLPOOL_URL", env_url)
        for key in SHOWN_KEYS:
            config.setdefault(key, None)
        unknown_keys(config)

        state = _AppState(ext=self, app_name=app.name, pool=None)
        state.stats_endpoint = stats_endpoint(config.get("MYSQLPOOL_STATS_ENDPOINT"))
        if state.stats_endpoint:
            _add_stats_rule(app, state.stats_endpoint)
        pools: list[ConnectionPool] = []
        try:
            layers = default_layers(self._defaults, config, env_url)
            binds = config.get("MYSQLPOOL_BINDS") or {}
            if not isinstance(binds, Mapping):
                raise ConfigError(
                    "MYSQLPOOL_BINDS must be a dict of name -> URL or name -> dict of options"
                )
            has_default = any(
                "host" in opts or "unix_socket" in opts or "hosts" in opts  # hosts: a host list
                for _, opts in layers
            )
            if has_default or not binds:
                state.pool = build_pool(DEFAULT_LABEL, layers, app.name)
                pools.append(state.pool)
            for bind, spec in binds.items():
                if not isinstance(bind, str) or not bind or bind == DEFAULT_LABEL:
                    raise ConfigError(
                        f"MYSQLPOOL_BINDS: invalid bind name {bind!r} (a non-empty string; "
                        f"{DEFAULT_LABEL!r} is the main pool's name)"
                    )
                spec_layers = bind_layers(self._defaults, bind, spec)
                pool = build_pool(bind, spec_layers, f"{app.name}.{bind}")
                state.binds[bind] = pool
                pools.append(pool)
        except BaseException:
            for pool in pools:
                pool.close()
            raise
        for pool in pools:
            _flask_pools.add(pool)

        app.extensions[EXTENSION_KEY] = state
        _states.add(state)
        _register_atexit()
        if old is None:  # hooks survive close() + init_app() again: register them once
            # First in line: a before_request of the user's that queries runs inside the scope.
            app.before_request_funcs.setdefault(None, []).insert(0, _open_request_scope)
            # after_request hooks run last-registered first: at the front of the list, ours
            # runs after every other hook of the app, on the final response.
            app.after_request_funcs.setdefault(None, []).insert(0, _defer_for_streaming)
            app.teardown_request(_close_request_scope)
            app.teardown_appcontext(_close_left_scopes)
            app.cli.add_command(LazyCLI())

    # -- access ---------------------------------------------------------------------------------
    def get_pool(self, bind: str | None = None, app: Flask | None = None) -> ConnectionPool:
        """The app's pool (``bind=None``) or one of its ``MYSQLPOOL_BINDS`` pools.

        ``app`` defaults to the current app. Unlike ``current_pool``, this is the pool itself: its
        ``execute_query`` borrows per call, ignoring the request's pinned connection.
        """
        state = _get_state(app) if app is not None else _current_state()
        pool = state.pool_for(bind)
        if pool is None:
            raise FlaskContextError(f"app {state.app_name!r}: no pool named {bind!r}")
        return pool

    @property
    def pool(self) -> ConnectionPool:
        """The current app's default pool."""
        return self.get_pool()

    def pools(self, app: Flask | None = None) -> dict[str, ConnectionPool]:
        """Label -> pool for the app (``"default"`` and the binds)."""
        state = _get_state(app) if app is not None else _current_state()
        return state.all_pools()

    def close(self, app: Flask | None = None, timeout: float = 0.0) -> None:
        """Close the app's pools (tests, or a shutdown hook of your own). ``init_app`` may be
        called again afterwards; using the closed pools raises ``PoolClosedError``."""
        state = _get_state(app) if app is not None else _current_state()
        state.close(timeout)

    # -- the request-scoped API, for users who call the extension object ``pool`` or ``db`` --
    # ``current_pool``'s own bound methods (one definition of each signature, not a copy): they
    # find the current app's pool, and inside a request its connection, at call time.
    using = staticmethod(current_pool.using)
    execute_query = staticmethod(current_pool.execute_query)
    aexecute_query = staticmethod(current_pool.aexecute_query)
    connection = staticmethod(current_pool.connection)
    transaction = staticmethod(current_pool.transaction)
    atransaction = staticmethod(current_pool.atransaction)

    def __repr__(self) -> str:
        return f"<mysqlpool_ext.flask.MySQLPool defaults={sorted(self._defaults)}>"


# --------------------------------------------------------------------------------------------
# Stats endpoint (opt-in) and the lazily loaded CLI
# --------------------------------------------------------------------------------------------


def app_pools(app: Flask) -> dict[str, ConnectionPool]:
    """Label -> pool for ``app`` (``"default"`` first, then the binds); for the CLI and tools."""
    return _get_state(app).all_pools()


def _stats_view() -> Response:
    """``MYSQLPOOL_STATS_ENDPOINT``: this worker process's pool counters as JSON."""
    return jsonify(stats_payload(app_pools(current_app)))


class LazyCLI(click.Group):
    """``flask mysqlpool``: listed by ``flask --help`` from this stub, while :mod:`.cli` (and the
    diagnostics behind it) is imported only when the command actually runs — a web worker never
    loads it. Flask-SQLAlchemy keeps its optional features out of the import path the same way.
    """

    def __init__(self) -> None:
        super().__init__("mysqlpool", help="Check and inspect the app's MySQL connection pools.")

    @staticmethod
    def _group() -> click.Group:
        from .cli import mysqlpool_cli

        return mysqlpool_cli

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._group().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._group().get_command(ctx, cmd_name)
