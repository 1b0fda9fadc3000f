"""Issue 17's cells in one run: the result-set decoder (compiled and pure) against the peers.

    python -m benchmarks.decoder_bench [--repeats 5] [--seconds 1.0] [--json FILE]

- sync, one thread: ``SELECT 1`` and 100 rows x 4 columns -- raw PyMySQL on one connection,
  mysqlpool_ext (compiled decoder), mysqlpool_ext (pure-Python decoder);
- asyncio, 64 tasks on 8 connections: the same two queries -- mysqlpool_ext (both decoders),
  asyncmy (behind a fair semaphore), aiomysql;
- the read alone (no pool, one connection each): this thread's CPU per query, raw PyMySQL vs
  ours with each decoder (:func:`cpu_ab`), the figure least moved by the neighbours.

Every subject of a cell runs in each round (rotated / interleaved), so ratios are *paired*: the
median over rounds of ours / theirs within one round. On a shared 2-core machine the q/s of a
one-thread cell swings 2-5x with the neighbours' load; the paired ratios and the client CPU per
operation (``cpu us/op``) move far less, so both are printed, with the load average around the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

from . import async_bench, core_bench
from ._harness import bench_server

SYNC_SUBJECTS = ["raw", "ours", "ours_pure"]
SYNC_SCENARIOS = ["select1_1", "rows100_1"]
ASYNC_SUBJECTS = [
    "mysqlpool_ext aexecute_query",
    "mysqlpool_ext, pure-Python decoder",
    "asyncmy pool + fair semaphore",
    "aiomysql pool",
]


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _paired(mine: list[float], theirs: list[float]) -> float | None:
    pairs = [a / b for a, b in zip(mine, theirs) if b]
    return round(statistics.median(pairs), 2) if pairs else None


def cpu_ab(kwargs: dict[str, Any], rounds: int = 7, queries: int = 2000) -> dict[str, Any]:
    """The read alone, no pool: CPU time of this thread per query (``time.thread_time``), raw
    PyMySQL vs ``mysqlpool_ext.Connection`` with each decoder, interleaved round by round.

    Thread CPU time leaves out the waits for the server and the neighbours' time slices, so it
    is the steadiest figure this shared machine gives: the medians, and the per-round values.
    """
    import pymysql

    from mysqlpool_ext import Connection, _rows

    raw = pymysql.connect(autocommit=True, **kwargs)
    ours = Connection(autocommit=True, **kwargs)
    result: dict[str, Any] = {}
    try:
        for label, sql, count in (
            ("SELECT 1", "SELECT 1", queries),
            ("100 rows x 4 columns", core_bench.ROWS_SQL, max(1, queries // 10)),
        ):
            per: dict[str, list[float]] = {"raw PyMySQL": [], "compiled": [], "pure": []}
            for _ in range(rounds):
                for name, conn, accel in (
                    ("raw PyMySQL", raw, True),
                    ("compiled", ours, True),
                    ("pure", ours, False),
                ):
                    if not _rows.set_accelerated(accel) and accel and conn is ours:
                        continue  # not built: no compiled figures
                    start = time.thread_time()
                    for _ in range(count):
                        cur = conn.cursor()
                        cur.execute(sql)
                        cur.fetchall()
                        cur.close()
                    per[name].append((time.thread_time() - start) / count * 1e6)
            _rows.set_accelerated(True)
            result[label] = {
                name: {
                    "median_cpu_us": round(statistics.median(v), 1),
                    "rounds": [round(x, 1) for x in v],
                }
                for name, v in per.items()
                if v
            }
    finally:
        raw.close()
        ours.close()
    return result


def run(repeats: int = 5, seconds: float = 1.0) -> dict[str, Any]:
    """Both faces' cells against one server; the rows and the paired ratios."""
    out: dict[str, Any] = {"load_before": _load()}
    with bench_server() as server:
        out["server"] = server.version
        async_bench._create_rows_table(server.kwargs)
        out["cpu_ab"] = cpu_ab(server.kwargs)
        sync_rows = core_bench.run(
            server.url,
            duration=seconds,
            repeats=repeats,
            scenarios=SYNC_SCENARIOS,
            subjects=SYNC_SUBJECTS,
        )
        out["load_mid"] = _load()
        async_rows = async_bench.run(
            server.kwargs, seconds=seconds, repeats=repeats, subjects=ASYNC_SUBJECTS
        )
    out["load_after"] = _load()
    ratios: list[dict[str, Any]] = []
    for skey in SYNC_SCENARIOS:
        cell = {r["subject_key"]: r for r in sync_rows if r["scenario_key"] == skey}
        raw = cell.get("raw")
        for key in ("ours", "ours_pure"):
            row = cell.get(key)
            if raw is None or row is None:
                continue
            ratios.append(
                {
                    "face": "sync, 1 thread",
                    "cell": row["scenario"],
                    "subject": row["subject"],
                    "ops_s": round(row["ops_s"]),
                    "cpu_us_per_op": round(row["cpu_us_per_op"], 1),
                    "paired_vs_raw": _paired(row["repeats_ops_s"], raw["repeats_ops_s"]),
                    "cpu_raw_over_ours": round(raw["cpu_us_per_op"] / row["cpu_us_per_op"], 2),
                    "raw_ops_s": round(raw["ops_s"]),
                    "raw_cpu_us_per_op": round(raw["cpu_us_per_op"], 1),
                }
            )
    for row in async_rows:
        ratios.append(
            {
                "face": "asyncio, 64 tasks / 8 conns",
                "cell": row["scenario"],
                "subject": row["variant"],
                "ops_s": round(row["qps"]),
                "cpu_us_per_op": round(row["cpu_us_per_op"], 1),
                "paired_vs_asyncmy": row.get("paired_vs_asyncmy"),
                "paired_vs_aiomysql": row.get("paired_vs_aiomysql"),
                "p99_ms": round(row["p99_ms"], 1),
                "tasks_served": f"{row['min_task_ops']}-{row['max_task_ops']}",
            }
        )
    out["ratios"] = ratios
    out["sync_rows"] = sync_rows
    out["async_rows"] = async_rows
    return out


def _print(result: dict[str, Any]) -> None:
    print(
        f"server {result.get('server')}; load average before {result['load_before']}, "
        f"between {result['load_mid']}, after {result['load_after']}"
    )
    print(f"{'face':30} {'subject':38} {'q/s':>7} {'cpu us/op':>9} {'paired ratio(s)':>30}  cell")
    for r in result["ratios"]:
        if "paired_vs_raw" in r:
            ratio = f"/raw {r['paired_vs_raw']} (raw cpu/ours {r['cpu_raw_over_ours']})"
        else:
            ratio = f"/asyncmy {r['paired_vs_asyncmy']} /aiomysql {r['paired_vs_aiomysql']}"
        print(
            f"{r['face']:30} {r['subject']:38} {r['ops_s']:>7} {r['cpu_us_per_op']:>9} "
            f"{ratio:>30}  {r['cell'][:40]}"
        )
    print("the read alone, no pool: thread CPU µs per query (median of interleaved rounds)")
    for label, subjects in result.get("cpu_ab", {}).items():
        figures = ", ".join(f"{name} {v['median_cpu_us']}" for name, v in subjects.items())
        print(f"  {label}: {figures}")
    for r in result["ratios"]:
        if "raw_ops_s" in r and r["subject"].endswith("ext"):
            print(
                f"  raw PyMySQL, {r['cell'][:40]}: {r['raw_ops_s']} q/s, "
                f"{r['raw_cpu_us_per_op']} cpu us/op"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decoder_bench", description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--json", help="write the whole result to this file")
    parser.add_argument("--chart", help="draw the cells as bar charts in this PNG (the README's)")
    parser.add_argument("--from-json", help="no run: print and chart a result saved with --json")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            result = json.load(f)
    else:
        result = run(args.repeats, args.seconds)
    _print(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, default=str)
    if args.chart:
        write_chart(result, args.chart)
    return 0


def write_chart(result: dict[str, Any], path: str) -> None:
    """Issue 17's four cells, one bar panel each, ours highlighted (``report.write_chart``)."""
    from .report import write_chart as draw

    rows = [*result.get("sync_rows", []), *result.get("async_rows", [])]
    load = result.get("load_before") or "?"
    server = result.get("server", "?")
    draw(rows, path, f"result-set decoding, compiled vs pure vs peers — {server}, load {load}")


if __name__ == "__main__":
    sys.exit(main())
