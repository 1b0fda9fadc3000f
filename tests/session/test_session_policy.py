"""Issue 12: the reset policy itself — its default name, the unsafe policy kept on request, the
price of the clean path (zero bytes), and the fallback for servers without session tracking.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from faces import Face, MakePool
from faultproxy import TcpProxy
from pymysql.constants import CLIENT
from sessionkit import LOCK_NAME, LOCK_PROCEDURE, OTHER

from mysqlpool_ext import ConnectionPool
from mysqlpool_ext._server import ThrowawayServer

CYCLES = 2000


def test_default_reset_policy_is_auto(make_pool: MakePool) -> None:
    pool = make_pool(size=0, lazy=True)
    assert pool.options.reset == "auto"


async def test_reset_rollback_keeps_session_state(face: Face, make_pool: MakePool) -> None:
    """``reset="rollback"`` stays available for users who want session state to persist across
    borrows (documented as unsafe across requests): the next borrower sees ``@user_id``."""
    pool = make_pool(size=1, max_size=1, reset="rollback")
    async with face.connection(pool) as conn:
        await face.query(conn, "SET @user_id = 42")
    async with face.connection(pool) as conn:
        assert await face.query(conn, "SELECT @user_id", return_one=True) == (42,)


@pytest.mark.parametrize(
    ("change", "probe", "fresh"),
    [
        # A named lock a procedure takes: no flag, and no "lock" in the statement's text.
        (f"CALL {LOCK_PROCEDURE}()", f"SELECT IS_USED_LOCK('{LOCK_NAME}') IS NULL", (1,)),
        # The next transaction's mode (also an autocommit statement's): no flag either.
        ("SET TRANSACTION READ ONLY", f"DELETE FROM {OTHER} WHERE 1 = 0", 0),
    ],
    ids=["procedure_lock", "next_transaction_read_only"],
)
async def test_an_unflagged_change_made_alone_is_reset(
    face: Face, make_pool: MakePool, change: str, probe: str, fresh: Any
) -> None:
    """The change is the borrower's only statement (the fingerprint tests' probes read user
    variables, which makes every one of their sessions look changed): only the statement
    text tells that the session needs its reset."""
    pool = make_pool(size=1, max_size=1)
    async with face.connection(pool) as conn:
        await face.query(conn, change)
    assert pool.stats()["returns_reset"] == 1
    async with face.connection(pool) as conn:
        got = await face.query(conn, probe, return_one=True)
        assert (got if isinstance(fresh, tuple) else int(got)) == fresh


# -- the clean path costs nothing -----------------------------------------------------------------


def bytes_received(root: pymysql.connections.Connection) -> int:
    with root.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Bytes_received'")
        row = cur.fetchone()
    assert row is not None
    return int(row[1])


@pytest.fixture
def quiet_server(private_server: ThrowawayServer) -> Iterator[ThrowawayServer]:
    """A server of the test's own: nobody else's bytes reach its counters."""
    yield private_server


async def test_clean_borrow_and_return_sends_no_bytes(
    face: Face, quiet_server: ThrowawayServer, figures: Any
) -> None:
    """2,000 borrow+return cycles with nothing done in between: the server's ``Bytes_received``
    grows by exactly what the root's own status query adds (measured with a control read)."""
    pool = ConnectionPool(**quiet_server.connect_kwargs(), size=1, max_size=1)
    root = pymysql.connect(**quiet_server.root_connect_kwargs(), autocommit=True)
    try:
        async with face.connection(pool):
            pass  # warm up: the first borrow of a fresh pool may check liveness
        first = bytes_received(root)
        second = bytes_received(root)
        control = second - first  # what one status query sends
        for _ in range(CYCLES):
            async with face.connection(pool):
                pass
        third = bytes_received(root)
        extra = third - second - control
        figures(cycles=CYCLES, extra_bytes=extra, control_bytes=control)
        assert extra == 0, f"{CYCLES} clean borrow+return cycles sent {extra} bytes"
    finally:
        root.close()
        pool.close()


# -- servers without session tracking -------------------------------------------------------------


class NoSessionTrackProxy(TcpProxy):
    """A pass-through proxy that clears ``CLIENT_SESSION_TRACK`` in the server's greeting: the
    client sees a server that cannot report session state changes (an old server, or a proxy
    that strips the capability)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._greeted: set[Any] = set()
        super().__init__(upstream_host, upstream_port)

    def _forward(self, src: Any) -> None:
        if src in self._clients or src in self._greeted:
            super()._forward(src)
            return
        # The first bytes from an upstream socket: the greeting.
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close_pair(src, rst=False)
            return
        self._greeted.add(src)
        dst = self._peer.get(src)
        if dst is not None:
            dst.sendall(clear_session_track(data))


def clear_session_track(packet: bytes) -> bytes:
    """The greeting (protocol 10) with bit 23 of the capability flags cleared."""
    buf = bytearray(packet)
    (length,) = struct.unpack("<I", bytes(buf[:3]) + b"\0")
    assert buf[4] == 10 and len(buf) >= 4 + length, "not a complete v10 greeting"
    pos = buf.index(0, 5) + 1  # after the NUL-terminated server version
    pos += 4 + 8 + 1  # connection id, auth data part 1, filler
    pos += 2 + 1 + 2  # capability flags (lower), character set, status flags
    buf[pos] &= ~((CLIENT.SESSION_TRACK >> 16) & 0xFF) & 0xFF  # capability flags (upper)
    return bytes(buf)


@pytest.fixture
def old_server(db_kwargs: dict[str, Any]) -> Iterator[NoSessionTrackProxy]:
    with NoSessionTrackProxy(db_kwargs["host"], db_kwargs["port"]) as proxy:
        yield proxy


async def test_server_without_session_tracking_still_gets_fresh_sessions(
    face: Face, old_server: NoSessionTrackProxy, make_pool: MakePool
) -> None:
    """Through the proxy the server cannot report changes; the pool must fall back (reset on
    every return, or replace the connection). The next borrower must not see ``@user_id``."""
    pool = make_pool(host=old_server.host, port=old_server.port, size=1, max_size=1)
    async with face.connection(pool) as conn:
        assert not conn.server_capabilities & CLIENT.SESSION_TRACK, "the proxy did not strip it"
        await face.query(conn, "SET @user_id = 42")
    async with face.connection(pool) as conn:
        assert await face.query(conn, "SELECT @user_id", return_one=True) == (None,)
