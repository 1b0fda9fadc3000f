"""The compiled build of the hot modules: chosen when present and fresh, never when stale or
switched off (``mysqlpool_ext/_accel.py``). Each case runs in a fresh interpreter, since the
choice is made at import."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mysqlpool_ext import _accel

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, mysqlpool_ext, mysqlpool_ext._adriver; from mysqlpool_ext import _accel; "
    "print(json.dumps(_accel.compiled_modules()))"
)


def _compiled(env: dict[str, str], cwd: Path = ROOT) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=cwd,
        env={**os.environ, **env, "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def _built(package: Path) -> bool:
    return all(glob.glob(str(package / f"{name}.cpython-*.so")) for name in _accel.MODULES)


def test_switch_off_imports_every_hot_module_from_source() -> None:
    assert _compiled({"MYSQLPOOL_NO_ACCEL": "1"}) == []


def test_a_built_tree_runs_compiled(tmp_path: Path) -> None:
    if not _built(ROOT / "mysqlpool_ext"):
        if os.environ.get("CI") == "true":
            pytest.fail("the compiled build is missing under CI (bash scripts/dev builds it)")
        pytest.skip("compiled build not made here (bash scripts/dev builds it)")
    assert _compiled({"MYSQLPOOL_NO_ACCEL": "0"}) == list(_accel.MODULES)


def test_a_stale_build_is_not_run(tmp_path: Path) -> None:
    """A source edited after the build is imported as source: never its old compiled self."""
    if not _built(ROOT / "mysqlpool_ext"):
        pytest.skip("compiled build not made here (bash scripts/dev builds it)")
    copy = tmp_path / "tree"
    shutil.copytree(
        ROOT / "mysqlpool_ext", copy / "mysqlpool_ext", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in _accel.MODULES:  # a copy keeps the order of the times: the build is newer
        (built,) = glob.glob(str(copy / "mysqlpool_ext" / f"{name}.cpython-*.so"))
        source = copy / "mysqlpool_ext" / f"{name}.py"
        os.utime(built, (source.stat().st_mtime + 10, source.stat().st_mtime + 10))
    assert _compiled({"MYSQLPOOL_NO_ACCEL": ""}, cwd=copy) == list(_accel.MODULES)
    edited = copy / "mysqlpool_ext" / "_adriver.py"
    later = edited.stat().st_mtime + 60
    os.utime(edited, (later, later))
    assert _compiled({"MYSQLPOOL_NO_ACCEL": ""}, cwd=copy) == [
        name for name in _accel.MODULES if name != "_adriver"
    ]


def test_a_stray_extension_beside_a_source_module_is_never_loaded(tmp_path: Path) -> None:
    """An extension module left by an older build for a module that is no longer compiled (or
    any file named like one) does not shadow the source."""
    copy = tmp_path / "tree"
    shutil.copytree(
        ROOT / "mysqlpool_ext", copy / "mysqlpool_ext", ignore=shutil.ignore_patterns("__pycache__")
    )
    import importlib.machinery

    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    assert "pool" not in _accel.MODULES
    (copy / "mysqlpool_ext" / f"pool{suffix}").write_bytes(b"not an extension module")
    probe = "import mysqlpool_ext.pool as p; print(p.__file__); print(p.ConnectionPool.__name__)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(copy)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == [str(copy / "mysqlpool_ext" / "pool.py"), "ConnectionPool"]
