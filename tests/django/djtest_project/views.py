"""Views the tests drive: each uses ``current_pool`` the way the README tells users to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from mysqlpool_ext import current_pool

TABLE = "djtest_txn"


def one(request: HttpRequest) -> JsonResponse:
    row = current_pool.execute_query("SELECT 1 AS one", dictcursor=True, return_one=True)
    return JsonResponse(row)


def conn_ids(request: HttpRequest) -> JsonResponse:
    ids = [current_pool.execute_query("SELECT CONNECTION_ID()")[0][0] for _ in range(3)]
    return JsonResponse({"ids": ids})


def boom(request: HttpRequest) -> HttpResponse:
    current_pool.execute_query("BEGIN")
    current_pool.execute_query(f"INSERT INTO {TABLE} (v) VALUES (%s)", ("boom",))
    raise RuntimeError("the view failed on purpose")


def open_txn(request: HttpRequest, value: str) -> JsonResponse:
    """Leaves a transaction open: the middleware must roll it back, never commit it."""
    current_pool.execute_query("BEGIN")
    current_pool.execute_query(f"INSERT INTO {TABLE} (v) VALUES (%s)", (value,))
    return JsonResponse({"inserted": value})


def stream(request: HttpRequest, n: int) -> StreamingHttpResponse:
    def rows() -> Iterator[str]:
        for _ in range(n):
            cid = current_pool.execute_query("SELECT CONNECTION_ID()")[0][0]
            yield f"{cid}\n"

    current_pool.execute_query("SELECT 1")
    return StreamingHttpResponse(rows(), content_type="text/plain")


def stream_boom(request: HttpRequest) -> StreamingHttpResponse:
    def rows() -> Iterator[str]:
        current_pool.execute_query("BEGIN")
        current_pool.execute_query(f"INSERT INTO {TABLE} (v) VALUES (%s)", ("stream-boom",))
        yield "started\n"
        raise RuntimeError("the stream failed on purpose")

    return StreamingHttpResponse(rows(), content_type="text/plain")


async def async_one(request: HttpRequest) -> JsonResponse:
    row = await current_pool.aexecute_query("SELECT 1 AS one", dictcursor=True, return_one=True)
    return JsonResponse(row)


async def async_conn_ids(request: HttpRequest) -> JsonResponse:
    ids = []
    for _ in range(3):
        rows = await current_pool.aexecute_query("SELECT CONNECTION_ID()")
        ids.append(rows[0][0])
    return JsonResponse({"ids": ids})


async def async_stream(request: HttpRequest, n: int) -> StreamingHttpResponse:
    async def rows() -> AsyncIterator[str]:
        for _ in range(n):
            res = await current_pool.aexecute_query("SELECT CONNECTION_ID()")
            yield f"{res[0][0]}\n"

    return StreamingHttpResponse(rows(), content_type="text/plain")


def sleep(request: HttpRequest) -> JsonResponse:
    """A view that holds its connection a little, so concurrent clients contend for the pool."""
    row = current_pool.execute_query("SELECT SLEEP(0.002), CONNECTION_ID()")[0]
    return JsonResponse({"id": row[1]})
