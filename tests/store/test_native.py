"""SQLite's heavy calls on a native thread (fsconf.store.native).

What must hold: the work runs on another thread while the hub goes on, and
its result or exception comes back to the waiting greenlet; a killed waiter
still waits for the thread (the connection must not be reused under it);
:func:`commit_natively` commits a SQLite transaction there (another
connection sees it before SQLAlchemy's own commit runs), leaves PostgreSQL
to SQLAlchemy, and turns a failed COMMIT into SQLAlchemy's error class, so
:func:`transaction` rolls back and raises StoreError. Real SQLite files,
real threads.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent import monkey
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from fsconf.errors import StoreError
from fsconf.store import native
from fsconf.store.db import make_engine, make_session_factory, transaction
from fsconf.store.native import commit_natively, in_native_thread

thread_ident = monkey.get_original("_thread", "get_ident")
real_sleep = monkey.get_original("time", "sleep")
WAIT = 10.0


class ThreadRecorder:
    """An offload that runs the work on a native thread and records which."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def __call__(self, work: Any) -> Any:
        def recorded() -> Any:
            self.threads.append(thread_ident())
            return work()

        return in_native_thread(recorded)


def test_work_runs_on_another_thread_while_the_hub_goes_on():
    ticks: list[int] = []

    def ticker() -> None:
        while True:
            ticks.append(1)
            gevent.sleep(0.005)

    greenlet = gevent.spawn(ticker)
    gevent.sleep(0)
    try:

        def work() -> int:
            real_sleep(0.2)  # blocks its thread, as SQLite does
            return thread_ident()

        before = len(ticks)
        worker = in_native_thread(work)
    finally:
        greenlet.kill()
    assert worker != thread_ident()
    assert len(ticks) - before >= 10  # the hub ran the ticker meanwhile


def test_an_exception_of_the_work_reaches_the_waiter():
    def work() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        in_native_thread(work)


def test_a_killed_waiter_still_waits_for_the_thread():
    finished: list[bool] = []

    def work() -> None:
        real_sleep(0.2)
        finished.append(True)

    waiter = gevent.spawn(in_native_thread, work)
    gevent.sleep(0.02)  # the thread is inside work
    waiter.kill(block=True, timeout=WAIT)
    assert finished == [True]


def _table(url: str) -> Any:
    engine = make_engine(url)
    with transaction(make_session_factory(engine)) as session:
        session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, parent INTEGER)"))
    return engine


def test_commit_natively_commits_on_a_native_thread(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/native.db"
    engine = _table(url)
    sessions = make_session_factory(engine)
    offload = ThreadRecorder()
    threads = offload.threads
    seen_before_sqlalchemy_commits: list[int] = []

    try:
        with transaction(sessions) as session:
            session.execute(text("INSERT INTO t (id) VALUES (1)"))
            commit_natively(session, offload)
            other = sqlite3.connect(tmp_path / "native.db")
            seen_before_sqlalchemy_commits += [r[0] for r in other.execute("SELECT id FROM t")]
            other.close()
        with transaction(sessions) as session:  # the connection is usable again
            session.execute(text("INSERT INTO t (id) VALUES (2)"))
        with sessions() as session:
            assert session.execute(text("SELECT id FROM t ORDER BY id")).scalars().all() == [1, 2]
    finally:
        engine.dispose()
    assert seen_before_sqlalchemy_commits == [1]
    assert len(threads) == 1 and threads[0] != thread_ident()


def test_a_commit_that_fails_on_the_thread_rolls_back_as_store_error(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/native.db"
    engine = _table(url)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        session.execute(text("DROP TABLE t"))
        session.execute(
            text("CREATE TABLE t (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES t(id))")
        )
    try:
        with pytest.raises(StoreError) as caught, transaction(sessions) as session:
            # A deferred foreign key is checked by COMMIT itself: the commit fails.
            session.execute(text("PRAGMA defer_foreign_keys=ON"))
            session.execute(text("INSERT INTO t (id, parent) VALUES (1, 99)"))
            commit_natively(session, in_native_thread)
        assert isinstance(caught.value.__cause__, IntegrityError)
        with sessions() as session:
            assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
    finally:
        engine.dispose()


def test_commit_natively_leaves_other_databases_to_sqlalchemy(session_factory, db_backend):
    calls: list[Any] = []

    def offload(work: Any) -> Any:
        calls.append(work)
        return in_native_thread(work)

    with transaction(session_factory) as session:
        session.execute(text("CREATE TABLE native_t (id INTEGER PRIMARY KEY)"))
        session.execute(text("INSERT INTO native_t (id) VALUES (7)"))
        commit_natively(session, offload)
    with session_factory() as session:
        assert session.execute(text("SELECT id FROM native_t")).scalars().all() == [7]
    assert len(calls) == (1 if db_backend == "sqlite" else 0)


def test_tune_sets_the_switch_interval_and_refuses_nonsense():
    before = sys.getswitchinterval()
    try:
        assert native.tune() == before
        assert sys.getswitchinterval() == pytest.approx(native.SWITCH_INTERVAL)
        for bad in (0, -1.0):
            with pytest.raises(ValueError, match="positive"):
                native.tune(bad)
    finally:
        sys.setswitchinterval(before)


COLUMNS = ("name", "visits", "seen")


def _people(url: str) -> tuple[Any, Any]:
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from fsconf.store.models import UTCDateTime

    metadata = MetaData()
    table = Table(
        "people",
        metadata,
        Column("sid", String(34), primary_key=True),
        Column("name", String(64)),
        Column("visits", Integer),
        Column("seen", UTCDateTime()),
    )
    engine = make_engine(url)
    metadata.create_all(engine)
    return engine, table


def test_update_natively_updates_by_key_as_sqlalchemy_would(tmp_path: Path):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, select

    from fsconf.store.native import update_natively

    engine, table = _people(f"sqlite:///{tmp_path}/people.db")
    t0 = datetime(2026, 11, 26, 4, 0, 0, 123456, tzinfo=UTC)
    keys = [f"PE{n:032d}" for n in range(300)]
    offload = ThreadRecorder()
    threads = offload.threads

    try:
        with engine.begin() as connection:
            connection.execute(insert(table), [{"sid": k, "name": "-", "visits": 0} for k in keys])
        first = 0
        for count in (1, 3, 64, 65, 130):  # one row, padded, one full statement, several
            chosen = keys[first : first + count]
            rows = [
                [k, f"name {k[-3:]}", n, t0 + timedelta(seconds=n)] for n, k in enumerate(chosen)
            ]
            with engine.begin() as connection:
                changed = update_natively(connection, table, COLUMNS, rows, offload)
            assert changed == count
            first += count
        with engine.begin() as connection:
            absent = [["PE" + "x" * 32, "nobody", 1, None], [keys[0], "again", 9, None]]
            assert update_natively(connection, table, COLUMNS, absent, offload) == 1
            twice = [[keys[1], "a", 1, None], [keys[1], "b", 2, None]]
            assert update_natively(connection, table, COLUMNS, twice, offload) is None
        with engine.connect() as connection:
            stored = {row.sid: row for row in connection.execute(select(table))}
    finally:
        engine.dispose()
    again = stored[keys[0]]
    assert (again.name, again.visits, again.seen) == ("again", 9, None)
    # read back through SQLAlchemy's own type: the same moments, aware UTC
    assert stored[keys[5]].seen == t0 + timedelta(seconds=1)  # 2nd row of the 64-row update
    assert stored[keys[5]].name == f"name {keys[5][-3:]}"
    assert all(stored[k].visits is not None for k in keys[:first])
    assert [stored[k].name for k in keys[first:]] == ["-"] * (len(keys) - first)
    assert len(threads) == 6 and thread_ident() not in threads


def test_update_natively_declines_other_databases(session_factory, db_backend):
    from sqlalchemy import Column, MetaData, String, Table

    from fsconf.store.native import update_natively

    if db_backend == "sqlite":
        pytest.skip("SQLite is what it does")
    table = Table("people", MetaData(), Column("sid", String(34), primary_key=True))
    with transaction(session_factory) as session:
        assert update_natively(session.connection(), table, (), [["PE1"]], in_native_thread) is None


def _two_people(tmp_path: Path) -> tuple[Any, Any, Any, list[str]]:
    from sqlalchemy import insert

    engine, table = _people(f"sqlite:///{tmp_path}/people.db")
    keys = [f"PE{n:032d}" for n in range(2)]
    with engine.begin() as connection:
        connection.execute(insert(table), [{"sid": k, "name": "-", "visits": 0} for k in keys])
    return engine, table, make_session_factory(engine), keys


def _names(path: Path) -> dict[str, str]:
    """What another connection sees (committed rows only)."""
    other = sqlite3.connect(path)
    try:
        return dict(other.execute("SELECT sid, name FROM people"))
    finally:
        other.close()


NEW_PERSON = ("INSERT INTO people (sid, name) VALUES (?, ?)", ["PE-new", "new"])


def test_write_natively_runs_updates_inserts_and_commit_in_one_trip(tmp_path: Path):
    engine, table, sessions, keys = _two_people(tmp_path)
    offload = ThreadRecorder()
    try:
        with transaction(sessions) as session:
            rows = [[keys[0], "a", 1, None], [keys[1], "b", 2, None]]
            updates = native.update_statements(session.connection(), table, COLUMNS, rows)
            assert updates is not None
            done = native.write_natively(
                session, offload, updates=updates, expected=2, inserts=[NEW_PERSON]
            )
            # Committed by the trip itself, before SQLAlchemy's own commit.
            seen_inside = _names(tmp_path / "people.db")
    finally:
        engine.dispose()
    assert done is True
    assert seen_inside == {keys[0]: "a", keys[1]: "b", "PE-new": "new"}
    assert len(offload.threads) == 1 and offload.threads[0] != thread_ident()


def test_write_natively_stops_after_updates_that_missed_a_row(tmp_path: Path):
    """Fewer rows changed than expected (a row to INSERT first): the inserts
    and the COMMIT do not run; the transaction stays open for the caller."""
    engine, table, sessions, keys = _two_people(tmp_path)
    try:
        with transaction(sessions) as session:
            rows = [["PE" + "x" * 32, "nobody", 1, None], [keys[0], "a", 1, None]]
            updates = native.update_statements(session.connection(), table, COLUMNS, rows)
            assert updates is not None
            done = native.write_natively(
                session, in_native_thread, updates=updates, expected=2, inserts=[NEW_PERSON]
            )
            seen_inside = _names(tmp_path / "people.db")
            mine = dict(session.execute(text("SELECT sid, name FROM people")).all())
        after = _names(tmp_path / "people.db")  # SQLAlchemy's commit, as usual
    finally:
        engine.dispose()
    assert done is False
    assert seen_inside == {keys[0]: "-", keys[1]: "-"}  # nothing committed by the trip
    assert mine == {keys[0]: "a", keys[1]: "-"}  # the update, in the open transaction
    assert after == {keys[0]: "a", keys[1]: "-"}  # and no insert ran


def test_write_natively_failing_on_the_thread_rolls_back_as_store_error(tmp_path: Path):
    engine, table, sessions, keys = _two_people(tmp_path)
    duplicate = ("INSERT INTO people (sid, name) VALUES (?, ?)", [keys[1], "again"])
    try:
        with pytest.raises(StoreError) as caught, transaction(sessions) as session:
            updates = native.update_statements(
                session.connection(), table, COLUMNS, [[keys[0], "a", 1, None]]
            )
            assert updates is not None
            native.write_natively(
                session, in_native_thread, updates=updates, expected=1, inserts=[duplicate]
            )
        after = _names(tmp_path / "people.db")
    finally:
        engine.dispose()
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert after == {keys[0]: "-", keys[1]: "-"}  # the update was rolled back with it
