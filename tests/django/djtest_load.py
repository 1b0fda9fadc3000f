"""A small HTTP load generator for the server tests: N threads, ``Connection: close``, a deadline.

``Connection: close`` on every request spreads the load over all gunicorn workers (with
keep-alive one worker takes almost every client; see FACTS.md).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(len(data) * q))] * 1000


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_json(port: int, path: str) -> Any:
    status, body = get(port, path)
    if status != 200:
        raise AssertionError(f"GET {path}: HTTP {status}: {body[:200]!r}")
    return json.loads(body)


def run_load(
    port: int,
    paths: Sequence[str],
    *,
    clients: int = 32,
    duration: float = 3.0,
    validate: Callable[[str, bytes], str | None] | None = None,
) -> LoadResult:
    """``clients`` threads request ``paths`` in turn for ``duration`` seconds."""
    result = LoadResult()
    lock = threading.Lock()
    start_barrier = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(n: int) -> None:
        ok = failed = 0
        failures: list[str] = []
        lat: list[float] = []
        start_barrier.wait()
        i = n
        while time.monotonic() < stop_at[0]:
            path = paths[i % len(paths)]
            i += 1
            t0 = time.perf_counter()
            try:
                status, body = get(port, path)
                problem = f"HTTP {status}" if status != 200 else None
                if problem is None and validate is not None:
                    problem = validate(path, body)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                problem = repr(exc)
            if problem is None:
                ok += 1
                lat.append(time.perf_counter() - t0)
            else:
                failed += 1
                if len(failures) < 5:
                    failures.append(f"{path}: {problem}")
        with lock:
            result.ok += ok
            result.failed += failed
            result.failures.extend(failures)
            result.latencies.extend(lat)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    stop_at[0] = t0 + duration
    start_barrier.wait()
    for t in threads:
        t.join(duration + 30)
    result.elapsed = time.monotonic() - t0
    return result
