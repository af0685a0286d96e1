"""Repository functions against a migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import gevent
import gevent.event
import pytest
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fsconf.errors import StoreError
from fsconf.store import repositories as repo
from fsconf.store.db import make_engine, make_session_factory, transaction
from fsconf.store.ids import is_sid
from fsconf.store.models import Account, Base, Conference, Participant
from tests.store.factories import TOKEN, make_account, make_call

Factory = sessionmaker[Session]
T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


# --- accounts -------------------------------------------------------------------


def test_accounts(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account = repo.create_account(
            session, auth_token=TOKEN, friendly_name="main", voice_url="http://app/voice", now=T0
        )
        sid = account.sid
    assert is_sid(sid, "AC")
    assert TOKEN not in repr(account)
    with transaction(session_factory) as session:
        again = repo.ensure_account(session, sid=sid, auth_token="other")
        assert again.auth_token == TOKEN  # existing account unchanged
        fixed = repo.ensure_account(session, sid="AC" + "1" * 32, auth_token="t2")
        assert fixed.sid == "AC" + "1" * 32
    with session_factory() as session:
        loaded = repo.get_account(session, sid=sid)
        assert loaded is not None
        assert loaded.voice_url == "http://app/voice"
        assert loaded.voice_method == "POST"
        assert loaded.status == "active"
        assert loaded.date_created == T0
        assert loaded.date_created.tzinfo is not None
        assert {a.sid for a in repo.list_accounts(session)} == {sid, "AC" + "1" * 32}
        assert repo.get_account(session, sid="AC" + "0" * 32) is None


def test_account_validation(session_factory: Factory) -> None:
    with session_factory() as session:
        with pytest.raises(StoreError):
            repo.create_account(session, auth_token="")
        with pytest.raises(StoreError):
            repo.create_account(session, auth_token="t", sid="ACnope")
        with pytest.raises(StoreError):
            repo.create_account(session, auth_token="t", voice_method="PUT")


# --- calls ----------------------------------------------------------------------


def test_call_lifecycle_stamps_times(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account = make_account(session)
        call = make_call(session, account_sid=account.sid, status="queued")
        sid = call.sid
        assert call.start_time is None
    with transaction(session_factory) as session:
        repo.update_call_status(session, sid=sid, status="ringing", now=T0)
        repo.update_call_status(session, sid=sid, status="in-progress", now=T0 + timedelta(1))
        repo.update_call_status(session, sid=sid, status="in-progress", now=T0 + timedelta(2))
        repo.update_call_status(session, sid=sid, status="completed", now=T0 + timedelta(3))
    with session_factory() as session:
        loaded = repo.get_call(session, sid=sid)
        assert loaded is not None
        assert (loaded.status, loaded.start_time, loaded.answer_time, loaded.end_time) == (
            "completed",
            T0,
            T0 + timedelta(1),
            T0 + timedelta(3),
        )
        with pytest.raises(StoreError, match="completed"):
            repo.update_call_status(session, sid=sid, status="ringing")
        with pytest.raises(StoreError):
            repo.update_call_status(session, sid=sid, status="bogus")
        with pytest.raises(repo.NotFoundError):
            repo.update_call_status(session, sid="CA" + "0" * 32, status="ringing")


def test_call_requires_a_call_sid_and_an_account(session_factory: Factory) -> None:
    with session_factory() as session:
        with pytest.raises(StoreError):
            repo.create_call(session, sid="CF" + "0" * 32, account_sid="AC" + "0" * 32)
        with pytest.raises(StoreError):  # foreign key: the account does not exist
            repo.create_call(session, sid="CA" + "0" * 32, account_sid="AC" + "0" * 32)


# --- conferences ----------------------------------------------------------------


def test_create_and_read_conference(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account = make_account(session)
        conference = repo.create_conference(
            session,
            account_sid=account.sid,
            friendly_name="Room 1234",
            status_callback="http://app/status",
            status_callback_events="start end join join leave",
            recording_status_callback_events=["in-progress", "completed"],
            region="ie1",
            now=T0,
        )
        sid, account_sid = conference.sid, account.sid
    assert is_sid(sid, "CF")
    with session_factory() as session:
        loaded = repo.get_conference(session, sid=sid)
        assert loaded is not None
        assert loaded.status == "init"
        assert loaded.status_callback_events == "start end join leave"
        assert loaded.status_callback_event_set == {"start", "end", "join", "leave"}
        assert loaded.recording_status_callback_events == "in-progress completed"
        assert loaded.sequence_number == 0
        assert loaded.max_participants == 250
        assert loaded.region == "ie1"
        assert loaded.date_created == T0
        found = repo.find_active_conference(
            session, account_sid=account_sid, friendly_name="Room 1234"
        )
        assert found is not None and found.sid == sid


def test_database_refuses_a_second_active_conference(session_factory: Factory) -> None:
    """The rule lives in the database: a raw INSERT hits the partial unique index."""
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        repo.create_conference(session, account_sid=account_sid, friendly_name="dup")
    with session_factory() as session:
        session.add(
            Conference(
                sid="CF" + "a" * 32,
                account_sid=account_sid,
                friendly_name="dup",
                status="in-progress",
                date_created=T0,
                date_updated=T0,
            )
        )
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()


def test_repository_wraps_the_violation_as_store_error(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        first = repo.create_conference(session, account_sid=account_sid, friendly_name="dup")
        with pytest.raises(repo.ConferenceExistsError) as caught:
            repo.create_conference(session, account_sid=account_sid, friendly_name="dup")
        assert isinstance(caught.value, StoreError)
        assert isinstance(caught.value.__cause__, IntegrityError)
        # The savepoint kept the transaction usable.
        assert repo.get_conference(session, sid=first.sid) is not None
        # Another account may use the same name.
        other = make_account(session)
        repo.create_conference(session, account_sid=other.sid, friendly_name="dup")
        # Once completed, the name is free again.
        repo.end_conference(session, sid=first.sid, reason="last-participant-left")
        second = repo.create_conference(session, account_sid=account_sid, friendly_name="dup")
        assert second.sid != first.sid
    with session_factory() as session:
        conferences = repo.list_conferences(session, account_sid=account_sid)
        assert [c.status for c in conferences].count("completed") == 1
        assert len(conferences) == 2


def test_get_or_create_active_conference(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        first, created = repo.get_or_create_active_conference(
            session,
            account_sid=account_sid,
            friendly_name="moderated",
            status_callback="http://first/status",
        )
        assert created
        again, created_again = repo.get_or_create_active_conference(
            session,
            account_sid=account_sid,
            friendly_name="moderated",
            status_callback="http://second/status",
        )
        assert not created_again
        assert again.sid == first.sid
        # Twilio: the first participant's settings win.
        assert again.status_callback == "http://first/status"


def test_get_or_create_is_race_safe(
    session_factory: Factory, db_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers that both saw no conference: one creates it, the other reads it."""
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
    if db_backend == "sqlite":
        # SQLite serialises writers, so force the interleaving: the first
        # lookup misses, as if the winner had not committed yet.
        with transaction(session_factory) as session:
            winner = repo.create_conference(session, account_sid=account_sid, friendly_name="r")
        real_find = repo.find_active_conference
        calls = []

        def first_miss(session: Session, **kwargs: str) -> Conference | None:
            calls.append(kwargs)
            return None if len(calls) == 1 else real_find(session, **kwargs)

        monkeypatch.setattr(repo, "find_active_conference", first_miss)
        with transaction(session_factory) as session:
            found, created = repo.get_or_create_active_conference(
                session, account_sid=account_sid, friendly_name="r"
            )
        assert (found.sid, created) == (winner.sid, False)
        return

    # PostgreSQL: two real transactions in two greenlets.  A inserts and waits;
    # B's read misses A's uncommitted row and its INSERT blocks on the unique
    # index until A commits, then fails and re-reads.
    a_inserted = gevent.event.Event()
    results: dict[str, tuple[str, bool]] = {}
    violations: list[object] = []
    real_insert = repo._insert_in_savepoint

    def spying_insert(session: Session, row: object) -> IntegrityError | None:
        violation = real_insert(session, row)
        if violation is not None:
            violations.append(violation)
        return violation

    monkeypatch.setattr(repo, "_insert_in_savepoint", spying_insert)

    def writer_a() -> None:
        with transaction(session_factory) as session:
            conference, created = repo.get_or_create_active_conference(
                session, account_sid=account_sid, friendly_name="race"
            )
            results["a"] = (conference.sid, created)
            a_inserted.set()
            gevent.sleep(0.2)  # hold the transaction open while B runs into it

    def writer_b() -> None:
        a_inserted.wait(5)
        with transaction(session_factory) as session:
            conference, created = repo.get_or_create_active_conference(
                session, account_sid=account_sid, friendly_name="race"
            )
            results["b"] = (conference.sid, created)

    greenlets = [gevent.spawn(writer_a), gevent.spawn(writer_b)]
    gevent.joinall(greenlets, timeout=10, raise_error=True)
    assert results["a"][1] is True
    assert results["b"] == (results["a"][0], False)
    assert len(violations) == 1  # B really took the unique-violation path


def test_start_and_end_conference(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        call = make_call(session, account_sid=account_sid)
        sid = repo.create_conference(session, account_sid=account_sid, friendly_name="x").sid
        repo.start_conference(session, sid=sid, now=T0)
        repo.start_conference(session, sid=sid, now=T0 + timedelta(1))  # idempotent
        repo.end_conference(
            session,
            sid=sid,
            reason="participant-with-end-conference-on-exit-left",
            call_sid_ending_conference=call.sid,
            participant_label_ending_conference="moderator",
            now=T0 + timedelta(2),
        )
    with session_factory() as session:
        conference = repo.get_conference(session, sid=sid)
        assert conference is not None
        assert conference.status == "completed"
        assert conference.start_time == T0
        assert conference.end_time == T0 + timedelta(2)
        assert conference.reason_ended == "participant-with-end-conference-on-exit-left"
        assert conference.call_sid_ending_conference == call.sid
        assert conference.participant_label_ending_conference == "moderator"
        with pytest.raises(StoreError, match="already completed"):
            repo.end_conference(session, sid=sid, reason="conference-ended-via-api")
        with pytest.raises(StoreError):
            repo.start_conference(session, sid=sid)
        assert repo.list_conferences(session, status="completed")[0].sid == sid
        assert repo.list_conferences(session, status="in-progress") == []
        with pytest.raises(StoreError):
            repo.list_conferences(session, status="bogus")


def test_list_conferences_newest_first_and_filters(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        sids = [
            repo.create_conference(
                session,
                account_sid=account_sid,
                friendly_name=f"room-{n}",
                now=T0 + timedelta(minutes=n),
            ).sid
            for n in range(3)
        ]
    with session_factory() as session:
        listed = repo.list_conferences(session, account_sid=account_sid)
        assert [c.sid for c in listed] == sids[::-1]
        assert [c.sid for c in repo.list_conferences(session, limit=1)] == [sids[2]]
        named = repo.list_conferences(session, friendly_name="room-1")
        assert [c.sid for c in named] == [sids[1]]


def test_next_sequence_number_is_per_conference(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        a = repo.create_conference(session, account_sid=account_sid, friendly_name="a")
        b = repo.create_conference(session, account_sid=account_sid, friendly_name="b")
        assert [repo.next_sequence_number(session, conference_sid=a.sid) for _ in range(3)] == [
            1,
            2,
            3,
        ]
        assert repo.next_sequence_number(session, conference_sid=b.sid) == 1
        assert a.sequence_number == 3  # the loaded object follows
        a_sid = a.sid
    with session_factory() as session, pytest.raises(repo.NotFoundError):
        repo.next_sequence_number(session, conference_sid="CF" + "0" * 32)
    # A rolled-back allocation leaves no gap.
    with pytest.raises(RuntimeError), transaction(session_factory) as session:
        assert repo.next_sequence_number(session, conference_sid=a_sid) == 4
        raise RuntimeError("abort")
    with transaction(session_factory) as session:
        assert repo.next_sequence_number(session, conference_sid=a_sid) == 4


# --- participants ---------------------------------------------------------------


def _conference_with_calls(session: Session, calls: int = 2) -> tuple[str, list[str]]:
    account_sid = make_account(session).sid
    conference = repo.create_conference(session, account_sid=account_sid, friendly_name="p")
    return conference.sid, [make_call(session, account_sid=account_sid).sid for _ in range(calls)]


def test_add_participant_and_rejoin(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        conference_sid, (call_a, call_b) = _conference_with_calls(session)
        first = repo.add_participant(
            session,
            conference_sid=conference_sid,
            call_sid=call_a,
            label="customer",
            member_id=7,
            muted=True,
            start_conference_on_enter=False,
            beep="onExit",
            wait_url="",
            jitter_buffer_size="small",
            now=T0,
        )
        assert first.join_sequence == 1
        assert first.present
        repo.add_participant(session, conference_sid=conference_sid, call_sid=call_b)
        with pytest.raises(repo.ParticipantExistsError):
            repo.add_participant(session, conference_sid=conference_sid, call_sid=call_a)
        assert repo.count_present_participants(session, conference_sid=conference_sid) == 2

        repo.mark_participant_left(session, conference_sid=conference_sid, call_sid=call_a)
        assert repo.count_present_participants(session, conference_sid=conference_sid) == 1
        # FreeSWITCH reuses the member id on rejoin: the key is the join sequence.
        rejoined = repo.add_participant(
            session, conference_sid=conference_sid, call_sid=call_a, member_id=7
        )
        assert rejoined.join_sequence == 2
    with session_factory() as session:
        latest = repo.get_participant(session, conference_sid=conference_sid, call_sid=call_a)
        assert latest is not None and latest.join_sequence == 2 and latest.present
        rows = repo.list_participants(session, conference_sid=conference_sid, present_only=False)
        assert [(p.call_sid, p.join_sequence) for p in rows].count((call_a, 1)) == 1
        assert len(rows) == 3
        old = session.get(Participant, (conference_sid, call_a, 1))
        assert old is not None
        assert (old.status, old.label, old.muted, old.beep) == (
            "complete",
            "customer",
            True,
            "onExit",
        )
        assert old.start_conference_on_enter is False
        assert old.wait_url == ""
        assert old.jitter_buffer_size == "small"
        assert old.date_created == T0


def test_participant_label_is_unique_among_present_participants(
    session_factory: Factory,
) -> None:
    with transaction(session_factory) as session:
        conference_sid, (call_a, call_b) = _conference_with_calls(session)
        repo.add_participant(session, conference_sid=conference_sid, call_sid=call_a, label="agent")
        with pytest.raises(repo.DuplicateLabelError) as caught:
            repo.add_participant(
                session, conference_sid=conference_sid, call_sid=call_b, label="agent"
            )
        assert caught.value.code == 16025
        found = repo.get_participant_by_label(session, conference_sid=conference_sid, label="agent")
        assert found is not None and found.call_sid == call_a
        repo.mark_participant_left(
            session, conference_sid=conference_sid, call_sid=call_a, status="failed"
        )
        assert (
            repo.get_participant_by_label(session, conference_sid=conference_sid, label="agent")
            is None
        )
        repo.add_participant(session, conference_sid=conference_sid, call_sid=call_b, label="agent")
        with pytest.raises(StoreError):
            repo.add_participant(
                session, conference_sid=conference_sid, call_sid=call_a, label="x" * 129
            )


def test_database_refuses_duplicate_present_label(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        conference_sid, (call_a, call_b) = _conference_with_calls(session)
        repo.add_participant(session, conference_sid=conference_sid, call_sid=call_a, label="l")
    with session_factory() as session:
        session.add(
            Participant(
                conference_sid=conference_sid,
                call_sid=call_b,
                join_sequence=1,
                label="l",
                status="connected",
                date_created=T0,
                date_updated=T0,
            )
        )
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()


def test_update_participant(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        conference_sid, (call_a,) = _conference_with_calls(session, calls=1)
        repo.add_participant(session, conference_sid=conference_sid, call_sid=call_a)
        updated = repo.update_participant(
            session,
            conference_sid=conference_sid,
            call_sid=call_a,
            muted=True,
            hold=True,
            hold_url="http://app/hold.mp3",
            placement="MIXED",
            member_id=12,
            now=T0,
        )
        assert (updated.muted, updated.hold, updated.placement, updated.member_id) == (
            True,
            True,
            "MIXED",
            12,
        )
        assert updated.coaching is False  # untouched
        repo.update_participant(
            session, conference_sid=conference_sid, call_sid=call_a, hold_url=None
        )
        assert updated.hold_url is None
        with pytest.raises(StoreError):
            repo.update_participant(
                session, conference_sid=conference_sid, call_sid=call_a, beep="loud"
            )
        with pytest.raises(repo.NotFoundError):
            repo.update_participant(
                session, conference_sid=conference_sid, call_sid="CA" + "0" * 32, muted=True
            )
        with pytest.raises(StoreError):
            repo.mark_participant_left(
                session, conference_sid=conference_sid, call_sid=call_a, status="connected"
            )


# --- recordings and alerts ------------------------------------------------------


def test_recordings(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        conference_sid = repo.create_conference(
            session, account_sid=account_sid, friendly_name="rec"
        ).sid
        recording = repo.create_recording(
            session,
            account_sid=account_sid,
            conference_sid=conference_sid,
            path="/var/lib/fsconf/rec.wav",
            now=T0,
        )
        sid = recording.sid
        repo.update_recording(session, sid=sid, status="completed", duration=42)
    assert is_sid(sid, "RE")
    with session_factory() as session:
        loaded = repo.get_recording(session, sid=sid)
        assert loaded is not None
        assert (loaded.status, loaded.duration, loaded.channels, loaded.source) == (
            "completed",
            42,
            1,
            "Conference",
        )
        assert loaded.start_time == T0
        assert [r.sid for r in repo.list_recordings(session, conference_sid=conference_sid)] == [
            sid
        ]
        with pytest.raises(StoreError):
            repo.update_recording(session, sid=sid, status="lost")
        with pytest.raises(repo.NotFoundError):
            repo.update_recording(session, sid="RE" + "0" * 32, status="completed")


def test_alerts(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        older = repo.create_alert(
            session, account_sid=account_sid, error_code=16025, message="dup label", now=T0
        )
        newer = repo.create_alert(
            session,
            account_sid=account_sid,
            error_code=13240,
            message="coach",
            log_level="warning",
            request_url="http://app/voice",
            now=T0 + timedelta(1),
        )
    assert is_sid(older.sid, "NO")
    with session_factory() as session:
        alerts = repo.list_alerts(session, account_sid=account_sid)
        assert [a.sid for a in alerts] == [newer.sid, older.sid]
        assert alerts[1].more_info == "https://www.twilio.com/docs/errors/16025"
        assert alerts[0].log_level == "warning"


# --- the unit of work -----------------------------------------------------------


def test_transaction_commits_rolls_back_and_wraps(session_factory: Factory) -> None:
    with pytest.raises(RuntimeError), transaction(session_factory) as session:
        sid = make_account(session).sid
        raise RuntimeError("boom")
    with session_factory() as session:
        assert repo.get_account(session, sid=sid) is None

    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
    # A violation detected at COMMIT time still leaves as StoreError.
    with pytest.raises(StoreError) as caught, transaction(session_factory) as session:
        session.add(
            Conference(
                sid="CF" + "b" * 32,
                account_sid="AC" + "f" * 32,  # no such account
                friendly_name="orphan",
                date_created=T0,
                date_updated=T0,
            )
        )
    assert TOKEN not in str(caught.value)
    with session_factory() as session:
        assert session.scalars(select(Conference)).all() == []
        assert repo.get_account(session, sid=account_sid) is not None



def test_a_transaction_killed_while_it_waits_is_abandoned_cleanly(
    session_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """``fsconf serve`` stopping kills greenlets that may be waiting inside a
    statement (here: for a row another transaction holds). On PostgreSQL,
    psycopg turned a kill inside an executemany into an OperationalError and
    refused the rollback after it ("cannot exit pipeline mode while busy"):
    the greenlet died of a StoreError and the pool logged "Exception during
    reset". Now the kill stays a kill, the connection is closed (the server
    rolls back), nothing is logged, and the pool goes on."""
    with transaction(session_factory) as session:
        sid = make_account(session).sid
    accounts = Account.__table__
    rename = (
        update(accounts)
        .where(accounts.c.sid == bindparam("key"))
        .values(friendly_name=bindparam("name"))
    )
    locker = session_factory()
    locker.execute(rename, {"key": sid, "name": "locker"})
    inside = gevent.event.Event()

    def work() -> None:
        with transaction(session_factory) as session:
            inside.set()
            # Two rows: an executemany (psycopg's pipeline mode).
            session.connection().execute(rename, [{"key": sid, "name": n} for n in "ab"])

    caplog.set_level(logging.INFO, logger="sqlalchemy.pool")
    worker = gevent.spawn(work)
    try:
        assert inside.wait(5)
        gevent.sleep(0.2)
        assert not worker.dead  # waiting for the locker's row
        worker.kill(block=True, timeout=5)
    finally:
        locker.rollback()
        locker.close()

    assert worker.dead
    assert isinstance(worker.value, gevent.GreenletExit)  # a kill, not a failed write
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    with transaction(session_factory) as session:
        account = repo.get_account(session, sid=sid)
        assert account is not None
        assert account.friendly_name != "a" and account.friendly_name != "b"
        account.friendly_name = "after"
    with session_factory() as session:
        after = repo.get_account(session, sid=sid)
        assert after is not None and after.friendly_name == "after"


def test_a_killed_transaction_on_an_in_memory_database_keeps_the_database() -> None:
    """An in-memory SQLite database lives in its one connection: a kill is
    rolled back there, never answered by closing the connection."""
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        kept = make_account(session).sid
    inside = gevent.event.Event()

    def work() -> None:
        with transaction(factory) as session:
            make_account(session)
            session.flush()
            inside.set()
            gevent.sleep(30)

    worker = gevent.spawn(work)
    assert inside.wait(5)
    worker.kill(block=True, timeout=5)

    assert isinstance(worker.value, gevent.GreenletExit)
    with factory() as session:
        assert [a.sid for a in session.scalars(select(Account))] == [kept]
    engine.dispose()
