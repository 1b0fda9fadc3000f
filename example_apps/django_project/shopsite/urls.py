from __future__ import annotations

from django.contrib import admin
from django.urls import path

from mysqlpool_ext.django import views as mysqlpool_views

from ..shop import views

urlpatterns = [
    path("", views.index),
    path("users", views.users),
    path("users/<int:uid>", views.user),
    path("products", views.products),
    path("orders", views.order),
    path("async/users/<int:uid>", views.auser),
    path("orm/users/<int:uid>", views.orm_user),
    path("orm/products/<int:pid>", views.orm_product),
    path("orm/products", views.orm_products),
    path("admin/", admin.site.urls),
    # Opt-in: pool counters (counts only) for dashboards and the demo.
    path("mysqlpool/stats", mysqlpool_views.stats),
]
