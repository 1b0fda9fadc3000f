"""Django settings -> ``ConnectionPool`` keyword arguments, with errors that name the setting.

Django users write upper-case keys, like ``DATABASES``::

    MYSQLPOOL = {
        "default": {"URL": "mysql://app:secret@127.0.0.1:3306/shop", "SIZE": 10, "MAX_SIZE": 20},
        "reports": {"DATABASE": "replica", "SIZE": 2},   # reuse DATABASES["replica"]
    }

Every core option is accepted under its upper-case name (``SIZE``, ``MAX_SIZE``, ``TIMEOUT``,
``MAX_LIFETIME``, ``CHARSET``, ``SSL_CA``, ``CONNECT_TIMEOUT``...): the key table is derived from
``mysqlpool_ext.config.POOL_OPTION_NAMES`` and ``CONNECT_PARAMS``, so a new core or PyMySQL option
works here without a change. A few keys mean what they mean in ``DATABASES`` instead:

- ``NAME`` is the database name (the pool's own name is always the alias);
- ``DATABASE`` names a ``DATABASES`` alias whose HOST/PORT/USER/PASSWORD/NAME/OPTIONS are reused;
- ``URL`` is a ``mysql://`` URL; ``OPTIONS`` is a dict of extra ``pymysql.connect`` arguments;
- ``HOST`` starting with ``/`` is a unix socket; ``PORT`` may be a string; empty values are unset.

When ``MYSQLPOOL`` is absent, the ``default`` pool comes from ``DATABASES["default"]`` if it is a
MySQL backend, else from ``MYSQLPOOL_URL`` / ``DATABASE_URL`` in the environment.

This module does no IO: the system checks call it, and so does the pool handler when it builds a
pool. Values are validated by the core's own :func:`~mysqlpool_ext.config.build_options`, and its
message is re-labelled with the setting the bad value came from (``MYSQLPOOL['default']['SIZE']``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import CONNECT_PARAMS, POOL_OPTION_NAMES, build_options, parse_url, url_from_env
from ..errors import ConfigError

__all__ = [
    "ENGINE",
    "PoolSpec",
    "SettingError",
    "engine_errors",
    "engine_pool_options",
    "is_pool_engine",
    "read_config",
]

SETTING = "MYSQLPOOL"

#: Keys that mean what they mean in ``DATABASES`` rather than the core's option of that name.
SPECIAL_KEYS = frozenset({"URL", "DATABASE", "NAME", "OPTIONS"})

#: Upper-case setting key -> core keyword argument. ``name`` is excluded: the pool is named after
#: its alias, and ``NAME`` is the database, as in ``DATABASES``.
GENERIC_KEYS: dict[str, str] = {
    n.upper(): n for n in sorted(POOL_OPTION_NAMES | CONNECT_PARAMS) if n != "name"
}
for _k in SPECIAL_KEYS:
    GENERIC_KEYS.pop(_k, None)
ALLOWED_KEYS = frozenset(GENERIC_KEYS) | SPECIAL_KEYS

#: Options in ``DATABASES[...]["OPTIONS"]`` that Django's MySQL backend consumes itself.
_DJANGO_ONLY_OPTIONS = frozenset({"isolation_level"})
_ISOLATION_LEVELS = frozenset(
    {"read uncommitted", "read committed", "repeatable read", "serializable"}
)


class SettingError(Exception):
    """A configuration problem, with the setting it is about (``MYSQLPOOL['default']['SIZE']``).

    ``alias`` is the pool it concerns (None: the whole setting); ``code`` becomes the check id.
    """

    def __init__(
        self, setting: str, message: str, *, alias: str | None, hint: str | None = None, code: int
    ) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message
        self.alias = alias
        self.hint = hint
        self.code = code


@dataclass(frozen=True)
class PoolSpec:
    """What one alias resolves to: keyword arguments for ``ConnectionPool`` and where each came
    from (so a late error can still name the setting)."""

    alias: str
    source: str
    kwargs: dict[str, Any] = field(repr=False)
    origins: dict[str, str] = field(repr=False)
    #: True: the pool of a pooled-ENGINE alias, built by the backend (kwargs are empty).
    engine: bool = False

    def build_kwargs(self) -> dict[str, Any]:
        """A fresh copy of the keyword arguments, named after the alias."""
        return {**self.kwargs, "name": self.alias}


def _path(*parts: str) -> str:
    return SETTING + "".join(f"[{p!r}]" for p in parts)


def is_mysql_engine(engine: Any) -> bool:
    """Django's own backend and the third-party ones built on it (``...mysql``)."""
    return isinstance(engine, str) and "mysql" in engine.lower()


#: The ENGINE of the pooled backend (:mod:`mysqlpool_ext.django.backend`).
ENGINE = "mysqlpool_ext.django.backend"


def is_pool_engine(cfg: Any) -> bool:
    """``DATABASES[alias]`` uses the pooled ENGINE with its pool switched on."""
    if not isinstance(cfg, Mapping) or cfg.get("ENGINE") != ENGINE:
        return False
    options = cfg.get("OPTIONS") or {}
    return not isinstance(options, Mapping) or options.get("pool", True) is not False


def _engine_option_errors(alias: str, cfg: Mapping[str, Any]) -> list[ConfigError]:
    """Every problem of ``DATABASES[alias]['OPTIONS']['pool']`` (and ``CONN_MAX_AGE``), each a
    ``ConfigError`` whose ``option`` is the offending key."""
    options = cfg.get("OPTIONS") or {}
    raw = options.get("pool", True) if isinstance(options, Mapping) else True
    where = f"DATABASES[{alias!r}]['OPTIONS']['pool']"
    errors: list[ConfigError] = []
    if cfg.get("CONN_MAX_AGE", 0) != 0:
        errors.append(
            ConfigError(
                f"DATABASES[{alias!r}]['CONN_MAX_AGE'] must be 0 with a pool (it is "
                f"{cfg.get('CONN_MAX_AGE')!r}): the pool keeps the connections open, Django must "
                "give each one back when the request ends",
                option="CONN_MAX_AGE",
            )
        )
    if raw is True or raw is False or raw is None:
        return errors
    if not isinstance(raw, Mapping):
        errors.append(
            ConfigError(
                f"{where} must be True, False or a dict of pool options, got {type(raw).__name__}",
                option=None,
            )
        )
        return errors
    good: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or key not in POOL_OPTION_NAMES:
            if isinstance(key, str) and key in CONNECT_PARAMS:
                message = (
                    f"{where}[{key!r}]: {key!r} is a connection option; put it in "
                    f"DATABASES[{alias!r}]['OPTIONS'] itself"
                )
            else:
                close = difflib.get_close_matches(str(key), sorted(POOL_OPTION_NAMES), n=1)
                message = f"{where}[{key!r}]: unknown pool option" + (
                    f"; did you mean {close[0]!r}?" if close else ""
                )
            errors.append(ConfigError(message, option=str(key)))
            continue
        try:
            build_options({key: value} if key != "max_size" else {"size": 0, key: value})
        except ConfigError as exc:
            errors.append(ConfigError(f"{where}[{key!r}]: {exc}", option=key))
            continue
        good[key] = value
    if not errors:
        try:
            build_options(good)
        except ConfigError as exc:
            errors.append(ConfigError(f"{where}: {exc}", option=exc.option))
    return errors


def engine_pool_options(alias: str, cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The validated pool options of a pooled-ENGINE alias (None: pooling is switched off);
    ``ConfigError`` for the first problem (the system check reports all of them)."""
    if not is_pool_engine(cfg):
        return None
    errors = [e for e in _engine_option_errors(alias, cfg) if e.option != "CONN_MAX_AGE"]
    if errors:
        raise errors[0]
    raw = (cfg.get("OPTIONS") or {}).get("pool", True)
    return dict(raw) if isinstance(raw, Mapping) else {}


def engine_errors(databases: Mapping[str, Any]) -> list[SettingError]:
    """The system check's view: every bad pool option of every pooled-ENGINE alias."""
    out: list[SettingError] = []
    for alias, cfg in databases.items():
        if not isinstance(cfg, Mapping) or cfg.get("ENGINE") != ENGINE:
            continue
        for exc in _engine_option_errors(str(alias), cfg):
            if exc.option == "CONN_MAX_AGE":
                setting = f"DATABASES[{alias!r}]['CONN_MAX_AGE']"
            elif exc.option:
                setting = f"DATABASES[{alias!r}]['OPTIONS']['pool'][{exc.option!r}]"
            else:
                setting = f"DATABASES[{alias!r}]['OPTIONS']['pool']"
            message = str(exc)
            if message.startswith(setting + ": "):
                message = message[len(setting) + 2 :]
            out.append(SettingError(setting, message, alias=str(alias), code=4))
    return out


def _put(kwargs: dict[str, Any], origins: dict[str, str], key: str, value: Any, where: str) -> None:
    """Store one value with Django's conventions for empty / string / socket values."""
    if key == "port" and isinstance(value, str):
        if not value.strip():
            kwargs.pop("port", None)
            return
        if value.strip().isdigit():
            value = int(value)
    if key in ("host", "user", "database", "password") and value in ("", None):
        kwargs.pop(key, None)
        return
    if key == "host" and isinstance(value, str) and value.startswith("/"):
        key = "unix_socket"
    kwargs[key] = value
    origins[key] = where


def _options(
    kwargs: dict[str, Any], origins: dict[str, str], options: Any, where: str, alias: str
) -> None:
    if options is None:
        return
    if not isinstance(options, Mapping):
        raise SettingError(
            where, f"must be a dict, got {type(options).__name__}", alias=alias, code=3
        )
    for key, value in options.items():
        if not isinstance(key, str):
            raise SettingError(where, f"keys must be strings, got {key!r}", alias=alias, code=3)
        if key == "pool":
            continue  # the pooled ENGINE's own option, not a connection argument
        if key == "isolation_level":
            # Django's MySQL backend consumes this one itself; do what it does, at connect time.
            level = str(value).lower()
            if level not in _ISOLATION_LEVELS:
                raise SettingError(
                    f"{where}[{key!r}]",
                    f"unknown isolation level {value!r}",
                    alias=alias,
                    hint="use one of: " + ", ".join(sorted(_ISOLATION_LEVELS)),
                    code=4,
                )
            if "init_command" in {**options, **kwargs}:
                raise SettingError(
                    f"{where}[{key!r}]",
                    "cannot be combined with init_command in a pool",
                    alias=alias,
                    hint="put SET SESSION TRANSACTION ISOLATION LEVEL ... in init_command",
                    code=4,
                )
            kwargs["init_command"] = f"SET SESSION TRANSACTION ISOLATION LEVEL {level.upper()}"
            origins["init_command"] = f"{where}[{key!r}]"
            continue
        _put(kwargs, origins, key, value, f"{where}[{key!r}]")


def _from_databases(
    db_alias: Any, databases: Mapping[str, Any], where: str, alias: str
) -> tuple[dict[str, Any], dict[str, str]]:
    if not isinstance(db_alias, str) or db_alias not in databases:
        known = ", ".join(map(repr, databases)) or "none"
        raise SettingError(
            where,
            f"names a DATABASES alias, and {db_alias!r} is not one (aliases: {known})",
            alias=alias,
            hint="for the database name itself use the 'NAME' key",
            code=5,
        )
    cfg = databases[db_alias]
    dbw = f"DATABASES[{db_alias!r}]"
    if not isinstance(cfg, Mapping) or not is_mysql_engine(cfg.get("ENGINE")):
        engine = cfg.get("ENGINE") if isinstance(cfg, Mapping) else None
        raise SettingError(
            where,
            f"{dbw} is not a MySQL database (ENGINE={engine!r})",
            alias=alias,
            code=5,
        )
    kwargs: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, core in (
        ("HOST", "host"),
        ("PORT", "port"),
        ("USER", "user"),
        ("PASSWORD", "password"),
        ("NAME", "database"),
    ):
        if key in cfg:
            _put(kwargs, origins, core, cfg[key], f"{dbw}[{key!r}]")
    _options(kwargs, origins, cfg.get("OPTIONS"), f"{dbw}['OPTIONS']", alias)
    return kwargs, origins


def _from_url(url: Any, where: str, alias: str) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        kwargs = parse_url(url)
    except ConfigError as exc:  # its message redacts the password
        raise SettingError(where, str(exc), alias=alias, code=4) from None
    return kwargs, dict.fromkeys(kwargs, where)


def _locate(kwargs: Mapping[str, Any]) -> bool:
    # A host list (hosts=, or a URL with h1,h2) names its servers too.
    return bool(kwargs.get("host") or kwargs.get("unix_socket") or kwargs.get("hosts"))


def _spec_for_entry(
    alias: str, entry: Any, databases: Mapping[str, Any], environ: Mapping[str, str] | None
) -> PoolSpec:
    where = _path(alias)
    if not isinstance(entry, Mapping):
        raise SettingError(
            where,
            f"must be a dict of options, got {type(entry).__name__}",
            alias=alias,
            hint='e.g. {"URL": "mysql://user:password@127.0.0.1:3306/db", "SIZE": 10}',
            code=2,
        )
    unknown = [k for k in entry if k not in ALLOWED_KEYS]
    if unknown:
        errors = []
        for key in unknown:
            close = difflib.get_close_matches(str(key).upper(), sorted(ALLOWED_KEYS), n=1)
            errors.append(
                SettingError(
                    _path(alias, str(key)),
                    "unknown key" + (f"; did you mean {close[0]!r}?" if close else ""),
                    alias=alias,
                    hint="keys are upper-case core option names (SIZE, MAX_SIZE, TIMEOUT, ...) "
                    "or URL, DATABASE, NAME, OPTIONS, HOST, PORT, USER, PASSWORD",
                    code=3,
                )
            )
        raise SettingErrors(errors)
    if "URL" in entry and "DATABASE" in entry:
        raise SettingError(
            where, "give either 'URL' or 'DATABASE' (a DATABASES alias), not both",
            alias=alias, code=4,
        )  # fmt: skip
    kwargs: dict[str, Any]
    origins: dict[str, str]
    source = where
    if "URL" in entry:
        kwargs, origins = _from_url(entry["URL"], _path(alias, "URL"), alias)
    elif "DATABASE" in entry:
        kwargs, origins = _from_databases(
            entry["DATABASE"], databases, _path(alias, "DATABASE"), alias
        )
        source = f"{where} -> DATABASES[{entry['DATABASE']!r}]"
    else:
        kwargs, origins = {}, {}
    for key, value in entry.items():
        if key in GENERIC_KEYS:
            _put(kwargs, origins, GENERIC_KEYS[key], value, _path(alias, key))
        elif key == "NAME":
            _put(kwargs, origins, "database", value, _path(alias, key))
    _options(kwargs, origins, entry.get("OPTIONS"), _path(alias, "OPTIONS"), alias)
    if not _locate(kwargs):
        # Nothing says where the server is: fall back as if MYSQLPOOL named no server.
        base = _fallback(alias, databases, environ)
        if base is None:
            raise SettingError(
                where,
                "says nothing about which server to use",
                alias=alias,
                hint="give URL, HOST or DATABASE (a DATABASES alias), or set MYSQLPOOL_URL",
                code=6,
            )
        source = f"{where} + {base.source}"
        kwargs = {**base.kwargs, **kwargs}
        origins = {**base.origins, **origins}
    return PoolSpec(alias, source, kwargs, origins)


def _fallback(
    alias: str, databases: Mapping[str, Any], environ: Mapping[str, str] | None
) -> PoolSpec | None:
    """The pool an alias gets when MYSQLPOOL does not say: the DATABASES alias of that name if it
    is MySQL, and for ``default`` the ``MYSQLPOOL_URL`` / ``DATABASE_URL`` environment."""
    cfg = databases.get(alias)
    if isinstance(cfg, Mapping) and is_mysql_engine(cfg.get("ENGINE")):
        kwargs, origins = _from_databases(alias, databases, f"DATABASES[{alias!r}]", alias)
        if _locate(kwargs) or "database" in kwargs:
            return PoolSpec(alias, f"DATABASES[{alias!r}]", kwargs, origins)
    if alias == "default":
        env = os.environ if environ is None else environ
        url = url_from_env(env)
        if url is not None:
            var = "MYSQLPOOL_URL" if env.get("MYSQLPOOL_URL") else "DATABASE_URL"
            kwargs, origins = _from_url(url, f"environment variable {var}", alias)
            return PoolSpec(alias, f"environment variable {var}", kwargs, origins)
    return None


class SettingErrors(Exception):
    """Several problems of one pool, all to be reported."""

    def __init__(self, errors: list[SettingError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


def _validate(spec: PoolSpec) -> None:
    """Run the core's validation on each value, then on all of them together (``max_size`` >=
    ``size``), so that every bad value is reported; each error names the setting it came from."""
    if spec.engine:
        return
    kwargs = spec.build_kwargs()
    errors: list[SettingError] = []

    def label(exc: ConfigError) -> SettingError:
        where = spec.origins.get(exc.option) if exc.option else None
        return SettingError(where or spec.source, str(exc), alias=spec.alias, code=4)

    for key, value in kwargs.items():
        try:
            build_options({key: value} if key != "max_size" else {"size": 0, key: value})
        except ConfigError as exc:
            errors.append(label(exc))
    if not errors:
        try:
            build_options(kwargs)
        except ConfigError as exc:
            errors.append(label(exc))
    if errors:
        raise SettingErrors(errors)


def _engine_specs(databases: Mapping[str, Any]) -> dict[str, PoolSpec]:
    """A spec per pooled-ENGINE alias: its pool is the backend's."""
    return {
        alias: PoolSpec(alias, f"DATABASES[{alias!r}]['OPTIONS']['pool']", {}, {}, engine=True)
        for alias, cfg in databases.items()
        if isinstance(alias, str) and is_pool_engine(cfg)
    }


def read_config(
    settings: Any, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, PoolSpec], list[SettingError]]:
    """Every pool the settings describe, and every problem found (no IO, nothing raised).

    ``settings`` is ``django.conf.settings`` or anything with the same attributes. Aliases of
    ``DATABASES`` that use the pooled ENGINE are pools too (the backend's own).
    """
    databases = getattr(settings, "DATABASES", None) or {}
    if not isinstance(databases, Mapping):
        databases = {}
    specs: dict[str, PoolSpec] = {}
    errors: list[SettingError] = engine_errors(databases)
    engine_specs = _engine_specs(databases)
    bad_engine = {e.alias for e in errors}
    specs.update({a: s for a, s in engine_specs.items() if a not in bad_engine})
    if not hasattr(settings, SETTING):
        if "default" in engine_specs or "default" in bad_engine:
            return specs, errors
        try:
            spec = _fallback("default", databases, environ)
            if spec is not None:
                _validate(spec)
                specs["default"] = spec
        except SettingError as exc:
            errors.append(exc)
        except SettingErrors as exc:
            errors.extend(exc.errors)
        return specs, errors
    entries = getattr(settings, SETTING)
    if not isinstance(entries, Mapping):
        errors.append(
            SettingError(
                SETTING,
                f"must be a dict of named pools, got {type(entries).__name__}",
                alias=None,
                hint='e.g. MYSQLPOOL = {"default": {"URL": "mysql://user:pw@127.0.0.1/db"}}',
                code=1,
            )
        )
        return specs, errors
    for alias, entry in entries.items():
        if not isinstance(alias, str) or not alias:
            errors.append(
                SettingError(
                    SETTING,
                    f"pool names must be non-empty strings, got {alias!r}",
                    alias=None,
                    code=1,
                )
            )
            continue
        if alias in engine_specs or alias in bad_engine:
            errors.append(
                SettingError(
                    _path(alias),
                    f"DATABASES[{alias!r}] uses the pooled ENGINE, which is this alias's pool",
                    alias=alias,
                    hint=f"set its options in DATABASES[{alias!r}]['OPTIONS']['pool'] and "
                    f"remove MYSQLPOOL[{alias!r}]",
                    code=7,
                )
            )
            continue
        try:
            spec = _spec_for_entry(alias, entry, databases, environ)
            _validate(spec)
        except SettingError as exc:
            errors.append(exc)
            continue
        except SettingErrors as exc:
            errors.extend(exc.errors)
            continue
        specs[alias] = spec
    return specs, errors
