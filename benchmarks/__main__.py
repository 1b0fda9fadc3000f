"""``python -m benchmarks``: the whole suite in one run, against one server.

    python -m benchmarks                 # everything (a few minutes on 2 cores)
    python -m benchmarks --quick         # smoke run: a few short cells per module
    python -m benchmarks --only core     # one module (core, async, flask, django)

The server is ``MYSQLPOOL_TEST_URL`` if set, else the throwaway MariaDB the tests start. Results go
to ``benchmarks/results/latest.json`` and a timestamped copy (both git-ignored); unless
``--no-write``, the tables in BENCHMARKS.md and the chart ``docs/benchmarks.png`` are regenerated
and the run is also saved as ``benchmarks/results/benchmarks.committed.json`` (kept in git).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import inspect
import json
import os
import shlex
import sys
import time
import traceback
from typing import Any

from . import core_bench
from ._harness import bench_server, machine_info
from .report import (
    evaluate_targets,
    normalize_row,
    render_markdown,
    update_benchmarks_md,
    write_chart,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
PUBLISHED = os.path.join(RESULTS, "benchmarks.committed.json")
CHART = os.path.join(ROOT, "docs", "benchmarks.png")
MARKDOWN = os.path.join(ROOT, "BENCHMARKS.md")

#: Modules written by others; each optional (skipped with a note while it does not exist).
OPTIONAL = ("async", "flask", "django")


def _call_run(
    func: Any, url: str, duration: float, repeats: int, quick: bool, progress: Any
) -> Any:
    """Call ``run`` with the keyword arguments its signature accepts (see the package docstring)."""
    offered = {
        "url": url,
        "server_url": url,
        "db_url": url,
        "duration": duration,
        "repeats": repeats,
        "quick": quick,
        "progress": progress,
    }
    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in offered.items() if k not in ("server_url", "db_url")}
    else:
        kwargs = {k: v for k, v in offered.items() if k in params}
    return func(**kwargs)


def _durations(args: argparse.Namespace, core: bool = True) -> tuple[float, int]:
    """Seconds per cell and repeats. Core: 0.6 s x 5 interleaved repeats (medians of five short
    runs resist a noisy neighbour better than one long run). The other modules: 1.0 s x 3 (a web
    cell starts gunicorn; each module applies its own minimum). --quick: 0.3 s x 1."""
    if args.quick:
        return args.duration or 0.3, args.repeats or 1
    if core:
        return args.duration or 0.6, args.repeats or 5
    return args.duration or 1.0, args.repeats or 3


def _run_optional(
    name: str, url: str, args: argparse.Namespace, skipped: list[str]
) -> list[dict[str, Any]]:
    modname = f"benchmarks.{name}_bench"
    try:
        module = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        why = "not written yet" if exc.name == modname else f"needs {exc.name}"
        print(f"[bench] skip {name}: {modname} {why}", flush=True)
        skipped.append(f"{name} ({why})")
        return []
    except Exception as exc:  # noqa: BLE001 - a broken module must not lose the other results
        print(f"[bench] skip {name}: importing {modname} failed: {exc!r}", flush=True)
        skipped.append(f"{name} (import failed: {type(exc).__name__})")
        return []
    run = getattr(module, "run", None)
    if run is None:
        print(f"[bench] skip {name}: {modname} has no run()", flush=True)
        skipped.append(f"{name} (no run())")
        return []
    duration, repeats = _durations(args, core=False)
    print(f"[bench] {name}: {modname}.run()", flush=True)
    started = time.monotonic()
    try:
        raw_rows = _call_run(
            run, url, duration, repeats, args.quick, lambda msg: print(msg, flush=True)
        )
    except Exception as exc:  # noqa: BLE001 - report and carry on with the other modules
        traceback.print_exc()
        print(f"[bench] {name} failed: {exc!r}", flush=True)
        skipped.append(f"{name} (failed: {type(exc).__name__})")
        return []
    rows = [r for r in (normalize_row(dict(x), name) for x in raw_rows or []) if r is not None]
    print(f"[bench] {name}: {len(rows)} rows in {time.monotonic() - started:.0f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: few, short cells")
    parser.add_argument(
        "--duration", type=float, help="seconds per cell (default: core 0.6, others 1.0; quick 0.3)"
    )
    parser.add_argument(
        "--repeats", type=int, help="repeats per cell, median kept (default: core 5, others 3)"
    )
    parser.add_argument(
        "--only", action="append", choices=("core", *OPTIONAL), help="run only these modules"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="do not touch BENCHMARKS.md and the chart"
    )
    args = parser.parse_args(argv)
    modules = args.only or ["core", *OPTIONAL]
    duration, repeats = _durations(args)
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])

    started_at = _dt.datetime.now().astimezone()
    load_before = os.getloadavg()
    t0 = time.monotonic()
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    with bench_server() as server:
        print(f"[bench] server: {server.version} ({server.source})", flush=True)
        if "core" in modules:
            print("[bench] core: threads, pools, PyMySQL", flush=True)
            rows += core_bench.run(
                server.url,
                duration=duration,
                repeats=repeats,
                quick=args.quick,
                progress=lambda msg: print(msg, flush=True),
            )
        for name in OPTIONAL:
            if name in modules:
                rows += _run_optional(name, server.url, args, skipped)
        server_info = {"version": server.version, "source": server.source}

    result = {
        "started": started_at.isoformat(timespec="seconds"),
        "command": command,
        "elapsed_s": time.monotonic() - t0,
        "duration_s": duration,
        "repeats": repeats,
        "quick": args.quick,
        "server": server_info,
        "meta": machine_info(),
        # Other processes on the machine (the 1-minute load average, before and after): a run
        # under load is noisier; BENCHMARKS.md prints it so a reader can tell.
        "load_avg_1min": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "skipped": skipped,
        "rows": rows,
    }
    result["targets"] = evaluate_targets(rows)

    os.makedirs(RESULTS, exist_ok=True)
    stamp = started_at.strftime("%Y%m%d-%H%M%S")
    for path in (os.path.join(RESULTS, f"{stamp}.json"), os.path.join(RESULTS, "latest.json")):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, default=str)
            f.write("\n")
    print(f"[bench] results: {os.path.relpath(path, ROOT)}")

    print()
    for t in result["targets"]:
        verdict = "MET   " if t["met"] else "MISSED"
        print(f"[bench] {verdict} {t['target']}: {t['measured']} (goal {t['goal']})")
    if not args.no_write:
        # The data behind BENCHMARKS.md and the chart, kept in git (see .gitignore).
        with open(PUBLISHED, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, default=str)
            f.write("\n")
        update_benchmarks_md(MARKDOWN, render_markdown(result))
        os.makedirs(os.path.dirname(CHART), exist_ok=True)
        write_chart(
            rows,
            CHART,
            f"mysqlpool_ext vs peers, pool of 8 — {meta_line(result)}",
        )
        print(f"[bench] wrote {os.path.relpath(MARKDOWN, ROOT)} and {os.path.relpath(CHART, ROOT)}")
    print(f"[bench] done in {result['elapsed_s']:.0f} s")
    return 0


def meta_line(result: dict[str, Any]) -> str:
    meta = result["meta"]
    return f"{meta['cpus']} CPUs, Python {meta['python']}, {result['server']['version']}"


if __name__ == "__main__":
    sys.exit(main())
