"""The middleware with Django's test clients: one connection per request, always given back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.test import AsyncClient, Client

from mysqlpool_ext import current_pool
from mysqlpool_ext.django import get_pool
from mysqlpool_ext.django.pools import pools


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def in_use() -> int:
    return int(get_pool().stats()["in_use"])


def test_one_connection_per_request_and_given_back(client: Client) -> None:
    response = client.get("/conn-ids")
    assert response.status_code == 200
    ids = response.json()["ids"]
    assert len(set(ids)) == 1, ids
    assert in_use() == 0


def test_current_pool_is_the_django_pool(client: Client) -> None:
    assert client.get("/one").json() == {"one": 1}
    assert current_pool._get_current_object() is get_pool("default")
    assert current_pool.using("default")._get_current_object() is pools["default"]


def test_view_exception_rolls_back_and_gives_back(
    client: Client, txn_table: Callable[[], list[str]]
) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert in_use() == 0
    assert txn_table() == []
    assert get_pool().stats()["returns_rolled_back"] >= 1


def test_open_transaction_is_rolled_back_never_committed(
    client: Client, txn_table: Callable[[], list[str]]
) -> None:
    before = get_pool().stats()["returns_rolled_back"]
    assert client.get("/open-txn/left-open").status_code == 200
    assert in_use() == 0
    assert txn_table() == []
    assert get_pool().stats()["returns_rolled_back"] == before + 1


def test_streaming_keeps_the_connection_until_the_stream_closes(client: Client) -> None:
    response = client.get("/stream/3")
    assert response.streaming
    # The view ran and pinned its connection; the stream has not been read yet.
    assert in_use() == 1
    body = b"".join(response.streaming_content).decode()
    ids = set(body.split())
    assert len(ids) == 1, body  # the stream's queries ran on the request's connection
    response.close()
    assert in_use() == 0


def test_stream_never_read_is_given_back_on_close(client: Client) -> None:
    response = client.get("/stream/3")
    assert in_use() == 1
    response.close()
    assert in_use() == 0


def test_stream_that_raises_rolls_back(client: Client, txn_table: Callable[[], list[str]]) -> None:
    response = client.get("/stream-boom")
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"started\n"
    with pytest.raises(RuntimeError, match="on purpose"):
        next(chunks)
    response.close()
    assert in_use() == 0
    assert txn_table() == []


def test_outside_a_request_current_pool_borrows_per_call() -> None:
    ids = {current_pool.execute_query("SELECT CONNECTION_ID()")[0][0] for _ in range(3)}
    assert len(ids) >= 1
    assert in_use() == 0


def test_background_threads_borrow_and_give_back() -> None:
    errors: list[BaseException] = []
    results: list[int] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(20):
                results.append(current_pool.execute_query("SELECT 1")[0][0])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert results == [1] * 120
    assert in_use() == 0
    assert get_pool().stats()["pool_size"] <= 4


def test_management_command_uses_the_pool(capsys: Any) -> None:
    from django.core.management import call_command

    call_command("mysqlpool_check")
    out = capsys.readouterr().out
    assert "version" in out and "OK" in out
    assert "wait_timeout" in out
    call_command("mysqlpool_stats", "--json")
    out = capsys.readouterr().out
    assert '"server_connections"' in out


def test_stats_view_shows_counts_only(client: Client, mysql_server: Any) -> None:
    client.get("/one")
    data = client.get("/mysqlpool/stats").json()
    default = data["pools"]["default"]
    assert default["built"] is True and default["in_use"] == 0
    text = str(data)
    assert mysql_server.password not in text and mysql_server.user not in text
    assert "127.0.0.1" not in text


# -- async views (last: they rely on the async face of the pool) --------------------------------


async def test_async_view_one_connection_per_request() -> None:
    client = AsyncClient(raise_request_exception=False)
    response = await client.get("/async-conn-ids")
    assert response.status_code == 200
    ids = response.json()["ids"]
    assert len(set(ids)) == 1
    assert in_use() == 0


async def test_async_sync_view_under_asgi() -> None:
    client = AsyncClient(raise_request_exception=False)
    response = await client.get("/conn-ids")
    assert response.status_code == 200
    assert len(set(response.json()["ids"])) == 1
    assert in_use() == 0


async def test_async_open_transaction_is_rolled_back(txn_table: Callable[[], list[str]]) -> None:
    client = AsyncClient(raise_request_exception=False)
    assert (await client.get("/open-txn/async-left-open")).status_code == 200
    assert in_use() == 0
    assert txn_table() == []


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_pool_reusing_a_databases_alias_connects_with_its_options(mysql_server: Any) -> None:
    from django.test.utils import override_settings

    from mysqlpool_ext.django.pools import pools as handler

    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "replica": {
            "ENGINE": "django.db.backends.mysql",
            "HOST": mysql_server.host,
            "PORT": str(mysql_server.port),
            "USER": mysql_server.user,
            "PASSWORD": mysql_server.password,
            "NAME": mysql_server.database,
            "OPTIONS": {"isolation_level": "read committed"},
        },
    }
    mysqlpool = {
        "default": {"URL": mysql_server.url, "SIZE": 1},
        "reports": {"DATABASE": "replica", "SIZE": 1, "MAX_SIZE": 2},
    }
    with override_settings(DATABASES=databases, MYSQLPOOL=mysqlpool):
        reports = current_pool.using("reports")
        rows = reports.execute_query(
            "SHOW SESSION VARIABLES"
            " WHERE Variable_name IN ('tx_isolation', 'transaction_isolation')"
        )
        assert {value for _, value in rows} == {"READ-COMMITTED"}
        assert reports.name == "reports"
        assert handler["reports"] is get_pool("reports")
        assert handler["reports"] is not handler["default"]
        assert handler["reports"].stats()["in_use"] == 0
    assert handler.get("reports") is None  # overriding the settings closed the pool
