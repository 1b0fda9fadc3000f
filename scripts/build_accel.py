"""Build the optional compiled row decoder (``mysqlpool_ext/_rows_c.pyx``) in place.

    python scripts/build_accel.py          # what ``bash scripts/dev`` runs

Why in place and not in the wheel build: the package must install and work where there is no
compiler (the pure-Python decoder is always there), and a wheel whose build needs Cython and gcc
would fail there. Developers and CI get the accelerator from the set-up command; without Cython or
a compiler this prints why and exits 0, and ``mysqlpool_ext._rows`` uses the pure path.
"""

from __future__ import annotations

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join("mysqlpool_ext", "_rows_c.pyx")


def main() -> int:
    try:
        from Cython.Build import cythonize
        from setuptools import Extension, setup
    except ImportError as exc:
        print(f"[build_accel] skipped: {exc} (the pure-Python decoder will be used)")
        return 0
    os.chdir(ROOT)
    ext = Extension("mysqlpool_ext._rows_c", [SOURCE], extra_compile_args=["-O2"])
    with tempfile.TemporaryDirectory() as tmp:
        try:
            setup(
                name="mysqlpool_ext_accel",
                ext_modules=cythonize([ext], language_level=3, quiet=True),
                packages=[],
                py_modules=[],
                script_args=["-q", "build_ext", "--inplace", "--build-temp", tmp],
            )
        except (SystemExit, Exception) as exc:  # noqa: BLE001 - no compiler: say so, go on
            print(f"[build_accel] not built ({exc!r}); the pure-Python decoder will be used")
            return 0
    print("[build_accel] built mysqlpool_ext/_rows_c")
    return 0


if __name__ == "__main__":
    sys.exit(main())
