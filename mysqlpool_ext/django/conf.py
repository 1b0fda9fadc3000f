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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import CONNECT_PARAMS, POOL_OPTION_NAMES, build_options, parse_url, url_from_env
from ..errors import ConfigError

__all__ = ["PoolSpec", "SettingError", "read_config"]

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
_OPTION_IN_MESSAGE = re.compile(r"option '([A-Za-z_]+)'")


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

    def build_kwargs(self) -> dict[str, Any]:
        """A fresh copy of the keyword arguments, named after the alias."""
        return {**self.kwargs, "name": self.alias}


def _path(*parts: str) -> str:
    return SETTING + "".join(f"[{p!r}]" for p in parts)


def is_mysql_engine(engine: Any) -> bool:
    """Django's own backend and the third-party ones built on it (``...mysql``)."""
    return isinstance(engine, str) and "mysql" in engine.lower()


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
        key = unknown[0]
        close = difflib.get_close_matches(str(key).upper(), sorted(ALLOWED_KEYS), n=1)
        raise SettingError(
            _path(alias, str(key)),
            "unknown key" + (f"; did you mean {close[0]!r}?" if close else ""),
            alias=alias,
            hint="keys are upper-case core option names (SIZE, MAX_SIZE, TIMEOUT, ...) "
            "or URL, DATABASE, NAME, OPTIONS, HOST, PORT, USER, PASSWORD",
            code=3,
        )
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


def _validate(spec: PoolSpec) -> None:
    """Run the core's validation; re-label its message with the setting the value came from."""
    try:
        build_options(spec.build_kwargs())
    except ConfigError as exc:
        message = str(exc)
        match = _OPTION_IN_MESSAGE.search(message)
        where = spec.origins.get(match.group(1)) if match else None
        raise SettingError(where or spec.source, message, alias=spec.alias, code=4) from None


def read_config(
    settings: Any, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, PoolSpec], list[SettingError]]:
    """Every pool the settings describe, and every problem found (no IO, nothing raised).

    ``settings`` is ``django.conf.settings`` or anything with the same attributes.
    """
    databases = getattr(settings, "DATABASES", None) or {}
    if not isinstance(databases, Mapping):
        databases = {}
    specs: dict[str, PoolSpec] = {}
    errors: list[SettingError] = []
    if not hasattr(settings, SETTING):
        try:
            spec = _fallback("default", databases, environ)
        except SettingError as exc:
            errors.append(exc)
            return specs, errors
        if spec is not None:
            try:
                _validate(spec)
                specs["default"] = spec
            except SettingError as exc:
                errors.append(exc)
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
        try:
            spec = _spec_for_entry(alias, entry, databases, environ)
            _validate(spec)
        except SettingError as exc:
            errors.append(exc)
            continue
        specs[alias] = spec
    return specs, errors
