"""Prometheus metrics for pools (extra ``[prometheus]``, needs ``prometheus_client``).

A custom collector rather than Counter/Gauge objects updated on the hot path: the pool already
keeps its counters, and a collector reads them only when Prometheus scrapes, so borrowing and giving
back pay nothing for metrics. Every numeric key of :meth:`ConnectionPool.stats` is exported as
``mysqlpool_<key>`` with a ``pool`` label; monotonically growing counts are Prometheus counters
(exposed with the ``_total`` suffix), the rest gauges. Booleans export as 0/1.

    from mysqlpool_ext.metrics import register
    register()                 # every open pool, on prometheus_client's default registry
    register(pool=my_pool)     # only this one

Then serve them the usual way (``prometheus_client.start_http_server`` or ``make_wsgi_app``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from .pool import ConnectionPool
from .topology import describe as describe_topology

__all__ = ["COUNTER_KEYS", "PoolCollector", "register"]

#: Stats keys that only ever grow while a pool lives: exported as counters.
COUNTER_KEYS = frozenset(ConnectionPool.COUNTER_NAMES)

_HELP = {
    "requests_num": "Connections lent to borrowers",
    "requests_queued": "Borrowers that had to wait for a connection",
    "requests_wait_ms": "Total milliseconds borrowers spent waiting",
    "requests_errors": "Borrowers that gave up (pool timeout)",
    "connections_num": "Server connections opened",
    "connections_errors": "Failed attempts to open a server connection",
    "connections_lost": "Connections discarded because they broke",
    "connections_recycled": "Connections closed for max_lifetime or max_idle",
    "returns_reset": "Connections whose session was reset on return (COM_RESET_CONNECTION)",
    "returns_rolled_back": "Connections given back with an open transaction (rolled back)",
    "checks_failed": "Liveness checks that failed",
    "leaks": "Connections garbage-collected without being given back",
    "pool_min": "Configured size: connections kept open",
    "pool_max": "Configured max_size",
    "pool_size": "Server connections open or being opened",
    "pool_available": "Connections ready to lend: idle, or kept between uses",
    "in_use": "Connections lent out now",
    "kept": "Connections kept by their last borrower between uses (any borrower may take them)",
    "requests_waiting": "Borrowers waiting now",
    "server_unreachable": "1 while the pool cannot reach the server",
    "wait_p50_ms": "Median wait of recent borrowers that waited, in ms",
    "wait_p99_ms": "99th percentile wait of recent borrowers that waited, in ms",
    "wait_max_ms": "Longest wait of recent borrowers that waited, in ms",
}


class PoolCollector(Collector):
    """Exports ``pool.stats()`` of one pool, or of every open pool when ``pool`` is None.

    Pools are looked up at each scrape, so pools created later (e.g. lazily by a Flask or Django
    app) show up without re-registering; closed pools drop out.
    """

    def __init__(self, pool: ConnectionPool | None = None, *, prefix: str = "mysqlpool") -> None:
        self.pool = pool
        self.prefix = prefix

    def _pools(self) -> list[ConnectionPool]:
        if self.pool is not None:
            return [self.pool]
        from .registry import open_pools

        return [p for _, p in sorted(open_pools().items())]

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for pool in self._pools():
            for key, value in pool.stats().items():
                number = _as_number(value)
                if number is None:
                    continue
                family = families.get(key)
                if family is None:
                    name = f"{self.prefix}_{key}"
                    doc = _HELP.get(key, key.replace("_", " "))
                    if key in COUNTER_KEYS:
                        family = CounterMetricFamily(name, doc, labels=["pool"])
                    else:
                        family = GaugeMetricFamily(name, doc, labels=["pool"])
                    families[key] = family
                family.add_metric([pool.name], number)
        yield from families.values()
        yield from self._host_metrics()

    def _host_metrics(self) -> Iterator[Metric]:
        """Pools on a host list: each server's connections, whether it is up and when its role
        was last checked, labelled with its role as the pool sees it."""
        labels = ["pool", "host", "role"]
        conns = GaugeMetricFamily(
            f"{self.prefix}_host_connections",
            "Connections this pool holds to the host",
            labels=labels,
        )
        up = GaugeMetricFamily(
            f"{self.prefix}_host_up", "1 unless the host is skipped after failures", labels=labels
        )
        checked = GaugeMetricFamily(
            f"{self.prefix}_host_last_checked_seconds",
            "Unix time of the host's last role check (0: never)",
            labels=labels,
        )
        found = False
        for pool in self._pools():
            for host in describe_topology(pool):
                found = True
                key = [pool.name, str(host["address"]), str(host["role"])]
                conns.add_metric(key, float(host["connections"]))
                up.add_metric(key, 0.0 if host["denied_until"] else 1.0)
                checked.add_metric(key, float(host["last_checked"] or 0.0))
        if found:
            yield from (conns, up, checked)

    def describe(self) -> Iterator[Metric]:
        # Nothing up front: the set of pools, and so of samples, changes between scrapes.
        return iter(())


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


def register(
    pool: ConnectionPool | None = None,
    registry: CollectorRegistry = REGISTRY,
    *,
    prefix: str = "mysqlpool",
) -> PoolCollector:
    """Register a :class:`PoolCollector` (all open pools, or ``pool``) and return it.

    Unregister with ``registry.unregister(collector)``.
    """
    collector = PoolCollector(pool, prefix=prefix)
    registry.register(collector)
    return collector
