"""Settings of the example shop.

The server comes from ``MYSQLPOOL_URL`` (or ``DATABASE_URL``) in the environment, e.g.
``mysql://user:password@127.0.0.1:3306/shop``. The same server is also Django's own
``DATABASES["default"]`` (through PyMySQL), so the ORM and the pool can be compared side by side;
``MYSQLPOOL`` reuses that alias with ``"DATABASE": "default"``.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

import pymysql

# Django's MySQL backend imports MySQLdb; PyMySQL stands in for it (it reports a mysqlclient
# version recent enough for Django 4.2 to 6.x).
pymysql.install_as_MySQLdb()

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") in ("1", "true", "yes")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
ROOT_URLCONF = "example_apps.django_project.shopsite.urls"
WSGI_APPLICATION = "example_apps.django_project.shopsite.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "mysqlpool_ext.django",
    "example_apps.django_project.shop",
]

MIDDLEWARE = [
    # First, so every later middleware and the view share the request's one connection.
    "mysqlpool_ext.django.middleware.MySQLPoolMiddleware",
    "django.middleware.common.CommonMiddleware",
]


def _database_from_url(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.mysql",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": parts.port or 3306,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "NAME": unquote(parts.path.lstrip("/")),
        # Only the ORM views use it; the benchmark sets 0 and 60 to compare with the pool.
        "CONN_MAX_AGE": int(os.environ.get("SHOP_CONN_MAX_AGE", "0")),
        "OPTIONS": {"charset": "utf8mb4"},
    }


_URL = os.environ.get("MYSQLPOOL_URL") or os.environ.get("DATABASE_URL")
if _URL:
    DATABASES = {"default": _database_from_url(_URL)}
else:
    # ``python -m example_apps.django_project`` starts a throwaway server and sets MYSQLPOOL_URL;
    # without one, `manage.py check` still runs and says what is missing.
    DATABASES = {}

MYSQLPOOL = {
    "default": {
        "DATABASE": "default",  # host, port, user, password, name and OPTIONS from DATABASES
        "SIZE": int(os.environ.get("SHOP_POOL_SIZE", "4")),
        "MAX_SIZE": int(os.environ.get("SHOP_POOL_MAX_SIZE", "8")),
        "TIMEOUT": 10,
        "MAX_LIFETIME": 1800,
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"mysqlpool_ext": {"handlers": ["console"], "level": "WARNING"}},
}
