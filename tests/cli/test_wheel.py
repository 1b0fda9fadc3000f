"""What a user gets from ``pip install``: the wheel, in a fresh virtualenv outside the source tree.

Builds the wheel, installs it with the ``flask``, ``django`` and ``demo`` extras, and runs the
README's first command for both example apps against the test server; then the command line's
failure cases (one line on stderr, no traceback) and the published metadata (no development
extras, a license, a long description whose links work on a package index).

Bounded: the wheel builds in seconds and pip's own cache serves the dependencies after the first
run; each demo is ``--quick`` (2 s per phase).
"""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.slow

#: The extras a user may ask for; anything else in the metadata is a leak from development.
PUBLISHED_EXTRAS = {"flask", "django", "demo", "cli", "prometheus"}


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> Any:
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The wheel, and a fresh venv (outside the source tree) with it and its extras."""
    home = tmp_path_factory.mktemp("wheel-user")
    # What a user's shell would have: nothing of this checkout, no URL of ours.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "MYSQLPOOL_URL", "DATABASE_URL", "VIRTUAL_ENV")
    }
    dist = home / "dist"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)],
        cwd=home,
        env=env,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("mysqlpool_ext-*.whl")
    venv = home / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=home, env=env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    got = _run(
        [str(python), "-m", "pip", "install", "-q", f"{wheel}[flask,django,demo]"],
        cwd=home,
        env=env,
    )
    if got.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"pip install of the wheel failed:\n{got.stderr[-3000:]}")
        pytest.skip(f"cannot install the wheel's dependencies here:\n{got.stderr[-1000:]}")
    where = _run(
        [str(python), "-c", "import mysqlpool_ext; print(mysqlpool_ext.__file__)"], home, env
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # not the checkout
    yield {"home": home, "wheel": wheel, "venv": venv, "python": python, "env": env}


@pytest.mark.parametrize("app", ["flask", "django"])
def test_the_readme_demo_serves_the_example_app_from_the_wheel(
    installed: dict[str, Any], db_url: str, app: str
) -> None:
    script = installed["venv"] / "bin" / "mysqlpool-ext"
    done = _run(
        [str(script), "demo", "--quick", "--json", "--app", app, "--url", db_url],
        cwd=installed["home"],
        env=installed["env"],
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["app"] == app, done.stderr  # the example app, not a fallback
    assert summary["pool"]["errors"] == 0
    assert summary["pool"]["requests_ok"] > 0
    assert summary["new_connection_per_request"]["errors"] == 0
    assert "Traceback" not in done.stderr


def test_cli_failures_from_the_wheel_are_one_line(installed: dict[str, Any], db_url: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = str(installed["venv"] / "bin" / "mysqlpool-ext")
    cases = [
        (["check", f"mysql://app:Pw-Wheel-1@127.0.0.1:{port}/x"], 3),
        (["check", "mysql://app:Pw?Wheel-1@127.0.0.1/x"], 2),
        (["check", db_url + "?sise=4"], 2),
        (["stats", f"http://127.0.0.1:{port}/_mysqlpool/stats"], 3),
        (["stats", "ftp://example.invalid/stats"], 2),
        (["demo", "--quick", "--url", f"mysql://app:Pw-Wheel-1@127.0.0.1:{port}/x"], 3),
        (["check", db_url, "--processes", "100000", "--strict"], 1),
    ]
    for args, code in cases:
        done = _run([script, *args], cwd=installed["home"], env=installed["env"], timeout=120)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        assert "Wheel-1" not in done.stdout + done.stderr
        if code != 1:  # --strict prints its report on stdout, the others one line on stderr
            assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
    # A reader that goes away (``| head -1``): no BrokenPipeError traceback either.
    proc = subprocess.Popen(
        [script, "check", db_url],
        cwd=installed["home"],
        env=installed["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert err == "" and proc.returncode == 141, err


def test_wheel_metadata_is_a_librarys(installed: dict[str, Any]) -> None:
    import zipfile

    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = wheel.namelist()
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(wheel.read(meta_name))
        license_files = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert license_files and b"MIT License" in wheel.read(license_files[0])
    assert set(meta.get_all("Provides-Extra") or []) == PUBLISHED_EXTRAS
    for requirement in meta.get_all("Requires-Dist") or []:
        for dev_only in ("pytest", "ruff", "mypy", "hypothesis", "matplotlib", "asyncmy"):
            assert dev_only not in requirement.lower(), requirement
    assert meta["License-Expression"] == "MIT"
    assert meta["License-File"] == "LICENSE"
    # The demo's apps travel inside the package, the very files of example_apps/.
    shipped = {n.split("_demo_apps/", 1)[1] for n in names if "/_demo_apps/" in n}
    in_repo = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "example_apps").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped == in_repo
    # The long description is the README: on an index, relative links lead nowhere.
    description = meta.get_payload()
    assert isinstance(description, str) and "pip install" in description
    links = re.findall(r"\]\(([^)]+)\)", description)
    assert links and all(link.startswith(("https://", "http://", "#")) for link in links), links
    quick_start = description.split("## Quick start", 1)[1]
    assert quick_start.index("pip install") < quick_start.index("scripts/dev")
