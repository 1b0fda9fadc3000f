"""Flask integration: ``MySQLPool(app)`` gives every request one pooled connection.

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
import difflib
import json
import os
import re
import threading
import time
import urllib.request
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import GeneratorType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
from flask import Flask, current_app, g, has_app_context, jsonify
from flask.cli import AppGroup

from . import registry
from .config import (
    CONNECT_PARAMS,
    POOL_OPTION_NAMES,
    build_options,
    convert_option,
    parse_url,
    url_from_env,
)
from .errors import ConfigError, PoolError
from .pool import ConnectionPool
from .scope import (
    RequestScope,
    current_pool,
    current_scope,
    register_resolver,
    reset_scope,
    set_scope,
)

if TYPE_CHECKING:
    import contextvars

    from flask.wrappers import Response

    from .scope import _CurrentPool

__all__ = ["EXTENSION_KEY", "FlaskContextError", "MySQLPool"]

#: Where the per-app state lives: ``app.extensions["mysqlpool"]``.
EXTENSION_KEY = "mysqlpool"
PREFIX = "MYSQLPOOL_"
DEFAULT_LABEL = "default"

#: Every option the core accepts, by config key: ``MYSQLPOOL_SIZE`` -> ``size``.
#: Read from the core's own lists so a new pool or PyMySQL option is a new config key for free.
OPTION_KEYS: dict[str, str] = {
    PREFIX + name.upper(): name for name in sorted(POOL_OPTION_NAMES | CONNECT_PARAMS)
}
#: Keys that are not pool options.
SPECIAL_KEYS = ("MYSQLPOOL_URL", "MYSQLPOOL_BINDS", "MYSQLPOOL_STATS_ENDPOINT")
#: Keys ``init_app`` always puts in ``app.config`` (with ``setdefault``), so that ``app.config``
#: shows what can be set. The other ``OPTION_KEYS`` are read when present.
SHOWN_KEYS = (
    *SPECIAL_KEYS,
    *(PREFIX + n.upper() for n in ("host", "port", "user", "password", "database", "unix_socket")),
    *(PREFIX + n.upper() for n in sorted(POOL_OPTION_NAMES)),
)
#: PyMySQL's old spellings, stored under the modern name so that layers override each other.
_ALIASES = {"db": "database", "passwd": "password"}
#: The Flask layer's own defaults, below everything the user says. ``lazy``: building the app
#: never waits for (or fails on) the server; the maintenance thread opens ``size`` connections in
#: the background and ``flask mysqlpool check`` reports a server it cannot reach.
FLASK_DEFAULTS: dict[str, Any] = {"lazy": True}

_G_KEY = "_mysqlpool_scope"
_OPTION_RE = re.compile(r"option '(\w+)'")


class FlaskContextError(PoolError, RuntimeError):
    """``current_pool`` (or the extension) was used where no app's pool can be found: outside an
    application context, or in an app that ``init_app`` was not called for."""


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

    __slots__ = ("deferred", "done", "scope", "token")

    def __init__(self) -> None:
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
    """
    setattr(g, _G_KEY, _RequestEntry())


def _defer_for_streaming(response: Response) -> Response:
    """``after_request`` (runs last): a generator body may still query while it streams, so the
    request keeps its scope until the generator is exhausted or closed (the WSGI server closes it
    when the client goes away), and gives back then.

    The generator is wrapped rather than relying on Flask's teardown timing, which differs
    between versions (2.3 delays the teardown until a ``stream_with_context`` generator ends;
    3.1 tears down after the view *and* again after the generator). Other bodies — lists, files,
    the WSGI iterable of an error page — cannot reach ``current_pool`` and are not deferred.
    """
    entry: _RequestEntry | None = g.get(_G_KEY)
    body = response.response
    if entry is not None and not entry.done and isinstance(body, GeneratorType):
        # If an error after this hook replaces the response, Flask runs the hooks again on the
        # error response: its body is no generator, so the teardown gives back as usual.
        entry.deferred = True
        response.response = _finish_after(body, entry)
    elif entry is not None:
        entry.deferred = False
    return response


def _finish_after(body: Iterator[Any], entry: _RequestEntry) -> Iterator[Any]:
    try:
        yield from body
    finally:
        entry.close()


def _close_request_scope(exc: BaseException | None = None) -> None:
    """``teardown_request`` and ``teardown_appcontext``: give back what the request borrowed,
    unless a streamed response still needs it (then the response's ``close()`` does).

    Both teardowns are hooked because an app context can outlive a request (a test that pushed
    ``app.app_context()`` and then made requests): the request teardown fires per request; the
    app-context one is the safety net. The second call finds nothing to do.
    """
    entry: _RequestEntry | None = g.get(_G_KEY)
    if entry is None or entry.deferred:
        return
    g.pop(_G_KEY, None)
    entry.close()


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


def _suggest_key(key: str, known: Iterator[str] | list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _coerce(option: str, value: Any, where: str) -> Any:
    """Strings from the environment or a ``.env`` file -> the option's type (``"4"`` -> 4)."""
    if not isinstance(value, str) or option in ("password", "passwd"):
        return value
    try:
        return convert_option(option, value, "")
    except ConfigError:
        raise ConfigError(f"{where}: invalid value {value!r} for option {option!r}") from None


def _check_option_name(name: str, where: str) -> str:
    """A pool/connect option name (any case, with or without the MYSQLPOOL_ prefix) -> canonical."""
    option = name.lower()
    if option.startswith(PREFIX.lower()):
        option = option[len(PREFIX) :]
    if option not in POOL_OPTION_NAMES and option not in CONNECT_PARAMS:
        raise ConfigError(
            f"{where}: unknown option {name!r}"
            + _suggest_key(option, sorted(POOL_OPTION_NAMES | CONNECT_PARAMS))
        )
    return _ALIASES.get(option, option)


def _url_params(url: Any, where: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where} must be a non-empty 'mysql://user:password@host:3306/db' URL")
    try:
        params = parse_url(url)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return {_ALIASES.get(k, k): v for k, v in params.items()}


def _build_pool(
    label: str,
    layers: list[tuple[str, dict[str, Any]]],
    default_name: str,
) -> ConnectionPool:
    """Merge option layers (lowest first), validate naming the key that said it, build the pool.

    Each layer is ``(source, options)``; ``source`` is how an error names it, e.g.
    ``"MYSQLPOOL_SIZE"`` or ``"MYSQLPOOL_BINDS['reports']"``.
    """
    kwargs: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, options in layers:
        for option, value in options.items():
            kwargs[option] = value
            sources[option] = source.format(key=PREFIX + option.upper(), option=option)
    # A host list (hosts=, or a URL with h1,h2) names its servers too.
    if not kwargs.get("host") and not kwargs.get("unix_socket") and not kwargs.get("hosts"):
        if label == DEFAULT_LABEL:
            raise ConfigError(
                "MYSQLPOOL_URL is not set (nor MYSQLPOOL_HOST / MYSQLPOOL_UNIX_SOCKET): set "
                "app.config['MYSQLPOOL_URL'] = 'mysql://user:password@host:3306/database' "
                "or export MYSQLPOOL_URL"
            )
        raise ConfigError(f"MYSQLPOOL_BINDS[{label!r}]: no URL and no host")
    kwargs.setdefault("name", default_name)
    sources.setdefault("name", "the pool name")
    try:
        build_options(kwargs)
    except ConfigError as exc:
        match = _OPTION_RE.search(str(exc))
        where = sources.get(match.group(1), "MYSQLPOOL config") if match else "MYSQLPOOL config"
        raise ConfigError(f"{where}: {exc}") from None
    return ConnectionPool(**kwargs)


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
                self._defaults[_check_option_name(name, "MySQLPool()")] = value
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
        for key in config:
            if key.startswith(PREFIX) and key not in OPTION_KEYS and key not in SPECIAL_KEYS:
                raise ConfigError(
                    f"unknown config key {key!r}" + _suggest_key(key, [*OPTION_KEYS, *SPECIAL_KEYS])
                )

        state = _AppState(ext=self, app_name=app.name, pool=None)
        state.stats_endpoint = self._stats_endpoint(config.get("MYSQLPOOL_STATS_ENDPOINT"))
        pools: list[ConnectionPool] = []
        try:
            default_layers = self._default_layers(config, env_url)
            binds = config.get("MYSQLPOOL_BINDS") or {}
            if not isinstance(binds, Mapping):
                raise ConfigError(
                    "MYSQLPOOL_BINDS must be a dict of name -> URL or name -> dict of options"
                )
            has_default = any(
                "host" in opts or "unix_socket" in opts or "hosts" in opts  # hosts: a host list
                for _, opts in default_layers
            )
            if has_default or not binds:
                state.pool = _build_pool(DEFAULT_LABEL, default_layers, app.name)
                pools.append(state.pool)
            for bind, spec in binds.items():
                if not isinstance(bind, str) or not bind or bind == DEFAULT_LABEL:
                    raise ConfigError(
                        f"MYSQLPOOL_BINDS: invalid bind name {bind!r} (a non-empty string; "
                        f"{DEFAULT_LABEL!r} is the main pool's name)"
                    )
                pool = _build_pool(bind, self._bind_layers(bind, spec), f"{app.name}.{bind}")
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
            app.teardown_appcontext(_close_request_scope)
            app.cli.add_command(mysqlpool_cli)
            if state.stats_endpoint:
                app.add_url_rule(
                    state.stats_endpoint, endpoint="mysqlpool_stats", view_func=_stats_view
                )

    def _default_layers(
        self, config: Mapping[str, Any], env_url: str | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Lowest first: Flask defaults, ``MySQLPool(...)`` defaults, a URL, ``MYSQLPOOL_*`` keys.

        Only one URL is used: ``MYSQLPOOL_URL`` (config, else the environment), else
        ``MySQLPool(url=...)``. Mixing two URLs' hosts and users would be a puzzle, not a feature.
        """
        defaults = dict(self._defaults)
        default_url = defaults.pop("url", None)
        layers: list[tuple[str, dict[str, Any]]] = [
            ("the Flask default for {option!r}", dict(FLASK_DEFAULTS)),
            ("MySQLPool({option}=...)", defaults),
        ]
        url = config.get("MYSQLPOOL_URL")
        if url is not None:
            where = "MYSQLPOOL_URL"
            if url == env_url:
                where += " (from the environment)"
            layers.append((where, _url_params(url, where)))
        elif default_url is not None:
            layers.append(("MySQLPool(url=...)", _url_params(default_url, "MySQLPool(url=...)")))
        explicit: dict[str, Any] = {}
        for key, option in OPTION_KEYS.items():
            value = config.get(key)
            if value is not None:
                explicit[_ALIASES.get(option, option)] = _coerce(option, value, key)
        layers.append(("{key}", explicit))
        return layers

    def _bind_layers(self, bind: str, spec: Any) -> list[tuple[str, dict[str, Any]]]:
        where = f"MYSQLPOOL_BINDS[{bind!r}]"
        defaults = {k: v for k, v in self._defaults.items() if k != "url"}
        layers: list[tuple[str, dict[str, Any]]] = [
            ("the Flask default for {option!r}", dict(FLASK_DEFAULTS)),
            ("MySQLPool({option}=...)", defaults),
        ]
        if isinstance(spec, str):
            layers.append((where, _url_params(spec, where)))
            return layers
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where} must be a URL or a dict of options")
        options: dict[str, Any] = {}
        url = None
        for name, value in spec.items():
            if not isinstance(name, str):
                raise ConfigError(f"{where}: option names must be strings, got {name!r}")
            if name.lower() in ("url", "mysqlpool_url"):
                url = value
                continue
            option = _check_option_name(name, where)
            options[option] = _coerce(option, value, f"{where}[{name!r}]")
        if url is not None:
            layers.append((f"{where}['url']", _url_params(url, f"{where}['url']")))
        layers.append((f"{where}[{{option!r}}]", options))
        return layers

    @staticmethod
    def _stats_endpoint(value: Any) -> str | None:
        if value in (None, False, ""):
            return None
        if not isinstance(value, str) or not value.startswith("/"):
            raise ConfigError(
                "MYSQLPOOL_STATS_ENDPOINT must be a path such as '/_mysqlpool/stats', "
                f"got {value!r}"
            )
        return value

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
    def using(self, name: str) -> _CurrentPool:
        """``current_pool.using(name)``."""
        return current_pool.using(name)

    def execute_query(
        self,
        query: str,
        args: Any = (),
        dictcursor: bool = False,
        return_one: bool = False,
        exec_many: bool = False,
    ) -> Any:
        """``current_pool.execute_query``: on the request's connection inside a request."""
        return current_pool.execute_query(query, args, dictcursor, return_one, exec_many)

    async def aexecute_query(
        self,
        query: str,
        args: Any = (),
        dictcursor: bool = False,
        return_one: bool = False,
        exec_many: bool = False,
    ) -> Any:
        """``current_pool.aexecute_query``."""
        return await current_pool.aexecute_query(query, args, dictcursor, return_one, exec_many)

    def connection(self, timeout: float | None = None) -> Any:
        """``current_pool.connection()``."""
        return current_pool.connection(timeout)

    def transaction(self, timeout: float | None = None) -> Any:
        """``current_pool.transaction()``: COMMIT on success, ROLLBACK on error."""
        return current_pool.transaction(timeout)

    def atransaction(self, timeout: float | None = None) -> Any:
        """``current_pool.atransaction()``."""
        return current_pool.atransaction(timeout)

    def __repr__(self) -> str:
        return f"<mysqlpool_ext.flask.MySQLPool defaults={sorted(self._defaults)}>"


# --------------------------------------------------------------------------------------------
# Stats endpoint (opt-in) and CLI
# --------------------------------------------------------------------------------------------


def _counts(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers only: the endpoint may be reachable by more people than the config is."""
    return {
        k: v for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, str)
    }


def _stats_payload(state: _AppState) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "pools": {label: _counts(pool.stats()) for label, pool in state.all_pools().items()},
    }


def _stats_view() -> Response:
    """``MYSQLPOOL_STATS_ENDPOINT``: this worker process's pool counters as JSON."""
    return jsonify(_stats_payload(_get_state(current_app)))


mysqlpool_cli = AppGroup("mysqlpool", help="Check and inspect the app's MySQL connection pools.")


def _line(level: str, text: str) -> None:
    colours = {"ok": "green", "info": "blue", "warn": "yellow", "FAIL": "red"}
    click.echo(f"  {click.style(level.ljust(4), fg=colours.get(level))}  {text}")


def _is_loopback(host: str | None, unix_socket: str | None) -> bool:
    return (
        bool(unix_socket)
        or (host or "localhost") in ("localhost", "::1")
        or ((host or "").startswith("127."))
    )


def _check_pool(label: str, pool: ConnectionPool, timeout: float) -> bool:
    """Connect through the pool and compare the server's limits with the pool's settings."""
    click.echo(f"[{label}] pool {pool.name!r} -> {pool.server_address}")
    started = time.perf_counter()
    try:
        with pool.connection(timeout=timeout) as conn:
            borrowed = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            conn.execute_query("SELECT 1")
            round_trip = (time.perf_counter() - started) * 1000
            version, wait_timeout, max_conns, max_user_conns = conn.execute_query(
                "SELECT VERSION(), @@wait_timeout, @@max_connections, @@max_user_connections",
                return_one=True,
            )
            ssl_rows = dict(
                conn.execute_query(
                    "SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')"
                )
            )
            connected = conn.execute_query(
                "SHOW GLOBAL STATUS LIKE 'Threads_connected'", return_one=True
            )
    except Exception as exc:  # noqa: BLE001 - reported, and the command exits non-zero
        _line("FAIL", f"cannot get a connection: {exc}")
        return False
    _line(
        "ok",
        f"server {version}; connection in {borrowed:.1f} ms, SELECT 1 in {round_trip:.2f} ms",
    )

    kw = pool.options.connect_kwargs
    cipher = ssl_rows.get("Ssl_cipher") or ""
    if cipher:
        _line("ok", f"TLS: {ssl_rows.get('Ssl_version') or '?'} ({cipher})")
    elif _is_loopback(kw.get("host"), kw.get("unix_socket")):
        _line("info", "TLS: not encrypted (the server is on this machine)")
    else:
        _line("warn", "TLS: not encrypted, and the server is not on this machine")

    lifetime = pool.options.max_lifetime
    wait_timeout = int(wait_timeout)
    if lifetime is None:
        _line(
            "warn",
            f"max_lifetime is None: the server closes connections idle for wait_timeout="
            f"{wait_timeout} s; set MYSQLPOOL_MAX_LIFETIME below it",
        )
    elif lifetime >= wait_timeout:
        _line(
            "warn",
            f"max_lifetime={lifetime:g} s >= the server's wait_timeout={wait_timeout} s: idle "
            "connections will be closed by the server first; lower MYSQLPOOL_MAX_LIFETIME",
        )
    else:
        _line("ok", f"max_lifetime={lifetime:g} s < wait_timeout={wait_timeout} s")

    max_conns = int(max_conns)
    in_use_now = int(connected[1]) if connected else 0
    headroom = max_conns - in_use_now
    per_process = pool.max_size
    processes = headroom // per_process if per_process else 0
    text = (
        f"max_connections={max_conns}, {in_use_now} connected now, headroom {headroom}: "
        f"room for {processes} more processes at max_size={per_process}"
    )
    if int(max_user_conns):
        text += f" (max_user_connections={int(max_user_conns)})"
    _line("ok" if processes >= 2 else "warn", text)
    return True


@mysqlpool_cli.command("check")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for a connection.")
def check_command(timeout: float) -> None:
    """Connect with each pool; compare server limits (wait_timeout, max_connections) with the
    pool settings. Exits 1 if a pool cannot connect."""
    state = _get_state(current_app)
    results = [_check_pool(label, p, timeout) for label, p in state.all_pools().items()]
    if not all(results):
        raise SystemExit(1)


@mysqlpool_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--from",
    "from_url",
    default=None,
    help="Read the stats of a running server from its MYSQLPOOL_STATS_ENDPOINT URL "
    "(e.g. http://127.0.0.1:8000/_mysqlpool/stats) instead of this process's pools.",
)
def stats_command(as_json: bool, from_url: str | None) -> None:
    """Print the pools' counters: this process's, or a running server's (``--from``)."""
    if from_url:
        if urlsplit(from_url).scheme not in ("http", "https"):
            raise click.BadParameter("must be an http:// or https:// URL", param_hint="--from")
        with urllib.request.urlopen(from_url, timeout=10) as resp:
            payload = json.load(resp)
    else:
        payload = _stats_payload(_get_state(current_app))
    if as_json:
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
        return
    click.echo(f"process {payload.get('pid')}")
    for label, counts in payload.get("pools", {}).items():
        click.echo(f"[{label}]")
        for key in sorted(counts):
            click.echo(f"  {key:<24} {counts[key]}")


__all__ += ["mysqlpool_cli"]
