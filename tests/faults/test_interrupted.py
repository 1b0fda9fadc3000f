"""A blocking statement given up mid-way on the sync face: ``read_timeout``, or an exception
from a signal handler (Ctrl-C, Celery's soft time limit: SIGUSR1). The connection cannot be used
again, and the server would run the statement on to its end: the pool ends it there."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pymysql
import pytest

from mysqlpool_ext import ConnectionPool

pytestmark = pytest.mark.faults


class SoftTimeLimit(Exception):
    pass


def _running(db_kwargs: dict[str, Any], sql: str) -> int:
    conn = pymysql.connect(**db_kwargs)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                " WHERE INFO = %s AND ID <> CONNECTION_ID()",
                (sql,),
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["read_timeout", "signal"])
def test_a_statement_given_up_on_the_sync_face_is_ended_on_the_server(
    db_kwargs: dict[str, Any], how: str
) -> None:
    sql = f"SELECT SLEEP(30) /* sync-interrupted-{how} */"
    opts = {"read_timeout": 0.3} if how == "read_timeout" else {}
    with ConnectionPool(size=1, max_size=1, timeout=10, **db_kwargs, **opts) as pool:
        if how == "read_timeout":
            with pytest.raises(pymysql.err.OperationalError):
                pool.execute_query(sql)
        else:

            def on_signal(signum: int, frame: Any) -> None:
                raise SoftTimeLimit()

            previous = signal.signal(signal.SIGUSR1, on_signal)

            def send_later() -> None:
                deadline = time.monotonic() + 10
                while not _running(db_kwargs, sql):  # until the server runs it
                    assert time.monotonic() < deadline
                os.kill(os.getpid(), signal.SIGUSR1)

            sender = threading.Thread(target=send_later)
            try:
                sender.start()
                with pytest.raises(SoftTimeLimit):
                    pool.execute_query(sql)
            finally:
                sender.join()
                signal.signal(signal.SIGUSR1, previous)
        deadline = time.monotonic() + 3
        while _running(db_kwargs, sql):
            assert time.monotonic() < deadline, "the statement given up runs on"
            time.sleep(0.02)  # the server's process list: nothing to wait on but polling
        assert pool.execute_query("SELECT 1", timeout=10) == ((1,),)
        assert pool.stats()["in_use"] == 0
