"""The shop's views. Each request gets one pooled connection from the middleware; every
``current_pool`` call in the request uses it, and it goes back when the response is sent."""

from __future__ import annotations

import json

from django.db import connection as orm_connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mysqlpool_ext import current_pool

from .models import Product


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return JsonResponse(
        {
            "endpoints": [
                "GET /users/<id>",
                "POST /users {name, email}",
                "GET /products",
                "POST /orders {user_id, product_id, qty}",
                "GET /async/users/<id>",
                "GET /orm/users/<id>",
                "GET /orm/products/<id>",
                "GET /orm/products",
                "GET /admin/",
                "GET /mysqlpool/stats",
            ]
        }
    )


@require_GET
def user(request: HttpRequest, uid: int) -> JsonResponse:
    row = current_pool.execute_query(
        "SELECT id, name FROM shop_users WHERE id=%s", (uid,), dictcursor=True, return_one=True
    )
    if row is None:
        raise Http404("no such user")
    return JsonResponse(row)


async def auser(request: HttpRequest, uid: int) -> JsonResponse:
    """The same lookup from an async view: the event loop never waits on the socket."""
    row = await current_pool.aexecute_query(
        "SELECT id, name FROM shop_users WHERE id=%s", (uid,), dictcursor=True, return_one=True
    )
    if row is None:
        raise Http404("no such user")
    return JsonResponse(row)


@require_GET
def orm_user(request: HttpRequest, uid: int) -> JsonResponse:
    """The same lookup through Django's own connection (CONN_MAX_AGE decides its lifetime)."""
    with orm_connection.cursor() as cur:
        cur.execute("SELECT id, name FROM shop_users WHERE id=%s", (uid,))
        row = cur.fetchone()
    if row is None:
        raise Http404("no such user")
    return JsonResponse({"id": row[0], "name": row[1]})


@require_GET
def orm_product(request: HttpRequest, pid: int) -> JsonResponse:
    """The ORM: ``get()`` by primary key (with the pooled ENGINE, a pooled connection)."""
    try:
        p = Product.objects.get(pk=pid)
    except Product.DoesNotExist:
        raise Http404("no such product") from None
    return JsonResponse({"id": p.pk, "name": p.name, "price_cents": p.price_cents})


@require_GET
def orm_products(request: HttpRequest) -> JsonResponse:
    """The ORM: a list of (up to) 20 rows."""
    rows = list(Product.objects.values("id", "name", "price_cents", "stock")[:20])
    return JsonResponse({"products": rows})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def users(request: HttpRequest) -> JsonResponse:
    if request.method == "GET":
        rows = current_pool.execute_query(
            "SELECT id, name, email FROM shop_users ORDER BY id LIMIT 100", dictcursor=True
        )
        return JsonResponse({"users": rows})
    data = json.loads(request.body or b"{}")
    inserted = current_pool.execute_query(
        "INSERT INTO shop_users (name, email) VALUES (%s, %s)", (data["name"], data["email"])
    )
    # The same connection as the INSERT (the middleware pinned it), so this is *our* id.
    (last_id,) = current_pool.execute_query("SELECT LAST_INSERT_ID()", return_one=True)
    assert last_id == inserted.lastrowid
    return JsonResponse({"id": last_id}, status=201)


@require_GET
def products(request: HttpRequest) -> JsonResponse:
    rows = current_pool.execute_query(
        "SELECT id, name, price_cents, stock FROM shop_products ORDER BY id", dictcursor=True
    )
    return JsonResponse({"products": rows})


@csrf_exempt
@require_POST
def order(request: HttpRequest) -> JsonResponse:
    """Take stock and record the order together, or do neither."""
    data = json.loads(request.body or b"{}")
    qty = int(data.get("qty", 1))
    with current_pool.transaction() as conn:
        taken = conn.execute_query(
            "UPDATE shop_products SET stock = stock - %s WHERE id = %s AND stock >= %s",
            (qty, data["product_id"], qty),
        )
        if taken != 1:
            # Leaving the block with an exception rolls the transaction back.
            raise Http404("no such product, or not enough stock")
        created = conn.execute_query(
            "INSERT INTO shop_orders (user_id, product_id, qty) VALUES (%s, %s, %s)",
            (data["user_id"], data["product_id"], qty),
        )
    return JsonResponse({"order_id": created.lastrowid}, status=201)
