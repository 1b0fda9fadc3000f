"""What ``mysqlpool-ext check`` and the Prometheus collector say about a host list."""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import quote

from hostkit import APP_USER, DATABASE, Pair

from mysqlpool_ext import ConnectionPool


def test_check_prints_the_topology_it_sees(pair: Pair) -> None:
    hosts = ",".join(pair.address(s) for s in (pair.replica, pair.primary))
    url = f"mysql://{APP_USER}:{quote(pair.app_password, safe='')}@{hosts}/{DATABASE}"
    done = subprocess.run(
        [sys.executable, "-m", "mysqlpool_ext", "check", url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert pair.app_password not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    roles = {h["address"]: h["role"] for h in report["pools"][0]["topology"]}
    # Sizing per server: a pool may put all of its max_size on either of them.
    assert len(report["headroom"]) == 2, report["headroom"]
    assert roles == {
        pair.address(pair.primary): "primary",
        pair.address(pair.replica): "replica",
    }
    text = subprocess.run(
        [sys.executable, "-m", "mysqlpool_ext", "check", url],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    ).stdout
    assert "topology  target=primary, 2 hosts" in text
    host_lines = [line for line in text.splitlines() if line.endswith("conn") or "conn " in line]
    primary_line = next(line for line in host_lines if pair.address(pair.primary) in line)
    assert "primary" in primary_line and "<- target" in primary_line


def test_prometheus_exports_each_host(pair: Pair) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from mysqlpool_ext.metrics import register

    hosts = [pair.address(pair.primary), pair.address(pair.replica)]
    with ConnectionPool(
        hosts=hosts, target="any", size=2, name="hosts-metrics", **pair.app_kwargs()
    ) as pool:
        registry = CollectorRegistry()
        register(pool, registry)
        text = generate_latest(registry).decode()
    for address in hosts:
        assert f'host="{address}"' in text
    assert 'mysqlpool_host_up{host="' in text
    assert "mysqlpool_host_connections" in text and "mysqlpool_host_last_checked_seconds" in text
