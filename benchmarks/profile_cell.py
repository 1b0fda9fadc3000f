"""Run one benchmark cell for a long time, so a profiler can see where its time goes.

    python -m benchmarks.profile_cell select1_32 ours --seconds 10
    python -m benchmarks.profile_cell borrow_1 ours --pyinstrument           # prints a call tree
    py-spy record -r 500 -o /tmp/borrow.svg -- \\
        python -m benchmarks.profile_cell borrow_1 ours --seconds 10        # flame graph

The scenario and subject keys are those of ``benchmarks.core_bench`` (``SCENARIOS``,
``SUBJECTS``); the cell runs exactly the code the suite measures.
"""

from __future__ import annotations

import argparse
import sys

from ._harness import bench_server, measure, summarize
from .core_bench import SCENARIOS, SUBJECTS, create_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_cell", description=__doc__)
    parser.add_argument("scenario", choices=[s[0] for s in SCENARIOS])
    parser.add_argument("subject", choices=[s[0] for s in SUBJECTS])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--pyinstrument", action="store_true", help="profile with pyinstrument and print the tree"
    )
    args = parser.parse_args(argv)
    _, kind, threads, label = next(s for s in SCENARIOS if s[0] == args.scenario)
    factory = dict(SUBJECTS)[args.subject]
    with bench_server() as server:
        create_table(server)
        subject = factory(server)
        subject.open()
        try:
            profiler = None
            if args.pyinstrument:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0002)
                profiler.start()
            m = measure(lambda i: subject.make_op(kind, i, threads), threads, args.seconds, 0.2)
            if profiler is not None:
                profiler.stop()
                print(profiler.output_text(unicode=True, color=False, show_all=False))
        finally:
            subject.close()
    s = summarize(m)
    print(
        f"{label} / {subject.label}: {s['ops_s']:,.0f} ops/s, p50 {s['p50_ms']:.3f} ms, "
        f"p99 {s['p99_ms']:.3f} ms, errors {s['errors']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
