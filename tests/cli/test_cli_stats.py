"""``mysqlpool-ext stats URL`` reading a running app's opt-in stats endpoint over real HTTP."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from mysqlpool_ext.cli import EXIT_FAILURE, EXIT_UNREACHABLE, main
from mysqlpool_ext.demo import SCHEMA, STATS_PATH, BuiltinApp
from mysqlpool_ext.diagnostics import pools_from_payload


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield its base URL."""
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def flask_app(db_url: str) -> Iterator[Any]:
    pytest.importorskip("flask")
    shop = pytest.importorskip("example_apps.flask_app")
    app = shop.create_app(
        {
            "MYSQLPOOL_URL": db_url,
            "MYSQLPOOL_SIZE": 2,
            "MYSQLPOOL_STATS_ENDPOINT": STATS_PATH,
            "SHOP_CREATE_SCHEMA": True,
        }
    )
    yield app
    app.extensions["mysqlpool"].ext.close(app)


@pytest.fixture
def flask_base_url(flask_app: Any) -> Iterator[str]:
    yield from serve(flask_app)


@pytest.fixture
def builtin_base_url(db_url: str, admin: Any) -> Iterator[str]:
    with admin.cursor() as cur:
        cur.execute(SCHEMA)  # the example apps' users table; rows or not, each view borrows
    app = BuiltinApp(db_url, 2)
    try:
        yield from serve(app)
    finally:
        app.close()  # an open pool named "default" would be current_pool for later tests


def get(url: str) -> int:
    """The status of a GET (a 404 is an answer too: the view still borrowed a connection)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_stats_json_from_the_flask_example_app(flask_base_url: str, capsys: Any) -> None:
    before = main(["stats", flask_base_url + STATS_PATH, "--json"])
    assert before == 0
    borrows_before = json.loads(capsys.readouterr().out)["pools"]["default"]["requests_num"]
    for _ in range(5):
        assert get(flask_base_url + "/users/1") == 200
    assert main(["stats", flask_base_url + STATS_PATH, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    stats = payload["pools"]["default"]
    assert stats["requests_num"] == borrows_before + 5
    assert stats["in_use"] == 0
    assert stats["pool_max"] == 2
    assert isinstance(payload["pid"], int)


def test_stats_table_from_the_builtin_app(builtin_base_url: str, capsys: Any) -> None:
    for uid in (1, 2, 3):
        assert get(builtin_base_url + f"/users/{uid}") in (200, 404)
    assert main(["stats", builtin_base_url + STATS_PATH, "--plain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"pool stats from {builtin_base_url}{STATS_PATH} (process ")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert rows["requests_num"] == ["3"]
    assert rows["in_use"] == ["0"]
    assert "wait_p99_ms" in rows
    # Counts only: nothing that could describe the connection settings.
    assert "host" not in out and "user" not in rows


def test_stats_404_says_the_endpoint_may_be_off(builtin_base_url: str, capsys: Any) -> None:
    assert main(["stats", builtin_base_url + "/nope"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "MYSQLPOOL_STATS_ENDPOINT" in err


def test_stats_refused_connection(capsys: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["stats", f"http://127.0.0.1:{port}{STATS_PATH}"]) == EXIT_UNREACHABLE
    assert "cannot reach" in capsys.readouterr().err


def test_stats_endpoint_behind_basic_auth_never_shows_the_password(capsys: Any) -> None:
    """``user:password@`` in the URL: sent as basic auth (urllib would look the whole
    ``user:password@host`` up as a host name), shown as ``user:***@`` in output and errors."""
    import base64
    import http.server
    import json
    import threading

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = json.dumps({"pid": 7, "pools": {"default": {"in_use": 0}}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    password = "s3cr€t/#?@+"
    quoted = "s3cr%E2%82%ACt%2F%23%3F%40%2B"
    try:
        port = server.server_address[1]
        assert main(["stats", f"http://admin:{quoted}@127.0.0.1:{port}/stats", "--plain"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    out = capsys.readouterr().out
    assert out.startswith(f"pool stats from http://admin:***@127.0.0.1:{port}/stats (process 7)")
    assert seen == ["Basic " + base64.b64encode(f"admin:{password}".encode()).decode()]
    # Unreachable: the error names the URL, without the password either.
    assert main(["stats", f"http://admin:{quoted}@127.0.0.1:{port}/stats"]) == EXIT_UNREACHABLE
    captured = capsys.readouterr()
    assert "cannot reach http://admin:***@127.0.0.1" in captured.err
    for text in (captured.out, captured.err, out):
        assert "s3cr" not in text


@pytest.mark.parametrize(
    "payload",
    [
        {"pid": 7, "pools": {"default": {"in_use": 1}}},
        {"default": {"in_use": 1}},
        {"name": "default", "in_use": 1, "requests_num": 3},
        [{"name": "default", "in_use": 1}],
    ],
)
def test_every_reasonable_payload_shape_is_understood(payload: Any) -> None:
    assert pools_from_payload(payload)["default"]["in_use"] == 1
