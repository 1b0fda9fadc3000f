"""An opt-in view with the pools' counters, for dashboards and the demo::

    # urls.py
    from mysqlpool_ext.django import views as mysqlpool_views
    urlpatterns = [..., path("mysqlpool/stats", mysqlpool_views.stats)]

It returns counts only (sizes, in use, waits, errors), never host, user or any connection setting,
and it never builds a pool: an alias that has not been used yet shows ``"built": false``. It is
not protected; wrap it (``staff_member_required``...) if the numbers are not for everyone.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from .pools import pools

__all__ = ["pool_stats", "stats"]

_COUNT_TYPES = (int, float, bool)


def pool_stats() -> dict[str, dict[str, Any]]:
    """``{alias: {counter: value}}`` for every configured alias of this process."""
    out: dict[str, dict[str, Any]] = {}
    for alias in pools.aliases():
        pool = pools.get(alias)
        if pool is None:
            out[alias] = {"built": False}
            continue
        counts = {k: v for k, v in pool.stats().items() if isinstance(v, _COUNT_TYPES)}
        out[alias] = {"built": True, **counts}
    return out


def stats(request: HttpRequest) -> JsonResponse:
    """GET: this worker process's pool counters as JSON (see the module docstring)."""
    import os

    return JsonResponse({"pid": os.getpid(), "pools": pool_stats()})
