"""The pools the pooled ENGINE (``mysqlpool_ext.django.backend``) has built, per alias.

Its own module so that the backend and the settings-side registry (``pools.py``, which the
commands, checks and ``current_pool`` read) both reach them without importing each other.
A pool is kept per set of connection parameters: when Django's test runner swaps the database
name for the test database, the alias gets a new pool and the old one closes once nothing is
lent from it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from ..pool import ConnectionPool

__all__ = ["ENGINE_POOLS", "EnginePools"]


class EnginePools:
    """Alias -> [(connection parameters, pool)], newest last."""

    def __init__(self) -> None:
        self._pools: dict[str, list[tuple[dict[str, Any], ConnectionPool]]] = {}
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            # A thread of the parent may have held it at fork time (gunicorn --preload); the
            # pools themselves start afresh in the child (the core's fork handling).
            os.register_at_fork(after_in_child=self._new_lock)

    def _new_lock(self) -> None:
        self._lock = threading.Lock()

    def all(self, alias: str | None = None) -> list[ConnectionPool]:
        """The open pools built (for ``alias``, or all), newest last."""
        with self._lock:
            entries = [e for a, es in self._pools.items() if alias in (None, a) for e in es]
        return [pool for _, pool in entries if not pool.closed]

    def find_or_build(
        self, alias: str, params: dict[str, Any], build: Callable[[], ConnectionPool]
    ) -> ConnectionPool:
        """The open pool for exactly these parameters, else one from ``build()``; pools for
        parameters nobody uses any more are closed once nothing is lent from them."""
        for key, pool in reversed(self._pools.get(alias, ())):
            if key == params and not pool.closed:
                return pool
        with self._lock:
            entries = self._pools.setdefault(alias, [])
            for key, pool in reversed(entries):
                if key == params and not pool.closed:
                    return pool
            pool = build()
            keep = []
            for key, old in entries:
                if old.closed:
                    continue
                if old.stats()["in_use"] == 0:
                    old.close()
                else:
                    keep.append((key, old))
            keep.append((params, pool))
            self._pools[alias] = keep
        return pool

    def close(self, alias: str | None = None, timeout: float = 0.0) -> None:
        """Close the pools of ``alias`` (or all) and forget them."""
        with self._lock:
            if alias is None:
                entries = [e for es in self._pools.values() for e in es]
                self._pools.clear()
            else:
                entries = self._pools.pop(alias, [])
        for _, pool in entries:
            pool.close(timeout)


ENGINE_POOLS = EnginePools()
