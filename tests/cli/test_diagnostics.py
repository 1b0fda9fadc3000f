"""One diagnostics module behind three front ends: ``mysqlpool-ext check|stats``,
``flask mysqlpool check|stats`` and ``manage.py mysqlpool_check|mysqlpool_stats`` print the same
report, and one headroom rule decides the exit code (``--strict`` fails on not enough headroom).
Failures are one line on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pymysql
import pytest

from mysqlpool_ext.diagnostics import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    PoolCheck,
    PoolPlan,
    ServerFacts,
    build_report,
    headroom,
)

ROOT = Path(__file__).resolve().parent.parent.parent
MANAGE = ROOT / "example_apps" / "django_project" / "manage.py"


def facts(max_connections: int, threads_connected: int, max_user: int = 0) -> ServerFacts:
    return ServerFacts(
        version="10.11-test",
        comment="",
        tls_version=None,
        tls_cipher=None,
        have_ssl="DISABLED",
        wait_timeout=28800,
        max_connections=max_connections,
        max_user_connections=max_user,
        threads_connected=threads_connected,
        server_key="db:3306",
        connect_ms=1.0,
        select1_ms=0.1,
        own_connections=1,
    )


def plan(max_size: int, size: int = 2, label: str = "default") -> PoolPlan:
    return PoolPlan(label, label, "app@127.0.0.1:3306/shop", size, max_size, 1800.0, 600.0,
                    "127.0.0.1", None)  # fmt: skip


# --------------------------------------------------------------------------------------------
# The rule, on its own
# --------------------------------------------------------------------------------------------


def test_the_issues_case_160_needed_147_free_fails_under_strict() -> None:
    # limit 200, 10 % spare = 20, others hold 33: 147 free; 20 processes x 8 = 160 needed.
    room = headroom(facts(200, 34), [plan(8)], processes=20, preload=False)
    assert (room.needed, room.free, room.sufficient, room.processes_that_fit) == (
        160,
        147,
        False,
        18,
    )
    report = build_report([PoolCheck(plan(8), facts(200, 34))], processes=20)
    assert report.exit_code() == EXIT_OK  # a warning...
    assert report.exit_code(strict=True) == EXIT_FAILURE  # ...that gates a deploy
    lines = report.lines(strict=True)
    assert any(line.startswith("  warn  headroom: NOT ENOUGH: 20 process(es)") for line in lines)
    assert lines[-1] == "result: FAIL (--strict): 1 warning(s)"
    assert report.lines()[-1] == "result: OK with 1 warning(s) (--strict makes warnings fail)"


def test_pools_on_one_server_add_up_and_a_preloaded_master_counts() -> None:
    plans = [plan(8, size=2), plan(4, size=1, label="reports")]
    room = headroom(facts(200, 1), plans, processes=3, preload=True)
    assert room.per_process == 12 and room.master == 3 and room.needed == 39
    room = headroom(facts(200, 1), plans, processes=3, preload=False)
    assert room.master == 0 and room.needed == 36
    checks = [PoolCheck(p, facts(200, 1)) for p in plans]
    assert len(build_report(checks, 3, True).headrooms) == 1  # one server, one budget


def test_max_user_connections_is_the_limit_when_lower() -> None:
    room = headroom(facts(1000, 1, max_user=30), [plan(8)], processes=4, preload=False)
    assert room.limit == 30 and room.free == 27 and not room.sufficient


def test_a_pool_that_cannot_connect_fails_without_strict() -> None:
    report = build_report([PoolCheck(plan(4), None, "refused")])
    assert report.exit_code() == EXIT_FAILURE
    assert "  FAIL  cannot connect: refused" in report.lines()


# --------------------------------------------------------------------------------------------
# Three front ends, one report
# --------------------------------------------------------------------------------------------


def run(*cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )


def manage(*args: str, url: str, max_size: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    env.update(MYSQLPOOL_URL=url, SHOP_POOL_SIZE="1", SHOP_POOL_MAX_SIZE=str(max_size))
    return run(sys.executable, str(MANAGE), *args, env=env)


def same_part(output: str) -> list[str]:
    """The lines that must read the same whichever front end printed them, numbers aside
    (timings and live connection counts move): findings, headroom, advice, the result; not the
    per-pool header, which names the pool as each framework labels it."""
    return [
        re.sub(r"\d+(?:[.,]\d+)*", "N", line) for line in output.splitlines() if line[:1] != "["
    ]


@pytest.fixture
def flask_app(db_url: str) -> Iterator[Any]:
    flask = pytest.importorskip("flask")
    from mysqlpool_ext.flask import MySQLPool

    app = flask.Flask("diag")
    app.config.update(MYSQLPOOL_URL=db_url, MYSQLPOOL_SIZE=1, MYSQLPOOL_MAX_SIZE=4)
    ext = MySQLPool(app)
    yield app
    ext.close(app)


def test_cli_flask_and_django_print_the_same_report_and_obey_one_rule(
    db_url: str, admin: pymysql.connections.Connection, flask_app: Any, capsys: Any
) -> None:
    pytest.importorskip("django")
    from mysqlpool_ext.cli import main

    with admin.cursor() as cur:
        cur.execute("SELECT @@max_connections")
        (max_connections,) = cur.fetchone()
    fits, too_many = "1", str(max_connections)  # x max_size 4: the second can never fit
    runner = flask_app.test_cli_runner()
    outputs: dict[str, list[str]] = {}
    for processes, strict, expected in (
        (fits, [], 0),
        (too_many, [], 0),
        (too_many, ["--strict"], 1),
    ):
        args = ["--processes", processes, *strict]
        code = main(["check", db_url + "?size=1&max_size=4", "--plain", *args])
        cli_out = capsys.readouterr().out
        flask = runner.invoke(args=["mysqlpool", "check", *args])
        django = manage("mysqlpool_check", *args, url=db_url, max_size=4)
        assert (code, flask.exit_code, django.returncode) == (expected,) * 3, (
            cli_out,
            flask.output,
            django.stdout + django.stderr,
        )
        django_out = django.stdout + django.stderr.replace("CommandError: ", "")
        reports = [same_part(cli_out), same_part(flask.output), same_part(django_out)]
        assert reports[0] == reports[1] == reports[2], reports
        outputs[" ".join(args)] = reports[0]
    assert any(line.startswith("  ok    headroom: N process") for line in outputs["--processes 1"])
    assert any(
        line.startswith("  warn  headroom: NOT ENOUGH")
        for line in outputs[f"--processes {too_many}"]
    )
    strict_result = outputs[f"--processes {too_many} --strict"][-1]
    assert strict_result == "result: FAIL (--strict): N warning(s)"


def test_check_survives_a_reader_that_went_away(db_url: str) -> None:
    """``mysqlpool-ext check URL | head -1``: no BrokenPipeError traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mysqlpool_ext", "check", db_url, "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the only reader is gone before the child writes a byte
    _, err = proc.communicate(timeout=60)
    assert err == "", err
    assert proc.returncode == 141


# --------------------------------------------------------------------------------------------
# Stats from a URL: the same fetcher and failures everywhere
# --------------------------------------------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoints() -> Iterator[str]:
    """A server with the answers a stats URL can give: stats, 404, other JSON, not JSON."""
    bodies = {
        "/stats": ("200 OK", {"pid": 42, "pools": {"default": {"in_use": 1, "requests_num": 9}}}),
        "/health": ("200 OK", {"status": "ok", "checks": {"db": {"up": True}}}),
        "/html": ("200 OK", None),
    }

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        status, body = bodies.get(environ["PATH_INFO"], ("404 Not Found", {"error": "nope"}))
        data = b"<html>hi</html>" if body is None else json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json")])
        return [data]

    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def refused_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/stats"


@pytest.fixture
def flask_cli(tmp_path: Path, db_url: str) -> Any:
    """``flask --app diagapp mysqlpool ...`` in a subprocess: real stderr, real exit code."""
    pytest.importorskip("flask")
    (tmp_path / "diagapp.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            from mysqlpool_ext.flask import MySQLPool

            app = Flask("diagapp")
            app.config["MYSQLPOOL_SIZE"] = 1
            MySQLPool(app)
            """
        )
    )
    env = {**os.environ, "MYSQLPOOL_URL": db_url, "PYTHONPATH": str(tmp_path)}

    def flask_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run(sys.executable, "-m", "flask", "--app", "diagapp", "mysqlpool", *args, env=env)

    return flask_cli


def test_stats_failures_are_one_line_everywhere(
    endpoints: str, flask_cli: Any, db_url: str
) -> None:
    pytest.importorskip("django")
    cases = {
        endpoints + "/missing": (EXIT_FAILURE, "HTTP 404"),
        refused_url(): (EXIT_UNREACHABLE, "cannot reach"),
        endpoints + "/health": (EXIT_FAILURE, "no pool stats in the response"),
        endpoints + "/html": (EXIT_FAILURE, "not JSON"),
    }
    for url, (code, text) in cases.items():
        done = {
            "cli": run(sys.executable, "-m", "mysqlpool_ext", "stats", url),
            "flask": flask_cli("stats", "--from", url),
            "django": manage("mysqlpool_stats", "--from", url, url=db_url, max_size=2),
        }
        for name, result in done.items():
            lines = result.stderr.strip().splitlines()
            assert result.returncode == code, (name, url, result.stderr)
            assert len(lines) == 1 and text in lines[0], (name, url, result.stderr)
            assert "Traceback" not in result.stderr and result.stdout == "", (name, result)


def test_stats_from_a_url_read_the_same_everywhere(
    endpoints: str, flask_cli: Any, db_url: str
) -> None:
    pytest.importorskip("django")
    url = endpoints + "/stats"
    outputs = [
        run(sys.executable, "-m", "mysqlpool_ext", "stats", url, "--plain").stdout,
        flask_cli("stats", "--from", url).stdout,
        manage("mysqlpool_stats", "--from", url, url=db_url, max_size=2).stdout,
    ]
    assert outputs[0] == outputs[1] == outputs[2], outputs
    assert outputs[0].startswith(f"pool stats from {url} (process 42)")


def test_flask_stats_without_from_says_whose_numbers_these_are(flask_cli: Any) -> None:
    done = flask_cli("stats")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pool stats of this command's own process (pid ")
    assert "use --from URL" in done.stdout.splitlines()[0]


# --------------------------------------------------------------------------------------------
# Layering: the integrations use the core's public API only, and import in one direction
# --------------------------------------------------------------------------------------------

INTEGRATIONS = [
    "mysqlpool_ext/cli.py",
    "mysqlpool_ext/demo.py",
    "mysqlpool_ext/metrics.py",
    "mysqlpool_ext/diagnostics.py",
    "mysqlpool_ext/__main__.py",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "mysqlpool_ext" / "flask").glob("*.py")),
    "mysqlpool_ext/django/management/commands/mysqlpool_check.py",
    "mysqlpool_ext/django/management/commands/mysqlpool_stats.py",
]


def test_integrations_use_no_underscored_names_of_other_modules() -> None:
    import ast

    for rel in INTEGRATIONS:
        tree = ast.parse((ROOT / rel).read_text(), rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.endswith("__")
                    assert not private, f"{rel}: imports {alias.name}"
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                owner = node.value
                is_self = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
                dunder = node.attr.startswith("__") and node.attr.endswith("__")
                assert is_self or dunder, f"{rel}:{node.lineno}: reads .{node.attr}"


def test_the_cli_is_not_imported_by_what_it_runs_nor_the_flask_cli_by_the_extension(
    db_url: str,
) -> None:
    pytest.importorskip("flask")
    code = (
        "import sys\n"
        "import flask, mysqlpool_ext.demo, mysqlpool_ext.diagnostics\n"
        "from mysqlpool_ext.flask import MySQLPool\n"
        "app = flask.Flask('lazycli')\n"
        "app.config['MYSQLPOOL_URL'] = sys.argv[1]\n"
        "ext = MySQLPool(app)\n"  # registers `flask mysqlpool` ...
        "assert 'mysqlpool' in app.cli.list_commands(None)\n"
        "bad = [m for m in ('mysqlpool_ext.cli', 'mysqlpool_ext.flask.cli') if m in sys.modules]\n"
        "ext.close(app)\n"
        "sys.exit(str(bad) if bad else 0)\n"  # ... without importing it
    )
    done = subprocess.run(
        [sys.executable, "-c", code, db_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------------------------
# The demo: an explicit --app that cannot be served is an error
# --------------------------------------------------------------------------------------------


def test_demo_explicit_app_that_cannot_be_served_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mysqlpool_ext import demo
    from mysqlpool_ext.diagnostics import EXIT_USAGE, DiagnosticError

    said: list[str] = []
    monkeypatch.setattr(demo, "example_apps_root", lambda: None)  # as in a wheel without them
    for app in ("flask", "django"):
        with pytest.raises(DiagnosticError, match=f"cannot serve --app {app}") as info:
            demo._choose_app(app, said.append)  # type: ignore[arg-type]
        assert info.value.code == EXIT_USAGE
    assert demo._choose_app(None, said.append) == "builtin"  # type: ignore[arg-type]
    assert said and "built-in" in said[0]
