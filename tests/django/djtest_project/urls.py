from __future__ import annotations

from django.urls import path

from mysqlpool_ext.django import views as mysqlpool_views

from . import views

urlpatterns = [
    path("one", views.one),
    path("conn-ids", views.conn_ids),
    path("boom", views.boom),
    path("open-txn/<str:value>", views.open_txn),
    path("stream/<int:n>", views.stream),
    path("stream-boom", views.stream_boom),
    path("async-one", views.async_one),
    path("async-conn-ids", views.async_conn_ids),
    path("async-stream/<int:n>", views.async_stream),
    path("sleep", views.sleep),
    path("mysqlpool/stats", mysqlpool_views.stats),
]
