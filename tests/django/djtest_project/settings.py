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

if os.environ.get("DJTEST_MYSQLPOOL_URL"):
    MYSQLPOOL = {
        "default": {
            "URL": os.environ["DJTEST_MYSQLPOOL_URL"],
            "SIZE": 2,
            "MAX_SIZE": int(os.environ.get("DJTEST_MAX_SIZE", "4")),
            "TIMEOUT": 10,
        }
    }
