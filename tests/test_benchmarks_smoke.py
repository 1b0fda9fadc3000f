"""The benchmark suite must not rot: run tiny cells of it against the test server.

Only raw PyMySQL and this pool are measured here (the peers are benchmark-only dependencies, not
installed by the ``test`` extra); the figures are not asserted, only that a run produces complete
rows and that the report, the targets and (when matplotlib is installed) the chart are built.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pymysql
import pytest

from benchmarks import core_bench
from benchmarks.__main__ import _call_run
from benchmarks.report import (
    BEGIN,
    END,
    evaluate_targets,
    render_markdown,
    update_benchmarks_md,
    write_chart,
)


@pytest.fixture
def rows(db_url: str, db_kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    out = core_bench.run(
        db_url,
        duration=0.05,
        repeats=2,
        scenarios=["borrow_1", "select1_1", "select1_32"],
        subjects=["raw", "ours", "ours_nocheck"],
    )
    conn = pymysql.connect(**db_kwargs, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {core_bench.TABLE}")
    finally:
        conn.close()
    return out


def test_core_cells_produce_complete_rows(rows: list[dict[str, Any]]) -> None:
    cells = {(r["scenario_key"], r["subject_key"]) for r in rows}
    # raw PyMySQL has nothing to borrow: no borrow cell for it
    assert cells == {
        ("borrow_1", "ours"),
        ("borrow_1", "ours_nocheck"),
        ("select1_1", "raw"),
        ("select1_1", "ours"),
        ("select1_1", "ours_nocheck"),
        ("select1_32", "raw"),
        ("select1_32", "ours"),
        ("select1_32", "ours_nocheck"),
    }
    for row in rows:
        assert row["ops_s"] > 0, row
        assert row["errors"] == 0, row.get("first_error")
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert len(row["repeats_ops_s"]) == 2
        assert row["ours"] is row["subject_key"].startswith("ours")
    json.dumps(rows)  # the runner stores them as JSON


def test_report_and_chart(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    targets = evaluate_targets(rows)
    names = {t["target"] for t in targets}
    assert "SELECT 1, 1 thread" in names
    assert "liveness checks on, steady load" in names
    result = {
        "started": "2026-01-01T00:00:00+00:00",
        "command": "python -m benchmarks --quick",
        "elapsed_s": 1.0,
        "duration_s": 0.05,
        "repeats": 2,
        "server": {"version": "test", "source": "test"},
        "meta": {
            "cpus": 2,
            "cpu": "cpu",
            "platform": "linux",
            "implementation": "CPython",
            "python": "3",
            "versions": {},
        },
        "skipped": ["flask (not written yet)"],
        "rows": rows,
        "targets": targets,
    }
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(f"# B\n\nkeep me\n\n{BEGIN}\nold\n{END}\n\n## Analysis\n\nkeep me too\n")
    update_benchmarks_md(str(md), render_markdown(result))
    text = md.read_text()
    assert "keep me" in text and "keep me too" in text and "\nold\n" not in text
    assert "### SELECT 1, 32 threads on 8 connections" in text
    assert "mysqlpool_ext ÷ this" in text
    chart = tmp_path / "chart.png"
    write_chart(rows, str(chart), "smoke")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runner_passes_only_the_arguments_a_module_accepts() -> None:
    seen: dict[str, Any] = {}

    def narrow(url: str, quick: bool = False) -> list[dict[str, Any]]:
        seen.update(url=url, quick=quick)
        return []

    def wide(**kwargs: Any) -> list[dict[str, Any]]:
        seen.update(kwargs)
        return []

    _call_run(narrow, "mysql://u@h/d", 1.0, 3, True, print)
    assert seen == {"url": "mysql://u@h/d", "quick": True}
    seen.clear()
    _call_run(wide, "mysql://u@h/d", 1.0, 3, False, print)
    assert set(seen) == {"url", "duration", "repeats", "quick", "progress"}


@pytest.mark.parametrize(
    ("cell", "subject"),
    [("async_select1", "ours"), ("borrow", "ours"), ("sync_select1", "pool")],
)
def test_instruction_count_drivers_run(db_url: str, cell: str, subject: str) -> None:
    """``benchmarks.instructions`` runs these drivers under valgrind; here they run bare, a few
    operations each, so that a renamed helper fails the suite and not a later benchmark."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, MYSQLPOOL_TEST_URL=db_url, PYTHONPATH=str(root))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.instructions", "--drive", cell, subject, "3"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_gunicorn_instruction_cell_finds_its_parts() -> None:
    """``--cells django_gunicorn`` needs valgrind and minutes; here only what it imports, so
    that a renamed helper fails the suite and not a later benchmark."""
    from benchmarks import django_bench, django_cpu, instructions
    from benchmarks._http import _free_port, _get

    assert callable(_free_port) and callable(_get)
    assert {"pool", "orm60"} <= set(django_cpu.SUBJECTS)
    assert instructions.CELLS["django_gunicorn"][0] == ("pool", "orm60")
    assert django_bench.WSGI.endswith(":application") and callable(django_bench._env)
    assert callable(instructions._count_gunicorn) and callable(instructions._serve)
