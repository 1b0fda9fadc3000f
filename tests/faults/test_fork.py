"""Fault 6: a pre-fork server (gunicorn, uWSGI) forks a process that has a warm pool."""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from mysqlpool_ext import ConnectionPool

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]

CHILDREN = 4
QUERIES = 20


def borrow_all_ids(pool: ConnectionPool, n: int) -> set[int]:
    """CONNECTION_ID() of ``n`` connections borrowed at once (so they are all different)."""
    leases = [pool.get_connection() for _ in range(n)]
    try:
        return {
            lease.execute_query("SELECT CONNECTION_ID()", return_one=True)[0] for lease in leases
        }
    finally:
        for lease in leases:
            lease.close()


def child_main(pool: ConnectionPool, write_fd: int) -> None:
    """Runs in the child; never returns (os._exit), reports through the pipe as JSON."""
    code = 1
    try:
        # The child's pool may already be refilling (its own maintenance thread), but none of
        # what it holds may be the parent's.
        inherited = sorted(s.raw.server_thread_id[0] for s in pool._iter_slots())
        ids = {
            pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0] for _ in range(QUERIES)
        }
        ids |= borrow_all_ids(pool, 2)
        report: dict[str, Any] = {"ids": sorted(ids), "inherited": inherited}
        code = 0
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        report = {"error": repr(exc)}
    try:
        os.write(write_fd, json.dumps(report).encode())
    finally:
        os._exit(code)


def test_fork_children_never_share_connections(db_kwargs: dict[str, Any], figures: Any) -> None:
    with ConnectionPool(size=4, max_size=4, timeout=10, **db_kwargs) as pool:
        parent_ids = borrow_all_ids(pool, 4)
        assert len(parent_ids) == 4
        children: list[tuple[int, int]] = []
        for _ in range(CHILDREN):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                child_main(pool, write_fd)
            os.close(write_fd)
            children.append((pid, read_fd))
        # The parent keeps working while the children run.
        during = {
            pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0] for _ in range(50)
        }
        reports = []
        for pid, read_fd in children:
            with os.fdopen(read_fd, "rb") as pipe:
                data = pipe.read()
            _, status = os.waitpid(pid, 0)
            reports.append((os.waitstatus_to_exitcode(status), json.loads(data or b"{}")))
        after = borrow_all_ids(pool, 4)
        stats = pool.stats()

    for code, report in reports:
        assert code == 0, report
    child_ids = [set(report["ids"]) for _, report in reports]
    seen_twice = set()
    all_sets = [parent_ids, *child_ids]
    for i, a in enumerate(all_sets):
        for b in all_sets[i + 1 :]:
            seen_twice |= a & b
    figures(
        children=CHILDREN,
        child_connections=sum(len(s) for s in child_ids),
        ids_seen_in_two_processes=len(seen_twice),
        parent_connections_lost=stats["connections_lost"],
    )
    assert not seen_twice
    assert all(not set(report["inherited"]) & parent_ids for _, report in reports)
    assert during <= parent_ids and after == parent_ids  # the parent's own connections still work
    assert stats["connections_lost"] == 0 and stats["checks_failed"] == 0


def test_parent_that_stops_borrowing_after_a_fork_closes_its_idle_connections(
    db_kwargs: dict[str, Any], figures: Any
) -> None:
    """A pre-forking server's master builds the app (here an eager pool), forks and never
    queries: its idle connections close shortly after the fork, and come back once it borrows."""
    with ConnectionPool(size=2, max_size=2, timeout=10, **db_kwargs) as pool:
        assert pool.stats()["pool_size"] == 2
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        forked = time.monotonic()
        while pool.stats()["pool_size"] and time.monotonic() - forked < 10:
            time.sleep(0.05)
        closed_after = time.monotonic() - forked
        assert pool.stats()["pool_size"] == 0, pool.stats()
        assert pool.execute_query("SELECT 1", timeout=5) == ((1,),)  # borrowing resumes upkeep
        deadline = time.monotonic() + 10
        while pool.stats()["pool_size"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        figures(idle_closed_after_s=round(closed_after, 2), refilled=pool.stats()["pool_size"])
        assert pool.stats()["pool_size"] == 2


def test_a_connection_kept_before_a_fork_stays_the_parents(db_kwargs: dict[str, Any]) -> None:
    """``pool.keep()`` (the Django ENGINE between requests) then a fork (gunicorn ``--preload``
    after a warm-up request): the child can never take the kept connection back, giving it
    back there sends nothing on the parent's socket, and the parent still uses it."""
    with ConnectionPool(size=1, max_size=2, timeout=10, **db_kwargs) as pool:
        kept = pool.get_connection()
        kept_id = kept.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
        assert pool.keep(kept)

        def child() -> bytes:
            taken = pool.take_kept(kept)
            kept.close()  # the parent's socket: dropped, not spoken on
            own = pool.execute_query("SELECT CONNECTION_ID()", return_one=True)[0]
            return json.dumps({"taken": taken, "own": own}).encode()

        exited, data = _in_child(child)
        assert exited == 0, data
        report = json.loads(data)
        assert report["taken"] is False and report["own"] != kept_id
        assert pool.take_kept(kept) is True  # the parent's, untouched by the child
        assert kept.execute_query("SELECT CONNECTION_ID()", return_one=True)[0] == kept_id
        kept.close()
        assert pool.stats()["connections_lost"] == 0


def test_a_fork_while_another_thread_waits_for_an_answer(db_kwargs: dict[str, Any]) -> None:
    """A thread of the parent is inside a query (its reader's lock held) when another forks:
    in the child that lock is held for ever by a thread that does not exist there. Closing
    the inherited reader would wait for it: the child must neither hang at the fork nor when
    its pool or the inherited connections are let go."""
    with ConnectionPool(size=2, max_size=2, timeout=10, **db_kwargs) as pool:
        sql = "SELECT SLEEP(1.5) /* fork-while-reading */"

        def reader() -> None:
            with pool.connection() as conn:
                conn.execute_query(sql)

        thread = threading.Thread(target=reader)
        thread.start()
        deadline = time.monotonic() + 10
        running = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = %s"
        while pool.execute_query(running, (sql,), return_one=True)[0] == 0:  # on the server
            assert time.monotonic() < deadline

        def child() -> bytes:
            got = pool.execute_query("SELECT 1", return_one=True)[0]
            pool.close()
            gc.collect()
            return str(got).encode()

        exited, answer = _in_child(child)
        thread.join()
        assert (exited, answer) == (0, b"1")
        assert pool.execute_query("SELECT 2", return_one=True)[0] == 2  # the parent's pool works


def test_a_fork_while_interrupted_statements_are_being_ended(db_kwargs: dict[str, Any]) -> None:
    """A cancelled statement is being KILLed (the pool's killer thread) when the process
    forks: in the child that thread does not exist; the child's own cancelled statements must
    still give their capacity back."""
    import asyncio

    with ConnectionPool(size=1, max_size=1, timeout=10, **db_kwargs) as pool:

        async def cancel_one() -> None:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pool.aexecute_query("SELECT SLEEP(30)"), 0.2)

        asyncio.run(cancel_one())  # the killer starts now

        def child() -> bytes:
            asyncio.run(cancel_one())
            return str(pool.execute_query("SELECT 7", return_one=True, timeout=8)[0]).encode()

        assert _in_child(child) == (0, b"7")
        assert pool.execute_query("SELECT 8", return_one=True, timeout=10)[0] == 8


def _in_child(body: Callable[[], bytes], wait_s: float = 20) -> tuple[int | None, bytes]:
    """Fork; the child runs ``body`` and sends what it returns. The child's exit code (None:
    still running after ``wait_s``, then killed) and what it sent."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 1
        try:
            os.write(write_fd, body())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_fd, f"error: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    exited = None
    deadline = time.monotonic() + wait_s
    while exited is None and time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            exited = os.waitstatus_to_exitcode(status)
        else:
            time.sleep(0.05)  # polling a child process: no event to wait on
    if exited is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    with os.fdopen(read_fd, "rb") as pipe:
        return exited, pipe.read()
