"""Run Django's own test-suite (from the Django sdist) against a MySQL server, with Django's stock
MySQL backend (PyMySQL installed as MySQLdb: the baseline) or with our pooled ENGINE.

    python tests/django_suite/harness.py --engine pool  mysql://root:pw@127.0.0.1:3306/x
    python tests/django_suite/harness.py --engine stock mysql://root:pw@127.0.0.1:3306/x

The sdist is fetched once with ``pip download --no-binary :all: Django==<installed version>`` and
kept in ``~/.cache/mysqlpool_ext`` (``MYSQLPOOL_CACHE_DIR`` overrides it), so its tests always match
the installed Django. The user in the URL must be allowed to create databases (Django's runner
creates ``test_<NAME>`` for both aliases, ``default`` and ``other``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]

#: The apps the suite runs (the parts of Django's test-suite that exercise a database backend).
APPS = (
    "backends", "transactions", "basic", "queries", "select_for_update", "get_or_create",
    "bulk_create", "update", "delete", "model_fields", "expressions", "aggregation", "lookup",
    "timezones", "async",
    # Beyond the list: connections in threads (LiveServerTestCase, SimpleTestCase's
    # refusal of undeclared databases), the request cycle, on_commit, two databases.
    "test_utils", "transaction_hooks", "handlers", "servers", "multiple_database",
)  # fmt: skip

#: The Django whose stock-backend run KNOWN_FAILURES records (with another, the test runs the
#: stock backend itself for the baseline).
BASELINE_VERSION = "5.2.19"

#: Failures of the stock backend with PyMySQL on MariaDB, not caused by a pool: PyMySQL returns
#: str where mysqlclient returns bytes (``test_quote_value``, two cases), and the server has no
#: time-zone tables loaded (``test_query_convert_timezones``).
KNOWN_FAILURES: frozenset[str] = frozenset(
    {
        "backends.mysql.test_schema.SchemaEditorTests.test_quote_value",
        "timezones.tests.NewDatabaseTests.test_query_convert_timezones",
    }
)

#: Known failures that the pooled ENGINE reports as errors (see SuiteResult.unexplained_errors).
ERROR_EXPLAINED = frozenset({"backends.mysql.test_schema.SchemaEditorTests.test_quote_value"})

ENGINES = {"stock": "django.db.backends.mysql", "pool": "mysqlpool_ext.django.backend"}


def cache_dir() -> Path:
    return Path(os.environ.get("MYSQLPOOL_CACHE_DIR") or Path.home() / ".cache" / "mysqlpool_ext")


def django_version() -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import django; print(django.get_version())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def ensure_sdist(version: str | None = None) -> Path:
    """The ``tests`` directory of the Django sdist matching the installed Django."""
    version = version or django_version()
    cache = cache_dir()
    tests = cache / f"django-{version}" / "tests"
    if (tests / "runtests.py").is_file():
        return tests
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"django-{version}.tar.gz"
    if not archive.is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             "--disable-pip-version-check", f"Django=={version}", "-d", str(cache)],
            check=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    with tempfile.TemporaryDirectory(dir=cache) as tmp, tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(f"django-{version}/tests/")]
        tar.extractall(tmp, members=members, filter="data")
        os.replace(Path(tmp) / f"django-{version}", cache / f"django-{version}")
    return tests


SETTINGS = """\
# Written by tests/django_suite/harness.py: Django's test-suite on {engine}.
{prelude}
_SERVER = {server!r}


def _db(name):
    return {{
        "ENGINE": {engine!r},
        "HOST": _SERVER["host"],
        "PORT": _SERVER["port"],
        "USER": _SERVER["user"],
        "PASSWORD": _SERVER["password"],
        "NAME": name,
        "OPTIONS": {options!r},
        "TEST": {{"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_general_ci"}},
    }}


DATABASES = {{"default": _db("django_default"), "other": _db("django_other")}}
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
"""


def write_settings(directory: Path, engine: str, url: str) -> str:
    """A settings module for ``runtests.py --settings``; returns its module name."""
    parts = urlsplit(url)
    server = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
    }
    if engine == "stock":
        prelude = "import pymysql\n\npymysql.install_as_MySQLdb()\n"
        options: dict[str, object] = {}
    else:
        prelude = ""
        options = {"pool": {"size": 1, "max_size": 20, "timeout": 20}}
    name = f"mysqlpool_suite_{engine}"
    text = SETTINGS.format(engine=ENGINES[engine], prelude=prelude, server=server, options=options)
    (directory / f"{name}.py").write_text(text)
    return name


@dataclass
class SuiteResult:
    ran: int = 0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    summary: str = ""
    returncode: int = 0
    output: str = ""

    @property
    def new_failures(self) -> list[str]:
        """Tests that did not pass and are not known not to pass on this server with PyMySQL."""
        return sorted({t for t in self.failures + self.errors if t not in KNOWN_FAILURES})

    @property
    def unexplained_errors(self) -> list[str]:
        """Errors other than the one the ENGINE explains: ``test_quote_value`` starts with
        ``import MySQLdb``, a module the ENGINE deliberately does not install, so with it that
        known failure is reported as an error at its first line."""
        return sorted({t for t in self.errors if t not in ERROR_EXPLAINED})


_HEADER = re.compile(r"^(FAIL|ERROR): (\S+) \(([\w.]+)\)", re.M)


def parse(output: str) -> SuiteResult:
    result = SuiteResult(output=output)
    for kind, _method, test_id in _HEADER.findall(output):
        (result.failures if kind == "FAIL" else result.errors).append(test_id)
    ran = re.search(r"^Ran (\d+) tests? in", output, re.M)
    result.ran = int(ran.group(1)) if ran else 0
    last = [ln for ln in output.splitlines() if ln.startswith(("OK", "FAILED"))]
    result.summary = last[-1] if last else ""
    return result


def run_suite(engine: str, url: str, apps: tuple[str, ...] | list[str] = APPS,
              timeout: float = 900) -> SuiteResult:  # fmt: skip
    tests = ensure_sdist()
    with tempfile.TemporaryDirectory() as tmp:
        module = write_settings(Path(tmp), engine, url)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([tmp, str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "PYTHONWARNINGS": "ignore",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        proc = subprocess.run(
            [sys.executable, "runtests.py", f"--settings={module}", "--parallel", "1",
             "--noinput", *apps],
            cwd=tests,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )  # fmt: skip
    result = parse(proc.stdout)
    result.returncode = proc.returncode
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=sorted(ENGINES), default="pool")
    parser.add_argument("url", help="mysql://user:password@host:port/ (may CREATE DATABASE)")
    parser.add_argument("apps", nargs="*", default=list(APPS))
    args = parser.parse_args(argv)
    result = run_suite(args.engine, args.url, args.apps)
    print(result.output[-3000:])
    print(f"engine={args.engine} ran={result.ran} failures={sorted(result.failures)} "
          f"errors={sorted(result.errors)} summary={result.summary!r}")  # fmt: skip
    return 0 if not result.new_failures and not result.unexplained_errors else 1


if __name__ == "__main__":
    sys.exit(main())
