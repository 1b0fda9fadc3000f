"""HTTP load for the WSGI benchmarks (Flask, Django): wrk when installed, else Python threads.

Shared by ``flask_bench`` and ``django_bench`` so both endpoints are driven the same way:
``CLIENTS`` concurrent clients, ``Connection: close`` (with keep-alive one gunicorn worker took
almost every client connection and results swung 2x, see shared/FACTS.md).
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import threading
import time
from typing import Any

CLIENTS = 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str, timeout: float = 10.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _wrk(port: int, path: str, duration: float) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CLIENTS}", f"-d{max(1, round(duration))}s", "--latency",
         "-H", "Connection: close", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    ).stdout  # fmt: skip
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None:
        raise RuntimeError(f"cannot read wrk's output: {out[-500:]!r}")
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        # With Connection: close the server closing after each response is not an error; wrk
        # counts it under "read" only when no response came. Count connect/write/timeout.
        errors += int(m.group(1)) + int(m.group(3)) + int(m.group(4))
    return {
        "ops_s": float(rps.group(1)),
        "p50_ms": _ms(lat["50"]) if "50" in lat else None,
        "p99_ms": _ms(lat["99"]) if "99" in lat else None,
        "errors": errors,
        "ops": int(total.group(1)),
    }


def _pyload(port: int, path: str, duration: float) -> dict[str, Any]:
    """Fallback load generator: CLIENTS threads, one request at a time each."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def client() -> None:
        mine: list[float] = []
        bad = 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                ok = _get(port, path) == 200
            except OSError:
                ok = False
            if ok:
                mine.append(time.perf_counter() - t0)
            else:
                bad += 1
        with lock:
            lat.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    lat.sort()

    def pct(q: float) -> float | None:
        return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else None

    return {
        "ops_s": len(lat) / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "errors": errors[0],
        "ops": len(lat),
    }
