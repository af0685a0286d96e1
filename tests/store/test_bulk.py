"""Many rows updated by primary key in one statement (fsconf.store.bulk).

What must hold, on a migrated PostgreSQL database: the named columns of the
named rows get exactly the values SQLAlchemy's own UPDATE would write (bind
processors applied: aware timestamps, NULLs), other columns and rows stay, the
count is the rows changed (a key with no row counts nothing), a value too long
for its column is refused as the row-by-row UPDATE refuses it (never cut), and
it is one statement. Elsewhere (SQLite), or with a key twice, it declines
(None) and writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import DBAPIError

from fsconf.errors import StoreError
from fsconf.store import models, repositories
from fsconf.store.bulk import update_by_key
from fsconf.store.db import transaction
from tests.store.factories import make_account

CONFERENCES = models.Conference.__table__
T0 = datetime(2026, 11, 26, 9, 30, 1, 250000, tzinfo=UTC)
COLUMNS = ("sequence_number", "status", "region", "start_time", "date_updated")


def _conferences(session_factory, count: int) -> list[str]:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        sids = []
        for n in range(count):
            row, _created = repositories.get_or_create_active_conference(
                session, account_sid=account_sid, friendly_name=f"room {n}"
            )
            sids.append(row.sid)
    return sids


def _rows(session_factory, sids: list[str]) -> dict[str, models.Conference]:
    with session_factory() as session:
        found = session.scalars(select(models.Conference).where(models.Conference.sid.in_(sids)))
        return {row.sid: row for row in found}


def test_the_rows_get_their_values_in_one_statement(session_factory, db_backend):
    if db_backend != "postgres":
        pytest.skip("PostgreSQL's statement (SQLite: see test_declines_where_it_cannot)")
    sids = _conferences(session_factory, 3)
    before = _rows(session_factory, sids)
    engine = session_factory.kw["bind"]
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    rows = [
        [sids[0], 7, "in-progress", "us1", T0, T0 + timedelta(seconds=1)],
        [sids[1], 9, "completed", None, None, T0 + timedelta(seconds=2)],
        ["CF" + "0" * 32, 1, "init", None, None, T0],  # no such row
    ]
    try:
        with transaction(session_factory) as session:
            changed = update_by_key(session.connection(), CONFERENCES, COLUMNS, rows)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert changed == 2
    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1
    after = _rows(session_factory, sids)
    first, second, third = (after[sid] for sid in sids)
    assert (first.sequence_number, first.status, first.region) == (7, "in-progress", "us1")
    assert first.start_time == T0 and first.date_updated == T0 + timedelta(seconds=1)
    assert (second.sequence_number, second.status, second.region) == (9, "completed", None)
    assert second.start_time is None
    assert third.sequence_number == before[sids[2]].sequence_number  # not named: untouched
    assert third.date_updated == before[sids[2]].date_updated
    assert first.friendly_name == "room 0"  # a column not named: untouched


def test_a_value_too_long_is_refused_not_cut(session_factory, db_backend):
    if db_backend != "postgres":
        pytest.skip("PostgreSQL's statement")
    (sid,) = _conferences(session_factory, 1)
    with pytest.raises(StoreError) as caught, transaction(session_factory) as session:
        update_by_key(session.connection(), CONFERENCES, ("region",), [[sid, "x" * 17]])
    assert isinstance(caught.value.__cause__, DBAPIError)
    assert _rows(session_factory, [sid])[sid].region is None


def test_declines_where_it_cannot(session_factory, db_backend):
    """SQLite, or a key twice (which value would win is not defined): None,
    nothing written; the caller writes its own way."""
    sids = _conferences(session_factory, 1)
    twice = [[sids[0], 5, "init", None, None, T0], [sids[0], 6, "init", None, None, T0]]
    with transaction(session_factory) as session:
        connection = session.connection()
        assert update_by_key(connection, CONFERENCES, COLUMNS, twice) is None
        assert update_by_key(connection, CONFERENCES, COLUMNS, []) is None
        if db_backend == "sqlite":
            once = twice[:1]
            assert update_by_key(connection, CONFERENCES, COLUMNS, once) is None
    assert _rows(session_factory, sids)[sids[0]].sequence_number == 0
