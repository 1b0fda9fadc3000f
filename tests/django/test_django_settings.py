"""MYSQLPOOL -> pools: key mapping, DATABASES reuse, fallbacks, and errors through the checks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test.utils import override_settings

from mysqlpool_ext import current_pool
from mysqlpool_ext.django.conf import GENERIC_KEYS, read_config
from mysqlpool_ext.django.pools import PoolHandler, pools

pytestmark = pytest.mark.no_server

MYSQL = "django.db.backends.mysql"
NO_ENV: dict[str, str] = {}


def cfg(environ: dict[str, str] | None = None, **settings: Any) -> Any:
    specs, errors = read_config(SimpleNamespace(**settings), NO_ENV if environ is None else environ)
    return specs, errors


def only_error(**settings: Any) -> Any:
    _, errors = cfg(**settings)
    assert len(errors) == 1, errors
    return errors[0]


def test_url_and_upper_case_keys_map_to_core_options() -> None:
    specs, errors = cfg(
        MYSQLPOOL={
            "default": {
                "URL": "mysql://app:pw@127.0.0.1:3307/shop?charset=utf8mb4",
                "SIZE": 3,
                "MAX_SIZE": 6,
                "TIMEOUT": 2.5,
                "MAX_LIFETIME": 600,
                "CONNECT_TIMEOUT": 4,
            }
        }
    )
    assert errors == []
    kw = specs["default"].build_kwargs()
    assert kw == {
        "host": "127.0.0.1",
        "port": 3307,
        "user": "app",
        "password": "pw",
        "database": "shop",
        "charset": "utf8mb4",
        "size": 3,
        "max_size": 6,
        "timeout": 2.5,
        "max_lifetime": 600,
        "connect_timeout": 4,
        "name": "default",
    }


def test_every_core_option_has_an_upper_case_key() -> None:
    from mysqlpool_ext.config import CONNECT_PARAMS, POOL_OPTION_NAMES

    for name in (POOL_OPTION_NAMES | CONNECT_PARAMS) - {"name", "database"}:
        assert GENERIC_KEYS[name.upper()] == name


def test_django_style_host_port_name_and_options() -> None:
    specs, errors = cfg(
        MYSQLPOOL={
            "default": {
                "HOST": "127.0.0.1",
                "PORT": "3308",
                "USER": "app",
                "PASSWORD": "",
                "NAME": "shop",
                "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
            },
            "sock": {"HOST": "/run/mysqld/mysqld.sock", "PORT": "", "NAME": "shop"},
        }
    )
    assert errors == []
    kw = specs["default"].kwargs
    assert kw["port"] == 3308 and kw["database"] == "shop" and "password" not in kw
    assert kw["init_command"] == "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
    sock = specs["sock"].kwargs
    assert sock["unix_socket"] == "/run/mysqld/mysqld.sock" and "host" not in sock
    assert "port" not in sock


def test_database_key_reuses_a_databases_alias_and_entry_keys_win() -> None:
    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "replica": {
            "ENGINE": MYSQL,
            "HOST": "127.0.0.2",
            "PORT": "3310",
            "USER": "ro",
            "PASSWORD": "s3cret",
            "NAME": "shop",
            "OPTIONS": {"connect_timeout": 3},
            "CONN_MAX_AGE": 60,
        },
    }
    specs, errors = cfg(
        DATABASES=databases,
        MYSQLPOOL={"reports": {"DATABASE": "replica", "SIZE": 2, "USER": "rep"}},
    )
    assert errors == []
    kw = specs["reports"].build_kwargs()
    assert kw == {
        "host": "127.0.0.2",
        "port": 3310,
        "user": "rep",
        "password": "s3cret",
        "database": "shop",
        "connect_timeout": 3,
        "size": 2,
        "name": "reports",
    }


def test_without_mysqlpool_default_comes_from_databases_then_environment() -> None:
    mysql_default = {"default": {"ENGINE": MYSQL, "HOST": "db", "NAME": "shop", "USER": "u"}}
    specs, errors = cfg(DATABASES=mysql_default, environ={"MYSQLPOOL_URL": "mysql://x@other/y"})
    assert errors == [] and specs["default"].kwargs["host"] == "db"
    assert specs["default"].source == "DATABASES['default']"

    sqlite = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}}
    specs, errors = cfg(DATABASES=sqlite, environ={"DATABASE_URL": "mysql://u@envhost:3311/d"})
    assert errors == [] and specs["default"].kwargs["host"] == "envhost"
    assert specs["default"].source == "environment variable DATABASE_URL"

    specs, errors = cfg(DATABASES=sqlite, environ={"DATABASE_URL": "postgres://u@h/d"})
    assert specs == {} and errors == []


def test_entry_without_a_server_falls_back_to_the_same_sources() -> None:
    specs, errors = cfg(
        MYSQLPOOL={"default": {"SIZE": 7}}, environ={"MYSQLPOOL_URL": "mysql://u@envhost/d"}
    )
    assert errors == []
    assert specs["default"].kwargs["host"] == "envhost" and specs["default"].kwargs["size"] == 7
    err = only_error(MYSQLPOOL={"reports": {"SIZE": 7}})
    assert err.setting == "MYSQLPOOL['reports']" and err.code == 6


@pytest.mark.parametrize(
    ("entry", "setting", "words"),
    [
        (
            {"URL": "mysql://u@h/d", "SIZE": -1},
            "MYSQLPOOL['default']['SIZE']",
            "'size' must be >= 0",
        ),
        ({"URL": "mysql://u@h/d", "SIZE": "ten"}, "MYSQLPOOL['default']['SIZE']", "integer"),
        (
            {"URL": "mysql://u@h/d", "SIZE": 5, "MAX_SIZE": 2},
            "MYSQLPOOL['default']['MAX_SIZE']",
            ">= 'size'",
        ),
        ({"URL": "mysql://u@h/d", "TIMEOUT": "x"}, "MYSQLPOOL['default']['TIMEOUT']", "number"),
        ({"URL": "mysql://u@h/d", "PORT": 70000}, "MYSQLPOOL['default']['PORT']", "1..65535"),
        ({"URL": "mysql://u@h/d?size=x"}, "MYSQLPOOL['default']['URL']", "invalid value"),
        ({"URL": "postgres://u@h/d"}, "MYSQLPOOL['default']['URL']", "scheme"),
        ({"URL": "mysql://u@h/d", "SIZ": 3}, "MYSQLPOOL['default']['SIZ']", "did you mean 'SIZE'"),
        (
            {"URL": "mysql://u@h/d", "OPTIONS": {"connect_timeout": -1}},
            "MYSQLPOOL['default']['OPTIONS']['connect_timeout']",
            "connect_timeout",
        ),
        (
            {"URL": "mysql://u@h/d", "CHARSET": "klingon"},
            "MYSQLPOOL['default']['CHARSET']",
            "character set",
        ),
        ({"DATABASE": "nope"}, "MYSQLPOOL['default']['DATABASE']", "not one"),
        ({"URL": "mysql://u@h/d", "DATABASE": "default"}, "MYSQLPOOL['default']", "not both"),
    ],
)
def test_bad_values_name_the_setting(entry: dict[str, Any], setting: str, words: str) -> None:
    err = only_error(MYSQLPOOL={"default": entry}, DATABASES={})
    assert err.setting == setting
    assert words in err.message


def test_messages_never_contain_the_password() -> None:
    err = only_error(MYSQLPOOL={"default": {"URL": "mysql://u:hunter2-pw@h/d?size=-3"}})
    assert "hunter2-pw" not in str(err)
    err = only_error(MYSQLPOOL={"default": {"URL": "mysql://u:hunter2-pw@h:99999/d"}})
    assert "hunter2-pw" not in str(err)


def test_setting_must_be_a_dict_of_dicts() -> None:
    assert only_error(MYSQLPOOL=["default"]).setting == "MYSQLPOOL"
    err = only_error(MYSQLPOOL={"default": "mysql://u@h/d"})
    assert err.setting == "MYSQLPOOL['default']" and err.code == 2


def test_databases_alias_must_be_mysql() -> None:
    err = only_error(
        MYSQLPOOL={"default": {"DATABASE": "default"}},
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}},
    )
    assert "not a MySQL database" in err.message and err.code == 5


def test_manage_py_check_reports_a_bad_value_naming_the_setting() -> None:
    with override_settings(MYSQLPOOL={"default": {"URL": "mysql://u@h/d", "SIZE": -1}}):
        messages = checks.run_checks()
        errors = [m for m in messages if m.id.startswith("mysqlpool.")]
        assert [m.id for m in errors] == ["mysqlpool.E004"]
        assert errors[0].obj == "MYSQLPOOL['default']['SIZE']"
        assert "'size' must be >= 0" in errors[0].msg
        with pytest.raises(SystemCheckError, match=r"MYSQLPOOL\['default'\]\['SIZE'\]"):
            call_command("check")


def test_check_passes_on_good_settings_and_warns_without_middleware() -> None:
    good = {"default": {"URL": "mysql://u@127.0.0.1/d", "SIZE": 1}}
    with override_settings(MYSQLPOOL=good):
        assert [m for m in checks.run_checks() if m.id.startswith("mysqlpool.")] == []
        call_command("check")
    with override_settings(MYSQLPOOL=good, MIDDLEWARE=[]):
        assert [m.id for m in checks.run_checks() if m.id.startswith("mysqlpool.")] == [
            "mysqlpool.W001"
        ]


def test_improperly_configured_at_use() -> None:
    handler = PoolHandler()
    with override_settings(MYSQLPOOL={"default": {"URL": "mysql://u@h/d", "MAX_SIZE": 0}}):
        with pytest.raises(ImproperlyConfigured, match=r"MYSQLPOOL\['default'\]\['MAX_SIZE'\]"):
            handler["default"]
        with pytest.raises(ImproperlyConfigured, match=r"MYSQLPOOL\['default'\]\['MAX_SIZE'\]"):
            current_pool.execute_query("SELECT 1")
    with (
        override_settings(MYSQLPOOL={"default": {"URL": "mysql://u@h/d"}}),
        pytest.raises(ImproperlyConfigured, match="no pool 'reports'"),
    ):
        pools["reports"]
    # Another alias than "default": current_pool.using() says what is wrong with its settings,
    # not "no open pool named ...".
    bad = {"default": {"URL": "mysql://u@h/d"}, "reports": {"URL": "mysql://u@h/d", "SIZE": -1}}
    with (
        override_settings(MYSQLPOOL=bad),
        pytest.raises(ImproperlyConfigured, match=r"MYSQLPOOL\['reports'\]\['SIZE'\]"),
    ):
        current_pool.using("reports").execute_query("SELECT 1")
