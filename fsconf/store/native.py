"""SQLite's heavy calls on a native thread, while the gevent hub goes on.

Why: under gevent a SQLite call holds the whole hub; nothing else runs until
it returns. The ``sqlite3`` module releases the GIL inside SQLite (preparing,
stepping, resetting a statement, committing), so the same call made from a
native thread runs on another core while the hub reads events and applies
them. ``fsconf serve``'s group commits use it for the part of a speaker
storm's transaction that is SQLite's own work: the conference rows'
UPDATE (:func:`update_statements`), the outbox INSERT
(:func:`fsconf.webhooks.outbox.native_insert_statements`) and the COMMIT,
all three in one trip (:func:`write_natively`), about 10 µs of every
talking event's ~40 (bench/README.md). :func:`update_natively`,
:func:`commit_natively` and ``insert_callbacks(offload=...)`` make a trip
each, for the transactions that also hold other rows.

The GIL: a thread that comes back from SQLite needs the GIL again, and
CPython makes the running thread give it up only after
``sys.getswitchinterval()`` (5 ms by default). A statement comes back two or
three times (step, reset), so with a busy hub a 2 000-row INSERT that is
16 ms of SQLite took 35-70 ms at 5 ms and 17 ms at 0.2 ms (measured with the
hub running Python the whole time). :func:`tune` sets 0.2 ms. Nothing else
changes for a process with one busy thread: the interval only counts while
another thread waits for the GIL.

Process-wide, so only ``fsconf serve`` (and the benchmarks that measure what
it runs) call :func:`tune`, as with :func:`fsconf.service.collector.tune`.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import gevent
from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fsconf.store.bulk import bound_rows

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Offload(Protocol):
    """Run blocking work somewhere the hub is not, wait for it cooperatively, and
    return its result or raise its exception (:func:`in_native_thread`)."""

    def __call__(self, work: Callable[[], T], /) -> T: ...


SWITCH_INTERVAL = 0.0002
"""Seconds a thread runs before it must give the GIL to one that waits."""


def in_native_thread(work: Callable[[], T]) -> T:
    """Run ``work`` on gevent's native thread pool; this greenlet waits.

    If the waiting greenlet is killed (the service stops), it still waits for
    the thread: ``work`` uses a database connection, which must not go back
    to the pool while SQLite runs on it.
    """
    result = gevent.get_hub().threadpool.spawn(work)
    try:
        return result.get()  # type: ignore[no-any-return]
    except BaseException:
        if not result.ready():
            result.wait()
        raise


def commit_natively(session: Session, offload: Offload) -> None:
    """Commit ``session``'s SQLite transaction through ``offload``.

    SQLAlchemy's own commit, which the caller's :func:`fsconf.store.db.transaction`
    runs next, then finds nothing to do at the driver (``sqlite3`` commits
    only while a transaction is open) and ends the session's bookkeeping as
    usual. Other databases are left to that commit. A driver error leaves as
    SQLAlchemy would raise it (a lost disk is an ``OperationalError``), so the
    caller rolls back and the retry rules see the usual classes.
    """
    session.flush()
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection
    try:
        offload(raw.commit)  # type: ignore[union-attr]
    except sqlite3.Error as error:
        raise DBAPIError.instance(
            "COMMIT", None, error, sqlite3.Error, dialect=connection.dialect
        ) from error


def tune(interval: float = SWITCH_INTERVAL) -> float:
    """Set the interpreter's thread switch interval; returns the previous one."""
    if not interval > 0:
        raise ValueError(f"interval must be positive, not {interval!r}")
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    logger.info("thread switch interval %.2f ms (was %.2f)", interval * 1000, previous * 1000)
    return previous


UPDATE_ROWS_PER_STATEMENT = 64
"""The most rows one ``UPDATE ... FROM (VALUES ...)`` of :func:`update_natively` holds."""

_UPDATE_FROM_SQLITE = (3, 33, 0)  # SQLite's UPDATE ... FROM


Statements = list[tuple[str, list[object]]]
"""SQL texts and their bound values, run in order on the ``sqlite3`` connection."""


def update_statements(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> Statements | None:
    """The ``UPDATE ... FROM (VALUES ...)`` statements of :func:`update_natively`,
    or None when they cannot be used (not SQLite, a SQLite older than 3.33, a
    key twice)."""
    dialect = connection.dialect
    if dialect.name != "sqlite" or sqlite3.sqlite_version_info < _UPDATE_FROM_SQLITE:
        return None
    bound = bound_rows(table, columns, rows, dialect)
    if bound is None:
        return None
    width = len(columns) + 1
    statements: Statements = []
    for start in range(0, len(bound), UPDATE_ROWS_PER_STATEMENT):
        chunk = bound[start : start + UPDATE_ROWS_PER_STATEMENT]
        size = padded(len(chunk))
        values: list[object] = [value for row in chunk for value in row]
        values += [None] * (width * (size - len(chunk)))
        statements.append((_update_from(table, tuple(columns), size), values))
    return statements


def update_natively(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    offload: Offload,
) -> int | None:
    """UPDATE ``table``'s rows by primary key through ``offload`` (SQLite).

    Each row is the key, then the values of ``columns``, as for SQLAlchemy
    (the columns' bind processors are applied here, on the hub). They go as
    a few ``UPDATE ... FROM (VALUES ...)`` statements, a power of two of rows
    each (padded with NULL rows, which match nothing), so the thread waits for
    the GIL once per statement, not once per row as executemany would.
    Returns how many rows SQLite changed; None when it cannot be done so
    (see :func:`update_statements`): the caller updates its own way then.
    """
    statements = update_statements(connection, table, columns, rows)
    if statements is None:
        return None
    return execute_natively(connection, statements, offload)


def write_natively(
    session: Session,
    offload: Offload,
    *,
    updates: Statements,
    expected: int,
    inserts: Statements,
) -> bool:
    """A whole SQLite transaction in ONE trip to the native thread: ``updates``;
    then, if they changed ``expected`` rows, ``inserts`` and the COMMIT.

    Why one trip: each trip ends with the thread handing its result back to
    the hub, and in a storm's last part (every event read, the rooms waiting
    for their commits) the writer's greenlet waited 2-3 ms for its turn after
    each of the three (UPDATE, INSERT, COMMIT). Returns False when the updates
    changed another number of rows (a row to INSERT first, such as a room's
    very first): nothing after them ran and the transaction is still open, for
    the caller to finish its own way. Errors leave as :func:`commit_natively`'s.
    """
    session.flush()
    connection = session.connection()
    raw: Any = connection.connection.driver_connection

    def trip() -> bool:
        if execute(raw, updates) != expected:
            return False
        execute(raw, inserts)
        raw.commit()
        return True

    first = (updates or inserts or [("COMMIT", [])])[0][0]
    return run_natively(connection, offload, trip, statement=first)


def execute_natively(connection: Connection, statements: Statements, offload: Offload) -> int:
    """Run ``statements`` (at least one) through ``offload`` on the transaction's
    own ``sqlite3`` connection; the rows they changed."""
    raw: Any = connection.connection.driver_connection
    return run_natively(
        connection, offload, lambda: execute(raw, statements), statement=statements[0][0]
    )


def execute(raw: Any, statements: Statements) -> int:
    """Run ``statements`` on the ``sqlite3`` connection ``raw``; the rows they changed."""
    return sum(raw.execute(sql, values).rowcount for sql, values in statements)


def run_natively(
    connection: Connection, offload: Offload, work: Callable[[], T], *, statement: str
) -> T:
    """``offload(work)``, with ``sqlite3``'s errors raised as SQLAlchemy raises
    them (so the caller rolls back and the retry rules see the usual classes);
    ``statement``: the SQL the error names (its first 80 characters)."""
    try:
        return offload(work)
    except sqlite3.Error as error:
        raise DBAPIError.instance(
            statement[:80], None, error, sqlite3.Error, dialect=connection.dialect
        ) from error


def padded(count: int) -> int:
    """The power of two a statement of ``count`` rows is padded to."""
    size = 1
    while size < count:
        size *= 2
    return size


_UPDATES: dict[tuple[str, tuple[str, ...], int], str] = {}


def _update_from(table: Table, columns: tuple[str, ...], size: int) -> str:
    key = (table.name, columns, size)
    sql = _UPDATES.get(key)
    if sql is None:
        (primary,) = table.primary_key.columns
        width = len(columns) + 1
        row = "(" + ", ".join("?" * width) + ")"
        assignments = ", ".join(f"{name} = v.column{n}" for n, name in enumerate(columns, 2))
        # The table's own column names and placeholders only: the values are bound.
        head = f"UPDATE {table.name} SET {assignments}"  # noqa: S608
        body = f" FROM (VALUES {', '.join([row] * size)}) AS v"
        sql = _UPDATES[key] = head + body + f" WHERE {table.name}.{primary.name} = v.column1"
    return sql
