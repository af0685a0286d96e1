"""The outbox: rows in the caller's transaction, SequenceNumber gap-free per conference."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta, timezone

import gevent
import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, sessionmaker

from fsconf.errors import WebhookError
from fsconf.store import repositories as repo
from fsconf.store.db import transaction
from fsconf.store.models import Callback
from fsconf.webhooks import outbox
from fsconf.webhooks.outbox import (
    PAIR_TEXTS_LIMIT,
    _plan_for,
    enqueue,
    enqueue_conference_callback,
    enqueue_recording_callback,
)
from tests.store.factories import make_account

Factory = sessionmaker[Session]
T0 = datetime(2017, 6, 1, 20, 48, 32, tzinfo=UTC)


def _conference(session: Session, **kwargs: object) -> str:
    account_sid = make_account(session).sid
    options: dict[str, object] = {
        "status_callback": "http://app/status",
        "status_callback_events": "start end join leave mute",
        **kwargs,
    }
    return repo.create_conference(
        session,
        account_sid=account_sid,
        friendly_name="Room 1234",
        **options,  # type: ignore[arg-type]
    ).sid


def test_conference_callback_parameters(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        sid = _conference(session)
        conference = repo.get_conference(session, sid=sid)
        assert conference is not None
        callback = enqueue_conference_callback(
            session,
            conference=conference,
            event="participant-join",
            params=[("CallSid", "CA" + "1" * 32), ("Muted", "false"), ("Hold", "false")],
            now=T0,
        )
        assert callback is not None
        callback_id = callback.id
    with session_factory() as session:
        row = session.get(Callback, callback_id)
        assert row is not None
        assert (row.kind, row.method, row.url, row.status, row.attempts) == (
            "conference-status",
            "POST",
            "http://app/status",
            "pending",
            0,
        )
        assert (row.conference_sid, row.sequence_number, row.ordering_key) == (sid, 1, sid)
        assert row.call_sid == "CA" + "1" * 32
        assert row.param_pairs == [
            ("ConferenceSid", sid),
            ("FriendlyName", "Room 1234"),
            ("AccountSid", row.account_sid),
            ("SequenceNumber", "1"),
            ("Timestamp", "Thu, 01 Jun 2017 20:48:32 +0000"),
            ("StatusCallbackEvent", "participant-join"),
            ("CallSid", "CA" + "1" * 32),
            ("Muted", "false"),
            ("Hold", "false"),
        ]
        assert json.loads(row.params)[0] == ["ConferenceSid", sid]


def test_unsubscribed_events_use_no_sequence_number(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        sid = _conference(session, status_callback_events="join")
        conference = repo.get_conference(session, sid=sid)
        assert conference is not None
        assert (
            enqueue_conference_callback(session, conference=conference, event="conference-start")
            is None
        )
        assert (
            enqueue_conference_callback(session, conference=conference, event="participant-unmute")
            is None
        )
        joined = enqueue_conference_callback(
            session, conference=conference, event="participant-join"
        )
        assert joined is not None and joined.sequence_number == 1
        with pytest.raises(WebhookError):
            enqueue_conference_callback(session, conference=conference, event="participant-dance")
        with pytest.raises(WebhookError):
            enqueue_conference_callback(
                session,
                conference=conference,
                event="participant-join",
                params=[("SequenceNumber", "99")],
            )
        no_url = repo.create_conference(
            session,
            account_sid=conference.account_sid,
            friendly_name="silent",
            status_callback_events="join",
        )
        assert (
            enqueue_conference_callback(session, conference=no_url, event="participant-join")
            is None
        )
        assert no_url.sequence_number == 0


def test_sequence_numbers_are_gap_free_and_per_conference(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        sids = [
            repo.create_conference(
                session,
                account_sid=account_sid,
                friendly_name=name,
                status_callback="http://app/s",
                status_callback_events="join leave",
            ).sid
            for name in ("a", "b")
        ]
    for round_number in range(3):
        for sid in sids:
            with transaction(session_factory) as session:
                conference = repo.get_conference(session, sid=sid)
                assert conference is not None
                enqueue_conference_callback(
                    session, conference=conference, event="participant-join"
                )
        # A transaction that rolls back takes its number with it.
        with pytest.raises(RuntimeError), transaction(session_factory) as session:
            conference = repo.get_conference(session, sid=sids[0])
            assert conference is not None
            callback = enqueue_conference_callback(
                session, conference=conference, event="participant-leave"
            )
            assert callback is not None and callback.sequence_number == round_number + 2
            raise RuntimeError("abort")
    with session_factory() as session:
        for sid in sids:
            numbers = session.scalars(
                select(Callback.sequence_number)
                .where(Callback.conference_sid == sid)
                .order_by(Callback.id)
            ).all()
            assert numbers == [1, 2, 3]


def test_concurrent_allocation_has_no_gaps_or_duplicates(session_factory: Factory) -> None:
    """Many writers at once (separate sessions, one greenlet each)."""
    with transaction(session_factory) as session:
        sid = _conference(session)

    def writer() -> None:
        with transaction(session_factory) as session:
            conference = repo.get_conference(session, sid=sid)
            assert conference is not None
            gevent.sleep(0)  # let the others start their transactions too
            enqueue_conference_callback(session, conference=conference, event="participant-join")

    greenlets = [gevent.spawn(writer) for _ in range(20)]
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    with session_factory() as session:
        rows = session.scalars(
            select(Callback).where(Callback.conference_sid == sid).order_by(Callback.id)
        ).all()
        # Gap-free, unique, and id order == SequenceNumber order.
        assert [row.sequence_number for row in rows] == list(range(1, 21))
        assert [dict(row.param_pairs)["SequenceNumber"] for row in rows] == [
            str(n) for n in range(1, 21)
        ]
        conference = repo.get_conference(session, sid=sid)
        assert conference is not None and conference.sequence_number == 20


def test_recording_callback(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        sid = _conference(
            session,
            recording_status_callback="http://app/rec",
            recording_status_callback_method="GET",
            recording_status_callback_events="in-progress completed",
        )
        conference = repo.get_conference(session, sid=sid)
        assert conference is not None
        recording = repo.create_recording(
            session, account_sid=conference.account_sid, conference_sid=sid, now=T0
        )
        started = enqueue_recording_callback(
            session,
            conference=conference,
            recording=recording,
            status="in-progress",
            recording_url="http://fsconf/Recordings/" + recording.sid,
        )
        assert started is not None
        assert "RecordingDuration" not in dict(started.param_pairs)
        repo.update_recording(session, sid=recording.sid, status="completed", duration=6)
        done = enqueue_recording_callback(
            session,
            conference=conference,
            recording=recording,
            status="completed",
            recording_url="http://fsconf/Recordings/" + recording.sid,
        )
        assert done is not None
        assert (
            enqueue_recording_callback(
                session,
                conference=conference,
                recording=recording,
                status="absent",
                recording_url="u",
            )
            is None
        )
        with pytest.raises(WebhookError):
            enqueue_recording_callback(
                session, conference=conference, recording=recording, status="x", recording_url="u"
            )
        assert (done.method, done.kind, done.ordering_key, done.sequence_number) == (
            "GET",
            "recording-status",
            recording.sid,
            None,
        )
        assert done.param_pairs == [
            ("AccountSid", conference.account_sid),
            ("ConferenceSid", sid),
            ("RecordingSid", recording.sid),
            ("RecordingUrl", "http://fsconf/Recordings/" + recording.sid),
            ("RecordingStatus", "completed"),
            ("RecordingDuration", "6"),
            ("RecordingChannels", "1"),
            ("RecordingStartTime", "Thu, 01 Jun 2017 20:48:32 +0000"),
            ("RecordingSource", "Conference"),
        ]


def test_generic_enqueue(session_factory: Factory) -> None:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        callback = enqueue(
            session,
            account_sid=account_sid,
            url="http://app/action",
            method="get",
            params={"DialCallStatus": "completed"},
            kind="dial-action",
            call_sid="CA" + "2" * 32,
        )
        assert (callback.method, callback.ordering_key, callback.conference_sid) == (
            "GET",
            None,
            None,
        )
        assert callback.param_pairs == [("DialCallStatus", "completed")]
        with pytest.raises(WebhookError):
            enqueue(
                session, account_sid=account_sid, url="http://x", method="PUT", params=[], kind="k"
            )
        with pytest.raises(WebhookError):
            enqueue(session, account_sid=account_sid, url="", method="POST", params=[], kind="k")


def test_the_short_sqlite_bind_writes_exactly_what_sqlalchemy_writes() -> None:
    """A storm binds one outbox row per talking event, so on SQLite the
    timestamps are formatted by fsconf, not by SQLAlchemy's processors: the
    stored text must not differ by one character (it is what rows sort by)."""
    plan = _plan_for(sqlite.dialect())
    assert plan.utc_text is not None  # SQLite takes the short way
    generic = dataclasses.replace(plan, utc_text=None)
    picker = random.Random(4)
    moments = [
        T0,  # microsecond 0: still six digits
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        # Aware but not UTC: SQLAlchemy's processor converts it.
        datetime(2026, 11, 25, 23, 30, 0, 5, tzinfo=timezone(timedelta(hours=2))),
        *(
            datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=picker.randrange(10**16))
            for _ in range(500)
        ),
    ]
    for moment in moments:
        row = ("AC1", "CF1", None, "conference-status", 1, "CF1", "http://a/b", "POST", "[]",
               "pending", 0, moment, moment)  # fmt: skip
        assert plan.bind(row) == generic.bind(row), moment
    later = T0 + timedelta(seconds=1)
    for created in (later, None):
        row = ("AC1", None, None, "x", None, None, "http://a", "GET", "[]", "pending", 0,
               T0, created)  # fmt: skip
        assert plan.bind(row) == generic.bind(row)
    assert plan.bind(row)[-2:] == ("2017-06-01 20:48:32.000000", None)
    with pytest.raises(ValueError, match="naive datetime"):
        plan.bind((*row[:11], datetime(2017, 6, 1), None))


def _stored_params(params: object) -> str:
    """The params column callback_values writes for ``params``."""
    row = outbox.callback_values(
        account_sid="AC1", url="http://a/b", method="POST", params=params,  # type: ignore[arg-type]
        kind="conference-status", conference_sid="CF1", call_sid=None,
        sequence_number=None, ordering_key="CF1", now=T0,
    )  # fmt: skip
    return str(row[8])


def test_stored_params_are_exactly_what_json_writes() -> None:
    """The params column is built from remembered pair texts: it must stay the
    text json.dumps writes (readers and old rows alike), whatever the values."""
    picker = random.Random(7)
    alphabet = 'aZ09 "\\/\n\t\x00\x1f\u00e9\u2028\U0001f600<>&='
    for _ in range(300):
        params = tuple(
            (
                picker.choice(["CallSid", "Muted", "Timestamp", 'Naïve "name"']),
                "".join(picker.choice(alphabet) for _ in range(picker.randrange(12))),
            )
            for _ in range(picker.randrange(15))
        )
        twice = [_stored_params(params), _stored_params(params)]  # computed, then remembered
        assert twice == [json.dumps(params, ensure_ascii=False)] * 2, params
    # What is not a pair of str still goes through json, as before.
    for odd in (["CallSid", "CA1"], ("SequenceNumber", 3), ("a", "b", "c"), ("a", ["b"])):
        mixed = (("Muted", "false"), odd)
        assert _stored_params(mixed) == json.dumps(mixed, ensure_ascii=False), odd
    assert _stored_params([]) == "[]"


def test_the_pair_memo_is_bounded() -> None:
    for number in range(PAIR_TEXTS_LIMIT * 3):
        _stored_params((("SequenceNumber", str(number)),))
    assert 0 < len(outbox._PAIR_TEXTS) <= PAIR_TEXTS_LIMIT


def _rows_of(session: Session, sid: str, count: int, first: int = 1) -> list[tuple[object, ...]]:
    conference = repo.get_conference(session, sid=sid)
    assert conference is not None
    rows = []
    for number in range(first, first + count):
        now = T0 + timedelta(microseconds=number)
        rows.append(
            outbox.callback_values(
                account_sid=conference.account_sid,
                url="http://app/status",
                method="POST",
                params=[("SequenceNumber", str(number)), ("Name", f'é "{number}"')],
                kind="conference-status",
                conference_sid=sid,
                call_sid=None,
                sequence_number=number,
                ordering_key=sid,
                now=now,
            )
        )
    return rows


def _stored(session_factory: Factory, sid: str) -> list[tuple[object, ...]]:
    own = ("id", "conference_sid", "ordering_key")
    columns = [c.key for c in Callback.__table__.columns if c.key not in own]
    with session_factory() as session:
        found = session.scalars(
            select(Callback).where(Callback.conference_sid == sid).order_by(Callback.id)
        ).all()
        return [tuple(getattr(row, c) for c in columns) for row in found]


def test_the_native_insert_writes_what_executemany_writes_in_order(
    session_factory: Factory, db_backend: str
) -> None:
    """Offloaded (SQLite): padded multi-row statements on another thread, the
    same rows as the executemany, ids in list order, across the statement
    sizes (one row, a partial padded statement, exactly one full statement,
    several). PostgreSQL keeps its COPY: the offload is never called."""
    from tests.store.test_native import ThreadRecorder, thread_ident

    offload = ThreadRecorder()
    threads = offload.threads
    with transaction(session_factory) as session:
        by_executemany = _conference(session)
        natively = repo.create_conference(
            session,
            account_sid=repo.get_conference(session, sid=by_executemany).account_sid,  # type: ignore[union-attr]
            friendly_name="Room 5678",
        ).sid
    first = 1
    for count in (1, 3, 256, 257, 700):
        with transaction(session_factory) as session:
            rows = _rows_of(session, by_executemany, count, first)
            outbox.insert_callbacks(session.connection(), rows)
        with transaction(session_factory) as session:
            outbox.insert_callbacks(
                session.connection(), _rows_of(session, natively, count, first), offload=offload
            )
        first += count
    stored = _stored(session_factory, natively)
    assert stored == _stored(session_factory, by_executemany)
    numbers = [row[3] for row in stored]  # sequence_number, in id order
    assert numbers == list(range(1, first))
    if db_backend == "sqlite":
        assert len(threads) == 5 and thread_ident() not in threads
        assert set(outbox._VALUES_INSERTS) <= {2**n for n in range(9)}  # at most 256 rows
    else:
        assert threads == []


def test_a_row_the_native_insert_cannot_store_is_an_integrity_error(
    session_factory: Factory, db_backend: str
) -> None:
    if db_backend != "sqlite":
        pytest.skip("the native insert is SQLite's")
    from sqlalchemy.exc import IntegrityError

    from fsconf.store.db import transient_cause
    from fsconf.store.native import in_native_thread

    with transaction(session_factory) as session:
        sid = _conference(session)
        rows = _rows_of(session, sid, 5)
    orphan = list(rows[3])
    orphan[1] = "CF" + "f" * 32  # conference_sid: no such conference
    rows[3] = tuple(orphan)
    with pytest.raises(WebhookError) as caught, transaction(session_factory) as session:
        outbox.insert_callbacks(session.connection(), rows, offload=in_native_thread)
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert transient_cause(caught.value) is None
    assert _stored(session_factory, sid) == []
