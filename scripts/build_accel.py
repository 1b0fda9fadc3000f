"""Build the optional compiled row decoder (``mysqlpool_ext/_rows_c.pyx``) in place.

    python scripts/build_accel.py              # build
    python scripts/build_accel.py --if-stale   # what ``bash scripts/dev`` runs: only when the
                                               # decoder is missing or older than its source
                                               # (or than this script)

Why in place and not in the wheel build: the package must install and work where there is no
compiler (the pure-Python decoder is always there and always tested), and a wheel whose build
needs Cython and gcc would fail there. Developers and CI get the accelerator from the set-up
command; without Cython or a compiler this prints why and exits 0, and ``mysqlpool_ext._rows``
uses the pure path.

Only the decoder is compiled. Compiling the pool's other hot modules from their own source was
tried and measured (docs/architecture.md, "Why only the decoder is compiled"): no reliable gain,
and a Django request cost more CPU. An extension module left beside a ``.py`` of the same name
by such a build would shadow the source, so this script removes any it finds.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "mysqlpool_ext"
SOURCE = os.path.join(PACKAGE, "_rows_c.pyx")


def stale() -> bool:
    """The decoder is missing, or older than its source or this script."""
    built = glob.glob(os.path.join(ROOT, PACKAGE, "_rows_c.cpython-*.so"))
    if not built:
        return True
    newest_input = max(os.path.getmtime(os.path.join(ROOT, SOURCE)), os.path.getmtime(__file__))
    return os.path.getmtime(built[0]) < newest_input


def remove_strays() -> None:
    """Delete extension modules that sit beside a ``.py`` module of the same name: Python would
    import them instead of the source."""
    for built in glob.glob(os.path.join(ROOT, PACKAGE, "*.cpython-*.so")):
        name = os.path.basename(built).split(".", 1)[0]
        if os.path.isfile(os.path.join(ROOT, PACKAGE, name + ".py")):
            os.remove(built)
            print(f"[build_accel] removed {os.path.relpath(built, ROOT)} (it shadowed {name}.py)")


def main(argv: list[str]) -> int:
    remove_strays()
    if "--if-stale" in argv and not stale():
        return 0
    try:
        from Cython.Build import cythonize
        from setuptools import Extension, setup
    except ImportError as exc:
        print(f"[build_accel] skipped: {exc} (the pure-Python decoder will be used)")
        return 0
    os.chdir(ROOT)
    ext = Extension(f"{PACKAGE}._rows_c", [SOURCE], extra_compile_args=["-O2"])
    with tempfile.TemporaryDirectory() as tmp:
        try:
            setup(
                name="mysqlpool_ext_accel",
                ext_modules=cythonize([ext], language_level=3, quiet=True, build_dir=tmp),
                packages=[],
                py_modules=[],
                script_args=["-q", "build_ext", "--inplace", "--build-temp", tmp],
            )
        except (SystemExit, Exception) as exc:  # noqa: BLE001 - no compiler: say so, go on
            print(f"[build_accel] not built ({exc!r}); the pure-Python decoder will be used")
            return 0
    print(f"[build_accel] built {PACKAGE}._rows_c")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
