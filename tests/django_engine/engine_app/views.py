"""Views that use the ORM and ``current_pool`` together in one request."""

from __future__ import annotations

import os

from django.db import IntegrityError, close_old_connections, connections, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from engine_app.models import Item
from mysqlpool_ext import current_pool
from mysqlpool_ext.django import orm_scope

#: What the on_commit callbacks of ``/on-commit`` ran (the test reads and clears it).
FIRED: list[str] = []


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


def close_in_atomic(request: HttpRequest) -> HttpResponse:
    """Django's connection closed while a transaction is open (``?how=``): ``close_all`` and
    ``close_old`` inside atomic() (the latter closes since autocommit differs there), or
    ``manual``: set_autocommit(False), a write, close(). Closing rolls back, as a closed socket
    does with the stock backend; then a write through ``?after=orm`` or ``pool``."""
    how, after = request.GET["how"], request.GET["after"]
    name = f"{how}-{after}"
    if how == "manual":
        transaction.set_autocommit(False)
        Item.objects.create(name=f"{name}-uncommitted")
        connections["default"].close()
    else:
        with transaction.atomic():
            Item.objects.create(name=f"{name}-in-atomic")
            if how == "close_all":
                connections.close_all()
            else:
                close_old_connections()
    if after == "orm":
        Item.objects.create(name=f"{name}-after")
    else:
        current_pool.execute_query(
            "INSERT INTO engine_app_item (name) VALUES (%s)", (f"{name}-after",)
        )
    return HttpResponse("ok")


def on_commit(request: HttpRequest) -> HttpResponse:
    """``transaction.on_commit`` inside atomic() inside current_pool.transaction(): runs when
    the pool's block commits, never when it rolls back (``?outcome=rollback``); then an atomic
    block of its own commits with its own callback only."""
    outcome = request.GET["outcome"]
    try:
        with current_pool.transaction():
            with transaction.atomic():
                Item.objects.create(name=f"oc-{outcome}")
                transaction.on_commit(lambda: FIRED.append(f"{outcome}: pool block"))
            if outcome == "rollback":
                raise RuntimeError("boom")
    except RuntimeError:
        pass
    with transaction.atomic():
        Item.objects.create(name=f"oc-{outcome}-later")
        transaction.on_commit(lambda: FIRED.append(f"{outcome}: later atomic"))
    return HttpResponse("ok")


def error_in_pool_tx(request: HttpRequest) -> JsonResponse:
    """An ORM error Django wraps in atomic(savepoint=False) (bulk_create of a duplicate key)
    inside current_pool.transaction(): the block rolls back, and the ORM works afterwards."""
    Item.objects.create(name="before")
    try:
        with current_pool.transaction():
            Item.objects.create(name="rolled back")
            Item.objects.bulk_create([Item(id=424242, name="dup"), Item(id=424242, name="dup")])
    except IntegrityError:
        pass
    return JsonResponse({"count": Item.objects.count()})


def nested_orm_scope(request: HttpRequest) -> JsonResponse:
    """orm_scope() inside a request (a helper shared with commands): the request's scope, so
    one connection, and an atomic() around it rolls back its current_pool write."""
    ids = []
    try:
        with transaction.atomic():
            with orm_scope():
                ids.append(_cid())
                current_pool.execute_query(
                    "INSERT INTO engine_app_item (name) VALUES ('in-nested-scope')"
                )
            ids.append(_orm_cid())
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    return JsonResponse({"ids": ids})


def close_then_pool(request: HttpRequest) -> JsonResponse:
    """The view closes Django's connections, then uses current_pool."""
    connections.close_all()
    return JsonResponse({"id": _cid()})


def _orm_row(i: int) -> list[int]:
    with connections["default"].cursor() as cur:
        cur.execute("SELECT %s, CONNECTION_ID(), SLEEP(0.05)", [i])
        row = cur.fetchone()
    return [int(row[0]), int(row[1])]


async def _pool_row(i: int) -> list[int]:
    row = await current_pool.aexecute_query(
        "SELECT %s, CONNECTION_ID(), SLEEP(0.05)", (i,), return_one=True
    )
    return [int(row[0]), int(row[1])]


async def agather(request: HttpRequest) -> JsonResponse:
    """Statements of one request at the same time (``asyncio.gather``) on its one connection:
    ``?mode=threads``: the ORM in four threads (``thread_sensitive=False``); ``mixed``: the
    ORM in the request's thread and current_pool on the event loop. They take turns."""
    import asyncio

    from asgiref.sync import sync_to_async

    if request.GET["mode"] == "threads":
        calls = [sync_to_async(_orm_row, thread_sensitive=False)(i) for i in range(4)]
    else:
        calls = [sync_to_async(_orm_row)(0), _pool_row(1), sync_to_async(_orm_row)(2), _pool_row(3)]
    return JsonResponse({"rows": await asyncio.gather(*calls)})


async def aturns(request: HttpRequest) -> JsonResponse:
    """Two ORM statements with an await between them (another request may run meanwhile)."""
    import asyncio

    from asgiref.sync import sync_to_async

    first = await sync_to_async(_orm_row)(1)
    await asyncio.sleep(0.02)
    second = await sync_to_async(_orm_row)(2)
    return JsonResponse({"rows": [first, second]})
