"""Many rows updated by primary key in one statement (PostgreSQL).

Why: SQLAlchemy's executemany of an UPDATE runs, with psycopg 3, in pipeline
mode: a statement per row, and under gevent the driver waits on its socket a
few times per row, each wait a trip through the hub. A speaker storm's group
commit updates a hundred conference rows (each room's SequenceNumber), and
those waits cost the hub ~4 µs per talking event (``python -m bench.pipeline
--database-url postgresql...``: 42.5 -> 38.6 µs of main-thread CPU per event in
an A/B of the two; bench/README.md).

What: ``UPDATE t SET c = v.c, ... FROM unnest(%s::type[], ...) AS v (...)
WHERE t.pk = v.pk`` binds one array per column: one statement and one wait,
and the same text for any number of rows (psycopg prepares it once it has run
a few times). SQLite has its own way (:mod:`fsconf.store.native`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table

_PROCESSORS: dict[tuple[str, tuple[str, ...], str], tuple[Callable[[Any], Any] | None, ...]] = {}


def bind_processors(
    table: Table, columns: Sequence[str], dialect: Dialect
) -> tuple[Callable[[Any], Any] | None, ...]:
    """The bind processor SQLAlchemy applies to each of ``columns`` (None: none)."""
    key = (table.name, tuple(columns), dialect.name)
    found = _PROCESSORS.get(key)
    if found is None:
        found = _PROCESSORS[key] = tuple(
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
        )
    return found


def bound_rows(
    table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], dialect: Dialect
) -> list[list[Any]] | None:
    """``rows`` (each the key, then the values of ``columns``) with the
    columns' bind processors applied, as SQLAlchemy would bind them; None when
    a key is there twice (which value would win an UPDATE is not defined)."""
    if len({row[0] for row in rows}) != len(rows):
        return None
    processors = bind_processors(table, columns, dialect)
    return [
        [
            row[0],
            *(
                value if process is None or value is None else process(value)
                for value, process in zip(row[1:], processors, strict=True)
            ),
        ]
        for row in rows
    ]


def update_by_key(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> int | None:
    """UPDATE ``table``'s rows by primary key in one statement (PostgreSQL).

    Each row is the key, then the values of ``columns`` (their bind processors
    are applied here). Returns how many rows PostgreSQL changed; None on
    another database, or when a key is there twice (which value wins is not
    defined): the caller updates its own way then.
    """
    dialect = connection.dialect
    if dialect.name != "postgresql" or not rows:
        return None
    bound = bound_rows(table, columns, rows, dialect)
    if bound is None:
        return None
    (primary,) = table.primary_key.columns
    names = (primary.name, *columns)
    arrays = tuple(list(column) for column in zip(*bound, strict=True))
    result = connection.exec_driver_sql(_unnest_update(table, names, dialect), arrays)
    return int(result.rowcount)


_UPDATES: dict[tuple[str, tuple[str, ...], str], str] = {}
_LENGTH = re.compile(r"\(\d+\)")


def _unnest_update(table: Table, names: tuple[str, ...], dialect: Dialect) -> str:
    key = (table.name, names, dialect.name)
    sql = _UPDATES.get(key)
    if sql is None:
        primary, *columns = names
        # The column's type without its length: an explicit cast to
        # VARCHAR(16) would cut a longer value, where the assignment to the
        # column refuses it, as the row-by-row UPDATE does.
        arrays = ", ".join(
            f"%s::{_LENGTH.sub('', table.c[name].type.compile(dialect=dialect))}[]"
            for name in names
        )
        assignments = ", ".join(f"{name} = v.{name}" for name in columns)
        # The table's own names and placeholders only: the values are bound.
        sql = _UPDATES[key] = (
            f"UPDATE {table.name} SET {assignments} "  # noqa: S608
            f"FROM unnest({arrays}) AS v ({', '.join(names)}) "
            f"WHERE {table.name}.{primary} = v.{primary}"
        )
    return sql
