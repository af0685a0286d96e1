"""SQLAlchemy 2.0 models: accounts, calls, conferences, participants,
recordings, the callback outbox and alerts.

Theory of operation
-------------------
* The database enforces the identity rules of DESIGN.md, not the application:

  - at most one *active* (not ``completed``) conference per
    ``(account_sid, friendly_name)``: a partial unique index;
  - a participant row is keyed by ``(conference_sid, call_sid, join_sequence)``
    (FreeSWITCH reuses member ids, so ``member_id`` is informational only);
  - a call is present at most once in a conference, and a label is unique among
    the *present* participants of a conference: two more partial unique indexes.

  "Present" means a participant whose status is not ``complete`` or ``failed``;
  :data:`PARTICIPANT_GONE` is the single definition used by the indexes and by
  the repositories.
* Enumerations are short strings guarded by CHECK constraints: they read well in
  ``psql`` and migrate trivially, and a typo is refused by the database.
* Every datetime is stored as UTC and comes back timezone-aware
  (:class:`UTCDateTime`), whatever the backend.
* Constraint and index names come from one naming convention, so the Alembic
  migration (and any future ``batch_alter_table`` on SQLite) can name them.
* No server defaults: defaults live in Python (``default=``), so the
  repositories are the one place that decides a new row's values.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from fsconf.store.times import utc_now

__all__ = [
    "ACCOUNT_STATUSES",
    "BEEP_VALUES",
    "CALLBACK_METHODS",
    "CALLBACK_STATUSES",
    "CALL_STATUSES",
    "CONFERENCE_STATUSES",
    "JITTER_BUFFER_SIZES",
    "PARTICIPANT_GONE",
    "PARTICIPANT_STATUSES",
    "PLACEMENTS",
    "RECORDING_STATUSES",
    "Account",
    "Alert",
    "Base",
    "Call",
    "Callback",
    "Conference",
    "Participant",
    "Recording",
    "UTCDateTime",
]

ACCOUNT_STATUSES = ("active", "suspended", "closed")
CALL_STATUSES = (
    "queued",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
)
CONFERENCE_STATUSES = ("init", "in-progress", "completed")
PLACEMENTS = ("PARKED", "MIXED")
PARTICIPANT_STATUSES = ("queued", "connecting", "ringing", "connected", "complete", "failed")
#: Participant statuses that mean "no longer in the conference".
PARTICIPANT_GONE = ("complete", "failed")
BEEP_VALUES = ("true", "false", "onEnter", "onExit")
JITTER_BUFFER_SIZES = ("small", "medium", "large", "off")
RECORDING_STATUSES = ("in-progress", "paused", "stopped", "processing", "completed", "absent")
CALLBACK_STATUSES = ("pending", "delivered", "failed")
CALLBACK_METHODS = ("GET", "POST")
HTTP_METHODS = CALLBACK_METHODS

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({_sql_list(values)})"


# The partial-index predicates, written once and used for both dialects (and
# copied verbatim into the migration).
ACTIVE_CONFERENCE_WHERE = "status != 'completed'"
PRESENT_PARTICIPANT_WHERE = f"status NOT IN ({_sql_list(PARTICIPANT_GONE)})"
PRESENT_LABEL_WHERE = f"label IS NOT NULL AND {PRESENT_PARTICIPANT_WHERE}"


class UTCDateTime(TypeDecorator[datetime]):
    """A ``DateTime(timezone=True)`` that only accepts and returns aware UTC.

    PostgreSQL stores ``timestamptz``.  SQLite has no zone, so the value is
    stored as naive UTC text (which also sorts correctly) and the zone is put
    back on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware UTC times only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_Sid = String(34)
_Method = String(4)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utc_now)


def _updated() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(_one_of("status", ACCOUNT_STATUSES), name="status"),
        CheckConstraint(_one_of("voice_method", HTTP_METHODS), name="voice_method"),
        CheckConstraint(_one_of("fallback_method", HTTP_METHODS), name="fallback_method"),
    )

    sid: Mapped[str] = mapped_column(_Sid, primary_key=True)
    auth_token: Mapped[str] = mapped_column(String(64))
    friendly_name: Mapped[str] = mapped_column(String(255), default="")
    voice_url: Mapped[str | None] = mapped_column(Text)
    voice_method: Mapped[str] = mapped_column(_Method, default="POST")
    fallback_url: Mapped[str | None] = mapped_column(Text)
    fallback_method: Mapped[str] = mapped_column(_Method, default="POST")
    status: Mapped[str] = mapped_column(String(16), default="active")
    date_created: Mapped[datetime] = _created()
    date_updated: Mapped[datetime] = _updated()

    def __repr__(self) -> str:
        # Never the auth token.
        return f"<Account {self.sid} {self.status}>"


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(_one_of("status", CALL_STATUSES), name="status"),
        Index("ix_calls_account_sid_date_created", "account_sid", "date_created"),
    )

    sid: Mapped[str] = mapped_column(_Sid, primary_key=True)
    account_sid: Mapped[str] = mapped_column(_Sid, ForeignKey("accounts.sid"))
    from_: Mapped[str] = mapped_column("from_", String(255), default="")
    to: Mapped[str] = mapped_column(String(255), default="")
    direction: Mapped[str] = mapped_column(String(32), default="inbound")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    node: Mapped[str | None] = mapped_column(String(255))
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answer_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    date_created: Mapped[datetime] = _created()
    date_updated: Mapped[datetime] = _updated()

    def __repr__(self) -> str:
        return f"<Call {self.sid} {self.status}>"


class Conference(Base):
    __tablename__ = "conferences"
    __table_args__ = (
        CheckConstraint(_one_of("status", CONFERENCE_STATUSES), name="status"),
        CheckConstraint(
            _one_of("status_callback_method", HTTP_METHODS), name="status_callback_method"
        ),
        CheckConstraint(
            _one_of("recording_status_callback_method", HTTP_METHODS),
            name="recording_status_callback_method",
        ),
        CheckConstraint("max_participants BETWEEN 1 AND 250", name="max_participants"),
        CheckConstraint("sequence_number >= 0", name="sequence_number"),
        # DESIGN.md: at most one active conference per (account, friendly name).
        Index(
            "uq_conferences_active_friendly_name",
            "account_sid",
            "friendly_name",
            unique=True,
            sqlite_where=text(ACTIVE_CONFERENCE_WHERE),
            postgresql_where=text(ACTIVE_CONFERENCE_WHERE),
        ),
        Index("ix_conferences_account_sid_status", "account_sid", "status"),
        Index("ix_conferences_account_sid_date_created", "account_sid", "date_created"),
    )

    sid: Mapped[str] = mapped_column(_Sid, primary_key=True)
    account_sid: Mapped[str] = mapped_column(_Sid, ForeignKey("accounts.sid"))
    friendly_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="init")
    region: Mapped[str | None] = mapped_column(String(16))
    node: Mapped[str | None] = mapped_column(String(255))
    max_participants: Mapped[int] = mapped_column(Integer, default=250)
    record: Mapped[str] = mapped_column(String(32), default="do-not-record")
    trim: Mapped[str] = mapped_column(String(32), default="trim-silence")
    status_callback: Mapped[str | None] = mapped_column(Text)
    status_callback_method: Mapped[str] = mapped_column(_Method, default="POST")
    #: Space-joined event names (``"start end join"``), as in the TwiML attribute.
    status_callback_events: Mapped[str] = mapped_column(Text, default="")
    recording_status_callback: Mapped[str | None] = mapped_column(Text)
    recording_status_callback_method: Mapped[str] = mapped_column(_Method, default="POST")
    recording_status_callback_events: Mapped[str] = mapped_column(Text, default="completed")
    event_callback_url: Mapped[str | None] = mapped_column(Text)
    #: The last SequenceNumber handed out (0 = none yet); see
    #: :func:`fsconf.store.repositories.next_sequence_number`.
    sequence_number: Mapped[int] = mapped_column(Integer, default=0)
    reason_ended: Mapped[str | None] = mapped_column(String(64))
    call_sid_ending_conference: Mapped[str | None] = mapped_column(_Sid)
    participant_label_ending_conference: Mapped[str | None] = mapped_column(String(128))
    date_created: Mapped[datetime] = _created()
    date_updated: Mapped[datetime] = _updated()
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def status_callback_event_set(self) -> frozenset[str]:
        return frozenset(self.status_callback_events.split())

    @property
    def recording_status_callback_event_set(self) -> frozenset[str]:
        return frozenset(self.recording_status_callback_events.split())

    def __repr__(self) -> str:
        return f"<Conference {self.sid} {self.status}>"


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (
        CheckConstraint(_one_of("placement", PLACEMENTS), name="placement"),
        CheckConstraint(_one_of("status", PARTICIPANT_STATUSES), name="status"),
        CheckConstraint(_one_of("beep", BEEP_VALUES), name="beep"),
        CheckConstraint(
            _one_of("jitter_buffer_size", JITTER_BUFFER_SIZES), name="jitter_buffer_size"
        ),
        CheckConstraint(_one_of("wait_method", HTTP_METHODS), name="wait_method"),
        CheckConstraint(_one_of("hold_method", HTTP_METHODS), name="hold_method"),
        CheckConstraint("join_sequence >= 1", name="join_sequence"),
        # A call is in a conference at most once at a time.
        Index(
            "uq_participants_present_call",
            "conference_sid",
            "call_sid",
            unique=True,
            sqlite_where=text(PRESENT_PARTICIPANT_WHERE),
            postgresql_where=text(PRESENT_PARTICIPANT_WHERE),
        ),
        # participantLabel is unique among the present participants (error 16025).
        Index(
            "uq_participants_present_label",
            "conference_sid",
            "label",
            unique=True,
            sqlite_where=text(PRESENT_LABEL_WHERE),
            postgresql_where=text(PRESENT_LABEL_WHERE),
        ),
        Index("ix_participants_call_sid", "call_sid"),
    )

    conference_sid: Mapped[str] = mapped_column(
        _Sid, ForeignKey("conferences.sid"), primary_key=True
    )
    call_sid: Mapped[str] = mapped_column(_Sid, ForeignKey("calls.sid"), primary_key=True)
    #: 1 for the call's first join of this conference, 2 after a rejoin, ...
    join_sequence: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str | None] = mapped_column(String(128))
    #: FreeSWITCH's member id; informational (it is reused on rejoin).
    member_id: Mapped[int | None] = mapped_column(Integer)
    placement: Mapped[str] = mapped_column(String(8), default="PARKED")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    hold: Mapped[bool] = mapped_column(Boolean, default=False)
    coaching: Mapped[bool] = mapped_column(Boolean, default=False)
    call_sid_to_coach: Mapped[str | None] = mapped_column(_Sid)
    start_conference_on_enter: Mapped[bool] = mapped_column(Boolean, default=True)
    end_conference_on_exit: Mapped[bool] = mapped_column(Boolean, default=False)
    beep: Mapped[str] = mapped_column(String(8), default="true")
    wait_url: Mapped[str | None] = mapped_column(Text)
    wait_method: Mapped[str] = mapped_column(_Method, default="POST")
    hold_url: Mapped[str | None] = mapped_column(Text)
    hold_method: Mapped[str] = mapped_column(_Method, default="GET")
    jitter_buffer_size: Mapped[str] = mapped_column(String(8), default="large")
    date_created: Mapped[datetime] = _created()
    date_updated: Mapped[datetime] = _updated()

    @property
    def present(self) -> bool:
        return self.status not in PARTICIPANT_GONE

    def __repr__(self) -> str:
        return (
            f"<Participant {self.conference_sid}/{self.call_sid}#{self.join_sequence}"
            f" {self.status} {self.placement}>"
        )


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint(_one_of("status", RECORDING_STATUSES), name="status"),
        CheckConstraint("channels = 1", name="channels"),
        Index("ix_recordings_conference_sid", "conference_sid"),
        Index("ix_recordings_account_sid_date_created", "account_sid", "date_created"),
    )

    sid: Mapped[str] = mapped_column(_Sid, primary_key=True)
    account_sid: Mapped[str] = mapped_column(_Sid, ForeignKey("accounts.sid"))
    conference_sid: Mapped[str] = mapped_column(_Sid, ForeignKey("conferences.sid"))
    call_sid: Mapped[str | None] = mapped_column(_Sid)
    status: Mapped[str] = mapped_column(String(16), default="in-progress")
    path: Mapped[str | None] = mapped_column(Text)
    #: Seconds; unknown (None) until the recording is completed.
    duration: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(32), default="Conference")
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    track: Mapped[str] = mapped_column(String(16), default="both")
    error_code: Mapped[int | None] = mapped_column(Integer)
    date_created: Mapped[datetime] = _created()
    date_updated: Mapped[datetime] = _updated()

    def __repr__(self) -> str:
        return f"<Recording {self.sid} {self.status}>"


class Callback(Base):
    """One HTTP request to send: the webhook outbox.

    ``ordering_key`` names a stream (a ConferenceSid for conference status
    callbacks, a RecordingSid for recording callbacks).  Within a stream, rows
    are delivered strictly in ``id`` order: a row is not sent while an older
    row of its stream is still ``pending``.  Rows without a key are independent.
    """

    __tablename__ = "callbacks"
    __table_args__ = (
        CheckConstraint(_one_of("method", CALLBACK_METHODS), name="method"),
        CheckConstraint(_one_of("status", CALLBACK_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_callbacks_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_callbacks_ordering_key_status_id", "ordering_key", "status", "id"),
        # No index on conference_sid: no query of fsconf's filters on it, and a
        # speaker storm inserts a row per talking event (migration 0002).
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_sid: Mapped[str] = mapped_column(_Sid, ForeignKey("accounts.sid"))
    conference_sid: Mapped[str | None] = mapped_column(_Sid, ForeignKey("conferences.sid"))
    call_sid: Mapped[str | None] = mapped_column(_Sid)
    kind: Mapped[str] = mapped_column(String(32))
    sequence_number: Mapped[int | None] = mapped_column(Integer)
    ordering_key: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(_Method, default="POST")
    #: JSON text: an ordered list of ``[name, value]`` pairs.
    params: Mapped[str] = mapped_column(Text, default="[]")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    #: Set while a worker owns the row; a claim expires (worker died) at ``claimed_until``.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created: Mapped[datetime] = _created()
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def param_pairs(self) -> list[tuple[str, str]]:
        decoded: Any = json.loads(self.params)
        return [(str(name), str(value)) for name, value in decoded]

    def __repr__(self) -> str:
        return f"<Callback {self.id} {self.kind} {self.status} attempts={self.attempts}>"


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_account_sid_date_created", "account_sid", "date_created"),)

    sid: Mapped[str] = mapped_column(_Sid, primary_key=True)
    account_sid: Mapped[str] = mapped_column(_Sid, ForeignKey("accounts.sid"))
    error_code: Mapped[int] = mapped_column(Integer)
    log_level: Mapped[str] = mapped_column(String(16), default="error")
    message: Mapped[str] = mapped_column(Text, default="")
    more_info: Mapped[str | None] = mapped_column(Text)
    request_url: Mapped[str | None] = mapped_column(Text)
    call_sid: Mapped[str | None] = mapped_column(_Sid)
    date_created: Mapped[datetime] = _created()
    date_updated: Mapped[datetime] = _updated()

    def __repr__(self) -> str:
        return f"<Alert {self.sid} {self.error_code}>"
