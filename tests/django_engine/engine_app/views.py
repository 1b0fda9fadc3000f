"""Views that use the ORM and ``current_pool`` together in one request."""

from __future__ import annotations

import os

from django.db import connections, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from engine_app.models import Item
from mysqlpool_ext import current_pool


def _cid() -> int:
    return int(current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0])


def _orm_cid(alias: str = "default") -> int:
    with connections[alias].cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        return int(cur.fetchone()[0])


def same(request: HttpRequest) -> JsonResponse:
    """ORM then current_pool then ORM: one connection; LAST_INSERT_ID and @vars span both."""
    item = Item.objects.create(name="same")
    last = current_pool.execute_query("SELECT LAST_INSERT_ID()", return_one=True)[0]
    current_pool.execute_query("SET @engine_var = 42")
    with connections["default"].cursor() as cur:
        cur.execute("SELECT @engine_var")
        var = cur.fetchone()[0]
    return JsonResponse(
        {"ids": [_orm_cid(), _cid(), _orm_cid()], "pk": item.pk, "last": last, "var": var}
    )


def atomic_fail(request: HttpRequest) -> HttpResponse:
    """An exception inside atomic(): the ORM row and the current_pool row both roll back."""
    try:
        with transaction.atomic():
            Item.objects.create(name="atomic-orm")
            current_pool.execute_query(
                "INSERT INTO engine_app_item (name) VALUES (%s)", ("atomic-pool",)
            )
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    return HttpResponse("ok")


def nest(request: HttpRequest) -> HttpResponse:
    """atomic() inside current_pool.transaction(): a savepoint; the outer block commits both."""
    with current_pool.transaction():
        current_pool.execute_query("INSERT INTO engine_app_item (name) VALUES ('nest-pool')")
        with transaction.atomic():
            Item.objects.create(name="nest-orm")
    return HttpResponse("ok")


def nest_fail(request: HttpRequest) -> HttpResponse:
    """atomic() inside current_pool.transaction(), then an error: nothing of either commits."""
    try:
        with current_pool.transaction():
            with transaction.atomic():
                Item.objects.create(name="nestfail-orm")
            current_pool.execute_query(
                "INSERT INTO engine_app_item (name) VALUES ('nestfail-pool')"
            )
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    return HttpResponse("ok")


def pool_tx_in_atomic(request: HttpRequest) -> HttpResponse:
    """current_pool.transaction() inside atomic(): a savepoint of the atomic block; an error in
    the atomic block after it rolls back both (BEGIN would have committed the ORM's row)."""
    outcome = request.GET.get("outcome", "ok")
    try:
        with transaction.atomic():
            Item.objects.create(name=f"inner-{outcome}-orm")
            with current_pool.transaction():
                current_pool.execute_query(
                    "INSERT INTO engine_app_item (name) VALUES (%s)", (f"inner-{outcome}-pool",)
                )
            if outcome == "inner-fail":
                raise RuntimeError("boom after the pool block")
            if outcome == "pool-fail":
                try:
                    with current_pool.transaction():
                        current_pool.execute_query(
                            "INSERT INTO engine_app_item (name) VALUES ('inner-rolledback')"
                        )
                        raise RuntimeError("boom inside the pool block")
                except RuntimeError:
                    pass  # only the savepoint rolls back; the atomic block goes on
    except RuntimeError:
        pass
    return HttpResponse("ok")


def session(request: HttpRequest) -> JsonResponse:
    """What a request finds on its connection: which one it is and its autocommit mode, and
    with ``?var=1`` the variable ``same`` sets (reading a user variable counts as a change of
    the session on MariaDB: the connection is then reset when it goes back)."""
    sql = "SELECT CONNECTION_ID(), @@autocommit"
    if request.GET.get("var"):
        sql += ", @engine_var"
    with connections["default"].cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    data = {"id": int(row[0]), "autocommit": int(row[1])}
    if request.GET.get("var"):
        data["var"] = row[2]
    return JsonResponse(data)


def leave_open(request: HttpRequest) -> JsonResponse:
    """A transaction begun through current_pool and never ended (the request's end rolls it
    back)."""
    current_pool.execute_query("BEGIN")
    current_pool.execute_query("INSERT INTO engine_app_item (name) VALUES ('left-open')")
    return JsonResponse({"id": _orm_cid()})


def item(request: HttpRequest, pk: int) -> JsonResponse:
    obj = Item.objects.get(pk=pk)
    return JsonResponse({"id": obj.pk, "name": obj.name})


def items(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"names": [i.name for i in Item.objects.order_by("id")[:20]]})


async def aitem(request: HttpRequest, pk: int) -> JsonResponse:
    obj = await Item.objects.aget(pk=pk)
    return JsonResponse({"id": obj.pk, "name": obj.name})


async def asame(request: HttpRequest) -> JsonResponse:
    """Async view: the async ORM and the async current_pool on one connection."""
    item = await Item.objects.acreate(name="asame")
    row = await current_pool.aexecute_query(
        "SELECT CONNECTION_ID(), LAST_INSERT_ID()", return_one=True
    )
    from asgiref.sync import sync_to_async

    orm = await sync_to_async(_orm_cid)()
    return JsonResponse({"ids": [int(row[0]), orm], "pk": item.pk, "last": int(row[1])})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks():  # type: ignore[no-untyped-def]
        for i in range(3):
            yield f"{_orm_cid()},{_cid()},{Item.objects.count()},{i}\n"

    return StreamingHttpResponse(chunks())


def other_fail(request: HttpRequest) -> HttpResponse:
    """ATOMIC_REQUESTS=True on 'other': the view's writes roll back when it raises."""
    Item.objects.using("other").create(name="other-atomic")
    current_pool.using("other").execute_query(
        "INSERT INTO engine_app_item (name) VALUES ('other-pool')"
    )
    raise RuntimeError("boom")


def stats(request: HttpRequest) -> JsonResponse:
    from mysqlpool_ext.django.pools import pools

    return JsonResponse(
        {"pid": os.getpid(), "pools": {p.name: p.stats() for p in pools.all(initialized_only=True)}}
    )
