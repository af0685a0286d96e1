"""A room stores its queued inputs in batches: one transaction, same outcome.

Everything is real except FreeSWITCH's ``api`` (a recorder that answers
``+OK``): the migrated database (SQLite file and PostgreSQL), the engine, the
:class:`ConferenceService` and its rooms. Inputs are queued while the room's
worker waits, so the worker finds the whole burst when it wakes; the tests
wait for results and log lines, never for time.

What must hold (``fsconf.service.conferences``, "Batches"):

* a burst stores the same rows and callbacks (SequenceNumbers, order,
  parameters) as one input per transaction, in far fewer commits;
* an API request ends its batch: its command goes out, and its caller gets
  the result, only after its rows (and the inputs before it) are stored, and
  before any later input is stored;
* a batch that cannot be stored (the database is away) loses nothing: its
  first input is retried alone, the others wait at the head of the queue, and
  everything is stored in order once the database is back.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from fsconf.conference import events as ev
from fsconf.conference.model import (
    new_conference,
)
from fsconf.esl.frames import ApiResponse
from fsconf.service.conferences import BATCH_LIMIT, ConferenceService, Room
from fsconf.store import models, repositories
from tests.faults.support import watching_logs
from tests.service.support import (
    CONFIG,
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


class Conference:
    """One adopted conference with MEMBERS callers in its room, on a real service."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        name: str,
        *,
        batch_limit: int = BATCH_LIMIT,
        api: Any = None,
    ) -> None:
        self.sessions = sessions
        self.commands: list[str] = []
        self.notified = 0
        ticks = itertools.count()
        self.service = ConferenceService(
            sessions=sessions,
            api=api or self.api,
            config=CONFIG,
            clock=lambda: T0 + timedelta(milliseconds=next(ticks)),
            notify_callbacks=self.notify,
            store_retry_initial=0.01,
            store_retry_cap=0.05,
            batch_limit=batch_limit,
        )
        with sessions.begin() as session:
            account = repositories.ensure_account(session, sid=ACCOUNT, auth_token="t" * 32)
            for n in range(1, MEMBERS + 1):
                if repositories.get_call(session, sid=call_sid(n)) is None:
                    repositories.create_call(session, sid=call_sid(n), account_sid=account.sid)
            row, _created = repositories.get_or_create_active_conference(
                session, account_sid=ACCOUNT, friendly_name=name
            )
            self.sid = row.sid
        self.room: Room = self.service.adopt(new_conference(self.sid, ACCOUNT, name, CONFIG))
        for n in range(1, MEMBERS + 1):
            self.wait(ev.ParticipantArrived(call_sid(n), call_uuid(n), ACCOUNT, name, SETTINGS))
        for n in range(1, MEMBERS + 1):
            self.wait(ev.MemberAdded(call_sid(n), n))
        self.setup_callbacks = self.room.state.sequence_number

    def api(self, command: str) -> ApiResponse:
        self.commands.append(command)
        return ApiResponse("+OK\n", {})

    def notify(self) -> None:
        self.notified += 1

    def wait(self, input_: ev.ConferenceInput) -> Any:
        return self.room.submit(input_).get(timeout=WAIT)

    def callbacks(self) -> list[tuple[Any, ...]]:
        """The conference's outbox rows in id order, with its own SID and name masked."""
        with self.sessions() as session:
            rows = session.scalars(
                select(models.Callback)
                .where(models.Callback.conference_sid == self.sid)
                .order_by(models.Callback.id)
            ).all()
            result = []
            for row in rows:
                params = [
                    (name, "-" if name in ("ConferenceSid", "FriendlyName") else value)
                    for name, value in json.loads(row.params)
                ]
                result.append(
                    (row.sequence_number, row.kind, row.call_sid, row.url, params, row.created)
                )
            return result

    def rows(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The conference row and its participant rows, without their keys' SIDs."""
        with self.sessions() as session:
            conference = session.get(models.Conference, self.sid)
            assert conference is not None
            skip = {"sid", "friendly_name", "date_created"}
            mine = {
                c.key: getattr(conference, c.key)
                for c in models.Conference.__table__.columns
                if c.key not in skip
            }
            participants = [
                {
                    c.key: getattr(p, c.key)
                    for c in models.Participant.__table__.columns
                    if c.key not in ("conference_sid", "date_created")
                }
                for p in session.scalars(
                    select(models.Participant)
                    .where(models.Participant.conference_sid == self.sid)
                    .order_by(models.Participant.call_sid)
                )
            ]
            return mine, participants

    def close(self) -> None:
        self.service.stop()


ACCOUNT = "AC" + "0" * 31 + "1"


@pytest.fixture
def engine(session_factory: sessionmaker[Session]) -> Engine:
    bind = session_factory.kw["bind"]
    assert isinstance(bind, Engine)
    return bind


@pytest.fixture
def conferences() -> Iterator[list[Conference]]:
    """Conferences to stop after the test (requested after the database, so
    stopped before it goes)."""
    made: list[Conference] = []
    yield made
    for conference in made:
        conference.close()


def burst(conference: Conference, inputs: list[ev.ConferenceInput]) -> None:
    """Queue every input at once (the worker wakes only when this greenlet
    waits), the last one as a request; wait for it."""
    for input_ in inputs[:-1]:
        conference.room.put(input_)
    conference.wait(inputs[-1])


def test_burst_stores_the_same_rows_and_callbacks_in_far_fewer_commits(
    session_factory, engine, conferences
):
    one_by_one = Conference(session_factory, "one by one", batch_limit=1)
    batched = Conference(session_factory, "batched")
    conferences += [one_by_one, batched]
    inputs = talking(150)
    commits = Commits(engine)
    try:
        burst(one_by_one, inputs)
        unbatched_commits, commits.count = commits.count, 0
        burst(batched, inputs)
    finally:
        commits.close()

    # One commit per input, against one per batch of up to 64 (64 + 64 + 22).
    assert unbatched_commits == 150
    assert commits.count == 3
    expected = one_by_one.callbacks()
    got = batched.callbacks()
    assert len(got) == one_by_one.setup_callbacks + 150
    assert got == expected
    numbers = [row[0] for row in got]
    assert numbers == list(range(1, len(got) + 1))
    speech = [dict(row[4])["StatusCallbackEvent"] for row in got[-150:]]
    assert speech == ["participant-speech-start", "participant-speech-stop"] * 75
    assert batched.rows() == one_by_one.rows()
    assert batched.room.state.sequence_number == one_by_one.room.state.sequence_number
    # the delivery worker is told once per stored input that queued callbacks
    assert batched.notified == one_by_one.notified


def test_an_api_request_ends_its_batch_and_is_answered_after_its_rows(
    session_factory, engine, conferences
):
    seen: list[tuple[str, int, bool, str]] = []
    conference: Conference | None = None

    def api(command: str) -> ApiResponse:
        # The command of the request goes out after its rows are stored.
        assert conference is not None
        stored = conference.callbacks()
        events = [dict(row[4])["StatusCallbackEvent"] for row in stored]
        with session_factory() as session:
            participant = session.get(models.Participant, (conference.sid, call_sid(2), 1))
            beep = participant.beep if participant is not None else ""
        seen.append((command, len(stored), events[-1] == "participant-modify", beep))
        return ApiResponse("+OK\n", {})

    conference = Conference(session_factory, "api mid-burst", api=api)
    conferences.append(conference)
    before = conference.setup_callbacks
    commits = Commits(engine)
    request = ev.ApiModify(call_sid(2), beep_on_exit=False)
    ready_at_commit: list[bool] = []
    try:
        talks = talking(80)
        for input_ in talks[:40]:
            conference.room.put(input_)
        result = conference.room.submit(request)
        commits.probes.append(lambda: ready_at_commit.append(result.ready()))
        for input_ in talks[40:-1]:
            conference.room.put(input_)
        last = conference.room.submit(talks[-1])
        state = result.get(timeout=WAIT)
        last.get(timeout=WAIT)
    finally:
        commits.close()

    # Two batches: the 40 talking events and the request; then the other 40.
    assert commits.count == 2
    assert ready_at_commit == [False, True]
    # its command went out once its rows and the 40 before it were stored,
    # and before any later input was stored
    assert len(seen) == 1
    command, stored, modify_last, beep = seen[0]
    assert command.startswith(f"uuid_setvar {call_uuid(2)} conference_exit_sound")
    assert (stored, modify_last) == (before + 41, True)
    assert beep == "onEnter"  # the participant row shows the change (it was "true")
    # the caller got the state as of its request, not of the later inputs
    assert state.sequence_number == before + 41
    assert conference.room.state.sequence_number == before + 81
    events = [dict(row[4])["StatusCallbackEvent"] for row in conference.callbacks()[before:]]
    assert events[40] == "participant-modify"
    assert len(events) == 81
    assert [row[0] for row in conference.callbacks()] == list(range(1, before + 82))


def stored_count(engine: Engine, conference_sid: str) -> int:
    """Callback rows, read without a write transaction (fsconf's sessions
    begin with BEGIN IMMEDIATE, which a read-only database refuses)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.driver_connection.execute(
            "SELECT count(*) FROM callbacks WHERE conference_sid = ?", (conference_sid,)
        )
        return int(cursor.fetchone()[0])
    finally:
        raw.close()


def test_a_batch_the_database_refuses_is_retried_in_order_and_nothing_is_lost(
    sqlite_sessions, conferences
):
    engine = sqlite_sessions.kw["bind"]
    conference = Conference(sqlite_sessions, "outage")
    conferences.append(conference)
    before = conference.setup_callbacks
    inputs = [*talking(10), ev.ApiModify(call_sid(3), beep_on_exit=False)]
    commits = Commits(engine)
    try:
        with watching_logs() as logs:
            set_read_only(engine, True)
            for input_ in inputs[:-1]:
                conference.room.put(input_)
            result = conference.room.submit(inputs[-1])
            line = logs.wait_for(lambda text: "waiting for the database" in text, timeout=WAIT)
            # The batch's first input is retried alone; the other ten wait at
            # the head of the queue, unapplied and in order; nothing is stored.
            assert line == (
                f"{conference.sid}: waiting for the database to store 1 rows and 1 callbacks: "
                "OperationalError"
            )
            waiting = list(conference.room.queue.queue)
            assert [item.event for item in waiting] == inputs[1:]
            assert not result.ready()
            assert stored_count(engine, conference.sid) == before
            assert commits.count == 0
            assert conference.commands == []
            set_read_only(engine, False)
            state = result.get(timeout=WAIT)
            back = logs.wait_for(lambda text: "database back" in text, timeout=WAIT)
    finally:
        commits.close()

    assert back.startswith(f"{conference.sid}: database back; stored after")
    # the first input alone, then the rest of the batch in one transaction
    assert commits.count == 2
    stored = conference.callbacks()
    assert [row[0] for row in stored] == list(range(1, before + 12))
    events = [dict(row[4])["StatusCallbackEvent"] for row in stored[before:]]
    assert events == ["participant-speech-start", "participant-speech-stop"] * 5 + [
        "participant-modify"
    ]
    assert [row[2] for row in stored[before:]] == [
        call_sid(1), call_sid(1), call_sid(2), call_sid(2), call_sid(3), call_sid(3),
        call_sid(1), call_sid(1), call_sid(2), call_sid(2), call_sid(3),
    ]  # fmt: skip
    assert state.sequence_number == before + 11
    mine, _participants = conference.rows()
    assert mine["sequence_number"] == before + 11
    assert [c for c in conference.commands if "conference_exit_sound" in c] == [
        f"uuid_setvar {call_uuid(3)} conference_exit_sound "
    ]
