"""The read/write split of a web app: ``current_pool`` on the primary, ``using("replica")`` on a
replica, each pinned to the request as usual (Flask's test client; Django uses the same proxy)."""

from __future__ import annotations

import pytest
from hostkit import DATABASE, Pair

flask = pytest.importorskip("flask")


def test_flask_primary_and_replica_binds(pair: Pair) -> None:
    from mysqlpool_ext import current_pool
    from mysqlpool_ext.flask import MySQLPool

    hosts = f"{pair.address(pair.replica)},{pair.address(pair.primary)}"
    url = f"mysql://app:{pair.app_password}@{hosts}/{DATABASE}?ssl_disabled=true&size=1"
    app = flask.Flask(__name__)
    app.config["MYSQLPOOL_URL"] = url  # target=primary, the default
    app.config["MYSQLPOOL_BINDS"] = {"replica": url + "&target=replica"}
    ext = MySQLPool(app)

    @app.post("/write")
    def write() -> dict[str, int]:
        current_pool.execute_query("INSERT INTO writes (writer, origin) VALUES (7, @@server_id)")
        wrote_on = current_pool.execute_query("SELECT @@server_id", return_one=True)[0]
        read_on = current_pool.using("replica").execute_query(
            "SELECT @@server_id", return_one=True
        )[0]
        return {"wrote_on": wrote_on, "read_on": read_on}

    try:
        body = app.test_client().post("/write").get_json()
        assert body == {"wrote_on": 1, "read_on": 2}
        with app.app_context():
            assert current_pool.using("replica").stats()["in_use"] == 0
            assert current_pool.stats()["in_use"] == 0
    finally:
        with app.app_context():
            for name in (None, "replica"):
                (ext.get_pool(name) if name else ext.get_pool()).close()


def test_django_settings_take_a_host_list() -> None:
    """Django's MYSQLPOOL setting reads a URL host list like any other URL (no server needed:
    the Flask test above runs the same ``current_pool.using`` pattern on real servers)."""
    from types import SimpleNamespace

    pytest.importorskip("django")
    from mysqlpool_ext.django.conf import read_config

    url = "mysql://app:s3cret@db1:3306,db2:3307/shop"
    settings = SimpleNamespace(
        DATABASES={},
        MYSQLPOOL={"default": {"URL": url}, "replica": {"URL": url + "?target=replica"}},
    )
    specs, errors = read_config(settings, environ={})
    assert errors == []
    replica = specs["replica"].build_kwargs()
    assert replica["hosts"] == [("db1", 3306), ("db2", 3307)]
    assert replica["target"] == "replica"
    assert specs["default"].build_kwargs().get("target", "primary") == "primary"
