"""The pooled ENGINE's test project: the ORM and ``current_pool`` on one pool.

The server comes from the environment (``DJENGINE_URL``: a user that may create databases, since
Django's test runner creates ``test_<NAME>``); ``DJENGINE_MAX_SIZE`` sizes the pools.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

_url = urlsplit(os.environ.get("DJENGINE_URL", "mysql://root@127.0.0.1:3306/"))
_MAX_SIZE = int(os.environ.get("DJENGINE_MAX_SIZE", "4"))


def _db(name: str, **extra: object) -> dict[str, object]:
    return {
        "ENGINE": "mysqlpool_ext.django.backend",
        "HOST": _url.hostname or "127.0.0.1",
        "PORT": _url.port or 3306,
        "USER": unquote(_url.username or "root"),
        "PASSWORD": unquote(_url.password or ""),
        "NAME": name,
        "OPTIONS": {"pool": {"size": 1, "max_size": _MAX_SIZE, "timeout": 10}},
        **extra,
    }


_NAME = os.environ.get("DJENGINE_DB", "djengine")
DATABASES = {
    "default": _db(_NAME),
    # ATOMIC_REQUESTS is switched on for "other" by the test that needs it: Django refuses it
    # in a project with async views.
    "other": _db(_NAME + "_other"),
}
SECRET_KEY = "mysqlpool-ext-engine-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "engine_project.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "mysqlpool_ext.django",
    "engine_app",
]
MIDDLEWARE = ["mysqlpool_ext.django.middleware.MySQLPoolMiddleware"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASE_ROUTERS: list[object] = []
LOGGING_CONFIG = None
