"""Load Django's MySQL backend with PyMySQL as its driver, without ``install_as_MySQLdb()``'s
side effect on PyMySQL's own modules.

Django's backend does ``import MySQLdb`` and then ``from MySQLdb.constants import CLIENT``,
``from MySQLdb.converters import conversions``. With the shim, ``sys.modules["MySQLdb"]`` is the
``pymysql`` package but ``MySQLdb.constants`` / ``MySQLdb.converters`` are not in ``sys.modules``,
so Python imports PyMySQL's files a *second time* under those names (and, through their relative
imports, ``MySQLdb.err``); each import also rebinds the attribute on the parent package, so
afterwards ``pymysql.err`` is the second copy. PyMySQL keeps raising the classes of the first copy,
and every ``except pymysql.err.OperationalError`` evaluated later stops matching.

Here every ``MySQLdb.*`` name Django asks for is mapped to the module PyMySQL already loaded, only
for the time of the import (the shim stays uninstalled: ``import MySQLdb`` elsewhere behaves as
before), and any copies made earlier by a shim are undone on the ``pymysql`` package.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pymysql
import pymysql.connections
import pymysql.constants.CLIENT
import pymysql.constants.FIELD_TYPE
import pymysql.converters
import pymysql.cursors
import pymysql.err

__all__ = ["load_django_mysql_base", "restore_pymysql_modules"]

_DJANGO_MYSQL_BASE = "django.db.backends.mysql.base"


def _pymysql_modules() -> dict[str, ModuleType]:
    return {
        name: mod
        for name, mod in list(sys.modules.items())
        if mod is not None and (name == "pymysql" or name.startswith("pymysql."))
    }


def restore_pymysql_modules() -> None:
    """Point ``pymysql.err``, ``pymysql.converters``... back at the modules PyMySQL itself uses,
    in case a shim import replaced them with second copies."""
    for name, mod in _pymysql_modules().items():
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name) if parent_name else None
        if parent is not None and getattr(parent, child, None) is not mod:
            setattr(parent, child, mod)


def load_django_mysql_base() -> ModuleType:
    """``django.db.backends.mysql.base``, imported with ``MySQLdb`` meaning PyMySQL (unless a real
    mysqlclient or the shim is already imported: then it is left as it is)."""
    if _DJANGO_MYSQL_BASE in sys.modules:
        restore_pymysql_modules()
        return sys.modules[_DJANGO_MYSQL_BASE]
    shim = sys.modules.get("MySQLdb")
    if shim is not None and shim is not pymysql:
        # mysqlclient is loaded: Django's module uses it, our wrapper uses PyMySQL explicitly.
        return importlib.import_module(_DJANGO_MYSQL_BASE)
    added: list[str] = []
    for name, mod in _pymysql_modules().items():
        alias = "MySQLdb" + name[len("pymysql") :]
        if alias not in sys.modules:
            sys.modules[alias] = mod
            added.append(alias)
    try:
        return importlib.import_module(_DJANGO_MYSQL_BASE)
    finally:
        if shim is None:
            # We installed the names only for Django's import: leave no shim behind.
            for alias in added:
                sys.modules.pop(alias, None)
        restore_pymysql_modules()
