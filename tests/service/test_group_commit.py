"""Group commit: the batches of many rooms share one transaction, same outcome.

Everything is real except FreeSWITCH's ``api`` (a recorder that answers
``+OK``): the migrated database (SQLite file and PostgreSQL), the engine, one
:class:`ConferenceService` with several rooms and its writer. Inputs are
queued while the workers wait, so every worker finds its burst when it wakes;
the tests wait for results and log lines, never for time.

What must hold (``fsconf.service.conferences``, "Batches"):

* the bursts of several rooms are committed together, and each conference
  gets exactly the rows and callbacks it gets alone, one input per
  transaction (SequenceNumbers, order, parameters, conference row);
* a row that one room's batch cannot store (an integrity error) fails that
  room's offending input alone: the other rooms of the same transaction, and
  the room's other inputs, are stored, in order, with no gap;
* while the database is away every room waits on its own first input, in
  order, and everything is stored once it is back;
* the outbox's batch insert (executemany; COPY on PostgreSQL) writes the very
  rows :func:`enqueue` writes, and its errors keep their SQLAlchemy class (a
  refused row is an IntegrityError, which no retry outlives).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import gevent
import gevent.event
import pytest
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from fsconf.conference import events as ev
from fsconf.conference.model import (
    new_conference,
)
from fsconf.errors import StoreError, WebhookError
from fsconf.esl.frames import ApiResponse
from fsconf.service.conferences import BEHIND_INPUTS, ConferenceService, Room, write_batches
from fsconf.store import models, repositories
from fsconf.store.db import make_engine, transaction, transient_cause
from fsconf.store.native import in_native_thread
from fsconf.webhooks.outbox import callback_values, enqueue, insert_callbacks
from tests.faults.support import watching_logs
from tests.service.support import (
    CONFIG,
    HOOK,
    MEMBERS,
    SETTINGS,
    T0,
    WAIT,
    Commits,
    call_sid,
    call_uuid,
    set_read_only,
    talking,
)

ACCOUNT = "AC" + "0" * 31 + "2"


class Rooms:
    """One service; ``rooms`` conferences, each with MEMBERS callers in its room."""

    def __init__(
        self, sessions: sessionmaker[Session], names: list[str], *, batch_limit: int = 64
    ) -> None:
        self.sessions = sessions
        self.notified = 0
        ticks = itertools.count()
        self.service = ConferenceService(
            sessions=sessions,
            api=lambda _command: ApiResponse("+OK\n", {}),
            config=CONFIG,
            clock=lambda: T0 + timedelta(milliseconds=next(ticks)),
            notify_callbacks=self.notify,
            store_retry_initial=0.01,
            store_retry_cap=0.05,
            batch_limit=batch_limit,
        )
        self.rooms: list[Room] = []
        self.first_call: list[int] = []
        for index, name in enumerate(names):
            first = 1 + 100 * index
            with sessions.begin() as session:
                repositories.ensure_account(session, sid=ACCOUNT, auth_token="t" * 32)
                for n in range(first, first + MEMBERS):
                    if repositories.get_call(session, sid=call_sid(n)) is None:
                        repositories.create_call(session, sid=call_sid(n), account_sid=ACCOUNT)
                row, _created = repositories.get_or_create_active_conference(
                    session, account_sid=ACCOUNT, friendly_name=name
                )
                sid = row.sid
            room = self.service.adopt(new_conference(sid, ACCOUNT, name, CONFIG))
            for n in range(first, first + MEMBERS):
                room.submit(
                    ev.ParticipantArrived(call_sid(n), call_uuid(n), ACCOUNT, name, SETTINGS)
                ).get(timeout=WAIT)
            for n in range(first, first + MEMBERS):
                room.submit(ev.MemberAdded(call_sid(n), n)).get(timeout=WAIT)
            self.rooms.append(room)
            self.first_call.append(first)
        self.setup_callbacks = [room.state.sequence_number for room in self.rooms]

    def notify(self) -> None:
        self.notified += 1

    def burst(self, count: int) -> list[Any]:
        """``count`` talking inputs queued in every room without a yield (so
        the workers find their whole burst when they wake), the last one of
        each as a request; its result, per room."""
        results = []
        for room, first in zip(self.rooms, self.first_call, strict=True):
            inputs = talking(count, first)
            for input_ in inputs[:-1]:
                room.put(input_)
            results.append(room.submit(inputs[-1]))
        return results

    def callbacks(self, room: Room) -> list[tuple[Any, ...]]:
        """The room's outbox rows in id order, its own SID, name and calls masked."""
        first = self.first_call[self.rooms.index(room)]
        with self.sessions() as session:
            rows = session.scalars(
                select(models.Callback)
                .where(models.Callback.conference_sid == room.sid)
                .order_by(models.Callback.id)
            ).all()
            masked = []
            for row in rows:
                params = [
                    (name, _mask(name, value, first))
                    for name, value in json.loads(row.params)
                    if name not in ("Timestamp",)
                ]
                masked.append((row.sequence_number, row.kind, params))
            return masked

    def conference_row(self, room: Room) -> models.Conference:
        with self.sessions() as session:
            row = session.get(models.Conference, room.sid)
            assert row is not None
            return row

    def close(self) -> None:
        self.service.stop()


def _mask(name: str, value: str, first_call: int) -> str:
    if name in ("ConferenceSid", "FriendlyName"):
        return "-"
    if name == "CallSid":
        return f"member {int(value[2:], 16) - first_call}"
    return value


@pytest.fixture
def made() -> Iterator[list[Rooms]]:
    """Services to stop after the test (before the database goes)."""
    services: list[Rooms] = []
    yield services
    for rooms in services:
        rooms.close()


def test_the_bursts_of_many_rooms_share_one_transaction(session_factory, made):
    alone = Rooms(session_factory, ["alone"], batch_limit=1)
    together = Rooms(session_factory, [f"room {n}" for n in range(5)])
    made += [alone, together]
    engine = session_factory.kw["bind"]
    burst = 40
    for input_ in talking(burst, alone.first_call[0]):
        alone.rooms[0].submit(input_).get(timeout=WAIT)
    expected = alone.callbacks(alone.rooms[0])

    commits = Commits(engine)
    notified = together.notified
    try:
        states = [result.get(timeout=WAIT) for result in together.burst(burst)]
    finally:
        commits.close()

    # Five rooms' bursts of 40: one transaction, where one per room per batch
    # (or per input) would be five or more.
    assert commits.count == 1
    for room, state in zip(together.rooms, states, strict=True):
        assert together.callbacks(room) == expected
        numbers = [row[0] for row in together.callbacks(room)]
        assert numbers == list(range(1, len(expected) + 1))
        assert state.sequence_number == len(expected)
        assert together.conference_row(room).sequence_number == len(expected)
    # the delivery worker is still told once per stored input with callbacks
    assert together.notified - notified == 5 * burst


def test_a_storm_group_goes_to_sqlite_in_one_trip(session_factory, made, db_backend):
    """Offloaded on SQLite, a group of conference rows and callbacks only (the
    talking bursts of several rooms) goes to the native thread ONCE: its
    UPDATE, INSERT and COMMIT in one trip; each conference still gets exactly
    what it gets alone."""
    if db_backend != "sqlite":
        pytest.skip("the native thread is SQLite's")
    alone = Rooms(session_factory, ["alone"], batch_limit=1)
    together = Rooms(session_factory, [f"room {n}" for n in range(3)])
    made += [alone, together]
    burst = 20
    for input_ in talking(burst, alone.first_call[0]):
        alone.rooms[0].submit(input_).get(timeout=WAIT)
    expected = alone.callbacks(alone.rooms[0])
    trips: list[Any] = []

    def offload(work: Any) -> Any:
        trips.append(work)
        return in_native_thread(work)

    writer = together.service.writer
    writer.offload, writer.offload_rows = offload, 1
    for result in together.burst(burst):
        result.get(timeout=WAIT)

    assert len(trips) == 1  # one group, one trip (it was three: UPDATE, INSERT, COMMIT)
    for room in together.rooms:
        assert together.callbacks(room) == expected
        assert together.conference_row(room).sequence_number == len(expected)


def test_a_one_trip_group_with_a_conference_row_to_insert_falls_back(
    sqlite_sessions, made
):
    """The one trip's UPDATE finds no row for a conference (its very first
    row): the trip stops before the INSERT and the COMMIT, and the usual way
    writes the group in the same transaction: the row INSERTed, the callback
    stored once."""
    from fsconf.conference.effects import Callback, StoreConference
    from fsconf.store.ids import new_sid
    from fsconf.twilio_enums import HttpMethod

    rooms = Rooms(sqlite_sessions, ["existing"])
    made.append(rooms)
    fresh_sid = new_sid("CF")
    fresh = rooms.service.adopt(new_conference(fresh_sid, ACCOUNT, "fresh", CONFIG))
    params = (("ConferenceSid", fresh_sid), ("SequenceNumber", "1"), ("CallSid", call_sid(1)))
    callback = Callback("status", HOOK, HttpMethod.POST, params)
    # Its room settings as the first arrival sets them (a row needs them).
    state = dataclasses.replace(fresh.state, room=rooms.rooms[0].state.room)
    rows = [(StoreConference(state), T0), (callback, T0)]
    trips: list[bool] = []

    def offload(work: Any) -> Any:
        result = in_native_thread(work)
        trips.append(result)
        return result

    write_batches(sqlite_sessions, [(fresh, rows)], offload=offload)

    assert trips[0] is False  # the one trip stopped after its UPDATE
    assert len(trips) > 1  # then the usual way, offloaded too
    with sqlite_sessions() as session:
        row = session.get(models.Conference, fresh_sid)
        stored = session.scalars(
            select(models.Callback).where(models.Callback.conference_sid == fresh_sid)
        ).all()
    assert row is not None and row.friendly_name == "fresh"
    assert [(c.sequence_number, c.call_sid, c.url) for c in stored] == [(1, call_sid(1), HOOK)]


def test_a_row_one_room_cannot_store_fails_that_input_alone(session_factory, made):
    rooms = Rooms(session_factory, ["good", "bad"])
    made.append(rooms)
    good, bad = rooms.rooms
    good_inputs = talking(10, rooms.first_call[0])
    before_bad = talking(5, rooms.first_call[1])
    after_bad = talking(4, rooms.first_call[1])
    # A caller with no calls row: its participant row breaks the foreign key.
    stranger = ev.ParticipantArrived(call_sid(999), call_uuid(999), ACCOUNT, "bad", SETTINGS)

    for input_ in good_inputs[:-1]:
        good.put(input_)
    last_good = good.submit(good_inputs[-1])
    for input_ in before_bad:
        bad.put(input_)
    refused = bad.submit(stranger)
    for input_ in after_bad[:-1]:
        bad.put(input_)
    last_bad = bad.submit(after_bad[-1])

    with pytest.raises(StoreError):
        refused.get(timeout=WAIT)
    last_good.get(timeout=WAIT)
    state = last_bad.get(timeout=WAIT)

    good_events = [dict(row[2])["StatusCallbackEvent"] for row in rooms.callbacks(good)]
    start = rooms.setup_callbacks[0]
    assert good_events[start:] == ["participant-speech-start", "participant-speech-stop"] * 5
    stored = rooms.callbacks(bad)
    start = rooms.setup_callbacks[1]
    # the stranger's join is not there; everything else is, with no gap
    assert [dict(row[2])["StatusCallbackEvent"] for row in stored[start:]] == [
        "participant-speech-start",
        "participant-speech-stop",
        "participant-speech-start",
        "participant-speech-stop",
        "participant-speech-start",
        "participant-speech-start",
        "participant-speech-stop",
        "participant-speech-start",
        "participant-speech-stop",
    ]
    assert [row[0] for row in stored] == list(range(1, len(stored) + 1))
    assert state.sequence_number == len(stored)
    assert state.find(call_sid(999)) is None
    assert rooms.conference_row(bad).sequence_number == len(stored)


def test_while_the_database_is_away_every_room_waits_in_order(sqlite_sessions, made):
    engine = sqlite_sessions.kw["bind"]
    rooms = Rooms(sqlite_sessions, ["first", "second"])
    made.append(rooms)
    inputs = [talking(8, first) for first in rooms.first_call]
    with watching_logs() as logs:
        set_read_only(engine, True)
        results = []
        for room, mine in zip(rooms.rooms, inputs, strict=True):
            for input_ in mine[:-1]:
                room.put(input_)
            results.append(room.submit(mine[-1]))
        for room in rooms.rooms:
            logs.wait_for(lambda text, sid=room.sid: text.startswith(f"{sid}: waiting"), WAIT)
        # each room retries its first input alone; the rest wait, unapplied, in order
        for room, mine in zip(rooms.rooms, inputs, strict=True):
            assert [item.event for item in room.queue.queue] == mine[1:]
        assert not any(result.ready() for result in results)
        set_read_only(engine, False)
        for result in results:
            result.get(timeout=WAIT)
        lines = list(logs.lines)

    for index, room in enumerate(rooms.rooms):
        waiting = [line for line in lines if line.startswith(f"{room.sid}: waiting")]
        assert waiting == [
            f"{room.sid}: waiting for the database to store 1 rows and 1 callbacks: "
            "OperationalError"
        ]
        stored = rooms.callbacks(room)
        assert [row[0] for row in stored] == list(range(1, len(stored) + 1))
        events = [dict(row[2])["StatusCallbackEvent"] for row in stored]
        start = rooms.setup_callbacks[index]
        assert events[start:] == ["participant-speech-start", "participant-speech-stop"] * 4


def test_a_lone_input_is_logged_as_waiting_after_one_failed_attempt(sqlite_sessions, made):
    """The writer's failed attempt counts: with SQLite locked by another
    process each attempt costs a busy timeout, so a second one before saying
    what we wait for would double the silence."""
    engine = sqlite_sessions.kw["bind"]
    rooms = Rooms(sqlite_sessions, ["lone"])
    made.append(rooms)
    room = rooms.rooms[0]
    attempts: list[int] = []

    def on_error(_context: Any) -> None:
        attempts.append(1)  # one driver error per failed attempt

    event.listen(engine, "handle_error", on_error)
    try:
        with watching_logs() as logs:
            set_read_only(engine, True)
            result = room.submit(talking(1, rooms.first_call[0])[0])
            logs.wait_for(lambda text: text.startswith(f"{room.sid}: waiting"), WAIT)
            at_the_log = len(attempts)
            set_read_only(engine, False)
            state = result.get(timeout=WAIT)
    finally:
        event.remove(engine, "handle_error", on_error)
    assert at_the_log == 1
    assert state.sequence_number == rooms.setup_callbacks[0] + 1


def test_the_batch_insert_writes_the_rows_enqueue_writes(session_factory):
    with transaction(session_factory) as session:
        repositories.ensure_account(session, sid=ACCOUNT, auth_token="t" * 32)
        conference, _created = repositories.get_or_create_active_conference(
            session, account_sid=ACCOUNT, friendly_name="rows"
        )
        sid = conference.sid
    params = (("Name", 'é ü "quoted" \u2028'), ("SequenceNumber", "7"))
    moments = [T0, T0 + timedelta(microseconds=123456)]
    for now in moments:
        values: dict[str, Any] = {
            "account_sid": ACCOUNT,
            "url": HOOK,
            "method": "post",
            "params": params,
            "kind": "conference-status",
            "conference_sid": sid,
            "call_sid": None,
            "sequence_number": 7,
            "ordering_key": sid,
            "now": now,
        }
        with transaction(session_factory) as session:
            enqueue(session, **values)
            insert_callbacks(session.connection(), [callback_values(**values)])

    with session_factory() as session:
        rows = session.scalars(select(models.Callback).order_by(models.Callback.id)).all()
        columns = [c.key for c in models.Callback.__table__.columns if c.key != "id"]
        pairs = [
            ({c: getattr(a, c) for c in columns}, {c: getattr(b, c) for c in columns})
            for a, b in zip(rows[::2], rows[1::2], strict=True)
        ]
    assert len(pairs) == 2
    for by_orm, by_executemany in pairs:
        assert by_executemany == by_orm
    assert [orm["created"] for orm, _raw in pairs] == moments
    assert pairs[0][0]["params"] == json.dumps(
        [list(pair) for pair in params], ensure_ascii=False
    )


def test_a_row_the_batch_insert_cannot_store_is_an_integrity_error(session_factory):
    with transaction(session_factory) as session:
        repositories.ensure_account(session, sid=ACCOUNT, auth_token="t" * 32)
    orphan = callback_values(
        account_sid=ACCOUNT,
        url=HOOK,
        method="POST",
        params=(("Name", "value"),),
        kind="conference-status",
        conference_sid="CF" + "f" * 32,  # no such conference: the foreign key refuses it
        call_sid=None,
        sequence_number=1,
        ordering_key="CF" + "f" * 32,
        now=T0,
    )
    with pytest.raises(WebhookError) as caught, transaction(session_factory) as session:
        insert_callbacks(session.connection(), [orphan])
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert transient_cause(caught.value) is None
    with session_factory() as session:
        assert session.scalars(select(models.Callback)).all() == []


@pytest.mark.postgres
def test_a_connection_lost_during_the_copy_is_a_transient_error(db_backend, session_factory):
    if db_backend != "postgres":
        pytest.skip("COPY is the psycopg path")
    with transaction(session_factory) as session:
        repositories.ensure_account(session, sid=ACCOUNT, auth_token="t" * 32)
        conference, _created = repositories.get_or_create_active_conference(
            session, account_sid=ACCOUNT, friendly_name="lost"
        )
        sid = conference.sid
    row = callback_values(
        account_sid=ACCOUNT,
        url=HOOK,
        method="POST",
        params=(("Name", "value"),),
        kind="conference-status",
        conference_sid=sid,
        call_sid=None,
        sequence_number=1,
        ordering_key=sid,
        now=T0,
    )
    engine = session_factory.kw["bind"]
    with engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        # The server ends this session (as when it restarts): the COPY meets a
        # closed connection.
        with engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        with pytest.raises(WebhookError) as caught:
            insert_callbacks(connection, [row])
        connection.invalidate()  # it is dead: no rollback on the way out
    # The driver's error under SQLAlchemy's class for it, as a statement's
    # would be: the rooms retry it (an outage), they do not fail the input.
    assert isinstance(caught.value.__cause__, OperationalError)
    assert transient_cause(caught.value) is caught.value.__cause__


def test_the_service_is_behind_while_a_burst_waits_or_is_being_stored(session_factory, made):
    """What the delivery worker gives way to: from BEHIND_INPUTS inputs queued
    in the rooms or in their batches being stored, until the last of them is
    stored (not as soon as fewer than BEHIND_INPUTS are left: a settle there
    held the hub while the burst's last batches waited); after, not behind."""
    rooms = Rooms(session_factory, ["first", "second"])
    made.append(rooms)
    service = rooms.service
    service.behind_recheck = 0.0  # every look counts (no yield in between)
    service.behind_hangover = 60.0  # however slow the machine
    service.batch_limit = 16  # many batches: the burst drains in steps
    assert service.behind() is False
    half = BEHIND_INPUTS // 2
    for room, first in zip(rooms.rooms, rooms.first_call, strict=True):
        for input_ in talking(half - 1, first):
            room.put(input_)
    assert service.behind() is False  # BEHIND_INPUTS - 2
    for room, first in zip(rooms.rooms, rooms.first_call, strict=True):
        room.put(talking(1, first + 1)[0])
    assert service.behind() is True
    seen_while_storing: list[bool] = []
    submit = service.writer.submit

    def watched(room: Room, rows: list[Any], after: Any = None) -> Any:
        seen_while_storing.append(service.behind())  # the batches are out of the queues
        return submit(room, rows, after)

    service.writer.submit = watched  # type: ignore[method-assign]
    with gevent.Timeout(WAIT):
        while any(room.queue.qsize() or room.taken for room in rooms.rooms):
            gevent.sleep(0.01)
    # Behind at every batch, the last one's included (at most 16 inputs left).
    assert len(seen_while_storing) >= 2 * (half // 16)
    assert all(seen_while_storing), seen_while_storing
    assert service.behind() is False
    service.behind_recheck = 60.0
    rooms.rooms[0].put(talking(1, rooms.first_call[0])[0])
    assert service.behind() is False  # the last answer, reused


def test_the_service_stops_being_behind_after_a_hangover_if_inputs_keep_coming(
    session_factory, made
):
    """Where inputs keep coming after a burst (a steady rate after a stall of
    the database), a few are always waiting: delivery must not wait for none,
    only for ``behind_hangover`` seconds below BEHIND_INPUTS."""
    rooms = Rooms(session_factory, ["only"])
    made.append(rooms)
    service = rooms.service
    service.behind_recheck = 0.0
    (room,) = rooms.rooms
    for input_ in talking(BEHIND_INPUTS, rooms.first_call[0]):
        room.put(input_)  # no yield: the room's worker has not run
    assert service.behind() is True
    # As if the burst had been applied and stored but for a few inputs.
    queued = room.queue.queue
    while len(queued) > 3:
        queued.popleft()
    service.behind_hangover = 60.0
    assert [service.behind() for _ in range(3)] == [True, True, True]
    service.behind_hangover = 0.0
    assert service.behind() is False  # the hangover since the first calm look is over
    # Not behind again until BEHIND_INPUTS wait.
    service.behind_hangover = 60.0
    for input_ in talking(BEHIND_INPUTS - 4, rooms.first_call[0]):
        room.put(input_)
    assert service.behind() is False
    room.put(talking(1, rooms.first_call[0])[0])
    assert service.behind() is True


@pytest.mark.parametrize("offloaded", [False, True])
def test_a_group_writes_its_conference_rows_in_one_statement(
    session_factory, made, db_backend, offloaded
):
    """One UPDATE for every room of a group commit (on PostgreSQL one
    ``UPDATE ... FROM unnest(...)``; offloaded on SQLite, one ``UPDATE ...
    FROM (VALUES ...)`` on the native thread, which SQLAlchemy's events do not
    see; else one executemany); a group that also holds a room's very first
    row still writes every row right (each alone, the new one INSERTed)."""
    from fsconf.store.ids import new_sid

    rooms = Rooms(session_factory, [f"room {n}" for n in range(3)])
    made.append(rooms)
    service = rooms.service
    if offloaded:
        service.writer.offload_rows = 1
    native = offloaded and db_backend == "sqlite"
    engine = session_factory.kw["bind"]
    with session_factory.begin() as session:
        for n in range(900, 900 + MEMBERS):
            repositories.create_call(session, sid=call_sid(n), account_sid=ACCOUNT)
    fresh_sid = new_sid("CF")  # no row yet: its first batch inserts it
    fresh = service.adopt(new_conference(fresh_sid, ACCOUNT, "fresh", CONFIG))
    updates: list[int] = []
    unnested: list[int] = []

    def watch(_conn, _cursor, statement, parameters, _context, executemany) -> None:
        if not statement.lstrip().upper().startswith("UPDATE CONFERENCES"):
            return
        if "unnest(" in statement:  # PostgreSQL: an array per column, a row per element
            updates.append(len(parameters[0]))
            unnested.append(len(parameters[0]))
        else:
            updates.append(len(parameters) if executemany else 1)

    event.listen(engine, "before_cursor_execute", watch)
    try:
        # Queued without a yield: the four workers' batches form one group.
        for room, first in zip(rooms.rooms, rooms.first_call, strict=True):
            for input_ in talking(6, first):
                room.put(input_)
        arrival = ev.ParticipantArrived(call_sid(900), call_uuid(900), ACCOUNT, "fresh", SETTINGS)
        fresh.submit(arrival).get(timeout=WAIT)
        with gevent.Timeout(WAIT):
            while any(room.queue.qsize() or room.taken for room in rooms.rooms):
                gevent.sleep(0.01)
        # One statement for the four rooms; it found three rows, so each again
        # alone (the fresh one then INSERTed).
        assert updates == ([1, 1, 1, 1] if native else [4, 1, 1, 1, 1]), updates
        assert unnested == ([4] if db_backend == "postgres" else [])
        updates.clear()
        for room, first in zip(rooms.rooms, rooms.first_call, strict=True):
            for input_ in talking(2, first):
                room.put(input_)
        with gevent.Timeout(WAIT):
            while any(room.queue.qsize() or room.taken for room in rooms.rooms):
                gevent.sleep(0.01)
        assert updates == ([] if native else [3])  # no fresh row any more: one statement
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    for room in [*rooms.rooms, fresh]:
        row = rooms.conference_row(room)
        assert row.sequence_number == room.state.sequence_number
        assert row.friendly_name == room.state.friendly_name


def test_every_stored_effect_has_a_row_rule():
    """_rows keeps an effect only if _ROW_KEYS knows its type: a storer added
    without a rule would be dropped silently."""
    from fsconf.conference.effects import Callback, StoreConference
    from fsconf.service import conferences

    assert set(conferences._ROW_KEYS) == {*conferences.STORERS, StoreConference, Callback}


@contextlib.contextmanager
def _holding(session_factory, room: Room) -> Iterator[None]:
    """Another connection holds ``room``'s conference row (PostgreSQL: that
    row; SQLite: the whole database) until the block ends."""
    engine = make_engine(session_factory.kw["bind"].url)
    locker = engine.connect()
    transaction_ = locker.begin()
    try:
        locker.execute(
            update(models.Conference)
            .where(models.Conference.sid == room.sid)
            .values(region="held")
        )
        yield
    finally:
        transaction_.rollback()
        locker.close()
        engine.dispose()


def _checked_out(session_factory) -> gevent.event.Event:
    """Set when fsconf's engine next hands a connection out (the writer's)."""
    taken = gevent.event.Event()
    event.listen(session_factory.kw["bind"], "checkout", lambda *_args: taken.set(), once=True)
    return taken


def test_stopping_lets_the_group_commit_in_flight_finish(session_factory, made):
    """``fsconf serve`` stopping: the rooms stop, and the transaction the
    writer has started is let finish within the grace (it used to be killed
    in the middle of its statements), so its rows are stored whole."""
    rooms = Rooms(session_factory, ["room 0", "room 1"])
    made.append(rooms)
    before = [len(rooms.callbacks(room)) for room in rooms.rooms]
    with _holding(session_factory, rooms.rooms[0]):
        taken = _checked_out(session_factory)
        rooms.burst(5)
        assert taken.wait(WAIT)
        stopping = gevent.spawn(rooms.service.stop, WAIT)
        gevent.sleep(0.2)
        assert not stopping.dead  # it waits for the transaction, which waits for the row
    stopping.get(timeout=WAIT / 2)  # once the transaction ends, not at the grace's end

    for room, count in zip(rooms.rooms, before, strict=True):
        assert len(rooms.callbacks(room)) == count + 5
        assert rooms.conference_row(room).sequence_number == count + 5
    rejected = rooms.service.writer.submit(rooms.rooms[0], [])
    with pytest.raises(StoreError, match="stopping"):
        rejected.done.get(timeout=WAIT)


def test_a_group_commit_that_outlasts_the_grace_is_rolled_back(session_factory, made):
    """Past the grace the writer is killed inside its transaction: nothing of
    it is stored, nothing is logged as a failure, and the database is usable."""
    rooms = Rooms(session_factory, ["room 0", "room 1"])
    made.append(rooms)
    before = [len(rooms.callbacks(room)) for room in rooms.rooms]
    with watching_logs("sqlalchemy.pool") as pool_logs, _holding(session_factory, rooms.rooms[0]):
        taken = _checked_out(session_factory)
        rooms.burst(5)
        assert taken.wait(WAIT)
        with gevent.Timeout(WAIT):
            rooms.service.stop(0.2)
        gevent.sleep(0.05)  # the kill lands

    assert [r for r in pool_logs.records if r.levelno >= logging.WARNING] == []
    for room, count in zip(rooms.rooms, before, strict=True):
        assert len(rooms.callbacks(room)) == count
