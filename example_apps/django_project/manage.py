#!/usr/bin/env python
"""Django's command-line utility for the example shop (``python manage.py check``, ...)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    # The settings live in the importable package example_apps.django_project: put the
    # repository root on the path when run as ``python example_apps/django_project/manage.py``.
    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.insert(0, root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_apps.django_project.shopsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
