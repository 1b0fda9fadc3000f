"""Which build of the hot modules runs: compiled by Cython, or the Python source.

The modules in :data:`MODULES` are plain Python, and ``scripts/build_accel.py`` may compile the
very same files with Cython into extension modules beside them (SQLAlchemy 2.1 builds its
``_cy`` modules this way). There is one source, so the two builds cannot drift apart. A finder
in front of the import system, which knows only these names, picks the build: the compiled one
when it is there and not older than its source; the source when ``MYSQLPOOL_NO_ACCEL=1`` at
start-up (the test-suite runs both ways) or when the build is missing or stale. Imported first
by ``mysqlpool_ext/__init__.py``, before any of them loads.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MODULES", "compiled_modules", "enabled"]

#: The modules on the per-query path, compiled when the build is there (package-relative names).
MODULES = ("_adriver", "_core", "_fastresult", "_protocol", "_wire_async", "connection", "pool")

_PACKAGE = __name__.rpartition(".")[0]
_HERE = os.path.dirname(os.path.abspath(__file__))


def enabled() -> bool:
    """False when ``MYSQLPOOL_NO_ACCEL`` asks for the pure-Python build (read at start-up)."""
    return os.environ.get("MYSQLPOOL_NO_ACCEL", "") in ("", "0")


class _Finder:
    """Finds the modules of :data:`MODULES`: the compiled build when it is enabled, present and
    not older than its source (a stale build never runs edited code's old self), else the
    source. Knows no other name."""

    _names = frozenset(f"{_PACKAGE}.{name}" for name in MODULES)

    @classmethod
    def find_spec(
        cls,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in cls._names:
            return None
        stem = os.path.join(_HERE, fullname.rpartition(".")[2])
        source = stem + ".py"
        if _ENABLED:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                built = stem + suffix
                try:
                    fresh = os.path.getmtime(built) >= os.path.getmtime(source)
                except OSError:
                    continue
                if fresh:
                    return importlib.util.spec_from_file_location(fullname, built)
        return importlib.util.spec_from_file_location(fullname, source)


def compiled_modules() -> list[str]:
    """The hot modules that run compiled in this process (empty on the source build). Imports
    them (the async ones are otherwise imported on first use)."""
    return [
        name
        for name in MODULES
        if isinstance(
            importlib.import_module(f"{_PACKAGE}.{name}").__loader__,
            importlib.machinery.ExtensionFileLoader,
        )
    ]


_ENABLED = enabled()
if not any(getattr(finder, "_names", None) == _Finder._names for finder in sys.meta_path):
    sys.meta_path.insert(0, _Finder)
