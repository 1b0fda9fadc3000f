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

#: The modules compiled when the build is there (package-relative names): those where compiling
#: pays. Measured (BENCHMARKS.md, "One source, two builds"): the async face's plumbing
#: (coroutines, the wire reader, the result wrapper) runs ~15 % less CPU compiled; the pool core,
#: ``pool`` and ``connection`` ran 4-5 % *more* CPU per Django request compiled -- untyped Cython
#: code does each attribute access through the generic C API, where CPython 3.11's specializing
#: interpreter has inline caches -- so they stay Python.
MODULES = ("_adriver", "_fastresult", "_protocol", "_wire_async")

_PACKAGE = __name__.rpartition(".")[0]
_HERE = os.path.dirname(os.path.abspath(__file__))


def enabled() -> bool:
    """False when ``MYSQLPOOL_NO_ACCEL`` asks for the pure-Python build (read at start-up)."""
    return os.environ.get("MYSQLPOOL_NO_ACCEL", "") in ("", "0")


class _Finder:
    """Finds the package's own ``.py`` modules: for those of :data:`MODULES` the compiled build
    when it is enabled, present and not older than its source (a stale build never runs edited
    code's old self); for every other one, and otherwise, the source -- never a stray extension
    module left beside it by an older build. Knows no other name."""

    _names = frozenset(f"{_PACKAGE}.{name}" for name in MODULES)
    _prefix = _PACKAGE + "."

    @classmethod
    def find_spec(
        cls,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(cls._prefix) or "." in fullname[len(cls._prefix) :]:
            return None
        stem = os.path.join(_HERE, fullname[len(cls._prefix) :])
        source = stem + ".py"
        if not os.path.isfile(source):
            return None  # a subpackage, or the decoder's own extension (_rows_c): not ours to pick
        if _ENABLED and fullname in cls._names:
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
