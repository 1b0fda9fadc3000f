"""``manage.py init_shop``: create the shop's tables (idempotent) and seed data."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ...schema import create_schema


class Command(BaseCommand):
    help = "Create the example shop's tables and seed data (safe to run twice)."

    def handle(self, *args: Any, **options: Any) -> None:
        create_schema()  # current_pool works in management commands too
        self.stdout.write(self.style.SUCCESS("shop tables ready"))
