"""The pooled ENGINE's settings: OPTIONS["pool"] validated by ``manage.py check`` (every bad
option, with suggestions), CONN_MAX_AGE, and the ENGINE's aliases in the pool handler."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test.utils import override_settings

from mysqlpool_ext.django.conf import ENGINE, engine_pool_options, read_config

pytestmark = pytest.mark.no_server


def engine_db(**extra: Any) -> dict[str, Any]:
    options = extra.pop("OPTIONS", {})
    return {
        "ENGINE": ENGINE, "HOST": "127.0.0.1", "PORT": 3306, "USER": "u",
        "PASSWORD": "hunter2-pw", "NAME": "shop", "OPTIONS": options, **extra,
    }  # fmt: skip


def errors_of(**settings: Any) -> list[Any]:
    return read_config(SimpleNamespace(**settings), {})[1]


def test_every_bad_pool_option_is_reported_with_its_setting() -> None:
    pool = {"sise": 3, "timeout": "soon", "max_size": 0, "host": "db", "lazy": True}
    errors = errors_of(DATABASES={"default": engine_db(OPTIONS={"pool": pool})})
    by_setting = {e.setting: e.message for e in errors}
    base = "DATABASES['default']['OPTIONS']['pool']"
    assert set(by_setting) == {f"{base}['sise']", f"{base}['timeout']", f"{base}['max_size']",
                               f"{base}['host']"}, errors  # fmt: skip
    assert "did you mean 'size'" in by_setting[f"{base}['sise']"]
    assert "timeout" in by_setting[f"{base}['timeout']"]
    assert "connection option" in by_setting[f"{base}['host']"]
    assert all("hunter2-pw" not in str(e) for e in errors)


def test_size_above_max_size_is_reported_once_the_values_are_valid() -> None:
    errors = errors_of(
        DATABASES={"default": engine_db(OPTIONS={"pool": {"size": 5, "max_size": 2}})}
    )
    assert len(errors) == 1 and ">= 'size'" in errors[0].message, errors


def test_pool_must_be_bool_or_dict_and_conn_max_age_zero() -> None:
    errors = errors_of(DATABASES={"default": engine_db(OPTIONS={"pool": 5}, CONN_MAX_AGE=60)})
    settings = sorted(e.setting for e in errors)
    assert settings == [
        "DATABASES['default']['CONN_MAX_AGE']",
        "DATABASES['default']['OPTIONS']['pool']",
    ], errors
    assert "must be 0" in next(e.message for e in errors if "CONN_MAX_AGE" in e.setting)


def test_good_options_and_defaults() -> None:
    assert engine_pool_options("default", engine_db(OPTIONS={"pool": True})) == {}
    assert engine_pool_options("default", engine_db()) == {}
    assert engine_pool_options("default", engine_db(OPTIONS={"pool": False})) is None
    assert engine_pool_options("x", engine_db(OPTIONS={"pool": {"max_size": 20, "timeout": 5}}))
    specs, errors = read_config(
        SimpleNamespace(DATABASES={"default": engine_db(), "other": engine_db()}), {}
    )
    assert errors == []
    assert sorted(specs) == ["default", "other"] and all(s.engine for s in specs.values())


def test_mysqlpool_reports_every_bad_option_too() -> None:
    """Issue 16, item 6: not only the first bad option of a pool."""
    entry = {"URL": "mysql://u@h/d", "SIZE": -1, "TIMEOUT": "soon", "SIZ": 1, "MAX_SIZ": 2}
    errors = errors_of(MYSQLPOOL={"default": entry}, DATABASES={})
    assert sorted(e.setting for e in errors) == [
        "MYSQLPOOL['default']['MAX_SIZ']",
        "MYSQLPOOL['default']['SIZ']",
    ], errors  # fmt: skip
    # Unknown keys first; the values are checked once every key is known.
    del entry["SIZ"], entry["MAX_SIZ"]
    errors = errors_of(MYSQLPOOL={"default": entry}, DATABASES={})
    assert sorted(e.setting for e in errors) == [
        "MYSQLPOOL['default']['SIZE']", "MYSQLPOOL['default']['TIMEOUT']",
    ], errors  # fmt: skip


def test_mysqlpool_entry_for_an_engine_alias_is_an_error() -> None:
    errors = errors_of(MYSQLPOOL={"default": {"SIZE": 2}}, DATABASES={"default": engine_db()})
    assert [e.code for e in errors] == [7] and "OPTIONS']['pool']" in (errors[0].hint or "")


def test_manage_py_check_reports_engine_options() -> None:
    databases = {"default": engine_db(OPTIONS={"pool": {"timout": 5, "size": -1}})}
    with (
        pytest.warns(UserWarning, match="Overriding setting DATABASES"),
        override_settings(DATABASES=databases),
    ):
        found = [m for m in checks.run_checks() if m.id.startswith("mysqlpool.")]
    assert sorted(m.obj for m in found) == [
        "DATABASES['default']['OPTIONS']['pool']['size']",
        "DATABASES['default']['OPTIONS']['pool']['timout']",
    ], found
    assert any("did you mean 'timeout'" in m.msg for m in found)


def test_the_backend_refuses_conn_max_age_and_bad_options() -> None:
    from mysqlpool_ext.django.backend.base import DatabaseWrapper

    wrapper = DatabaseWrapper(
        {**connections.settings["default"], **engine_db(CONN_MAX_AGE=60)}, "probe"
    )
    with pytest.raises(ImproperlyConfigured, match="CONN_MAX_AGE"):
        _ = wrapper.pool
    wrapper = DatabaseWrapper(
        {**connections.settings["default"], **engine_db(OPTIONS={"pool": {"max_size": -1}})},
        "probe",
    )
    with pytest.raises(ImproperlyConfigured, match=r"\['pool'\]\['max_size'\]"):
        _ = wrapper.pool


def test_the_pooled_connect_resets_what_djangos_connect_resets() -> None:
    """The pooled wrapper's connect() repeats Django's own (without rebuilding the connect
    parameters): a new per-connection attribute in a later Django must show up here."""
    import ast
    import inspect
    import textwrap

    from django.db.backends.base.base import BaseDatabaseWrapper

    from mysqlpool_ext.django.backend.base import DatabaseWrapper

    def assigned(func: Any) -> list[str]:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        return [
            target.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Attribute) and getattr(target.value, "id", "") == "self"
        ]

    django_order = assigned(BaseDatabaseWrapper.connect)
    reset = assigned(DatabaseWrapper._reset_connection_state)  # called first by both below
    ours = [a for a in reset + assigned(DatabaseWrapper.connect) if not a.startswith("_")]
    assert ours == django_order
    assert "connection_created.send" in inspect.getsource(DatabaseWrapper.connect)
    # Using again the connection kept since the thread's last request is a connect too.
    taken_back = [a for a in reset + assigned(DatabaseWrapper._take_back) if not a.startswith("_")]
    assert [a for a in taken_back if a in django_order] == django_order
    assert set(taken_back) - set(django_order) == {"autocommit"}  # what set_autocommit() sets
    for method in (DatabaseWrapper.connect, DatabaseWrapper._take_back):
        source = inspect.getsource(method)
        assert source.index("self._reset_connection_state(") < source.index("self.connection =")


def test_ensure_connection_reentered_does_what_djangos_does() -> None:
    """Our ensure_connection() calls the base class's method (which SimpleTestCase wraps to
    refuse threads' connections); re-entered from a wrapper of it that calls the bound method
    back (Django's own test_utils does), it runs Django's body itself instead of recursing:
    those lines must stay Django's."""
    import ast
    import inspect

    import django.db.backends.base.base as django_base

    from mysqlpool_ext.django.backend.base import DatabaseWrapper

    def statements(source: str) -> str:
        """The code after ``if self.connection is None:``, comments and layout dropped."""
        source = source[source.index("if self.connection is None:") :]
        code = [line.split("#")[0].strip() for line in source.splitlines()]
        return "".join(code).replace(" ", "")

    # From Django's file, not the class: pytest-django wraps the method to block queries.
    module = ast.parse(inspect.getsource(django_base))
    base = next(n for n in module.body if getattr(n, "name", "") == "BaseDatabaseWrapper")
    method = next(n for n in base.body if getattr(n, "name", "") == "ensure_connection")  # type: ignore[attr-defined]
    djangos = statements(ast.get_source_segment(inspect.getsource(django_base), method) or "")
    djangos = djangos.removeprefix("ifself.connectionisNone:")  # the body (4.2: no atomic check)
    ours = inspect.getsource(DatabaseWrapper.ensure_connection)
    assert djangos in statements(ours)
    assert "super().ensure_connection()" in ours
