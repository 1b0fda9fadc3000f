"""``mysqlpool-ext check URL`` against the real server: a good URL, a wrong password, a closed port
and a malformed URL — exit codes, one-line messages, and never a password in the output."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pymysql
import pytest

from mysqlpool_ext.cli import EXIT_AUTH, EXIT_UNREACHABLE, EXIT_USAGE, main

WRONG_PASSWORD = "Wrong-pw-4kQz9"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m mysqlpool_ext ARGS`` in a subprocess: the real entry point, real exit code."""
    return subprocess.run(
        [sys.executable, "-m", "mysqlpool_ext", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def closed_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_check_good_url_reports_what_the_server_says(
    db_url: str, mysql_server: Any, admin: pymysql.connections.Connection, capsys: Any
) -> None:
    assert main(["check", db_url, "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    (pool,) = report["pools"]
    facts = pool["facts"]
    with admin.cursor() as cur:
        cur.execute("SELECT VERSION(), @@global.wait_timeout, @@max_connections")
        version, wait_timeout, max_connections = cur.fetchone()
    assert facts["version"] == version
    assert facts["wait_timeout"] == wait_timeout
    assert facts["max_connections"] == max_connections
    assert facts["tls_cipher"] is None or facts["tls_version"]
    assert pool["server"].count("***") == 1
    assert any("max_lifetime" in f["text"] for f in pool["findings"])
    (room,) = report["headroom"]
    assert room["limit"] == max_connections and room["sufficient"] is True
    assert report["result"] == "OK" or report["result"].startswith("OK with")
    assert report["exit_code"] == 0
    assert mysql_server.password not in out + err


def test_check_human_output_and_advice_follow_the_url_options(
    db_url: str, mysql_server: Any
) -> None:
    result = run_cli("check", db_url + "?max_lifetime=99999&max_size=50", "--plain")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for label in ("server version", "TLS", "wait_timeout", "headroom on server", "advice"):
        assert label in out
    # 99999 s is above any default wait_timeout (8 h): the advice must say so.
    assert "max_lifetime=99999 s is not below wait_timeout" in out
    assert "1 process(es) x max_size 50 = 50 connections at most" in out
    assert out.splitlines()[-1].startswith("result: OK with 1 warning(s)")
    assert mysql_server.password not in out + result.stderr


def test_check_wrong_password(mysql_server: Any) -> None:
    url = f"mysql://{mysql_server.user}:{WRONG_PASSWORD}@{mysql_server.host}:{mysql_server.port}/"
    result = run_cli("check", url)
    assert result.returncode == EXIT_AUTH
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "login refused" in lines[0] and "1045" in lines[0]
    assert mysql_server.user in lines[0]
    assert WRONG_PASSWORD not in result.stderr
    assert mysql_server.password not in result.stderr


def test_check_closed_port() -> None:
    port = closed_port()
    result = run_cli("check", f"mysql://app:{WRONG_PASSWORD}@127.0.0.1:{port}/shop")
    assert result.returncode == EXIT_UNREACHABLE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot connect to 127.0.0.1:{port}" in lines[0]
    assert "2003" in lines[0]
    assert "mysql://app:***@" in lines[0]
    assert WRONG_PASSWORD not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"mysql://app:{WRONG_PASSWORD}@127.0.0.1:99999/shop", "invalid port"),
        (f"mysql://app:{WRONG_PASSWORD}@127.0.0.1:port/shop", "invalid port"),
        (f"http://app:{WRONG_PASSWORD}@127.0.0.1/shop", "scheme must be"),
        (f"mysql://app:{WRONG_PASSWORD}@127.0.0.1/shop?max_sise=3", "did you mean 'max_size'"),
        ("not a url", "scheme must be"),
    ],
)
def test_check_malformed_url(url: str, expected: str, capsys: Any) -> None:
    assert main(["check", url]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err
    assert WRONG_PASSWORD not in err


def test_check_reads_mysqlpool_url_from_the_environment(db_url: str, mysql_server: Any) -> None:
    env = {**os.environ, "MYSQLPOOL_URL": db_url}
    result = run_cli("check", "--json", env=env)
    assert result.returncode == 0, result.stderr
    server = json.loads(result.stdout)["pools"][0]["server"]
    assert server.startswith(f"mysql://{mysql_server.user}:***@")


def test_check_without_any_url_is_a_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MYSQLPOOL_URL"}
    result = run_cli("check", env=env)
    assert result.returncode == EXIT_USAGE
    assert "MYSQLPOOL_URL is not set" in result.stderr


def _console_script() -> str | None:
    candidate = Path(sys.executable).with_name("mysqlpool-ext")
    return str(candidate) if candidate.exists() else shutil.which("mysqlpool-ext")


@pytest.mark.parametrize("command", [[], ["demo"], ["check"], ["stats"]])
def test_help_reads_well_for_each_command(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("usage: mysqlpool-ext")
    assert "exit codes:" in text
    if not command:
        for sub in ("demo", "check", "stats"):
            assert sub in text
        assert "python -m mysqlpool_ext" in text


def test_console_script_runs() -> None:
    script = _console_script()
    if script is None:
        pytest.skip("the package is not installed (no mysqlpool-ext script next to python)")
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("mysqlpool-ext ")


def test_missing_command_is_a_usage_error() -> None:
    result = run_cli()
    assert result.returncode == EXIT_USAGE
    assert "usage: mysqlpool-ext" in result.stderr


def test_plain_text_when_rich_is_not_installed(db_url: str, mysql_server: Any) -> None:
    """The core needs only PyMySQL: without rich the CLI prints the same facts as plain text."""
    code = (
        "import sys; sys.modules['rich'] = None\n"  # makes `import rich...` raise ImportError
        "from mysqlpool_ext.cli import main\n"
        "sys.exit(main(['check', sys.argv[1]]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, db_url], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[url] -> mysql://")
    assert "wait_timeout" in result.stdout
    assert mysql_server.password not in result.stdout


def test_demo_with_an_unreachable_url_fails_fast_and_clearly() -> None:
    port = closed_port()
    result = run_cli("demo", "--quick", "--url", f"mysql://app:{WRONG_PASSWORD}@127.0.0.1:{port}/x")
    assert result.returncode == EXIT_UNREACHABLE
    assert "cannot connect to mysql://app:***@" in result.stderr
    assert WRONG_PASSWORD not in result.stdout + result.stderr
