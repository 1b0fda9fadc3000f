"""Build the optional compiled modules in place: the row decoder (``mysqlpool_ext/_rows_c.pyx``)
and the hot modules listed in ``mysqlpool_ext/_accel.py`` (their own ``.py`` files, compiled by
Cython as they are).

    python scripts/build_accel.py              # build
    python scripts/build_accel.py --if-stale   # what ``bash scripts/dev`` runs: only when a
                                               # compiled module is missing or older than its
                                               # source (or than this script)

Why in place and not in the wheel build: the package must install and work where there is no
compiler (the pure-Python source is always there and always tested), and a wheel whose build
needs Cython and gcc would fail there. Developers and CI get the compiled build from the set-up
command; without Cython or a compiler this prints why and exits 0, and the source runs.

The hot modules are compiled with ``annotation_typing=False``: Cython then treats the type hints
as hints, as Python does (with them on, a ``bytes`` hint would refuse a ``bytearray`` that
Python accepts), so the compiled build behaves exactly like the source, only faster.
"""

from __future__ import annotations

import ast
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "mysqlpool_ext"


def hot_modules() -> tuple[str, ...]:
    """``_accel.MODULES``, read from the source (importing the package here could load the very
    extension modules this script is about to overwrite)."""
    with open(os.path.join(ROOT, PACKAGE, "_accel.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "MODULES" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise SystemExit("scripts/build_accel.py: no MODULES in mysqlpool_ext/_accel.py")


def sources() -> list[str]:
    return [f"{PACKAGE}/_rows_c.pyx"] + [f"{PACKAGE}/{name}.py" for name in hot_modules()]


def stale() -> bool:
    """A compiled module is missing, or older than its source or this script."""
    import glob

    for source in sources():
        built = glob.glob(os.path.join(ROOT, source.rpartition(".")[0] + ".cpython-*.so"))
        if not built:
            return True
        newest_input = max(os.path.getmtime(os.path.join(ROOT, source)), os.path.getmtime(__file__))
        if os.path.getmtime(built[0]) < newest_input:
            return True
    return False


def _remove_strays() -> None:
    """Delete what an older build compiled and this one no longer does (the package's finder
    never loads it, but it should not lie around looking current)."""
    import glob

    hot = set(hot_modules())
    for built in glob.glob(os.path.join(ROOT, PACKAGE, "*.cpython-*.so")):
        name = os.path.basename(built).split(".", 1)[0]
        if name not in hot and os.path.isfile(os.path.join(ROOT, PACKAGE, name + ".py")):
            os.remove(built)
            print(f"[build_accel] removed {os.path.relpath(built, ROOT)} (no longer compiled)")


def main(argv: list[str]) -> int:
    if "--if-stale" in argv and not stale():
        return 0
    try:
        from Cython.Build import cythonize
        from setuptools import Extension, setup
    except ImportError as exc:
        print(f"[build_accel] skipped: {exc} (the pure-Python source will be used)")
        return 0
    os.chdir(ROOT)
    # -Wno-maybe-uninitialized: gcc flags variables of Cython's generated C it cannot follow.
    flags = ["-O2", "-Wno-maybe-uninitialized"]
    decoder = Extension(f"{PACKAGE}._rows_c", [f"{PACKAGE}/_rows_c.pyx"], extra_compile_args=flags)
    hot = [
        Extension(f"{PACKAGE}.{name}", [f"{PACKAGE}/{name}.py"], extra_compile_args=flags)
        for name in hot_modules()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            setup(
                name="mysqlpool_ext_accel",
                ext_modules=cythonize([decoder], language_level=3, quiet=True, build_dir=tmp)
                + cythonize(
                    hot,
                    language_level=3,
                    quiet=True,
                    build_dir=tmp,
                    compiler_directives={"annotation_typing": False, "binding": True},
                ),
                packages=[],
                py_modules=[],
                script_args=[
                    "-q",
                    "build_ext",
                    "--inplace",
                    "--build-temp",
                    tmp,
                    "--parallel",
                    "2",
                ],
            )
        except (SystemExit, Exception) as exc:  # noqa: BLE001 - no compiler: say so, go on
            print(f"[build_accel] not built ({exc!r}); the pure-Python source will be used")
            return 0
    _remove_strays()
    print(f"[build_accel] built {PACKAGE}._rows_c and {', '.join(hot_modules())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
