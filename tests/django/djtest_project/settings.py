"""Settings of the test project (in-process tests and the gunicorn/uvicorn servers they start).

``MYSQLPOOL`` is not set here: the server URL is only known once the session's throwaway server
runs. In-process tests get it through ``override_settings`` (tests/django/conftest.py); server
subprocesses get ``DJTEST_MYSQLPOOL_URL`` in their environment.
"""

from __future__ import annotations

import os

SECRET_KEY = "mysqlpool-ext-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "djtest_project.urls"
INSTALLED_APPS = ["mysqlpool_ext.django"]
MIDDLEWARE = ["mysqlpool_ext.django.middleware.MySQLPoolMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING_CONFIG = None

# Empty unless a server subprocess gets a URL: no pool, and no fallback to DATABASE_URL /
# MYSQLPOOL_URL, so other test layers sharing this process never find a Django pool.
MYSQLPOOL: dict[str, dict[str, object]] = {}
if os.environ.get("DJTEST_MYSQLPOOL_URL"):
    MYSQLPOOL = {
        "default": {
            "URL": os.environ["DJTEST_MYSQLPOOL_URL"],
            "SIZE": 2,
            "MAX_SIZE": int(os.environ.get("DJTEST_MAX_SIZE", "4")),
            "TIMEOUT": 10,
        }
    }
