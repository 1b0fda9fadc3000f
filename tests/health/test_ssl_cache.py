"""The pool builds its SSL context once, not on every connect (PyMySQL does, ~20 ms each)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from mysqlpool_ext import ConnectionPool
from mysqlpool_ext.connection import _RawConnection

OPENS = 20


@pytest.fixture
def contexts_built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    built: list[int] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    yield built


def test_ssl_context_built_once_per_pool(
    db_kwargs: dict[str, Any], contexts_built: list[int], figures: Any
) -> None:
    with ConnectionPool(size=0, max_size=OPENS, lazy=True, **db_kwargs) as pool:
        leases = [pool.get_connection() for _ in range(OPENS)]  # OPENS distinct connections
        assert len({lease.thread_id() for lease in leases}) == OPENS
        for lease in leases:
            lease.close()
    pool_contexts = len(contexts_built)
    contexts_built.clear()
    for _ in range(OPENS):
        pymysql.connect(**db_kwargs).close()
    figures(pool_contexts=pool_contexts, plain_pymysql_contexts=len(contexts_built), opens=OPENS)
    assert pool_contexts == 1
    assert len(contexts_built) == OPENS  # the baseline this cache removes


def _settings(ctx: ssl.SSLContext) -> tuple[Any, ...]:
    return (ctx.check_hostname, ctx.verify_mode, ctx.verify_flags, ctx.minimum_version, ctx.options)


@pytest.mark.parametrize(
    "options",
    [None, {"check_hostname": False}, {"verify_mode": True}, {"verify_mode": "none"}],
)
def test_cached_context_has_the_users_settings(
    db_kwargs: dict[str, Any], options: dict[str, Any] | None
) -> None:
    """Same security settings as PyMySQL's own context; one cached context per distinct options."""
    cache: dict[Any, Any] = {}
    extra = {} if options is None else {"ssl": options}
    # defer_connect: the context is built in __init__; our test server speaks no TLS.
    a = _RawConnection(cache, **db_kwargs, **extra, defer_connect=True)
    b = _RawConnection(cache, **db_kwargs, **extra, defer_connect=True)
    plain = pymysql.connections.Connection(**db_kwargs, **extra, defer_connect=True)
    assert a.ctx is b.ctx and len(cache) == 1
    assert _settings(a.ctx) == _settings(plain.ctx)
    other = _RawConnection(cache, **db_kwargs, ssl={"verify_mode": "required"}, defer_connect=True)
    assert other.ctx is not a.ctx  # other options: a context of their own


def _connect_ms(open_one: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        open_one().close()
    return (time.perf_counter() - start) / n * 1000


def test_connect_cost_with_and_without_cache(db_kwargs: dict[str, Any], figures: Any) -> None:
    cache: dict[Any, Any] = {}
    _RawConnection(cache, **db_kwargs).close()  # warm the cache
    rounds = {"plain": [], "cached": [], "ssl_disabled": []}  # type: dict[str, list[float]]
    for _ in range(3):  # interleaved, so drift hits all three alike
        rounds["plain"].append(_connect_ms(lambda: pymysql.connect(**db_kwargs), OPENS))
        rounds["cached"].append(_connect_ms(lambda: _RawConnection(cache, **db_kwargs), OPENS))
        rounds["ssl_disabled"].append(
            _connect_ms(lambda: pymysql.connect(**db_kwargs, ssl_disabled=True), OPENS)
        )
    plain, cached, off = (min(v) for v in rounds.values())
    figures(
        plain_pymysql_ms=plain,
        pool_cached_ctx_ms=cached,
        ssl_disabled_ms=off,
        speedup=plain / cached,
    )
    assert cached < plain / 3
