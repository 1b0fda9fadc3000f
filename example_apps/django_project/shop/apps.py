from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "example_apps.django_project.shop"
    label = "shop"
