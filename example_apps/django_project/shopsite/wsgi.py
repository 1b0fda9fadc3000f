"""WSGI entry point, e.g.
``gunicorn -w 2 --threads 4 example_apps.django_project.shopsite.wsgi:application``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_apps.django_project.shopsite.settings")
application = get_wsgi_application()
