"""The Django pools: one ``ConnectionPool`` per ``MYSQLPOOL`` alias, built on first use.

Like Django's own ``connections`` handler, pools are created lazily (so ``manage.py`` commands
that never query, and gunicorn's master process, open no sockets), once per alias even when many
threads ask at the same time, and closed when the process exits or, in tests, when
``MYSQLPOOL`` / ``DATABASES`` are overridden.

``current_pool`` finds them through a resolver registered with :mod:`mysqlpool_ext.scope`:
``current_pool`` means ``pools["default"]`` and ``current_pool.using("reports")`` means
``pools["reports"]``, in views, management commands and background threads alike.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from ..errors import ConfigError
from ..pool import ConnectionPool
from .conf import PoolSpec, SettingError, read_config
from .engine_pools import ENGINE_POOLS

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["PoolHandler", "close_pools", "get_pool", "pools"]

logger = logging.getLogger("mysqlpool_ext")


class PoolHandler:
    """Lazily built pools keyed by alias (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[str, ConnectionPool] = {}
        self._config: tuple[dict[str, PoolSpec], list[SettingError]] | None = None

    # -- configuration -------------------------------------------------------------------------
    def _read(self) -> tuple[dict[str, PoolSpec], list[SettingError]]:
        config = self._config
        if config is None:
            from django.conf import settings

            config = self._config = read_config(settings)
        return config

    def aliases(self) -> list[str]:
        """The aliases the settings define (valid ones only)."""
        return list(self._read()[0])

    def spec(self, alias: str) -> PoolSpec:
        """The validated settings of ``alias``; ``ImproperlyConfigured`` naming the setting."""
        specs, errors = self._read()
        spec = specs.get(alias)
        if spec is not None:
            return spec
        for err in errors:
            if err.alias in (alias, None):
                raise ImproperlyConfigured(str(err) + (f" ({err.hint})" if err.hint else ""))
        known = ", ".join(map(repr, specs)) or "none"
        raise ImproperlyConfigured(
            f"MYSQLPOOL has no pool {alias!r} (configured: {known}); define MYSQLPOOL[{alias!r}]"
            + (
                ", or make DATABASES['default'] a MySQL database, or set MYSQLPOOL_URL"
                if alias == "default"
                else ""
            )
        )

    def __contains__(self, alias: object) -> bool:
        return isinstance(alias, str) and alias in self._read()[0]

    # -- pools ---------------------------------------------------------------------------------
    def __getitem__(self, alias: str) -> ConnectionPool:
        pool = self._pools.get(alias)
        if pool is not None and not pool.closed:
            return pool
        spec = self.spec(alias)
        if spec.engine:
            return _engine_pool(alias)
        with self._lock:
            pool = self._pools.get(alias)
            if pool is None or pool.closed:
                try:
                    pool = ConnectionPool(**spec.build_kwargs())
                except ConfigError as exc:  # validated already; only a race with settings
                    raise ImproperlyConfigured(f"{spec.source}: {exc}") from None
                self._pools[alias] = pool
                logger.debug("django: built pool %r from %s", alias, spec.source)
        return pool

    def get(self, alias: str) -> ConnectionPool | None:
        """The pool of ``alias`` if it has been built, without building it."""
        pool = self._pools.get(alias)
        if pool is not None and not pool.closed:
            return pool
        built = ENGINE_POOLS.all(alias)
        if built:
            return built[-1]  # the newest: the one for the alias's current settings
        return None

    def __iter__(self) -> Iterator[str]:
        return iter(self.aliases())

    def all(self, initialized_only: bool = False) -> list[ConnectionPool]:
        """Every pool (``MYSQLPOOL``'s and the pooled ENGINE's); ``initialized_only``: only those
        built so far, without building any."""
        if initialized_only:
            built = [p for p in list(self._pools.values()) if not p.closed]
            built += ENGINE_POOLS.all()
            return built
        return [self[alias] for alias in self.aliases()]

    def close_all(self, timeout: float = 0.0, *, engine: bool = True) -> None:
        """Close every pool built so far and forget the settings (they are re-read on next use);
        ``engine``: the pooled ENGINE's pools too."""
        with self._lock:
            built = list(self._pools.values())
            self._pools.clear()
            self._config = None
        if engine:
            ENGINE_POOLS.close(None, timeout)
        for pool in built:
            try:
                pool.close(timeout)
            except Exception:
                logger.exception("django: closing pool %r failed", pool.name)

    def reset(self) -> None:
        """Settings changed: close what was built from the old ones. The ENGINE's pools follow
        their alias's connection parameters by themselves (Django's test database)."""
        self.close_all(engine=False)

    def resolve(self, name: str | None) -> ConnectionPool | None:
        """The resolver for ``current_pool``: a Django pool, or None to let others answer."""
        alias = "default" if name is None else name
        pool = self._pools.get(alias)  # hot path: every current_pool call of every request
        if pool is not None and not pool.closed:
            return pool
        from django.conf import settings

        if not settings.configured:
            return None
        if alias not in self:
            if any(e.alias == alias or (e.alias is None and name is None) for e in self._read()[1]):
                self.spec(alias)  # this alias's pool is misconfigured: say so
            return None
        return self[alias]


def _engine_pool(alias: str) -> ConnectionPool:
    """The pooled ENGINE's pool for ``alias``: the one the ORM borrows from in this context."""
    from django.db import connections

    wrapper = connections[alias]
    guard = wrapper.__dict__.get("connect")
    if guard is not None and type(guard).__name__ == "_DatabaseFailure":
        # A test that does not declare this alias (SimpleTestCase, TestCase.databases): Django
        # makes the ORM's connect raise, and the alias still names the real database, not a
        # test one. current_pool must refuse as the ORM does: this raises Django's error.
        guard()
    pool = wrapper.borrowed_from if wrapper.connection is not None else None
    if pool is None or pool.closed:
        pool = wrapper.pool
    if pool is None:
        raise ImproperlyConfigured(f"DATABASES[{alias!r}]['OPTIONS']['pool'] is off")
    return pool


pools = PoolHandler()
"""The process-wide handler: ``pools["default"]`` is the default Django pool."""


def get_pool(alias: str = "default") -> ConnectionPool:
    """The pool for ``alias`` (built on first use); ``ImproperlyConfigured`` if it is not set up."""
    return pools[alias]


def close_pools(timeout: float = 0.0) -> None:
    """Close every Django pool (at exit; in tests; before forking on purpose)."""
    pools.close_all(timeout)


def on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("MYSQLPOOL", "DATABASES"):
        pools.reset()


atexit.register(close_pools)
