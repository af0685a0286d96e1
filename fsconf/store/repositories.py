"""Repository functions: every read and write of the store goes through here.

Theory of operation
-------------------
* Every function takes the :class:`~sqlalchemy.orm.Session` first and
  everything else by keyword.  None of them commits: the service layer owns
  the transaction (:func:`fsconf.store.db.transaction`), so a state change and
  the callbacks it causes are one atomic write (the outbox).
* Writes that can collide with a concurrent writer (a second active conference
  with the same name, a duplicate participant label) run their INSERT inside a
  SAVEPOINT: the unique violation is caught there, the surrounding transaction
  stays usable, and the caller gets a precise :class:`StoreError` subclass.
* ``now`` is a parameter wherever a time is written, so the engine's clock (and
  the tests') decides; it defaults to the wall clock.
* Every error leaves as a :class:`StoreError` (or a subclass), never as a raw
  SQLAlchemy exception.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from fsconf.errors import StoreError
from fsconf.store.db import describe_error
from fsconf.store.ids import is_sid, new_sid
from fsconf.store.models import (
    ACCOUNT_STATUSES,
    BEEP_VALUES,
    CALL_STATUSES,
    CONFERENCE_STATUSES,
    HTTP_METHODS,
    JITTER_BUFFER_SIZES,
    PARTICIPANT_GONE,
    PARTICIPANT_STATUSES,
    PLACEMENTS,
    RECORDING_STATUSES,
    Account,
    Alert,
    Call,
    Callback,
    Conference,
    Participant,
    Recording,
)
from fsconf.store.times import utc_now

__all__ = [
    "UNSET",
    "ConferenceExistsError",
    "DuplicateLabelError",
    "NotFoundError",
    "ParticipantExistsError",
    "add_participant",
    "count_present_participants",
    "create_account",
    "create_alert",
    "create_call",
    "create_conference",
    "create_recording",
    "end_conference",
    "ensure_account",
    "find_active_conference",
    "get_account",
    "get_call",
    "get_conference",
    "get_or_create_active_conference",
    "get_participant",
    "get_participant_by_label",
    "get_recording",
    "list_accounts",
    "list_alerts",
    "list_conferences",
    "list_participants",
    "list_recordings",
    "mark_participant_left",
    "next_sequence_number",
    "start_conference",
    "update_call_status",
    "update_participant",
    "update_recording",
]

_T = TypeVar("_T")


class _Unset(enum.Enum):
    UNSET = "UNSET"


#: "Leave this field alone" for the ``update_*`` functions (``None`` is a value).
UNSET: Final = _Unset.UNSET


class NotFoundError(StoreError):
    """The row that a write refers to does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class ConferenceExistsError(StoreError):
    """An active conference with this (account, friendly name) already exists."""

    def __init__(self, account_sid: str, friendly_name: str) -> None:
        super().__init__(f"an active conference {friendly_name!r} exists in {account_sid}")
        self.account_sid = account_sid
        self.friendly_name = friendly_name


class DuplicateLabelError(StoreError):
    """participantLabel already used by a present participant (Twilio error 16025)."""

    code = 16025

    def __init__(self, conference_sid: str, label: str) -> None:
        super().__init__(f"label {label!r} is already in use in {conference_sid}")
        self.conference_sid = conference_sid
        self.label = label


class ParticipantExistsError(StoreError):
    """The call is already a present participant of the conference."""

    def __init__(self, conference_sid: str, call_sid: str) -> None:
        super().__init__(f"{call_sid} is already in {conference_sid}")
        self.conference_sid = conference_sid
        self.call_sid = call_sid


# --- helpers -------------------------------------------------------------------


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise StoreError(f"invalid {name} {value!r}: expected one of {', '.join(allowed)}")
    return value


def _check_sid(name: str, value: str, prefix: str) -> str:
    if not is_sid(value, prefix):
        raise StoreError(f"invalid {name} {value!r}: expected {prefix} + 32 hex digits")
    return value


def _events_text(events: str | Iterable[str]) -> str:
    words = events.split() if isinstance(events, str) else list(events)
    seen: list[str] = []
    for word in words:
        if word not in seen:
            seen.append(word)
    return " ".join(seen)


def _flush(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError as error:
        raise StoreError(describe_error(error)) from error
    except SQLAlchemyError as error:
        raise StoreError(describe_error(error)) from error


def _insert_in_savepoint(session: Session, row: object) -> IntegrityError | None:
    """Add and flush ``row`` inside a SAVEPOINT; return the unique violation, if any."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as error:
        return error
    except SQLAlchemyError as error:
        raise StoreError(describe_error(error)) from error
    return None


def _require(row: _T | None, kind: str, key: object) -> _T:
    if row is None:
        raise NotFoundError(kind, key)
    return row


# --- accounts ------------------------------------------------------------------


def create_account(
    session: Session,
    *,
    auth_token: str,
    sid: str | None = None,
    friendly_name: str = "",
    voice_url: str | None = None,
    voice_method: str = "POST",
    fallback_url: str | None = None,
    fallback_method: str = "POST",
    status: str = "active",
    now: datetime | None = None,
) -> Account:
    moment = now or utc_now()
    if not auth_token:
        raise StoreError("an account needs a non-empty auth token")
    account = Account(
        sid=_check_sid("AccountSid", sid, "AC") if sid is not None else new_sid("AC"),
        auth_token=auth_token,
        friendly_name=friendly_name,
        voice_url=voice_url,
        voice_method=_check_choice("voice_method", voice_method, HTTP_METHODS),
        fallback_url=fallback_url,
        fallback_method=_check_choice("fallback_method", fallback_method, HTTP_METHODS),
        status=_check_choice("status", status, ACCOUNT_STATUSES),
        date_created=moment,
        date_updated=moment,
    )
    session.add(account)
    _flush(session)
    return account


def ensure_account(
    session: Session,
    *,
    sid: str,
    auth_token: str,
    friendly_name: str = "",
    voice_url: str | None = None,
    voice_method: str = "POST",
    now: datetime | None = None,
) -> Account:
    """The account ``sid``, created with these values if it does not exist yet.

    An existing account is returned unchanged (the REST API owns its updates).
    """
    existing = session.get(Account, sid)
    if existing is not None:
        return existing
    return create_account(
        session,
        sid=sid,
        auth_token=auth_token,
        friendly_name=friendly_name,
        voice_url=voice_url,
        voice_method=voice_method,
        now=now,
    )


def get_account(session: Session, *, sid: str) -> Account | None:
    return session.get(Account, sid)


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.date_created, Account.sid)))


# --- calls ---------------------------------------------------------------------

_CALL_TERMINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def create_call(
    session: Session,
    *,
    sid: str,
    account_sid: str,
    from_: str = "",
    to: str = "",
    direction: str = "inbound",
    status: str = "queued",
    node: str | None = None,
    now: datetime | None = None,
) -> Call:
    """A call row; ``sid`` is derived from the channel UUID (see :mod:`fsconf.store.ids`)."""
    moment = now or utc_now()
    call = Call(
        sid=_check_sid("CallSid", sid, "CA"),
        account_sid=account_sid,
        from_=from_,
        to=to,
        direction=direction,
        status=_check_choice("status", status, CALL_STATUSES),
        node=node,
        start_time=moment if status in ("ringing", "in-progress") else None,
        answer_time=moment if status == "in-progress" else None,
        date_created=moment,
        date_updated=moment,
    )
    session.add(call)
    _flush(session)
    return call


def get_call(session: Session, *, sid: str) -> Call | None:
    return session.get(Call, sid)


def update_call_status(
    session: Session, *, sid: str, status: str, now: datetime | None = None
) -> Call:
    """Move a call to ``status``, stamping start/answer/end times on the way.

    A call that has ended does not come back: that raises :class:`StoreError`.
    Setting the status it already has is a no-op.
    """
    moment = now or utc_now()
    _check_choice("status", status, CALL_STATUSES)
    call = _require(session.get(Call, sid), "call", sid)
    if call.status == status:
        return call
    if call.status in _CALL_TERMINAL:
        raise StoreError(f"call {sid} is {call.status}; cannot become {status}")
    if status in ("ringing", "in-progress") and call.start_time is None:
        call.start_time = moment
    if status == "in-progress" and call.answer_time is None:
        call.answer_time = moment
    if status in _CALL_TERMINAL:
        call.end_time = moment
        if call.start_time is None:
            call.start_time = moment
    call.status = status
    call.date_updated = moment
    _flush(session)
    return call


# --- conferences ---------------------------------------------------------------


def create_conference(
    session: Session,
    *,
    account_sid: str,
    friendly_name: str,
    sid: str | None = None,
    region: str | None = None,
    node: str | None = None,
    max_participants: int = 250,
    record: str = "do-not-record",
    trim: str = "trim-silence",
    status_callback: str | None = None,
    status_callback_method: str = "POST",
    status_callback_events: str | Iterable[str] = (),
    recording_status_callback: str | None = None,
    recording_status_callback_method: str = "POST",
    recording_status_callback_events: str | Iterable[str] = ("completed",),
    event_callback_url: str | None = None,
    now: datetime | None = None,
) -> Conference:
    """A new conference in status ``init``.

    Raises :class:`ConferenceExistsError` if the account already has an active
    conference with this friendly name (the database's partial unique index
    decides, so two racing processes cannot both succeed).
    """
    moment = now or utc_now()
    if not 1 <= max_participants <= 250:
        raise StoreError(f"invalid max_participants {max_participants}: expected 1..250")
    conference = Conference(
        sid=_check_sid("ConferenceSid", sid, "CF") if sid is not None else new_sid("CF"),
        account_sid=account_sid,
        friendly_name=friendly_name,
        status="init",
        region=region,
        node=node,
        max_participants=max_participants,
        record=record,
        trim=trim,
        status_callback=status_callback,
        status_callback_method=_check_choice(
            "status_callback_method", status_callback_method, HTTP_METHODS
        ),
        status_callback_events=_events_text(status_callback_events),
        recording_status_callback=recording_status_callback,
        recording_status_callback_method=_check_choice(
            "recording_status_callback_method", recording_status_callback_method, HTTP_METHODS
        ),
        recording_status_callback_events=_events_text(recording_status_callback_events),
        event_callback_url=event_callback_url,
        sequence_number=0,
        date_created=moment,
        date_updated=moment,
    )
    violation = _insert_in_savepoint(session, conference)
    if violation is None:
        return conference
    if find_active_conference(session, account_sid=account_sid, friendly_name=friendly_name):
        raise ConferenceExistsError(account_sid, friendly_name) from violation
    raise StoreError(describe_error(violation)) from violation


def get_conference(session: Session, *, sid: str) -> Conference | None:
    return session.get(Conference, sid)


def find_active_conference(
    session: Session, *, account_sid: str, friendly_name: str
) -> Conference | None:
    """The account's conference with this name that is not completed, if any."""
    return session.scalars(
        select(Conference).where(
            Conference.account_sid == account_sid,
            Conference.friendly_name == friendly_name,
            Conference.status != "completed",
        )
    ).one_or_none()


def get_or_create_active_conference(
    session: Session,
    *,
    account_sid: str,
    friendly_name: str,
    region: str | None = None,
    node: str | None = None,
    max_participants: int = 250,
    record: str = "do-not-record",
    trim: str = "trim-silence",
    status_callback: str | None = None,
    status_callback_method: str = "POST",
    status_callback_events: str | Iterable[str] = (),
    recording_status_callback: str | None = None,
    recording_status_callback_method: str = "POST",
    recording_status_callback_events: str | Iterable[str] = ("completed",),
    event_callback_url: str | None = None,
    now: datetime | None = None,
) -> tuple[Conference, bool]:
    """``(conference, created)``: the active conference of this name, made if needed.

    The attributes only apply when the conference is created: Twilio takes the
    conference settings (statusCallback, region, ...) from the first
    participant and ignores later ones.

    Race-safe: if another transaction creates the conference between our read
    and our insert, the unique index refuses our row inside a SAVEPOINT and we
    read theirs (PostgreSQL's READ COMMITTED shows it once it has committed).
    """
    for _attempt in range(3):
        existing = find_active_conference(
            session, account_sid=account_sid, friendly_name=friendly_name
        )
        if existing is not None:
            return existing, False
        try:
            created = create_conference(
                session,
                account_sid=account_sid,
                friendly_name=friendly_name,
                region=region,
                node=node,
                max_participants=max_participants,
                record=record,
                trim=trim,
                status_callback=status_callback,
                status_callback_method=status_callback_method,
                status_callback_events=status_callback_events,
                recording_status_callback=recording_status_callback,
                recording_status_callback_method=recording_status_callback_method,
                recording_status_callback_events=recording_status_callback_events,
                event_callback_url=event_callback_url,
                now=now,
            )
        except ConferenceExistsError:
            continue
        return created, True
    # Only reachable if the winner's row keeps disappearing (completed in between).
    raise ConferenceExistsError(account_sid, friendly_name)


def list_conferences(
    session: Session,
    *,
    account_sid: str | None = None,
    status: str | None = None,
    friendly_name: str | None = None,
    limit: int | None = None,
) -> list[Conference]:
    """Newest first, as Twilio lists them."""
    query = select(Conference)
    if account_sid is not None:
        query = query.where(Conference.account_sid == account_sid)
    if status is not None:
        query = query.where(
            Conference.status == _check_choice("status", status, CONFERENCE_STATUSES)
        )
    if friendly_name is not None:
        query = query.where(Conference.friendly_name == friendly_name)
    query = query.order_by(Conference.date_created.desc(), Conference.sid.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def start_conference(session: Session, *, sid: str, now: datetime | None = None) -> Conference:
    """``init`` -> ``in-progress``; stamps ``start_time``.  Idempotent when already started."""
    moment = now or utc_now()
    conference = _require(session.get(Conference, sid), "conference", sid)
    if conference.status == "in-progress":
        return conference
    if conference.status != "init":
        raise StoreError(f"conference {sid} is {conference.status}; cannot start")
    conference.status = "in-progress"
    conference.start_time = moment
    conference.date_updated = moment
    _flush(session)
    return conference


def end_conference(
    session: Session,
    *,
    sid: str,
    reason: str,
    call_sid_ending_conference: str | None = None,
    participant_label_ending_conference: str | None = None,
    now: datetime | None = None,
) -> Conference:
    """-> ``completed`` with Twilio's ReasonConferenceEnded; frees the friendly name.

    Ending an ended conference raises :class:`StoreError` (the first reason stands).
    """
    moment = now or utc_now()
    conference = _require(session.get(Conference, sid), "conference", sid)
    if conference.status == "completed":
        raise StoreError(f"conference {sid} is already completed")
    conference.status = "completed"
    conference.reason_ended = reason
    conference.call_sid_ending_conference = call_sid_ending_conference
    conference.participant_label_ending_conference = participant_label_ending_conference
    conference.end_time = moment
    conference.date_updated = moment
    _flush(session)
    return conference


def next_sequence_number(session: Session, *, conference_sid: str) -> int:
    """Allocate the conference's next SequenceNumber (1, 2, 3, ...).

    One ``UPDATE ... SET sequence_number = sequence_number + 1 RETURNING``: on
    PostgreSQL the UPDATE holds the conference's row lock until the caller's
    transaction ends, so concurrent allocators queue and, because the number
    is only kept if the transaction that also inserts the callback commits,
    the sequence has no gaps and no duplicates.  SQLite serialises writers.
    """
    try:
        allocated = session.execute(
            update(Conference)
            .where(Conference.sid == conference_sid)
            .values(sequence_number=Conference.sequence_number + 1)
            .returning(Conference.sequence_number),
            execution_options={"synchronize_session": False},
        ).scalar_one_or_none()
    except SQLAlchemyError as error:
        raise StoreError(describe_error(error)) from error
    if allocated is None:
        raise NotFoundError("conference", conference_sid)
    conference = session.identity_map.get(session.identity_key(Conference, conference_sid))
    if isinstance(conference, Conference):
        # Keep an already-loaded object in step without a reload.
        set_committed_value(conference, "sequence_number", allocated)
    return int(allocated)


# --- participants --------------------------------------------------------------


def _present_participant(
    session: Session, *, conference_sid: str, call_sid: str
) -> Participant | None:
    return session.scalars(
        select(Participant).where(
            Participant.conference_sid == conference_sid,
            Participant.call_sid == call_sid,
            Participant.status.not_in(PARTICIPANT_GONE),
        )
    ).one_or_none()


def add_participant(
    session: Session,
    *,
    conference_sid: str,
    call_sid: str,
    label: str | None = None,
    member_id: int | None = None,
    placement: str = "PARKED",
    status: str = "connected",
    muted: bool = False,
    hold: bool = False,
    coaching: bool = False,
    call_sid_to_coach: str | None = None,
    start_conference_on_enter: bool = True,
    end_conference_on_exit: bool = False,
    beep: str = "true",
    wait_url: str | None = None,
    wait_method: str = "POST",
    hold_url: str | None = None,
    hold_method: str = "GET",
    jitter_buffer_size: str = "large",
    now: datetime | None = None,
) -> Participant:
    """A new participant row: the call's next ``join_sequence`` in this conference.

    Raises :class:`DuplicateLabelError` (Twilio 16025) if a present participant
    has ``label``, and :class:`ParticipantExistsError` if the call is present.
    """
    moment = now or utc_now()
    if label is not None and not 1 <= len(label) <= 128:
        raise StoreError(f"invalid participant label length {len(label)}: expected 1..128")
    fields = {
        "placement": _check_choice("placement", placement, PLACEMENTS),
        "status": _check_choice("status", status, PARTICIPANT_STATUSES),
        "beep": _check_choice("beep", beep, BEEP_VALUES),
        "jitter_buffer_size": _check_choice(
            "jitter_buffer_size", jitter_buffer_size, JITTER_BUFFER_SIZES
        ),
        "wait_method": _check_choice("wait_method", wait_method, HTTP_METHODS),
        "hold_method": _check_choice("hold_method", hold_method, HTTP_METHODS),
    }
    last_violation: IntegrityError | None = None
    for _attempt in range(3):
        if label is not None and get_participant_by_label(
            session, conference_sid=conference_sid, label=label
        ):
            raise DuplicateLabelError(conference_sid, label)
        if _present_participant(session, conference_sid=conference_sid, call_sid=call_sid):
            raise ParticipantExistsError(conference_sid, call_sid)
        last = session.scalar(
            select(func.max(Participant.join_sequence)).where(
                Participant.conference_sid == conference_sid,
                Participant.call_sid == call_sid,
            )
        )
        participant = Participant(
            conference_sid=conference_sid,
            call_sid=call_sid,
            join_sequence=(last or 0) + 1,
            label=label,
            member_id=member_id,
            muted=muted,
            hold=hold,
            coaching=coaching,
            call_sid_to_coach=call_sid_to_coach,
            start_conference_on_enter=start_conference_on_enter,
            end_conference_on_exit=end_conference_on_exit,
            wait_url=wait_url,
            hold_url=hold_url,
            date_created=moment,
            date_updated=moment,
            **fields,
        )
        violation = _insert_in_savepoint(session, participant)
        if violation is None:
            return participant
        # A concurrent writer won; the next round reports which rule it broke
        # (or, for a join_sequence collision alone, takes the next number).
        last_violation = violation
    assert last_violation is not None
    raise StoreError(describe_error(last_violation)) from last_violation


def get_participant(session: Session, *, conference_sid: str, call_sid: str) -> Participant | None:
    """The call's participant row in this conference: the present one, else the latest."""
    return session.scalars(
        select(Participant)
        .where(Participant.conference_sid == conference_sid, Participant.call_sid == call_sid)
        .order_by(Participant.join_sequence.desc())
        .limit(1)
    ).first()


def get_participant_by_label(
    session: Session, *, conference_sid: str, label: str
) -> Participant | None:
    """The *present* participant with this label, if any."""
    return session.scalars(
        select(Participant).where(
            Participant.conference_sid == conference_sid,
            Participant.label == label,
            Participant.status.not_in(PARTICIPANT_GONE),
        )
    ).one_or_none()


def list_participants(
    session: Session, *, conference_sid: str, present_only: bool = True
) -> list[Participant]:
    """In join order."""
    query = select(Participant).where(Participant.conference_sid == conference_sid)
    if present_only:
        query = query.where(Participant.status.not_in(PARTICIPANT_GONE))
    query = query.order_by(
        Participant.date_created, Participant.call_sid, Participant.join_sequence
    )
    return list(session.scalars(query))


def count_present_participants(session: Session, *, conference_sid: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Participant)
            .where(
                Participant.conference_sid == conference_sid,
                Participant.status.not_in(PARTICIPANT_GONE),
            )
        )
        or 0
    )


def update_participant(
    session: Session,
    *,
    conference_sid: str,
    call_sid: str,
    member_id: int | _Unset | None = UNSET,
    placement: str | _Unset = UNSET,
    status: str | _Unset = UNSET,
    muted: bool | _Unset = UNSET,
    hold: bool | _Unset = UNSET,
    coaching: bool | _Unset = UNSET,
    call_sid_to_coach: str | _Unset | None = UNSET,
    end_conference_on_exit: bool | _Unset = UNSET,
    beep: str | _Unset = UNSET,
    wait_url: str | _Unset | None = UNSET,
    wait_method: str | _Unset = UNSET,
    hold_url: str | _Unset | None = UNSET,
    hold_method: str | _Unset = UNSET,
    now: datetime | None = None,
) -> Participant:
    """Change the given fields of the call's *present* participant row."""
    moment = now or utc_now()
    participant = _require(
        _present_participant(session, conference_sid=conference_sid, call_sid=call_sid),
        "participant",
        (conference_sid, call_sid),
    )
    if not isinstance(member_id, _Unset):
        participant.member_id = member_id
    if not isinstance(placement, _Unset):
        participant.placement = _check_choice("placement", placement, PLACEMENTS)
    if not isinstance(status, _Unset):
        participant.status = _check_choice("status", status, PARTICIPANT_STATUSES)
    if not isinstance(muted, _Unset):
        participant.muted = muted
    if not isinstance(hold, _Unset):
        participant.hold = hold
    if not isinstance(coaching, _Unset):
        participant.coaching = coaching
    if not isinstance(call_sid_to_coach, _Unset):
        participant.call_sid_to_coach = call_sid_to_coach
    if not isinstance(end_conference_on_exit, _Unset):
        participant.end_conference_on_exit = end_conference_on_exit
    if not isinstance(beep, _Unset):
        participant.beep = _check_choice("beep", beep, BEEP_VALUES)
    if not isinstance(wait_url, _Unset):
        participant.wait_url = wait_url
    if not isinstance(wait_method, _Unset):
        participant.wait_method = _check_choice("wait_method", wait_method, HTTP_METHODS)
    if not isinstance(hold_url, _Unset):
        participant.hold_url = hold_url
    if not isinstance(hold_method, _Unset):
        participant.hold_method = _check_choice("hold_method", hold_method, HTTP_METHODS)
    participant.date_updated = moment
    _flush(session)
    return participant


def mark_participant_left(
    session: Session,
    *,
    conference_sid: str,
    call_sid: str,
    status: str = "complete",
    now: datetime | None = None,
) -> Participant:
    """The call's present participant leaves (``complete``, or ``failed``).

    Its label becomes free for the next participant.
    """
    if status not in PARTICIPANT_GONE:
        raise StoreError(f"invalid leave status {status!r}: expected one of {PARTICIPANT_GONE}")
    return update_participant(
        session, conference_sid=conference_sid, call_sid=call_sid, status=status, now=now
    )


# --- recordings ----------------------------------------------------------------


def create_recording(
    session: Session,
    *,
    account_sid: str,
    conference_sid: str,
    path: str | None = None,
    call_sid: str | None = None,
    status: str = "in-progress",
    start_time: datetime | None = None,
    track: str = "both",
    sid: str | None = None,
    now: datetime | None = None,
) -> Recording:
    moment = now or utc_now()
    recording = Recording(
        sid=_check_sid("RecordingSid", sid, "RE") if sid is not None else new_sid("RE"),
        account_sid=account_sid,
        conference_sid=conference_sid,
        call_sid=call_sid,
        status=_check_choice("status", status, RECORDING_STATUSES),
        path=path,
        channels=1,
        source="Conference",
        start_time=start_time or moment,
        track=track,
        date_created=moment,
        date_updated=moment,
    )
    session.add(recording)
    _flush(session)
    return recording


def get_recording(session: Session, *, sid: str) -> Recording | None:
    return session.get(Recording, sid)


def list_recordings(
    session: Session, *, account_sid: str | None = None, conference_sid: str | None = None
) -> list[Recording]:
    query = select(Recording)
    if account_sid is not None:
        query = query.where(Recording.account_sid == account_sid)
    if conference_sid is not None:
        query = query.where(Recording.conference_sid == conference_sid)
    return list(session.scalars(query.order_by(Recording.date_created.desc(), Recording.sid)))


def update_recording(
    session: Session,
    *,
    sid: str,
    status: str | _Unset = UNSET,
    path: str | _Unset | None = UNSET,
    duration: int | _Unset | None = UNSET,
    error_code: int | _Unset | None = UNSET,
    now: datetime | None = None,
) -> Recording:
    moment = now or utc_now()
    recording = _require(session.get(Recording, sid), "recording", sid)
    if not isinstance(status, _Unset):
        recording.status = _check_choice("status", status, RECORDING_STATUSES)
    if not isinstance(path, _Unset):
        recording.path = path
    if not isinstance(duration, _Unset):
        recording.duration = duration
    if not isinstance(error_code, _Unset):
        recording.error_code = error_code
    recording.date_updated = moment
    _flush(session)
    return recording


# --- alerts --------------------------------------------------------------------


def create_alert(
    session: Session,
    *,
    account_sid: str,
    error_code: int,
    message: str,
    log_level: str = "error",
    more_info: str | None = None,
    request_url: str | None = None,
    call_sid: str | None = None,
    now: datetime | None = None,
) -> Alert:
    """A notification, like Twilio's Alerts (error 16025, 13240, 11200, ...)."""
    moment = now or utc_now()
    alert = Alert(
        sid=new_sid("NO"),
        account_sid=account_sid,
        error_code=error_code,
        log_level=_check_choice("log_level", log_level, ("error", "warning", "notice", "debug")),
        message=message,
        more_info=more_info or f"https://www.twilio.com/docs/errors/{error_code}",
        request_url=request_url,
        call_sid=call_sid,
        date_created=moment,
        date_updated=moment,
    )
    session.add(alert)
    _flush(session)
    return alert


def list_alerts(
    session: Session, *, account_sid: str | None = None, limit: int | None = None
) -> list[Alert]:
    """Newest first."""
    query = select(Alert)
    if account_sid is not None:
        query = query.where(Alert.account_sid == account_sid)
    query = query.order_by(Alert.date_created.desc(), Alert.sid)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def count_callbacks_by_status(session: Session) -> dict[str, int]:
    """Outbox depth per status (pending, delivered, failed = dead letters)."""
    rows = session.execute(select(Callback.status, func.count()).group_by(Callback.status))
    return {status: int(count) for status, count in rows}
