"""What a clean borrow+return costs, and what each syscall on its path adds.

    python -m benchmarks.ablate_borrow [--rounds 7] [--borrows 200000]

Runs ``pool.get_connection().close()`` in a tight loop and measures CPU time
(``time.thread_time()``: insensitive to other processes on a shared machine), with parts of the
path patched out in turn: the zero-timeout ``poll()`` that looks for a server hang-up
(``_RawConnection._has_pending_input``) and the ``os.getpid()`` fork check. Variants are
interleaved; the median of the rounds is printed. The patches are for measurement only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from ._harness import bench_server


def _loop(pool: Any, n: int) -> float:
    get = pool.get_connection
    t = time.thread_time()
    for _ in range(n):
        get().close()
    return (time.thread_time() - t) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablate_borrow", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--borrows", type=int, default=200_000)
    args = parser.parse_args(argv)

    import mysqlpool_ext.pool as pool_module
    from mysqlpool_ext import ConnectionPool
    from mysqlpool_ext.connection import _RawConnection

    real_getpid = pool_module._getpid
    real_poll = _RawConnection._has_pending_input
    pid = real_getpid()

    def restore() -> None:
        pool_module._getpid = real_getpid
        _RawConnection._has_pending_input = real_poll  # type: ignore[method-assign]

    def no_getpid() -> None:
        pool_module._getpid = lambda: pid

    def no_poll() -> None:
        _RawConnection._has_pending_input = lambda self: False  # type: ignore[method-assign]

    variants: dict[str, tuple[str, list[Callable[[], None]]]] = {
        "default (check='ping')": ("ping", []),
        "without the poll": ("ping", [no_poll]),
        "without os.getpid()": ("ping", [no_getpid]),
        "without both": ("ping", [no_poll, no_getpid]),
        "check=None": ("none", []),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    with bench_server() as server:
        kwargs = server.connect_kwargs()
        pools = {
            "ping": ConnectionPool(size=8, max_size=8, **kwargs),
            "none": ConnectionPool(size=8, max_size=8, check=None, **kwargs),
        }
        try:
            for _ in range(args.rounds):
                for name, (which, patches) in variants.items():
                    restore()
                    for patch in patches:
                        patch()
                    try:
                        results[name].append(_loop(pools[which], args.borrows))
                    finally:
                        restore()
        finally:
            for p in pools.values():
                p.close()
    for name, values in results.items():
        print(
            f"{name:<24} {statistics.median(values):5.2f} µs CPU per borrow+return "
            f"(min {min(values):.2f}, max {max(values):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
