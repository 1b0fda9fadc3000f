"""Named pools: ``mysqlpool_ext.get_pool(name)`` and the default pool behind ``current_pool``.

The registry holds weak references: it never keeps a forgotten pool (and its sockets) alive.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING

from .errors import PoolError

if TYPE_CHECKING:
    from .pool import ConnectionPool

__all__ = [
    "explicit_default_pool",
    "get_default_pool",
    "get_pool",
    "open_pools",
    "register",
    "set_default_pool",
    "unregister",
]

_lock = threading.Lock()
_pools: dict[str, weakref.ref[ConnectionPool]] = {}
_default: weakref.ref[ConnectionPool] | None = None


def register(pool: ConnectionPool) -> None:
    """Called by every new pool: it can be found by name from now on."""
    with _lock:
        _pools[pool.name] = weakref.ref(pool)


def unregister(pool: ConnectionPool) -> None:
    """Called when a pool closes."""
    global _default
    with _lock:
        ref = _pools.get(pool.name)
        if ref is not None and ref() is pool:
            del _pools[pool.name]
        if _default is not None and _default() is pool:
            _default = None


def open_pools() -> dict[str, ConnectionPool]:
    """The open pools of this process by name (a snapshot)."""
    with _lock:
        live = {name: ref() for name, ref in _pools.items()}
    return {name: p for name, p in live.items() if p is not None and not p.closed}


def get_pool(name: str) -> ConnectionPool:
    """The open pool called ``name`` (the latest one, if the name was reused)."""
    pools = open_pools()
    try:
        return pools[name]
    except KeyError:
        known = ", ".join(repr(n) for n in sorted(pools)) or "none"
        raise PoolError(f"no open pool named {name!r} (open pools: {known})") from None


def set_default_pool(pool: ConnectionPool | None) -> None:
    """Make ``pool`` what ``current_pool`` means outside any framework context."""
    global _default
    with _lock:
        _default = None if pool is None else weakref.ref(pool)


def get_default_pool() -> ConnectionPool:
    """The default pool: the one set with :func:`set_default_pool`, else the pool named
    ``"default"``, else the only open pool. Anything else is ambiguous and raises."""
    with _lock:
        chosen = _default() if _default is not None else None
    if chosen is not None and not chosen.closed:
        return chosen
    pools = open_pools()
    if "default" in pools:
        return pools["default"]
    if len(pools) == 1:
        return next(iter(pools.values()))
    if not pools:
        raise PoolError(
            "no pool to use: create a ConnectionPool, or set up the Flask extension / Django app"
        )
    raise PoolError(
        f"{len(pools)} pools are open ({', '.join(sorted(map(repr, pools)))}): "
        "call mysqlpool_ext.set_default_pool(pool) or name one 'default'"
    )


def explicit_default_pool() -> ConnectionPool | None:
    """The pool given to :func:`set_default_pool`, if it is still open (None otherwise)."""
    with _lock:
        chosen = _default() if _default is not None else None
    return chosen if chosen is not None and not chosen.closed else None


def _reinit_after_fork() -> None:
    # A thread of the parent may have held the lock at fork time: the child gets a new one.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
