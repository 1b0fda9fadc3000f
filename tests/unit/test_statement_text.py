"""The statement-text check for session changes the server does not report (``_protocol``), and
the memo of its verdicts: a remembered verdict must be the verdict, for every kind of text."""

from __future__ import annotations

import pytest

from mysqlpool_ext import _protocol
from mysqlpool_ext._protocol import may_change_untracked_state

CHANGES = [
    b"DO GET_LOCK('x', 0)",
    b"LOCK TABLES t READ",
    b"SELECT @x := 1",
    b"SELECT 1 INTO @x",
    b"SELECT LAST_INSERT_ID(7)",
    b"HANDLER t OPEN",
    b"SELECT FOUND_ROWS()",
    b"select  last_insert_id( 5 )",
    b"SELECT id, name, amount FROM bench_rows WHERE name = 'n' AND id > 3 FOR UPDATE; DO @v",
    b"CALL take_lock()",
    b"call app.refresh_cache(1, 2)",
    b"SET TRANSACTION READ ONLY",
    b"set  transaction isolation level serializable",
    b"/* a comment long enough for the substring path */ SET TRANSACTION ISOLATION LEVEL READ "
    b"COMMITTED",
    b"/* a comment long enough for the substring path of the check */ CALL p()",
]
CLEAN = [
    b"SELECT 1",
    b"SELECT @@session.autocommit",
    b"SELECT LAST_INSERT_ID()",
    b"INSERT INTO t (a) VALUES (1)",
    b"SELECT id, name, amount, created FROM bench_rows ORDER BY id LIMIT 100",
    b"SELECT call_id, recall FROM calls",
    b"SELECT id FROM transactions WHERE settled = 1",
    b"SELECT id, name, amount, created FROM calls WHERE recall_at > 0 AND transaction_id = 3",
]


@pytest.mark.parametrize("sql", CHANGES + CLEAN)
def test_remembered_verdict_is_the_verdict(sql: bytes) -> None:
    _protocol._VERDICTS.clear()
    expected = sql in CHANGES
    assert _protocol._may_change_untracked_state(sql) is expected
    assert may_change_untracked_state(sql) is expected  # computed, then remembered
    assert _protocol._VERDICTS[sql] is expected
    assert may_change_untracked_state(sql) is expected  # from the memo
    assert may_change_untracked_state(bytearray(sql)) is expected  # executemany's batches


def test_memo_stays_bounded_and_skips_long_texts() -> None:
    _protocol._VERDICTS.clear()
    for i in range(_protocol._VERDICTS_MAX + 10):
        may_change_untracked_state(b"SELECT %d" % i)
    assert len(_protocol._VERDICTS) <= _protocol._VERDICTS_MAX
    long_text = b"INSERT INTO t VALUES " + b"(1)," * 200 + b"(@x)"
    assert may_change_untracked_state(long_text) is True
    assert long_text not in _protocol._VERDICTS
