"""Config layering for the Flask extension: ``MYSQLPOOL_*`` keys -> validated pool options.

Several layers say something about a pool; lowest first: the Flask layer's defaults,
``MySQLPool(**defaults)``, one URL (``MYSQLPOOL_URL`` from the config or the environment, else
``MySQLPool(url=...)``), then the explicit ``MYSQLPOOL_*`` keys. A bind
(``MYSQLPOOL_BINDS['name']``) is a URL or a dict of options over the same defaults.

Each layer remembers where it came from, so a bad value is a :class:`~mysqlpool_ext.ConfigError`
that names the key the user wrote (``MYSQLPOOL_SIZE``, ``MYSQLPOOL_BINDS['reports']['size']``),
found through :attr:`ConfigError.option` — never by reading the message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from ..config import CONNECT_PARAMS, POOL_OPTION_NAMES, build_options, convert_option, parse_url
from ..errors import ConfigError
from ..pool import ConnectionPool

#: The key of the extension's per-app state in ``app.extensions``.
EXTENSION_KEY = "mysqlpool"

__all__ = [
    "DEFAULT_LABEL",
    "FLASK_DEFAULTS",
    "OPTION_KEYS",
    "PREFIX",
    "SHOWN_KEYS",
    "SPECIAL_KEYS",
    "Layers",
    "bind_layers",
    "build_pool",
    "check_option_name",
    "default_layers",
    "stats_endpoint",
    "unknown_keys",
]

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
ALIASES = {"db": "database", "passwd": "password"}
#: The Flask layer's own defaults, below everything the user says. ``lazy``: building the app
#: never waits for (or fails on) the server; the maintenance thread opens ``size`` connections in
#: the background and ``flask mysqlpool check`` reports a server it cannot reach.
FLASK_DEFAULTS: dict[str, Any] = {"lazy": True}

#: ``(source, options)`` pairs, lowest first. ``source`` is how an error names the layer; it may
#: hold ``{key}`` (``MYSQLPOOL_SIZE``) and ``{option}`` (``size``) placeholders.
Layers = list[tuple[str, dict[str, Any]]]


def _suggest_key(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_keys(config: Mapping[str, Any]) -> None:
    """A ``MYSQLPOOL_*`` key nobody reads is a typo: raise naming it, with a suggestion."""
    for key in config:
        if key.startswith(PREFIX) and key not in OPTION_KEYS and key not in SPECIAL_KEYS:
            raise ConfigError(
                f"unknown config key {key!r}" + _suggest_key(key, [*OPTION_KEYS, *SPECIAL_KEYS])
            )


def _coerce(option: str, value: Any, where: str) -> Any:
    """Strings from the environment or a ``.env`` file -> the option's type (``"4"`` -> 4)."""
    if not isinstance(value, str) or option in ("password", "passwd"):
        return value
    try:
        return convert_option(option, value, "")
    except ConfigError:
        raise ConfigError(
            f"{where}: invalid value {value!r} for option {option!r}", option=option
        ) from None


def check_option_name(name: str, where: str) -> str:
    """A pool/connect option name (any case, with or without the MYSQLPOOL_ prefix) -> canonical."""
    option = name.lower()
    if option.startswith(PREFIX.lower()):
        option = option[len(PREFIX) :]
    if option not in POOL_OPTION_NAMES and option not in CONNECT_PARAMS:
        raise ConfigError(
            f"{where}: unknown option {name!r}"
            + _suggest_key(option, sorted(POOL_OPTION_NAMES | CONNECT_PARAMS)),
            option=option,
        )
    return ALIASES.get(option, option)


def _url_params(url: Any, where: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where} must be a non-empty 'mysql://user:password@host:3306/db' URL")
    try:
        params = parse_url(url)
    except ConfigError as exc:
        # The core's message already masks every credential; only say where the URL came from.
        raise ConfigError(f"{where}: {exc}", option=exc.option) from None
    return {ALIASES.get(k, k): v for k, v in params.items()}


def default_layers(
    defaults: Mapping[str, Any], config: Mapping[str, Any], env_url: str | None
) -> Layers:
    """The default pool's layers, lowest first: Flask defaults, ``MySQLPool(...)`` defaults, a
    URL, ``MYSQLPOOL_*`` keys.

    Only one URL is used: ``MYSQLPOOL_URL`` (config, else the environment), else
    ``MySQLPool(url=...)``. Mixing two URLs' hosts and users would be a puzzle, not a feature.
    """
    ext_defaults = dict(defaults)
    default_url = ext_defaults.pop("url", None)
    layers: Layers = [
        ("the Flask default for {option!r}", dict(FLASK_DEFAULTS)),
        ("MySQLPool({option}=...)", ext_defaults),
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
            explicit[ALIASES.get(option, option)] = _coerce(option, value, key)
    layers.append(("{key}", explicit))
    return layers


def bind_layers(defaults: Mapping[str, Any], bind: str, spec: Any) -> Layers:
    """A bind's layers: the same defaults, then its URL or its dict of options."""
    where = f"MYSQLPOOL_BINDS[{bind!r}]"
    layers: Layers = [
        ("the Flask default for {option!r}", dict(FLASK_DEFAULTS)),
        ("MySQLPool({option}=...)", {k: v for k, v in defaults.items() if k != "url"}),
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
        option = check_option_name(name, where)
        options[option] = _coerce(option, value, f"{where}[{name!r}]")
    if url is not None:
        layers.append((f"{where}['url']", _url_params(url, f"{where}['url']")))
    layers.append((f"{where}[{{option!r}}]", options))
    return layers


def build_pool(label: str, layers: Layers, default_name: str) -> ConnectionPool:
    """Merge the layers (lowest first), validate naming the key that said it, build the pool."""
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
        option = ALIASES.get(exc.option or "", exc.option or "")
        where = sources.get(option, "MYSQLPOOL config")
        raise ConfigError(f"{where}: {exc}", option=exc.option) from None
    return ConnectionPool(**kwargs)


def stats_endpoint(value: Any) -> str | None:
    """``MYSQLPOOL_STATS_ENDPOINT``: off (None, False, ""), or a path like ``/_mysqlpool/stats``."""
    if value in (None, False, ""):
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(
            f"MYSQLPOOL_STATS_ENDPOINT must be a path such as '/_mysqlpool/stats', got {value!r}"
        )
    return value
