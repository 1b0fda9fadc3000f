"""What a borrower can do to its session, and how another borrower would notice (issue 12).

Imported as ``sessionkit`` (pytest puts this folder on sys.path). Every change the issue lists
has an entry in :data:`CHANGES`; :data:`PROBES` are the statements whose answers make up a
session's fingerprint: the session variables, the schema, the character sets, the modes, the
isolation level and read-only flag, user variables, ``LAST_INSERT_ID()``, named locks, and four
behaviour probes (a temporary table shadowing a real one, a table outside a ``LOCK TABLES``
set, a prepared statement, a write: the next transaction's read-only mode). Two sessions with
equal fingerprints cannot tell each other apart through any of the listed changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pymysql

#: A real, empty table that a temporary table of the same name shadows (see ``temp_table``).
SHADOWED = "sess_t"
#: A real, empty table outside the ``LOCK TABLES`` set (see ``lock_tables``).
OTHER = "sess_other"
#: A second database the test account may ``USE``.
OTHER_DB = "mysqlpool_sess_other"
LOCK_NAME = "mysqlpool_sess_lock"
#: A stored procedure that takes the named lock (created by the ``session_tables`` fixture): the
#: server does not flag a lock a procedure takes, and its ``CALL`` text says no "lock".
LOCK_PROCEDURE = "sess_acquire"  # no "lock" in the name: the CALL text must not say it


@dataclass(frozen=True)
class Change:
    """One thing a borrower does to its session: ``statements``, run in order."""

    name: str
    statements: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


CHANGES = [
    Change("time_zone", ("SET time_zone = '+05:00'",)),
    Change("user_variable", ("SET @user_id = 42",)),
    Change("sql_mode", ("SET SESSION sql_mode = ''",)),
    Change("names_latin1", ("SET NAMES latin1",)),
    Change("isolation", ("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",)),
    Change("read_only", ("SET SESSION TRANSACTION READ ONLY",)),
    Change("foreign_key_checks", ("SET foreign_key_checks = 0",)),
    Change("max_statement_time", ("SET SESSION max_statement_time = 123",)),
    Change("prepare", ("PREPARE sess_stmt FROM 'SELECT 1'",)),
    Change("get_lock", (f"DO GET_LOCK('{LOCK_NAME}', 0)",)),
    Change("procedure_lock", (f"CALL {LOCK_PROCEDURE}()",)),
    # Without SESSION: the next transaction only (also an autocommit write); not flagged.
    Change("next_transaction_read_only", ("SET TRANSACTION READ ONLY",)),
    Change("lock_tables", (f"LOCK TABLES {SHADOWED} WRITE",)),
    Change(
        "temporary_table",
        (f"CREATE TEMPORARY TABLE {SHADOWED} (id INT)", f"INSERT INTO {SHADOWED} VALUES (1)"),
    ),
    Change("use_other_db", (f"USE {OTHER_DB}",)),
    Change("assignment_in_expression", ("DO (@y := 5)",)),
    Change("last_insert_id", ("SELECT LAST_INSERT_ID(7)",)),
]
CHANGE_BY_NAME = {c.name: c for c in CHANGES}

#: Session variables a borrower can change (MariaDB names: ``tx_isolation``, ``tx_read_only``,
#: ``max_statement_time``; the project's CI server is MariaDB).
VARIABLES = [
    "time_zone",
    "sql_mode",
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
    "tx_isolation",
    "tx_read_only",
    "foreign_key_checks",
    "max_statement_time",
    "autocommit",
]

PROBES: list[tuple[str, str]] = [
    *((f"@@{name}", f"SELECT @@session.{name}") for name in VARIABLES),
    ("schema", "SELECT DATABASE()"),
    ("user_variables", "SELECT @user_id, @y"),
    ("last_insert_id", "SELECT LAST_INSERT_ID()"),
    ("named_lock", f"SELECT IS_USED_LOCK('{LOCK_NAME}')"),
    # Before any probe reads a table (each is a transaction, which uses up what SET TRANSACTION
    # set for the next one): a write of nothing fails in a read-only transaction, and a failed
    # write does not use it up.
    ("write", f"DELETE FROM {OTHER} WHERE 1 = 0"),
    ("shadowed_table", f"SELECT COUNT(*) FROM {SHADOWED}"),
    ("unlocked_table", f"SELECT COUNT(*) FROM {OTHER}"),
    ("prepared", "EXECUTE sess_stmt"),
]


def _answer(run: Callable[[], Any]) -> str:
    try:
        return repr(run())
    except pymysql.err.MySQLError as exc:  # part of the fingerprint: "no such statement" & co
        return f"error {exc.args[0]}"


def fingerprint(query: Callable[[str], Any]) -> dict[str, str]:
    """The session's fingerprint, with a blocking ``query(sql) -> rows``. Values are strings
    (JSON-safe: the web tests send them through a response)."""
    return {label: _answer(lambda sql=sql: query(sql)) for label, sql in PROBES}


async def afingerprint(query: Callable[[str], Awaitable[Any]]) -> dict[str, str]:
    """:func:`fingerprint` with an async ``query``."""
    out = {}
    for label, sql in PROBES:
        try:
            out[label] = repr(await query(sql))
        except pymysql.err.MySQLError as exc:
            out[label] = f"error {exc.args[0]}"
    return out


def differences(a: dict[str, str], b: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {k: (a[k], b.get(k, "<missing>")) for k in a if a[k] != b.get(k)}
