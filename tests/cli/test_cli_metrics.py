"""The Prometheus collector, scraped through a real ``CollectorRegistry`` and parsed back."""

from __future__ import annotations

from typing import Any

import pytest

from mysqlpool_ext import ConnectionPool

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from mysqlpool_ext.metrics import COUNTER_KEYS, PoolCollector, register  # noqa: E402


def scrape(registry: Any) -> dict[tuple[str, str], float]:
    """``{(stats key, pool label): value}`` from the registry's text exposition."""
    text = prometheus_client.generate_latest(registry).decode()
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # prometheus_client adds these for counters
            key = sample.name.removeprefix("mysqlpool_").removesuffix("_total")
            values[(key, sample.labels["pool"])] = sample.value
    return values


def numeric_stats(pool: ConnectionPool) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in pool.stats().items()
        if isinstance(v, (int, float))  # bools included: they export as 0/1
    }


def test_every_numeric_stat_is_exported_with_the_pool_label(db_kwargs: dict[str, Any]) -> None:
    registry = prometheus_client.CollectorRegistry()
    with ConnectionPool(size=2, max_size=3, name="metrics-one", **db_kwargs) as pool:
        for i in range(5):
            pool.execute_query("SELECT %s", (i,))
        with pool.transaction() as conn:
            conn.execute_query("SELECT 1")
        held = pool.get_connection()
        try:
            register(pool=pool, registry=registry)
            scraped = scrape(registry)
            expected = numeric_stats(pool)  # nothing ran in between: the same snapshot
        finally:
            held.close()
    mine = {key: value for (key, label), value in scraped.items() if label == "metrics-one"}
    assert mine == expected
    assert mine["requests_num"] == 7
    assert mine["in_use"] == 1
    assert mine["pool_max"] == 3
    assert mine["server_unreachable"] == 0


def test_counters_and_gauges_have_the_right_types(db_kwargs: dict[str, Any]) -> None:
    registry = prometheus_client.CollectorRegistry()
    with ConnectionPool(size=1, name="metrics-types", **db_kwargs) as pool:
        register(pool=pool, registry=registry)
        text = prometheus_client.generate_latest(registry).decode()
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["mysqlpool_requests_num"] == "counter"
    assert types["mysqlpool_connections_num"] == "counter"
    assert types["mysqlpool_in_use"] == "gauge"
    assert types["mysqlpool_wait_p99_ms"] == "gauge"
    assert {name.removeprefix("mysqlpool_") for name, t in types.items() if t == "counter"} == (
        set(COUNTER_KEYS)
    )


def test_without_a_pool_it_exports_every_open_pool(db_kwargs: dict[str, Any]) -> None:
    registry = prometheus_client.CollectorRegistry()
    collector = register(registry=registry)
    a = ConnectionPool(size=1, name="metrics-a", **db_kwargs)
    b = ConnectionPool(size=2, name="metrics-b", **db_kwargs)
    try:
        a.execute_query("SELECT 1")
        scraped = scrape(registry)
        assert scraped[("requests_num", "metrics-a")] == 1
        assert scraped[("requests_num", "metrics-b")] == 0
        assert scraped[("pool_size", "metrics-b")] == 2
        for pool in (a, b):
            exported = {k: v for (k, label), v in scraped.items() if label == pool.name}
            assert exported == numeric_stats(pool)
        b.close()
        labels = {label for _, label in scrape(registry)}
        assert "metrics-a" in labels and "metrics-b" not in labels  # closed pools drop out
    finally:
        a.close()
        b.close()
        registry.unregister(collector)


def test_prefix_is_configurable(db_kwargs: dict[str, Any]) -> None:
    registry = prometheus_client.CollectorRegistry()
    with ConnectionPool(size=1, name="metrics-prefix", **db_kwargs) as pool:
        registry.register(PoolCollector(pool, prefix="shop_db"))
        text = prometheus_client.generate_latest(registry).decode()
    assert 'shop_db_in_use{pool="metrics-prefix"} 0.0' in text
    assert "mysqlpool_" not in text
