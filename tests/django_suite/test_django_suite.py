"""Django's own test-suite on our ENGINE: the same result as Django's stock MySQL backend.

Baseline (stock backend, PyMySQL via ``install_as_MySQLdb()``, MariaDB 10.11, Django 5.2.19):
2,326 tests, 3 failures not caused by a pool (see ``harness.KNOWN_FAILURES``). With the ENGINE the
same tests must not pass and no other: no new failure, and no error except ``test_quote_value``,
whose first line is ``import MySQLdb``. Run the baseline with ``MYSQLPOOL_DJANGO_SUITE_STOCK=1``.

The sdist is fetched once (``pip download``) and cached in ``~/.cache/mysqlpool_ext``.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any
from urllib.parse import quote

import harness  # type: ignore[import-not-found]
import pytest

pytestmark = pytest.mark.slow


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def django_tests() -> str:
    try:
        return str(harness.ensure_sdist())
    except (OSError, subprocess.CalledProcessError) as exc:
        if _in_ci():
            pytest.fail(f"cannot fetch the Django sdist: {exc}")
        pytest.skip(f"cannot fetch the Django sdist (offline?): {exc}")


def _root_url(mysql_server: Any) -> str:
    kw = mysql_server.root_connect_kwargs()
    user, password = quote(kw["user"], safe=""), quote(kw["password"] or "", safe="")
    return f"mysql://{user}:{password}@{kw['host']}:{kw['port']}/"


def _report(result: Any) -> str:
    return (
        f"ran={result.ran} summary={result.summary!r}\nfailures={sorted(result.failures)}\n"
        f"errors={sorted(result.errors)}\n--- tail ---\n{result.output[-4000:]}"
    )


def test_django_suite_on_the_pooled_engine(django_tests: str, mysql_server: Any) -> None:
    result = harness.run_suite("pool", _root_url(mysql_server))
    print(f"Django test-suite on the pooled ENGINE: {_report(result)[:600]}")
    assert result.ran >= 2000, _report(result)
    assert result.unexplained_errors == [], _report(result)
    if harness.django_version() == harness.BASELINE_VERSION:
        assert result.new_failures == [], _report(result)
        return
    # Another Django (tox, a newer LTS): the baseline is the stock backend's run, here and now.
    stock = harness.run_suite("stock", _root_url(mysql_server))
    not_passing = set(stock.failures + stock.errors) | harness.ERROR_EXPLAINED
    assert sorted(set(result.failures + result.errors) - not_passing) == [], (
        _report(result) + "\n--- stock ---\n" + _report(stock)
    )


@pytest.mark.skipif(
    not os.environ.get("MYSQLPOOL_DJANGO_SUITE_STOCK"),
    reason="baseline: set MYSQLPOOL_DJANGO_SUITE_STOCK=1",
)
def test_django_suite_baseline_stock_backend(django_tests: str, mysql_server: Any) -> None:
    result = harness.run_suite("stock", _root_url(mysql_server))
    assert result.ran >= 2300, _report(result)
    assert result.new_failures == [], _report(result)
    assert sorted(result.failures) == sorted(
        [*harness.KNOWN_FAILURES, "backends.mysql.test_schema.SchemaEditorTests.test_quote_value"]
    ), _report(result)
