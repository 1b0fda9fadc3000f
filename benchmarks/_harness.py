"""Shared plumbing: the server, a time-boxed multi-threaded measuring loop, percentiles.

Why time-boxed cells rather than a fixed number of operations: the subjects differ by three orders
of magnitude (a new TLS-prepared connection per query vs a pooled borrow), so a fixed count is
either too long for one or too short for the other; a fixed duration keeps the suite's run time
predictable on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pymysql

__all__ = [
    "BenchServer",
    "Measurement",
    "bench_server",
    "machine_info",
    "measure",
    "median_row",
    "percentile",
    "url_kwargs",
]

#: One operation of one thread. It raises on failure (counted as an error, the loop goes on).
Op = Callable[[], Any]


@dataclass
class BenchServer:
    """Where the benchmarks connect. ``url`` holds the password: never print it."""

    url: str
    kwargs: dict[str, Any] = field(repr=False)
    source: str
    version: str = "?"

    def connect_kwargs(self, **extra: Any) -> dict[str, Any]:
        return {**self.kwargs, **extra}


#: What a benchmark connects with, of the keys ``parse_url`` gives.
CONNECT_KEYS = ("host", "port", "user", "password", "database", "unix_socket")


def url_kwargs(url: str, keys: tuple[str, ...] = CONNECT_KEYS) -> dict[str, Any]:
    """The connect arguments of a ``mysql://`` URL, limited to ``keys``."""
    from mysqlpool_ext.config import parse_url

    return {k: v for k, v in parse_url(url).items() if k in keys}


@contextlib.contextmanager
def bench_server(url: str | None = None) -> Iterator[BenchServer]:
    """``MYSQLPOOL_TEST_URL`` (or ``url``) if set, else the tests' throwaway MariaDB."""
    url = url or os.environ.get("MYSQLPOOL_TEST_URL")
    if url:
        server = BenchServer(url=url, kwargs=url_kwargs(url), source="MYSQLPOOL_TEST_URL")
        server.version = _server_version(server)
        yield server
        return
    from mysqlpool_ext._server import ThrowawayServer, find_server_binary

    if find_server_binary() is None:
        raise SystemExit(
            "no MySQL server: set MYSQLPOOL_TEST_URL=mysql://user:pw@host:port/db or install "
            "MariaDB (`bash scripts/dev bench` installs it from the OS packages)"
        )
    with ThrowawayServer() as throwaway:
        server = BenchServer(
            url=throwaway.url,
            kwargs=throwaway.connect_kwargs(),
            source=f"throwaway server ({os.path.basename(find_server_binary() or '?')})",
        )
        server.version = _server_version(server)
        yield server


def _server_version(server: BenchServer) -> str:
    conn = pymysql.connect(**server.connect_kwargs(ssl_disabled=True))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
        return str(row[0]) if row else "?"
    finally:
        conn.close()


@dataclass
class Measurement:
    """What one cell produced: successes, failures, wall time and per-operation latencies (s)."""

    ops: int
    errors: int
    elapsed: float
    latencies: list[float]
    first_error: str | None = None
    #: CPU seconds this process used (all threads) over the measured window: tells a client-CPU
    #: bound cell (pool overhead) from one waiting on the server or on thread wake-ups.
    cpu: float = 0.0
    #: Context switches (voluntary + involuntary, all threads) over the whole cell: each thread
    #: hand-off (a waiter woken, a blocking recv) is at least one.
    switches: int = 0
    #: Successful operations of each thread (fairness: does every thread get its turn?).
    per_thread: list[int] = field(default_factory=list)

    @property
    def ops_s(self) -> float:
        return self.ops / self.elapsed if self.elapsed > 0 else 0.0


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def _loop(
    op: Op, start: threading.Event, warm_end: list[float], end: list[float], out: list[Any]
) -> None:
    """One thread's timed loop: one ``perf_counter()`` per operation (the end of one is the start
    of the next), so the timer costs every subject the same ~50 ns."""
    pc = time.perf_counter
    lat: list[float] = []
    append = lat.append
    errors = 0
    first_error: str | None = None
    start.wait()
    stop, warm = end[0], warm_end[0]
    t = pc()
    while t < stop:
        try:
            op()
        except Exception as exc:  # noqa: BLE001 - a failed borrow is a result, not a crash
            t2 = pc()
            if t2 >= warm:
                errors += 1
                if first_error is None:
                    first_error = f"{type(exc).__name__}: {exc}"[:200]
            t = t2
            continue
        t2 = pc()
        if t2 >= warm:  # by end time: a thread starved since the warm-up still shows its wait
            append(t2 - t)
        t = t2
    out.append((lat, errors, first_error))


def measure(
    make_op: Callable[[int], Op],
    threads: int,
    duration: float,
    warmup: float = 0.1,
) -> Measurement:
    """Run ``threads`` threads, each calling its own ``make_op(i)()`` in a loop for ``duration``
    seconds after ``warmup`` seconds; operations started during the warm-up are not counted.

    One thread runs in the calling thread (no thread start-up in the numbers)."""
    ops = [make_op(i) for i in range(threads)]
    out: list[Any] = []
    go = threading.Event()
    warm_end = [0.0]
    end = [0.0]
    workers = [
        threading.Thread(target=_loop, args=(op, go, warm_end, end, out), daemon=True)
        for op in ops[1:]
    ]
    for w in workers:
        w.start()
    now = time.perf_counter()
    warm_end[0] = now + warmup
    end[0] = now + warmup + duration
    cpu0 = time.process_time()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    go.set()
    _loop(ops[0], go, warm_end, end, out)
    for w in workers:
        w.join()
    # CPU over warm-up + measured window, scaled to the measured window (same work throughout).
    cpu = (time.process_time() - cpu0) * duration / (time.perf_counter() - now)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    switches = ru1.ru_nvcsw + ru1.ru_nivcsw - ru0.ru_nvcsw - ru0.ru_nivcsw
    elapsed = time.perf_counter() - warm_end[0]
    latencies: list[float] = []
    errors = 0
    first_error = None
    for lat, err, first in out:
        latencies.extend(lat)
        errors += err
        first_error = first_error or first
    # Scaled like cpu; the count includes the warm-up, so per-op figures use all operations.
    switches = int(switches * duration / (duration + warmup))
    per_thread = [len(lat) for lat, _, _ in out]
    return Measurement(
        len(latencies), errors, elapsed, latencies, first_error, cpu, switches, per_thread
    )


def summarize(m: Measurement) -> dict[str, Any]:
    """The row fields of one repeat."""
    lat = sorted(m.latencies)
    ms = 1000.0

    def pct(q: float) -> float | None:
        v = percentile(lat, q)
        return None if v is None else v * ms

    return {
        "ops_s": m.ops_s,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "p999_ms": pct(99.9),
        "max_ms": lat[-1] * ms if lat else None,
        "errors": m.errors,
        "ops": m.ops,
        "elapsed_s": m.elapsed,
        "first_error": m.first_error,
        "cpu_util": m.cpu / m.elapsed if m.elapsed > 0 else None,
        "cpu_us_per_op": m.cpu / m.ops * 1e6 if m.ops else None,
        "switches_per_op": m.switches / m.ops if m.ops else None,
        # The least served thread's share of the mean: 1.0 is perfectly fair, 0 is starvation.
        "fairness": (
            min(m.per_thread) * len(m.per_thread) / sum(m.per_thread)
            if m.per_thread and sum(m.per_thread)
            else None
        ),
    }


def median_row(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold the repeats of one cell: the median of each figure, errors summed."""
    row: dict[str, Any] = {}
    for key in (
        "ops_s",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "cpu_util",
        "cpu_us_per_op",
        "switches_per_op",
        "fairness",
    ):
        values = [r[key] for r in repeats if r.get(key) is not None]
        row[key] = statistics.median(values) if values else None
    row["errors"] = sum(r["errors"] for r in repeats)
    row["ops"] = sum(r["ops"] for r in repeats)
    row["attempts"] = row["ops"] + row["errors"]
    row["error_rate"] = row["errors"] / row["attempts"] if row["attempts"] else 0.0
    row["repeats_ops_s"] = [round(r["ops_s"], 1) for r in repeats]
    first = next((r["first_error"] for r in repeats if r.get("first_error")), None)
    if first:
        row["first_error"] = first
    return row


def machine_info() -> dict[str, Any]:
    """What BENCHMARKS.md prints about the machine and the software versions."""
    from importlib import metadata

    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in (
        "mysqlpool_ext",
        "PyMySQL",
        "pymysql-pool",
        "DBUtils",
        "SQLAlchemy",
        "aiomysql",
        "asyncmy",
        "Flask",
        "Flask-SQLAlchemy",
        "Django",
        "gunicorn",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    from mysqlpool_ext import _rows

    # Which row decoder ran: compiled (scripts/build_accel.py) or pure (MYSQLPOOL_NO_ACCEL=1).
    build = {"compiled_row_decoder": _rows.has_accelerator()}
    return {
        "build": build,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "versions": versions,
    }
