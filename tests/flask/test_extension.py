"""The Flask extension with Flask's test client, against the real server.

Request scope (one connection per request), teardown after success / exception / streaming
(connection back, open transaction rolled back, never committed), binds, config errors, context
errors, several apps, the CLI and the stats endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest
from flask import Flask, Response, abort, g, stream_with_context

from mysqlpool_ext import ConfigError, ConnectionPool, current_pool, set_default_pool
from mysqlpool_ext.flask import EXTENSION_KEY, FlaskContextError, MySQLPool

MakeApp = Callable[..., Flask]


def conn_id() -> int:
    return int(current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0])


def in_use(app: Flask, bind: str = "default") -> int:
    return int(app.extensions[EXTENSION_KEY].all_pools()[bind].stats()["in_use"])


# --------------------------------------------------------------------------------------------
# Request scope
# --------------------------------------------------------------------------------------------


def test_one_connection_per_request_and_last_insert_id(
    make_app: MakeApp, table: str, rows: Callable[[str], list[Any]]
) -> None:
    app = make_app(MYSQLPOOL_SIZE=2)

    @app.post("/items")
    def add() -> Any:
        first = conn_id()
        current_pool.execute_query(f"INSERT INTO {table} (v) VALUES (%s)", ("a",))
        # Another pool user in between must not matter: this request keeps its connection.
        with app.extensions[EXTENSION_KEY].pool.connection() as other:
            other.execute_query(f"INSERT INTO {table} (v) VALUES (%s)", ("other",))
        last = current_pool.execute_query("SELECT LAST_INSERT_ID()", return_one=True)[0]
        assert in_use(app) == 1
        return {"first": first, "second": conn_id(), "last_insert_id": last}

    client = app.test_client()
    body = client.post("/items").get_json()
    assert body["first"] == body["second"]
    assert body["last_insert_id"] == 1  # ours, not the other connection's id 2
    assert rows(table) == ["a", "other"]  # autocommit: both committed
    assert in_use(app) == 0


def test_outside_a_request_each_call_borrows_and_gives_back(make_app: MakeApp) -> None:
    app = make_app(MYSQLPOOL_SIZE=1)
    with app.app_context():
        assert current_pool.execute_query("SELECT 1", return_one=True) == (1,)
        assert in_use(app) == 0
        with current_pool.connection() as conn:
            assert conn.execute_query("SELECT 2", return_one=True) == (2,)
            assert in_use(app) == 1
        assert in_use(app) == 0


def test_background_thread_with_app_context(make_app: MakeApp) -> None:
    app = make_app(MYSQLPOOL_SIZE=1)
    result: list[Any] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with app.app_context():
                result.append(current_pool.execute_query("SELECT 41 + 1", return_one=True)[0])
                result.append(in_use(app))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join(30)
    assert not errors, errors
    assert result == [42, 0]


def test_users_before_request_runs_inside_the_scope(make_app: MakeApp) -> None:
    app = make_app()

    @app.before_request
    def remember() -> None:
        g.seen_conn = conn_id()

    @app.get("/")
    def view() -> Any:
        return {"before": g.seen_conn, "view": conn_id()}

    body = app.test_client().get("/").get_json()
    assert body["before"] == body["view"]
    assert in_use(app) == 0


def test_requests_inside_a_pushed_app_context_give_back_each_time(make_app: MakeApp) -> None:
    """A test that pushed ``app.app_context()`` and then makes requests: the app context (and
    its teardown) outlives each request, so the request teardown must give back."""
    app = make_app(MYSQLPOOL_SIZE=1)

    @app.get("/")
    def view() -> Any:
        current_pool.execute_query("SET @mine = 1")
        return {"conn": conn_id()}

    with app.app_context():
        client = app.test_client()
        for _ in range(3):  # with SIZE=1 a kept connection would make the 2nd request wait 30 s
            assert client.get("/").status_code == 200
            assert in_use(app) == 0


# --------------------------------------------------------------------------------------------
# Teardown: success, exception, streaming, broken connection
# --------------------------------------------------------------------------------------------


def test_teardown_after_success_rolls_back_an_open_transaction(
    make_app: MakeApp, table: str, rows: Callable[[str], list[Any]]
) -> None:
    app = make_app()

    @app.post("/")
    def forgot_commit() -> Any:
        current_pool.execute_query("BEGIN")
        current_pool.execute_query(f"INSERT INTO {table} (v) VALUES ('uncommitted')")
        return {"ok": True}

    before = app.extensions[EXTENSION_KEY].pool.stats()["returns_rolled_back"]
    assert app.test_client().post("/").status_code == 200
    assert in_use(app) == 0
    assert rows(table) == []  # rolled back, never committed
    assert app.extensions[EXTENSION_KEY].pool.stats()["returns_rolled_back"] == before + 1


def test_teardown_after_exception(
    make_app: MakeApp, table: str, rows: Callable[[str], list[Any]]
) -> None:
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    @app.post("/")
    def fails() -> Any:
        current_pool.execute_query("BEGIN")
        current_pool.execute_query(f"INSERT INTO {table} (v) VALUES ('doomed')")
        raise RuntimeError("boom")

    assert app.test_client().post("/").status_code == 500
    assert in_use(app) == 0
    assert rows(table) == []


def test_teardown_when_the_exception_propagates(
    make_app: MakeApp, table: str, rows: Callable[[str], list[Any]]
) -> None:
    app = make_app(TESTING=True)

    @app.post("/")
    def fails() -> Any:
        current_pool.execute_query("BEGIN")
        current_pool.execute_query(f"INSERT INTO {table} (v) VALUES ('doomed')")
        raise LookupError("boom")

    with pytest.raises(LookupError):
        app.test_client().post("/")
    assert in_use(app) == 0
    assert rows(table) == []


def test_transaction_commits_on_success_and_rolls_back_on_error(
    make_app: MakeApp, table: str, rows: Callable[[str], list[Any]]
) -> None:
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    @app.post("/ok")
    def ok() -> Any:
        with current_pool.transaction() as conn:
            conn.execute_query(f"INSERT INTO {table} (v) VALUES ('kept')")
            inside = conn.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
        return {"same": inside == conn_id()}

    @app.post("/bad")
    def bad() -> Any:
        with current_pool.transaction():
            current_pool.execute_query(f"INSERT INTO {table} (v) VALUES ('gone')")
            abort(409)

    client = app.test_client()
    assert client.post("/ok").get_json() == {"same": True}
    assert client.post("/bad").status_code == 409
    assert rows(table) == ["kept"]
    assert in_use(app) == 0


def test_streamed_response_keeps_the_connection_until_the_end(
    make_app: MakeApp, table: str, rows: Callable[[str], list[Any]]
) -> None:
    app = make_app()
    seen: dict[str, Any] = {}

    @app.get("/stream")
    def stream() -> Response:
        current_pool.execute_query("BEGIN")
        current_pool.execute_query(f"INSERT INTO {table} (v) VALUES ('streamed')")
        seen["view"] = conn_id()

        @stream_with_context
        def generate() -> Iterator[str]:
            yield "start\n"
            seen["generator"] = conn_id()
            seen["in_use_while_streaming"] = in_use(app)
            # The uncommitted row is visible: same connection, same transaction.
            for (v,) in current_pool.execute_query(f"SELECT v FROM {table}"):
                yield f"{v}\n"

        return Response(generate(), mimetype="text/plain")

    response = app.test_client().get("/stream")
    assert response.get_data(as_text=True) == "start\nstreamed\n"
    assert seen["generator"] == seen["view"]
    assert seen["in_use_while_streaming"] == 1
    assert in_use(app) == 0
    assert rows(table) == []  # the open transaction was rolled back at teardown


def test_streamed_body_never_iterated_gives_back(make_app: MakeApp) -> None:
    """HEAD, 204 and 304: the server only closes the body, never iterates it."""
    import gc

    app = make_app(MYSQLPOOL_SIZE=1, MYSQLPOOL_MAX_SIZE=2)

    def body() -> Response:
        current_pool.execute_query("SELECT 1")

        @stream_with_context
        def generate() -> Iterator[str]:
            yield from current_pool.execute_query("SELECT 'row'")[0]

        return Response(generate(), mimetype="text/plain")

    app.add_url_rule("/export", "export", body, methods=["GET", "HEAD"])
    app.add_url_rule("/empty", "empty", lambda: (body().response, 204))
    client = app.test_client()
    for _ in range(3):
        response = client.head("/export")
        response.close()
        assert response.status_code == 200 and in_use(app) == 0
        response = client.get("/empty")
        response.close()
        assert response.status_code == 204 and in_use(app) == 0
    gc.collect()
    assert app.extensions[EXTENSION_KEY].pool.stats()["leaks"] == 0  # none reclaimed by the GC


def test_streamed_response_closed_early_gives_back(make_app: MakeApp) -> None:
    app = make_app()

    @app.get("/stream")
    def stream() -> Response:
        conn_id()

        @stream_with_context
        def generate() -> Iterator[str]:
            for i in range(1000):
                yield f"{current_pool.execute_query('SELECT %s', (i,), return_one=True)[0]}\n"

        return Response(generate(), mimetype="text/plain")

    response = app.test_client().get("/stream", buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b"0\n"
    assert in_use(app) == 1
    response.close()  # what a WSGI server does when the client goes away
    assert in_use(app) == 0


def test_broken_connection_is_discarded(
    make_app: MakeApp, admin: pymysql.connections.Connection
) -> None:
    app = make_app(PROPAGATE_EXCEPTIONS=False, MYSQLPOOL_SIZE=1)

    @app.get("/")
    def view() -> Any:
        victim = conn_id()
        with admin.cursor() as cur:
            cur.execute("KILL %s", (victim,))
        current_pool.execute_query("SELECT 1")  # raises: the server closed it
        return {}

    pool = app.extensions[EXTENSION_KEY].pool
    lost = pool.stats()["connections_lost"]
    assert app.test_client().get("/").status_code == 500
    assert in_use(app) == 0
    assert pool.stats()["connections_lost"] == lost + 1
    with app.app_context():  # the pool still works
        assert current_pool.execute_query("SELECT 1", return_one=True) == (1,)


# --------------------------------------------------------------------------------------------
# Binds
# --------------------------------------------------------------------------------------------


def test_binds_are_named_pools_with_their_own_request_connection(
    make_app: MakeApp, db_url: str
) -> None:
    app = make_app(
        MYSQLPOOL_SIZE=2,
        MYSQLPOOL_BINDS={
            "reports": db_url + "?size=1",
            "audit": {"url": db_url, "SIZE": 1, "max_size": 2},
        },
    )
    state = app.extensions[EXTENSION_KEY]
    assert sorted(state.all_pools()) == ["audit", "default", "reports"]
    assert state.binds["audit"].stats()["pool_max"] == 2

    @app.get("/")
    def view() -> Any:
        reports = current_pool.using("reports")
        ids = {
            "default": conn_id(),
            "reports": reports.execute_query("SELECT CONNECTION_ID()", return_one=True)[0],
            "reports_again": reports.execute_query("SELECT CONNECTION_ID()", return_one=True)[0],
            "default_alias": current_pool.using("default").execute_query(
                "SELECT CONNECTION_ID()", return_one=True
            )[0],
        }
        ids["in_use"] = in_use(app) + in_use(app, "reports") + in_use(app, "audit")
        return ids

    body = app.test_client().get("/").get_json()
    assert body["reports"] == body["reports_again"] != body["default"]
    assert body["default_alias"] == body["default"]
    assert body["in_use"] == 2
    assert in_use(app) == in_use(app, "reports") == 0
    with app.app_context():
        assert current_pool.using("reports").name == "testapp.reports"
        with pytest.raises(FlaskContextError, match=r"no pool named 'nope'.*'reports'"):
            current_pool.using("nope").execute_query("SELECT 1")


def test_binds_only_app_has_no_default_pool(make_app: MakeApp, db_url: str) -> None:
    app = make_app(MYSQLPOOL_URL=None, MYSQLPOOL_BINDS={"only": db_url})
    with app.app_context():
        assert current_pool.using("only").execute_query("SELECT 1", return_one=True) == (1,)
        with pytest.raises(FlaskContextError, match="no default pool"):
            current_pool.execute_query("SELECT 1")


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


def test_config_keys_are_set_with_setdefault(make_app: MakeApp) -> None:
    app = make_app(MYSQLPOOL_SIZE="3", MYSQLPOOL_TIMEOUT="2.5", MYSQLPOOL_MAX_LIFETIME=600)
    for key in ("MYSQLPOOL_URL", "MYSQLPOOL_BINDS", "MYSQLPOOL_MAX_SIZE", "MYSQLPOOL_HOST"):
        assert key in app.config
    stats = app.extensions[EXTENSION_KEY].pool.stats()
    assert (stats["pool_min"], stats["pool_max"]) == (3, 3)  # strings from the env converted
    pool = app.extensions[EXTENSION_KEY].pool
    assert pool.options.timeout == 2.5 and pool.options.max_lifetime == 600


def test_layers_defaults_below_url_below_keys(make_app: MakeApp, db_url: str) -> None:
    ext = MySQLPool(size=1, max_size=6)
    app = make_app(ext, MYSQLPOOL_URL=db_url + "?size=2&max_size=5", MYSQLPOOL_MAX_SIZE=4)
    stats = app.extensions[EXTENSION_KEY].pool.stats()
    assert (stats["pool_min"], stats["pool_max"]) == (2, 4)


def test_host_user_password_keys_instead_of_url(
    make_app: MakeApp, db_kwargs: dict[str, Any]
) -> None:
    app = make_app(
        MYSQLPOOL_URL=None,
        MYSQLPOOL_HOST=db_kwargs["host"],
        MYSQLPOOL_PORT=str(db_kwargs["port"]),
        MYSQLPOOL_USER=db_kwargs["user"],
        MYSQLPOOL_PASSWORD=db_kwargs["password"],
        MYSQLPOOL_DATABASE=db_kwargs["database"],
        MYSQLPOOL_CHARSET="utf8mb4",
    )
    with app.app_context():
        assert current_pool.execute_query("SELECT DATABASE()", return_one=True) == (
            db_kwargs["database"],
        )


def test_url_from_the_environment(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYSQLPOOL_URL", db_url)
    app = Flask("envapp")
    ext = MySQLPool(app)
    try:
        assert app.config["MYSQLPOOL_URL"] == db_url
        with app.app_context():
            assert current_pool.execute_query("SELECT 1", return_one=True) == (1,)
    finally:
        ext.close(app)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, r"MYSQLPOOL_URL is not set"),
        ({"MYSQLPOOL_SIZE": -1}, r"^MYSQLPOOL_SIZE: option 'size' must be"),
        ({"MYSQLPOOL_SIZE": "four"}, r"^MYSQLPOOL_SIZE: invalid value 'four'"),
        ({"MYSQLPOOL_SIZE": 4, "MYSQLPOOL_MAX_SIZE": 2}, r"MYSQLPOOL_MAX_SIZE: option 'max_size'"),
        (
            {"MYSQLPOOL_MAX_SISE": 4},
            r"unknown config key 'MYSQLPOOL_MAX_SISE'.*'MYSQLPOOL_MAX_SIZE'",
        ),
        ({"MYSQLPOOL_RESET": "nope"}, r"^MYSQLPOOL_RESET: option 'reset'"),
        # Blank (an environment variable left empty) must not turn the session reset off.
        ({"MYSQLPOOL_RESET": ""}, r"^MYSQLPOOL_RESET: invalid value '' for option 'reset'"),
        # ... nor wait for ever, nor skip the liveness check.
        ({"MYSQLPOOL_TIMEOUT": ""}, r"^MYSQLPOOL_TIMEOUT: invalid value '' for option 'timeout'"),
        ({"MYSQLPOOL_CHECK": " "}, r"^MYSQLPOOL_CHECK: invalid value ' ' for option 'check'"),
        ({"MYSQLPOOL_BINDS": ["x"]}, r"MYSQLPOOL_BINDS must be a dict"),
        ({"MYSQLPOOL_BINDS": {"r": {"sise": 1}}}, r"MYSQLPOOL_BINDS\['r'\]: unknown option 'sise'"),
        ({"MYSQLPOOL_BINDS": {"r": "postgres://u@h/db"}}, r"MYSQLPOOL_BINDS\['r'\]: .*scheme"),
        ({"MYSQLPOOL_BINDS": {"default": "mysql://u@h/db"}}, r"invalid bind name 'default'"),
        ({"MYSQLPOOL_STATS_ENDPOINT": "stats"}, r"MYSQLPOOL_STATS_ENDPOINT must be a path"),
    ],
)
def test_config_errors_name_the_key(config: dict[str, Any], message: str, db_url: str) -> None:
    app = Flask("badconfig")
    if config:
        app.config["MYSQLPOOL_URL"] = db_url
    app.config.update(config)
    with pytest.raises(ConfigError, match=message):
        MySQLPool(app)
    assert EXTENSION_KEY not in app.extensions


def test_bad_url_names_the_key_and_hides_the_password() -> None:
    app = Flask("badurl")
    app.config["MYSQLPOOL_URL"] = "mysql://app:s3cret-pw@127.0.0.1:99999/db"
    with pytest.raises(ConfigError, match=r"^MYSQLPOOL_URL: .*port") as info:
        MySQLPool(app)
    assert "s3cret-pw" not in str(info.value)


def test_bad_extension_default_is_rejected_at_once() -> None:
    with pytest.raises(ConfigError, match=r"MySQLPool\(\): unknown option 'sise'.*'size'"):
        MySQLPool(sise=3)


# --------------------------------------------------------------------------------------------
# Context errors, several apps, lifecycle
# --------------------------------------------------------------------------------------------


def test_outside_an_app_context_is_a_clear_error(make_app: MakeApp) -> None:
    ext = MySQLPool()
    make_app(ext)
    with pytest.raises(FlaskContextError, match="outside a Flask application context"):
        current_pool.execute_query("SELECT 1")
    with pytest.raises(FlaskContextError, match="outside of a Flask application context"):
        ext.get_pool()


def test_a_forgotten_app_context_is_not_swallowed_by_except_pymysql_error(
    make_app: MakeApp,
) -> None:
    """A programming error, not a database error: the usual ``except pymysql.Error`` around a
    query (retry, fall back, log and go on) must not hide it."""
    make_app()
    with pytest.raises(FlaskContextError) as info:
        try:
            current_pool.execute_query("SELECT 1")
        except pymysql.Error:  # what application code writes around its queries
            pytest.fail("FlaskContextError was caught as a pymysql.Error")
    assert isinstance(info.value, RuntimeError)


def test_outside_an_app_context_a_default_pool_of_ones_own_is_used(
    make_app: MakeApp, db_kwargs: dict[str, Any]
) -> None:
    make_app()
    with ConnectionPool(size=1, name="script-pool", **db_kwargs) as own:
        set_default_pool(own)
        try:
            assert current_pool.name == "script-pool"
        finally:
            set_default_pool(None)


def test_app_without_init_app_is_a_clear_error(make_app: MakeApp) -> None:
    make_app()
    other = Flask("forgotten")
    with other.app_context(), pytest.raises(FlaskContextError, match=r"init_app"):
        current_pool.execute_query("SELECT 1")
    with pytest.raises(FlaskContextError, match=r"'forgotten'.*init_app"):
        MySQLPool().get_pool(app=other)


def test_two_apps_each_with_their_own_pools(make_app: MakeApp) -> None:
    ext = MySQLPool(size=1)
    one = make_app(ext, name="one")
    two = make_app(ext, name="two", MYSQLPOOL_SIZE=2)

    for app in (one, two):

        @app.get("/")
        def which() -> Any:
            return {"pool": current_pool.name, "conn": conn_id()}

    assert one.test_client().get("/").get_json()["pool"] == "one"
    assert two.test_client().get("/").get_json()["pool"] == "two"
    assert ext.get_pool(app=one) is not ext.get_pool(app=two)
    assert ext.get_pool(app=two).stats()["pool_min"] == 2
    ext.close(one)
    assert two.test_client().get("/").status_code == 200
    with two.app_context():
        assert ext.pool is ext.get_pool(app=two)


def test_init_app_twice_and_again_after_close(make_app: MakeApp, db_url: str) -> None:
    ext = MySQLPool()
    app = make_app(ext)

    @app.get("/")
    def view() -> Any:
        return {"one": current_pool.execute_query("SELECT 1", return_one=True)[0]}

    with pytest.raises(RuntimeError, match="already set up"):
        ext.init_app(app)
    first = ext.get_pool(app=app)
    ext.close(app)
    assert first.closed
    ext.init_app(app)
    assert ext.get_pool(app=app) is not first
    assert app.test_client().get("/").get_json() == {"one": 1}


def test_extension_object_forwards_to_current_pool(make_app: MakeApp) -> None:
    ext = MySQLPool()
    app = make_app(ext)

    @app.get("/")
    def view() -> Any:
        a = ext.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
        with ext.transaction() as conn:
            b = conn.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
        return {"same": a == b == conn_id()}

    assert app.test_client().get("/").get_json() == {"same": True}


def test_pools_are_closed_at_process_exit(
    db_url: str, admin: pymysql.connections.Connection
) -> None:
    """Connections closed with a proper COM_QUIT do not count as aborted clients."""
    code = (
        "from flask import Flask\n"
        "from mysqlpool_ext.flask import MySQLPool\n"
        "from mysqlpool_ext import current_pool\n"
        "app = Flask('exiting')\n"
        "MySQLPool(app, size=3, lazy=False)\n"
        "with app.app_context():\n"
        "    current_pool.execute_query('SELECT 1')\n"
    )

    def aborted() -> int:
        with admin.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")
            return int(cur.fetchone()[1])

    before = aborted()
    env = {**os.environ, "MYSQLPOOL_URL": db_url}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert aborted() == before


# --------------------------------------------------------------------------------------------
# Stats endpoint and CLI
# --------------------------------------------------------------------------------------------


def test_stats_endpoint_is_off_by_default(make_app: MakeApp) -> None:
    app = make_app()
    assert app.test_client().get("/_mysqlpool/stats").status_code == 404


def test_stats_endpoint_shows_counts_only(make_app: MakeApp, db_kwargs: dict[str, Any]) -> None:
    app = make_app(
        MYSQLPOOL_STATS_ENDPOINT="/_mysqlpool/stats",
        MYSQLPOOL_BINDS={
            "r": {
                "host": db_kwargs["host"],
                "port": db_kwargs["port"],
                "user": db_kwargs["user"],
                "password": db_kwargs["password"],
                "database": db_kwargs["database"],
            }
        },
    )
    response = app.test_client().get("/_mysqlpool/stats")
    body = response.get_json()
    assert body["pid"] == os.getpid()
    assert set(body["pools"]) == {"default", "r"}
    assert body["pools"]["default"]["in_use"] == 0
    text = response.get_data(as_text=True)
    for secret in (db_kwargs["password"], db_kwargs["user"], str(db_kwargs["port"]), "testapp"):
        assert secret not in text
    for counts in body["pools"].values():
        assert all(isinstance(v, (int, float)) for v in counts.values())


def test_cli_check_and_stats(make_app: MakeApp) -> None:
    app = make_app()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["mysqlpool", "check"])
    assert result.exit_code == 0, result.output
    assert "[default]" in result.output
    assert "server version " in result.output and "wait_timeout=" in result.output
    assert "headroom on server" in result.output and "TLS" in result.output
    assert result.output.splitlines()[-1].startswith("result: OK")
    result = runner.invoke(args=["mysqlpool", "stats", "--json"])
    assert result.exit_code == 0, result.output
    assert '"in_use": 0' in result.output


def test_cli_check_fails_when_the_server_is_unreachable(make_app: MakeApp) -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_app(MYSQLPOOL_URL=f"mysql://nobody:pw-unused@127.0.0.1:{port}/db?connect_timeout=2")
    result = app.test_cli_runner().invoke(args=["mysqlpool", "check", "--timeout", "1"])
    assert result.exit_code == 1
    assert "FAIL  cannot connect: " in result.output
    assert result.output.splitlines()[-1].startswith("result: FAIL: 1 pool(s) could not connect")
    assert "pw-unused" not in result.output


def test_a_thread_still_running_a_statement_at_the_request_end(
    make_app: Callable[..., Flask], admin: Any
) -> None:
    """A view hands work to a thread in its context (``copy_context()``) and returns without
    waiting: the request's end must not lend the connection on with the thread's answer
    still to come (the next request would read it as its own)."""
    import contextvars
    import time

    app = make_app(MYSQLPOOL_SIZE=1, MYSQLPOOL_MAX_SIZE=1, MYSQLPOOL_TIMEOUT=5)
    threads: list[threading.Thread] = []
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["thread"] = current_pool.execute_query("SELECT 'thread', SLEEP(1)")
        except Exception as exc:  # noqa: BLE001 - what the thread saw is the point
            outcome["thread"] = exc

    def sleeping(cid: int) -> bool:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                " WHERE ID = %s AND INFO LIKE 'SELECT %%SLEEP%%'",
                (cid,),
            )
            return bool(cur.fetchone()[0])

    @app.get("/spawn")
    def spawn() -> dict[str, Any]:
        cid = int(current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0])
        thread = threading.Thread(target=contextvars.copy_context().run, args=(work,))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 10
        while not sleeping(cid):  # the thread's statement is on the wire
            assert time.monotonic() < deadline, "the thread's statement never started"
            time.sleep(0.01)
        return {"cid": cid}

    @app.get("/next")
    def nxt() -> dict[str, Any]:
        return {"row": list(current_pool.execute_query("SELECT 'next', 1", return_one=True))}

    client = app.test_client()
    assert client.get("/spawn").status_code == 200
    assert client.get("/next").get_json() == {"row": ["next", 1]}
    threads[0].join(10)
    assert isinstance(outcome["thread"], pymysql.err.Error)  # its connection was discarded
    assert client.get("/next").get_json() == {"row": ["next", 1]}
    assert app.extensions[EXTENSION_KEY].pool.stats()["in_use"] == 0


def test_a_transaction_block_outside_a_request_is_one_connection(
    make_app: Callable[..., Flask], table: str, rows: Callable[[str], list[Any]]
) -> None:
    """In an app context (a CLI command, a task), ``current_pool`` calls inside ``with
    current_pool.transaction():`` run in that block's transaction, as in a request: they used
    to borrow a connection each (committed at once, and with a pool of one, waiting for ever
    on the block's own connection)."""
    import asyncio

    app = make_app(MYSQLPOOL_SIZE=1, MYSQLPOOL_MAX_SIZE=1, MYSQLPOOL_TIMEOUT=2)
    with app.app_context():
        with pytest.raises(RuntimeError), current_pool.transaction():
            current_pool.execute_query(f"INSERT INTO {table} (v) VALUES ('rolled back')")
            raise RuntimeError("the command fails")
        with current_pool.transaction() as conn:
            current_pool.execute_query(f"INSERT INTO {table} (v) VALUES ('committed')")
            same = current_pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
            assert same == conn.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]

        async def in_a_task() -> None:
            with pytest.raises(RuntimeError):
                async with current_pool.atransaction():
                    await current_pool.aexecute_query(
                        f"INSERT INTO {table} (v) VALUES ('async rolled back')"
                    )
                    raise RuntimeError("the task fails")

        asyncio.run(in_a_task())
        assert current_pool.execute_query("SELECT 1", return_one=True) == (1,)  # per call again
    assert rows(table) == ["committed"]
    assert app.extensions[EXTENSION_KEY].pool.stats()["in_use"] == 0


def test_autocommit_off_requests_commit_themselves(
    make_app: Callable[..., Flask], table: str, rows: Callable[[str], list[Any]]
) -> None:
    """``MYSQLPOOL_AUTOCOMMIT = False``: every statement opens a transaction, so a later
    ``transaction()`` block is a savepoint of it (as psycopg's is), and what the request does
    not COMMIT is rolled back at its end (README, Flask)."""
    app = make_app(MYSQLPOOL_AUTOCOMMIT=False)

    @app.get("/write/<commit>")
    def write(commit: str) -> dict[str, Any]:
        current_pool.execute_query(f"INSERT INTO {table} (v) VALUES (%s)", (f"first-{commit}",))
        with current_pool.transaction():
            current_pool.execute_query(f"INSERT INTO {table} (v) VALUES (%s)", (f"block-{commit}",))
        if commit == "yes":
            current_pool.execute_query("COMMIT")
        return {}

    client = app.test_client()
    assert client.get("/write/no").status_code == 200
    assert rows(table) == []
    assert client.get("/write/yes").status_code == 200
    assert rows(table) == ["first-yes", "block-yes"]


def test_a_request_made_inside_a_request_of_the_same_app(make_app: Callable[..., Flask]) -> None:
    """``app.test_client()`` (or any internal dispatch) inside a view: Flask reuses the app
    context, so ``g``, for the inner request. Each request still gives back its own connection,
    and the outer one keeps its own (its open transaction too) until its end."""
    from mysqlpool_ext.scope import current_scope

    app = make_app(MYSQLPOOL_SIZE=2, MYSQLPOOL_MAX_SIZE=2, MYSQLPOOL_TIMEOUT=2)

    @app.get("/inner")
    def inner() -> dict[str, Any]:
        return {"id": conn_id()}

    @app.get("/outer")
    def outer() -> dict[str, Any]:
        current_pool.execute_query("BEGIN")
        mine = conn_id()
        nested = app.test_client().get("/inner").get_json()
        after = conn_id()
        in_tx = current_pool.execute_query("SELECT @@in_transaction", return_one=True)[0]
        return {"outer": [mine, after], "inner": nested["id"], "in_tx": in_tx}

    data = app.test_client().get("/outer").get_json()
    assert data["outer"][0] == data["outer"][1] and data["inner"] != data["outer"][0]
    assert data["in_tx"] == 1  # the inner request's end did not touch the outer's connection
    assert in_use(app) == 0 and current_scope() is None
    with app.app_context():  # nothing of the outer request's transaction is left behind
        assert current_pool.execute_query("SELECT @@in_transaction", return_one=True) == (0,)


def test_init_app_again_turns_the_stats_endpoint_on(make_app: Callable[..., Flask]) -> None:
    """close() then init_app() with the endpoint on (or at another path): it answers there;
    after the app served a request Flask takes no new rule, and init_app() says so."""
    ext = MySQLPool()
    app = make_app(ext=ext)
    ext.close(app)
    app.config["MYSQLPOOL_STATS_ENDPOINT"] = "/s1"
    ext.init_app(app)
    ext.close(app)
    app.config["MYSQLPOOL_STATS_ENDPOINT"] = "/s2"
    ext.init_app(app)
    client = app.test_client()
    assert client.get("/s1").status_code == 200 and client.get("/s2").status_code == 200
    ext.close(app)
    app.config["MYSQLPOOL_STATS_ENDPOINT"] = "/s3"
    with pytest.raises(ConfigError, match="after it served a request"):
        ext.init_app(app)
    app.config["MYSQLPOOL_STATS_ENDPOINT"] = "/s2"
    ext.init_app(app)  # already there: fine
    assert client.get("/s2").status_code == 200
