"""TLS connections: the async face falls back to running the sync code in a worker thread.

A private server with a self-signed certificate (made with the ``openssl`` command line tool).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from aiokit import Ticker

from mysqlpool_ext import ConnectionPool
from mysqlpool_ext._server import ThrowawayServer, find_server_binary


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThrowawayServer, str]]:
    if shutil.which("openssl") is None or find_server_binary() is None:
        pytest.skip("needs the openssl tool and a local mariadbd/mysqld")
    where: Path = tmp_path_factory.mktemp("tls")
    cert, key = str(where / "cert.pem"), str(where / "key.pem")
    make_cert = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    subprocess.run(
        [*make_cert, "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )
    with ThrowawayServer(server_args=[f"--ssl-cert={cert}", f"--ssl-key={key}"]) as server:
        yield server, cert


async def test_tls_connection_works_through_a_thread(
    tls_server: tuple[ThrowawayServer, str], ticker: Ticker
) -> None:
    server, cert = tls_server
    pool = ConnectionPool(size=2, ssl_ca=cert, ssl_verify_identity=False, **server.connect_kwargs())
    try:
        ticker.start()
        async with pool.atransaction() as conn:
            assert isinstance(conn._sock, ssl.SSLSocket)
            (_name, cipher) = await conn.aexecute_query(
                "SHOW SESSION STATUS LIKE 'Ssl_cipher'", return_one=True
            )
            assert cipher
            assert await conn.aexecute_query("SELECT @@in_transaction") == ((1,),)
        rows = await asyncio.gather(*(pool.aexecute_query("SELECT %s", (i,)) for i in range(20)))
        assert rows == [((i,),) for i in range(20)]
        # Cancelled mid-query: the worker thread is made to let go, the connection is replaced.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.aexecute_query("SELECT SLEEP(5)"), 0.3)
        assert await pool.aexecute_query("SELECT 1", timeout=5) == ((1,),)
        with pytest.raises(pymysql.err.ProgrammingError):
            await pool.aexecute_query("SELEC 1")
        await ticker.stop()
        assert ticker.ticks > 0
        stats = pool.stats()
        assert stats["in_use"] == 0 and stats["connections_lost"] == 1
    finally:
        await pool.aclose()


async def test_a_cancelled_tls_statement_is_ended_on_the_server(
    tls_server: tuple[ThrowawayServer, str],
) -> None:
    """Over TLS a statement runs in a worker thread; given up, it is KILLed on the server as
    over plain TCP (else it runs on, and its capacity is already lent again)."""
    import time

    server, cert = tls_server
    pool = ConnectionPool(
        size=1, max_size=1, ssl_ca=cert, ssl_verify_identity=False, **server.connect_kwargs()
    )
    sql = "SELECT SLEEP(30) /* tls-cancelled */"
    running = (
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
        " WHERE INFO = %s AND ID <> CONNECTION_ID()"
    )
    timed_out = ConnectionPool(
        size=1, max_size=1, ssl_ca=cert, ssl_verify_identity=False, read_timeout=0.3,
        **server.connect_kwargs(),
    )  # fmt: skip
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.aexecute_query(sql), 0.3)
        with pytest.raises(pymysql.err.OperationalError):  # read_timeout, in the worker thread
            await timed_out.aexecute_query(sql)
        deadline = time.monotonic() + 2
        while (await pool.aexecute_query(running, (sql,), return_one=True, timeout=10))[0]:
            assert time.monotonic() < deadline, "the cancelled statement runs on"
            await asyncio.sleep(0.02)
    finally:
        await pool.aclose()
        await timed_out.aclose()
