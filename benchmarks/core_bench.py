"""Thread scenarios: this pool against raw PyMySQL, connect-per-operation and the peer pools.

Every subject runs the same operation code (a PyMySQL cursor: execute, fetchall, close) on the
same server in the same process; only the way the connection is obtained and given back differs.
Pools hold 8 connections. Cells are interleaved (each repeat visits every subject of a scenario in
a rotated order) and the median of the repeats is reported, because a 2-core machine running the
server and the client side by side is noisy.

    python -m benchmarks.core_bench [--quick] [--duration S] [--repeats N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import pymysql

from ._harness import BenchServer, Op, bench_server, measure, median_row, summarize

__all__ = ["SCENARIOS", "SUBJECTS", "run"]

POOL_SIZE = 8
MANY_THREADS = 32
TABLE = "bench_items"
TABLE_ROWS = 1000
PK_SQL = f"SELECT id, name, amount FROM {TABLE} WHERE id = %s"
#: The parse-bound read (issue 17): 100 rows of INT, VARCHAR, DECIMAL, DATETIME per query.
ROWS_TABLE = "bench_rows"
ROWS_SQL = f"SELECT id, name, amount, created FROM {ROWS_TABLE} ORDER BY id LIMIT 100"

#: (key, kind, threads, label). ``kind`` is what one operation does besides borrow + give back.
SCENARIOS: list[tuple[str, str, int, str]] = [
    ("borrow_1", "borrow", 1, "borrow+return only, 1 thread"),
    ("borrow_32", "borrow", MANY_THREADS, "borrow+return only, 32 threads on 8 connections"),
    ("select1_1", "select1", 1, "SELECT 1, 1 thread"),
    ("select1_32", "select1", MANY_THREADS, "SELECT 1, 32 threads on 8 connections"),
    ("pk_1", "pk", 1, "primary-key lookup (1,000 rows), 1 thread"),
    ("pk_32", "pk", MANY_THREADS, "primary-key lookup (1,000 rows), 32 threads on 8 connections"),
    ("rows100_1", "rows100", 1, "100 rows x 4 columns (INT, VARCHAR, DECIMAL, DATETIME), 1 thread"),
]
#: Kinds only some subjects run: the decoder cells compare raw PyMySQL with our two decoders.
DECODER_KINDS = ("rows100",)
QUICK_SCENARIOS = ("borrow_1", "select1_1", "select1_32")


# -- the operation every subject runs on its connection --------------------------------------------
def _select1(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("SELECT 1")
    cur.fetchall()
    cur.close()


def _pk_lookup(conn: Any, key: int) -> None:
    cur = conn.cursor()
    cur.execute(PK_SQL, (key,))
    cur.fetchall()
    cur.close()


def _rows100(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute(ROWS_SQL)
    cur.fetchall()
    cur.close()


def _keys(seed: int) -> Callable[[], int]:
    """A cheap endless stream of ids in random order (no ``random`` call in the timed loop)."""
    ids = list(range(1, TABLE_ROWS + 1))
    random.Random(seed).shuffle(ids)
    return itertools.cycle(ids).__next__


def _pooled_op(
    kind: str, index: int, get: Callable[[], Any], give_back: Callable[[Any], None]
) -> Op:
    """borrow -> (query) -> give back, written out per kind so no subject pays a dispatch."""
    if kind == "borrow":

        def op() -> None:
            give_back(get())

    elif kind == "select1":

        def op() -> None:
            conn = get()
            _select1(conn)
            give_back(conn)

    elif kind == "rows100":

        def op() -> None:
            conn = get()
            _rows100(conn)
            give_back(conn)

    else:
        key = _keys(index)

        def op() -> None:
            conn = get()
            _pk_lookup(conn, key())
            give_back(conn)

    return op


def _close(conn: Any) -> None:
    conn.close()


# -- subjects -----------------------------------------------------------------------------------
class Subject:
    """One way of getting a connection; ``applies(kind)`` says whether a scenario makes sense."""

    label = "?"
    ours = False
    #: Shown under the tables: what this subject does per borrow and per return.
    note = ""

    def __init__(self, server: BenchServer) -> None:
        self.server = server
        self.kwargs = server.connect_kwargs(autocommit=True)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def applies(self, kind: str) -> bool:
        return kind not in DECODER_KINDS

    def make_op(self, kind: str, index: int, threads: int) -> Op:
        raise NotImplementedError


class Raw(Subject):
    label = "raw PyMySQL (no pool)"
    note = (
        "one open connection per thread, no borrowing: the floor "
        "(32 threads = 32 thread-local connections)"
    )

    def open(self) -> None:
        self.conns: list[Any] = []

    def _conn(self, index: int) -> Any:
        while len(self.conns) <= index:
            self.conns.append(pymysql.connect(**self.kwargs))
        return self.conns[index]

    def close(self) -> None:
        for conn in self.conns:
            conn.close()

    def applies(self, kind: str) -> bool:
        return kind != "borrow"  # nothing to borrow

    def make_op(self, kind: str, index: int, threads: int) -> Op:
        conn = self._conn(index)
        if kind == "select1":
            return lambda: _select1(conn)
        if kind == "rows100":
            return lambda: _rows100(conn)
        key = _keys(index)
        return lambda: _pk_lookup(conn, key())


class ConnectPerOp(Subject):
    def __init__(self, server: BenchServer, ssl_disabled: bool) -> None:
        super().__init__(server)
        if ssl_disabled:
            self.kwargs["ssl_disabled"] = True
            self.label = "new connection per op, ssl_disabled"
            self.note = "pymysql.connect() + close() around every operation, TLS off"
        else:
            self.label = "new connection per op (default)"
            self.note = (
                "pymysql.connect() + close() around every operation with PyMySQL's defaults "
                "(builds an SSL context on every connect)"
            )

    def make_op(self, kind: str, index: int, threads: int) -> Op:
        kwargs = self.kwargs
        return _pooled_op(kind, index, lambda: pymysql.connect(**kwargs), _close)


class PymysqlPool(Subject):
    label = "pymysql-pool"
    note = (
        "pymysqlpool.ConnectionPool(size=8, maxsize=8, pre_create_num=8); get_connection() with "
        "its defaults (3 retries 0.1 s apart); return commits"
    )

    def open(self) -> None:
        import pymysqlpool  # type: ignore[import-untyped]

        self.pool = pymysqlpool.ConnectionPool(
            size=POOL_SIZE, maxsize=POOL_SIZE, pre_create_num=POOL_SIZE, name="bench", **self.kwargs
        )

    def close(self) -> None:
        for conn in list(self.pool._pool):
            conn._returned = False  # else its close() raises "already returned"
            conn._pool = None
            conn.close()

    def make_op(self, kind: str, index: int, threads: int) -> Op:
        return _pooled_op(kind, index, self.pool.get_connection, _close)


class DBUtilsPooled(Subject):
    label = "DBUtils PooledDB"
    note = (
        "PooledDB(pymysql, mincached=8, maxcached=8, maxconnections=8, blocking=True), defaults: "
        "ping on checkout, rollback on return"
    )

    def open(self) -> None:
        from dbutils.pooled_db import PooledDB  # type: ignore[import-untyped]

        self.pool = PooledDB(
            pymysql,
            mincached=POOL_SIZE,
            maxcached=POOL_SIZE,
            maxconnections=POOL_SIZE,
            blocking=True,
            **self.kwargs,
        )

    def close(self) -> None:
        self.pool.close()

    def make_op(self, kind: str, index: int, threads: int) -> Op:
        return _pooled_op(kind, index, self.pool.connection, _close)


class SQLAlchemyQueuePool(Subject):
    def __init__(self, server: BenchServer, pre_ping: bool) -> None:
        super().__init__(server)
        self.pre_ping = pre_ping
        self.label = "SQLAlchemy QueuePool" + (" pre_ping" if pre_ping else "")
        self.note = (
            "create_engine(pool_size=8, max_overflow=0"
            + (", pool_pre_ping=True" if pre_ping else "")
            + ").raw_connection(); rollback on return (its default)"
        )

    def open(self) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import URL

        kw = dict(self.kwargs)
        url = URL.create(
            "mysql+pymysql",
            username=kw.pop("user"),
            password=kw.pop("password"),
            host=kw.pop("host"),
            port=kw.pop("port"),
            database=kw.pop("database"),
        )
        self.engine = create_engine(
            url,
            pool_size=POOL_SIZE,
            max_overflow=0,
            pool_pre_ping=self.pre_ping,
            connect_args=kw,
        )
        # Open all 8 now, as the other pools do at construction.
        conns = [self.engine.raw_connection() for _ in range(POOL_SIZE)]
        for conn in conns:
            conn.close()

    def close(self) -> None:
        self.engine.dispose()

    def make_op(self, kind: str, index: int, threads: int) -> Op:
        return _pooled_op(kind, index, self.engine.raw_connection, _close)


class Ours(Subject):
    ours = True

    def __init__(self, server: BenchServer, check: str | None, pure: bool = False) -> None:
        super().__init__(server)
        self.check = check
        self.pure = pure
        self.label = "mysqlpool_ext" + (" check=None" if check is None else "")
        if pure:
            self.label += " (pure-Python decoder)"
        self.note = (
            "ConnectionPool(size=8, max_size=8"
            + (", check=None" if check is None else "")
            + "); get_connection() + close()"
            + (
                "; liveness check off"
                if check is None
                else "; default liveness check (ping after 0.5 s idle)"
            )
        )

    def open(self) -> None:
        from mysqlpool_ext import ConnectionPool

        self.pool = ConnectionPool(
            size=POOL_SIZE,
            max_size=POOL_SIZE,
            check=self.check,
            name=f"bench-{self.check or 'nocheck'}",
            **self.kwargs,
        )

    def close(self) -> None:
        self.pool.close()

    def applies(self, kind: str) -> bool:
        if self.pure:  # the decoder comparison only
            return kind in ("select1", *DECODER_KINDS)
        return self.check is not None or kind not in DECODER_KINDS

    def make_op(self, kind: str, index: int, threads: int) -> Op:
        inner = _pooled_op(kind, index, self.pool.get_connection, _close)
        try:
            from mysqlpool_ext import _rows
        except ImportError:  # a tree without the result-set decoder: nothing to switch
            return inner
        # Cells run one at a time; each operation selects its decoder (one global store), so
        # "with" and "without the accelerator" alternate within one run.
        accelerated = not self.pure

        def op() -> None:
            _rows.set_accelerated(accelerated)
            inner()

        return op


#: Subject factories in table order; the key is stable (JSON, chart, targets).
SUBJECTS: list[tuple[str, Callable[[BenchServer], Subject]]] = [
    ("raw", Raw),
    ("connect_ssl", lambda s: ConnectPerOp(s, ssl_disabled=False)),
    ("connect_nossl", lambda s: ConnectPerOp(s, ssl_disabled=True)),
    ("pymysql_pool", PymysqlPool),
    ("dbutils", DBUtilsPooled),
    ("sqlalchemy", lambda s: SQLAlchemyQueuePool(s, pre_ping=False)),
    ("sqlalchemy_pre_ping", lambda s: SQLAlchemyQueuePool(s, pre_ping=True)),
    ("ours", lambda s: Ours(s, check="ping")),
    ("ours_nocheck", lambda s: Ours(s, check=None)),
    ("ours_pure", lambda s: Ours(s, check="ping", pure=True)),
]


def create_table(server: BenchServer) -> None:
    conn = pymysql.connect(**server.connect_kwargs(ssl_disabled=True, autocommit=True))
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
            cur.execute(
                f"CREATE TABLE {TABLE} (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, "
                "amount INT NOT NULL) ENGINE=InnoDB"
            )
            cur.executemany(
                f"INSERT INTO {TABLE} (id, name, amount) VALUES (%s, %s, %s)",
                [(i, f"item-{i:04d}", i * 7 % 1000) for i in range(1, TABLE_ROWS + 1)],
            )
            create_rows_table(cur)
    finally:
        conn.close()


def create_rows_table(cur: Any) -> None:
    """The table of the 100-row cells (sync and async): INT, VARCHAR, DECIMAL, DATETIME."""
    cur.execute(f"DROP TABLE IF EXISTS {ROWS_TABLE}")
    cur.execute(
        f"CREATE TABLE {ROWS_TABLE} (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, "
        "amount DECIMAL(12,2) NOT NULL, created DATETIME NOT NULL) ENGINE=InnoDB"
    )
    cur.executemany(
        f"INSERT INTO {ROWS_TABLE} (id, name, amount, created) VALUES (%s, %s, %s, %s)",
        [
            (
                i,
                f"customer-{i:04d}",
                f"{i * 37 % 10000}.{i % 100:02d}",
                f"2026-{1 + i % 12:02d}-{1 + i % 28:02d} "
                f"{i % 24:02d}:{i % 60:02d}:{i * 7 % 60:02d}",
            )
            for i in range(1, 101)
        ],
    )


def run(
    url: str | None = None,
    *,
    duration: float = 1.0,
    repeats: int = 3,
    quick: bool = False,
    scenarios: list[str] | None = None,
    subjects: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure every (scenario, subject) cell ``repeats`` times; one row per cell (medians)."""
    if quick:
        scenarios = scenarios or list(QUICK_SCENARIOS)
    chosen = [s for s in SCENARIOS if scenarios is None or s[0] in scenarios]
    warmup = min(0.2, duration / 5)
    say = progress or (lambda msg: None)
    with bench_server(url) as server:
        create_table(server)
        opened: list[tuple[str, Subject]] = []
        try:
            for key, factory in SUBJECTS:
                if subjects is not None and key not in subjects:
                    continue
                subject = factory(server)
                try:
                    subject.open()
                except ImportError as exc:
                    say(f"  skip {subject.label}: {exc} (pip install -e '.[bench]')")
                    continue
                opened.append((key, subject))
            results: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for rep in range(repeats):
                for skey, kind, threads, label in chosen:
                    # Rotate the order each repeat so no subject always runs first or last.
                    shift = rep % len(opened) if opened else 0
                    for key, subject in opened[shift:] + opened[:shift]:
                        if not subject.applies(kind):
                            continue
                        m = measure(
                            lambda i, s=subject, k=kind, n=threads: s.make_op(k, i, n),  # type: ignore[misc]
                            threads,
                            duration,
                            warmup,
                        )
                        summary = summarize(m)
                        results.setdefault((skey, key), []).append(summary)
                        say(
                            f"  [{rep + 1}/{repeats}] {label:<62} {subject.label:<38} "
                            f"{summary['ops_s']:>10,.0f} ops/s  errors {summary['errors']}"
                        )
        finally:
            for _key, subject in opened:
                try:
                    subject.close()
                except Exception as exc:  # noqa: BLE001 - closing a peer must not lose the results
                    say(f"  (closing {subject.label} failed: {exc!r})")
    rows: list[dict[str, Any]] = []
    for skey, _kind, threads, label in chosen:
        for key, subject in opened:
            reps = results.get((skey, key))
            if not reps:
                continue
            row = {
                "suite": "core",
                "scenario": label,
                "scenario_key": skey,
                "subject": subject.label,
                "subject_key": key,
                "ours": subject.ours,
                "threads": threads,
                "connections": min(threads, POOL_SIZE) if key != "raw" else threads,
                "note": subject.note,
                "duration_s": duration,
            }
            row.update(median_row(reps))
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.core_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few short cells (smoke run)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per cell")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per cell (median)")
    parser.add_argument("--scenario", action="append", help="only these scenario keys")
    parser.add_argument("--subject", action="append", help="only these subject keys")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    duration = args.duration or (0.3 if args.quick else 1.0)
    repeats = args.repeats or (1 if args.quick else 3)
    started = time.monotonic()
    rows = run(
        duration=duration,
        repeats=repeats,
        quick=args.quick,
        scenarios=args.scenario,
        subjects=args.subject,
        progress=lambda msg: print(msg, flush=True),
    )
    for row in rows:
        p50 = row["p50_ms"]
        p99 = row["p99_ms"]
        print(
            f"{row['scenario']:<62} {row['subject']:<38} {row['ops_s']:>10,.0f} ops/s "
            f"p50 {p50 if p50 is None else round(p50, 3)} ms  "
            f"p99 {p99 if p99 is None else round(p99, 3)} ms  errors {row['errors']}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
