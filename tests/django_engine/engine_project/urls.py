from django.urls import path
from engine_app import views

urlpatterns = [
    path("same", views.same),
    path("atomic-fail", views.atomic_fail),
    path("nest", views.nest),
    path("nest-fail", views.nest_fail),
    path("pool-tx-in-atomic", views.pool_tx_in_atomic),
    path("item/<int:pk>", views.item),
    path("items", views.items),
    path("aitem/<int:pk>", views.aitem),
    path("asame", views.asame),
    path("stream", views.stream),
    path("other-fail", views.other_fail),
    path("stats", views.stats),
    path("session", views.session),
    path("leave-open", views.leave_open),
    path("close-in-atomic", views.close_in_atomic),
    path("on-commit", views.on_commit),
    path("error-in-pool-tx", views.error_in_pool_tx),
    path("nested-orm-scope", views.nested_orm_scope),
    path("close-then-pool", views.close_then_pool),
    path("agather", views.agather),
    path("aturns", views.aturns),
]
