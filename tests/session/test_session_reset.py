"""Issue 12: a fresh session for every borrower and every request.

For each change a borrower can make to its session (:data:`sessionkit.CHANGES`), with one server
connection (``size=1, max_size=1``): borrower A takes a fingerprint of the fresh session, makes
the change (and checks it is visible, so the test cannot pass vacuously), gives the connection
back; borrower B gets the same server connection (same ``CONNECTION_ID()``) and must see a
fingerprint equal to the fresh one. Through both faces of the pool, through the Flask test
client (two requests) and through a Django request (two requests through the middleware).

Every case leaked under the old default (``reset="rollback"``); the default ``"auto"`` resets
each of them, and a borrower that changed nothing still gives back with no round trip
(test_session_policy.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from faces import Face, MakePool
from sessionkit import CHANGE_BY_NAME, CHANGES, afingerprint, differences, fingerprint

from mysqlpool_ext import current_pool

CHANGE_NAMES = [c.name for c in CHANGES]


@pytest.mark.parametrize("change_name", CHANGE_NAMES)
async def test_next_borrower_gets_a_fresh_session(
    request: pytest.FixtureRequest, face: Face, change_name: str, make_pool: MakePool
) -> None:
    change = CHANGE_BY_NAME[change_name]
    pool = make_pool(size=1, max_size=1)

    async def run(conn: Any, sql: str) -> Any:
        return await face.query(conn, sql)

    async with face.connection(pool) as conn:
        (cid_a,) = await face.query(conn, "SELECT CONNECTION_ID()", return_one=True)
        fresh = await afingerprint(lambda sql: run(conn, sql))
        for statement in change.statements:
            await face.query(conn, statement)
        changed = await afingerprint(lambda sql: run(conn, sql))
    assert differences(fresh, changed), f"{change} made no visible change: the test is vacuous"

    async with face.connection(pool) as conn:
        (cid_b,) = await face.query(conn, "SELECT CONNECTION_ID()", return_one=True)
        seen = await afingerprint(lambda sql: run(conn, sql))
    assert cid_b == cid_a, "B must get A's server connection for the comparison to mean anything"
    assert not differences(fresh, seen), f"after {change}: {differences(fresh, seen)}"


# -- Flask ----------------------------------------------------------------------------------------


@pytest.fixture
def flask_app(db_url: str, session_tables: None) -> Any:
    """A Flask app with one pooled connection: ``/change/<name>`` makes a change and reports
    the fresh and the changed fingerprint; ``/fingerprint`` reports the next request's."""
    from flask import Flask

    from mysqlpool_ext.flask import MySQLPool

    app = Flask("session_reset")
    app.config.update(MYSQLPOOL_URL=db_url, MYSQLPOOL_SIZE=1, MYSQLPOOL_MAX_SIZE=1)
    ext = MySQLPool(app)

    def query(sql: str) -> Any:
        return current_pool.execute_query(sql)

    @app.get("/change/<name>")
    def change(name: str) -> dict[str, Any]:
        (cid,) = current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
        fresh = fingerprint(query)
        for statement in CHANGE_BY_NAME[name].statements:
            current_pool.execute_query(statement)
        return {"cid": cid, "fresh": fresh, "changed": fingerprint(query)}

    @app.get("/fingerprint")
    def seen() -> dict[str, Any]:
        (cid,) = current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
        return {"cid": cid, "seen": fingerprint(query)}

    yield app
    ext.close(app)


@pytest.mark.parametrize("change_name", CHANGE_NAMES)
def test_next_flask_request_gets_a_fresh_session(
    request: pytest.FixtureRequest, change_name: str, flask_app: Any
) -> None:
    change = CHANGE_BY_NAME[change_name]
    client = flask_app.test_client()
    first = client.get(f"/change/{change}")
    assert first.status_code == 200, first.text
    a = first.get_json()
    assert differences(a["fresh"], a["changed"]), f"{change} made no visible change"
    second = client.get("/fingerprint")
    assert second.status_code == 200, second.text
    b = second.get_json()
    assert b["cid"] == a["cid"]
    assert not differences(a["fresh"], b["seen"]), differences(a["fresh"], b["seen"])


# -- Django ---------------------------------------------------------------------------------------


def django_views() -> tuple[Any, Any]:
    """Two views, called through the middleware like Django's handler does."""
    from django.http import JsonResponse

    def query(sql: str) -> Any:
        return current_pool.execute_query(sql)

    def change(request: Any) -> Any:
        (cid,) = current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
        fresh = fingerprint(query)
        for statement in CHANGE_BY_NAME[request.GET["change"]].statements:
            current_pool.execute_query(statement)
        return JsonResponse({"cid": cid, "fresh": fresh, "changed": fingerprint(query)})

    def seen(request: Any) -> Any:
        (cid,) = current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)
        return JsonResponse({"cid": cid, "seen": fingerprint(query)})

    return change, seen


@pytest.mark.parametrize("change_name", CHANGE_NAMES)
def test_next_django_request_gets_a_fresh_session(
    request: pytest.FixtureRequest, change_name: str, django_pool_settings: None
) -> None:
    import json

    from django.test import RequestFactory

    from mysqlpool_ext.django.middleware import MySQLPoolMiddleware

    change = CHANGE_BY_NAME[change_name]
    change_view, seen_view = django_views()
    factory = RequestFactory()
    first = MySQLPoolMiddleware(change_view)(factory.get("/change", {"change": change.name}))
    assert first.status_code == 200
    a = json.loads(first.content)
    assert differences(a["fresh"], a["changed"]), f"{change} made no visible change"
    second = MySQLPoolMiddleware(seen_view)(factory.get("/fingerprint"))
    b = json.loads(second.content)
    assert b["cid"] == a["cid"]
    assert not differences(a["fresh"], b["seen"]), differences(a["fresh"], b["seen"])
