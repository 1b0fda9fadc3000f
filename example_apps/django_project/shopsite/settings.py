"""Settings of the example shop.

The server comes from ``MYSQLPOOL_URL`` (or ``DATABASE_URL``) in the environment, e.g.
``mysql://user:password@127.0.0.1:3306/shop``. ``DATABASES["default"]`` uses the pooled ENGINE:
the ORM (the ``Product`` and ``Review`` models, the admin) and ``current_pool`` (the SQL views)
share one pool, and within a request one connection. No ``install_as_MySQLdb()`` is needed: the
ENGINE runs Django's MySQL backend on PyMySQL by itself.

``SHOP_ENGINE`` switches the ORM's backend for the benchmark: ``pool`` (the default), ``stock``
(Django's MySQL backend with PyMySQL as MySQLdb, ``CONN_MAX_AGE`` from ``SHOP_CONN_MAX_AGE``) or
``dbcp`` (django-db-connection-pool, SQLAlchemy's QueuePool); with the last two, ``current_pool``
gets a pool of its own through ``MYSQLPOOL``.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

ENGINE = os.environ.get("SHOP_ENGINE", "pool")
POOL_SIZE = int(os.environ.get("SHOP_POOL_SIZE", "4"))
POOL_MAX_SIZE = int(os.environ.get("SHOP_POOL_MAX_SIZE", "8"))

if ENGINE != "pool":
    import pymysql

    # Django's own MySQL backend imports MySQLdb; PyMySQL stands in for it.
    pymysql.install_as_MySQLdb()

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") in ("1", "true", "yes")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
ROOT_URLCONF = "example_apps.django_project.shopsite.urls"
WSGI_APPLICATION = "example_apps.django_project.shopsite.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "mysqlpool_ext.django",
    "example_apps.django_project.shop",
]

MIDDLEWARE = [
    # First, so every later middleware and the view share the request's one connection.
    "mysqlpool_ext.django.middleware.MySQLPoolMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "static/"


def _database_from_url(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    db: dict[str, object] = {
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": parts.port or 3306,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "NAME": unquote(parts.path.lstrip("/")),
        "OPTIONS": {"charset": "utf8mb4"},
    }
    if ENGINE == "pool":
        db["ENGINE"] = "mysqlpool_ext.django.backend"
        db["OPTIONS"] = {
            "charset": "utf8mb4",
            "pool": {"size": POOL_SIZE, "max_size": POOL_MAX_SIZE, "timeout": 10},
        }
    elif ENGINE == "dbcp":
        db["ENGINE"] = "dj_db_conn_pool.backends.mysql"
        db["POOL_OPTIONS"] = {"POOL_SIZE": POOL_SIZE, "MAX_OVERFLOW": POOL_MAX_SIZE - POOL_SIZE}
    else:
        db["ENGINE"] = "django.db.backends.mysql"
        db["CONN_MAX_AGE"] = int(os.environ.get("SHOP_CONN_MAX_AGE", "0"))
    return db


_URL = os.environ.get("MYSQLPOOL_URL") or os.environ.get("DATABASE_URL")
if _URL:
    DATABASES = {"default": _database_from_url(_URL)}
else:
    # ``python -m example_apps.django_project`` starts a throwaway server and sets MYSQLPOOL_URL;
    # without one, `manage.py check` still runs and says what is missing.
    DATABASES = {}

if ENGINE != "pool" or not _URL:
    # current_pool's own pool, from DATABASES["default"] (the ENGINE needs none: its pool is it).
    MYSQLPOOL = {
        "default": {
            "DATABASE": "default",  # host, port, user, password, name and OPTIONS
            "SIZE": POOL_SIZE,
            "MAX_SIZE": POOL_MAX_SIZE,
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
