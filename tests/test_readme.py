"""Every ```python block of README.md runs, against the real test server.

A README whose examples do not run is worse than none; this keeps it honest. Each block runs in a
fresh namespace with ``config`` (PyMySQL connection arguments for the test server) and
``MYSQLPOOL_URL`` set in the environment; pools it leaves open are closed afterwards.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def test_readme_has_python_examples() -> None:
    assert len(_blocks()) >= 2


def _id(value: object) -> str:
    return f"line{value}" if isinstance(value, int) else ""


@pytest.mark.parametrize(("line", "code"), _blocks(), ids=_id)
def test_readme_block_runs(
    line: int, code: str, db_kwargs: dict[str, Any], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mysqlpool_ext.registry import open_pools

    monkeypatch.setenv("MYSQLPOOL_URL", db_url)
    before = set(map(id, open_pools().values()))
    namespace: dict[str, Any] = {"__name__": f"readme_line_{line}", "config": dict(db_kwargs)}
    try:
        exec(compile(code, f"README.md:{line}", "exec"), namespace)
    finally:
        for pool in open_pools().values():
            if id(pool) not in before:
                pool.close()
