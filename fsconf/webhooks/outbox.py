"""The webhook outbox: callbacks are rows, written with the change that causes them.

Theory of operation
-------------------
* Nothing is sent here.  A callback is an INSERT in the caller's transaction,
  so a conference event and its callback commit (or vanish) together; the
  delivery workers (:mod:`fsconf.webhooks.delivery`) send them later.
* Conference status callbacks carry Twilio's ``SequenceNumber``.  It is
  allocated by :func:`fsconf.store.repositories.next_sequence_number` in the
  same transaction as the row, so the numbers of a conference are 1, 2, 3, ...
  with neither gaps nor duplicates, whatever commits or rolls back.
* Every row has an ``ordering_key`` (the stream it belongs to).  Rows of one
  stream are delivered strictly in ``id`` order.  Conference callbacks use the
  ConferenceSid, and recording callbacks the RecordingSid.  Because the
  sequence number is allocated under the conference's row lock *before* the
  INSERT takes its id, ``id`` order equals SequenceNumber order within a
  conference.
* Which events an application asked for (``statusCallbackEvent``) is decided
  here, in one table, so callers may enqueue every event unconditionally.
* Hot path: the conference service writes a speaker storm's callbacks with
  :func:`callback_values` and :func:`insert_callbacks`: one ``INSERT``
  executemany per transaction instead of one ORM flush per row. The
  statement is SQLAlchemy's own ``INSERT`` compiled once per dialect, and the
  values go through the columns' own bind processors (the timestamps), but
  straight to the driver's ``executemany``: SQLAlchemy's per-row parameter
  handling cost more than SQLite's insert itself. On PostgreSQL through
  psycopg the rows go with ``COPY ... FROM STDIN`` instead (about 4 µs of
  CPU per row against 35-40 for psycopg's executemany, and a third of the
  wall time). The rows are the same, checked the same way, and inserted in
  list order, so their ids follow the list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

from sqlalchemy import Connection, Dialect, Table, bindparam, insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from fsconf.errors import WebhookError
from fsconf.store.db import describe_error
from fsconf.store.models import Callback, Conference, Recording
from fsconf.store.native import Offload, Statements, execute_natively, padded
from fsconf.store.repositories import next_sequence_number
from fsconf.store.times import format_rfc2822, utc_now
from fsconf.webhooks.signing import Params

__all__ = [
    "CALLBACK_COLUMNS",
    "CONFERENCE_EVENT_GROUPS",
    "CallbackRow",
    "callback_values",
    "enqueue",
    "enqueue_conference_callback",
    "enqueue_recording_callback",
    "insert_callbacks",
]

log = logging.getLogger(__name__)

#: StatusCallbackEvent value -> the statusCallbackEvent word that subscribes to it.
CONFERENCE_EVENT_GROUPS: Final[Mapping[str, str]] = {
    "conference-start": "start",
    "conference-end": "end",
    "participant-join": "join",
    "participant-leave": "leave",
    "participant-mute": "mute",
    "participant-unmute": "mute",
    "participant-hold": "hold",
    "participant-unhold": "hold",
    "participant-modify": "modify",
    "participant-speech-start": "speaker",
    "participant-speech-stop": "speaker",
    "announcement-end": "announcement",
    "announcement-fail": "announcement",
}

RECORDING_EVENTS: Final = frozenset({"in-progress", "completed", "absent"})

_BASE_CONFERENCE_PARAMS: Final = frozenset(
    {
        "ConferenceSid",
        "FriendlyName",
        "AccountSid",
        "SequenceNumber",
        "Timestamp",
        "StatusCallbackEvent",
    }
)


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    pairs = [(str(name), str(value)) for name, value in items]
    return pairs


# The parameters are stored as JSON text; a prebuilt encoder skips json.dumps'
# per-call option handling (same output: tuples encode as lists).
_encode_any = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
_quote = json.encoder.encode_basestring  # what _encode_any quotes strings with

_PAIR_TEXTS: dict[tuple[str, str], str] = {}
"""``(name, value)`` -> its JSON text, ``["name", "value"]``."""
PAIR_TEXTS_LIMIT: Final = 4096
"""The memo is emptied when it reaches this many pairs (a bound, not an LRU)."""


def _encode_params(params: Sequence[tuple[str, str]]) -> str:
    """``params`` as :data:`_encode_any` writes them, character for character.

    A speaker storm stores one row per talking event, and json's encoder cost
    as much as SQLite's insert of the row (~3 µs). The pairs repeat: a
    participant's CallSid and flags, the room's sids, this second's
    Timestamp, the SequenceNumbers that every room counts through. So each
    pair's text is kept, and a row is a join of texts already made.
    """
    try:
        texts = [_PAIR_TEXTS.get(pair) or _pair_text(pair) for pair in params]
    # A list pair (unhashable), a value that is not a str, not a pair at all:
    # json says what it makes of them.
    except (TypeError, ValueError):
        return _encode_any(params)
    return "[" + ", ".join(texts) + "]"


def _pair_text(pair: tuple[str, str]) -> str:
    name, value = pair
    if type(name) is not str or type(value) is not str:
        raise TypeError("not a pair of str")
    text = "[" + _quote(name) + ", " + _quote(value) + "]"
    if len(_PAIR_TEXTS) >= PAIR_TEXTS_LIMIT:
        _PAIR_TEXTS.clear()
    _PAIR_TEXTS[pair] = text
    return text


_CALLBACKS = cast(Table, Callback.__table__)
_CALLBACK_COLUMNS: Final = (
    "account_sid",
    "conference_sid",
    "call_sid",
    "kind",
    "sequence_number",
    "ordering_key",
    "url",
    "method",
    "params",
    "status",
    "attempts",
    "next_attempt_at",
    "created",
)
_INSERT_CALLBACKS = insert(_CALLBACKS).values({name: bindparam(name) for name in _CALLBACK_COLUMNS})


CallbackRow = tuple[object, ...]
"""One pending callback's column values, in :data:`CALLBACK_COLUMNS` order."""

CALLBACK_COLUMNS: Final = _CALLBACK_COLUMNS


@dataclass(frozen=True, slots=True)
class _InsertPlan:
    """The callback INSERT for one dialect: its SQL text, where each driver
    parameter comes from in a :data:`CallbackRow`, and the bind processors
    SQLAlchemy would apply (the timestamps: naive UTC text on SQLite)."""

    sql: str
    order: tuple[int, ...] | None
    """Row index per positional parameter; None: named parameters."""
    processed: tuple[tuple[int, Callable[[Any], Any]], ...]
    utc_text: Callable[[Any], Any] | None = None
    """SQLite: the timestamps' processor, when the parameters are the row in
    order and the processor writes what :func:`_utc_text` writes (checked
    when the plan is made); :meth:`bind` then takes the short way."""

    def bind(self, row: CallbackRow) -> tuple[object, ...] | dict[str, object]:
        if self.utc_text is not None:
            return self._bind_utc_text(row, self.utc_text)
        values = list(row)
        # next_attempt_at and created are the same moment: processed once.
        last_in: object = None
        last_out: object = None
        for index, process in self.processed:
            value = values[index]
            if value is not None:
                if value is not last_in:
                    last_in, last_out = value, process(value)
                values[index] = last_out
        if self.order is None:
            return dict(zip(_CALLBACK_COLUMNS, values, strict=True))
        return tuple(values[index] for index in self.order)

    @staticmethod
    def _bind_utc_text(row: CallbackRow, process: Callable[[Any], Any]) -> tuple[object, ...]:
        # A storm binds one row per talking event, and the generic loop above
        # (a list copy, SQLAlchemy's processor, a reorder) cost half as much as
        # SQLite's insert. Same values: both columns are UTCDateTime, formatted
        # once when they are the same moment (callback_values makes them so).
        moment, created = row[_FIRST_TIMESTAMP:]
        text = _utc_text(moment) if type(moment) is datetime and moment.tzinfo is UTC else None
        if text is None:
            text = None if moment is None else process(moment)
        if created is not moment:
            created = None if created is None else process(created)
            return (*row[:_FIRST_TIMESTAMP], text, created)
        return (*row[:_FIRST_TIMESTAMP], text, text)


_FIRST_TIMESTAMP: Final = 11
"""next_attempt_at, then created: the last two of :data:`CALLBACK_COLUMNS`."""


def _utc_text(moment: datetime) -> str:
    """An aware UTC datetime as SQLAlchemy stores a DATETIME on SQLite:
    naive UTC, always six digits of microseconds (``2026-11-25 23:28:03.000000``)."""
    # %-formatting: half the cost of the same f-string here (measured).
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
    )


def _utc_text_processor(
    dialect: Dialect, order: tuple[int, ...] | None, processed: Sequence[tuple[int, Any]]
) -> Callable[[Any], Any] | None:
    """The timestamps' processor if :meth:`_InsertPlan.bind` may take the short way."""
    indexes = tuple(range(len(_CALLBACK_COLUMNS)))
    if dialect.name != "sqlite" or order != indexes:
        return None
    if tuple(index for index, _ in processed) != indexes[_FIRST_TIMESTAMP:]:
        return None
    process = processed[0][1]
    # A SQLAlchemy that stored them differently would be caught here, not in the rows.
    probes = (datetime(2026, 11, 25, 23, 28, 3, 835615, UTC), datetime(1999, 1, 2, 3, 4, 5, 0, UTC))
    if any(process(probe) != _utc_text(probe) for probe in probes):
        return None
    return cast("Callable[[Any], Any]", process)


_PLANS: dict[tuple[str, str, str], _InsertPlan] = {}


def _plan_for(dialect: Dialect) -> _InsertPlan:
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    plan = _PLANS.get(key)
    if plan is None:
        compiled = _INSERT_CALLBACKS.compile(dialect=dialect)
        order = (
            tuple(_CALLBACK_COLUMNS.index(name) for name in compiled.positiontup or ())
            if compiled.positional
            else None
        )
        processors = (
            (index, _CALLBACKS.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            for index, name in enumerate(_CALLBACK_COLUMNS)
        )
        processed = tuple((index, p) for index, p in processors if p is not None)
        utc_text = _utc_text_processor(dialect, order, processed)
        plan = _PLANS[key] = _InsertPlan(compiled.string, order, processed, utc_text)
    return plan


def callback_values(
    *,
    account_sid: str,
    url: str,
    method: str,
    params: Sequence[tuple[str, str]],
    kind: str,
    conference_sid: str | None,
    call_sid: str | None,
    sequence_number: int | None,
    ordering_key: str | None,
    now: datetime,
) -> CallbackRow:
    """The column values of one pending callback, checked as :func:`enqueue`
    checks them, for :func:`insert_callbacks`. ``params`` are ``(name, value)``
    string pairs (the engine's Callback effects carry nothing else)."""
    verb = method.upper()
    if verb not in ("GET", "POST"):
        raise WebhookError(f"callback method must be GET or POST, got {method!r}")
    if not url:
        raise WebhookError("callback URL is empty")
    # In CALLBACK_COLUMNS order (a tuple: a dict per row costs more than the insert).
    return (
        account_sid,
        conference_sid,
        call_sid,
        kind,
        sequence_number,
        ordering_key,
        url,
        verb,
        _encode_params(params),
        "pending",
        0,
        now,
        now,
    )


_COPY_CALLBACKS: Final = f"COPY callbacks ({', '.join(_CALLBACK_COLUMNS)}) FROM STDIN"


def insert_callbacks(
    connection: Connection, rows: Sequence[CallbackRow], *, offload: Offload | None = None
) -> None:
    """Insert pending callbacks (from :func:`callback_values`) in the caller's
    transaction: one executemany (one COPY with psycopg), in list order, so
    ids follow the list.

    ``offload`` (SQLite only; see :mod:`fsconf.store.native`): the rows go as
    a few multi-row statements run through it, on a native thread, instead.
    """
    if not rows:
        return
    try:
        if connection.dialect.driver == "psycopg":
            _copy_callbacks(connection, rows)
        elif offload is not None and (native := native_insert_statements(connection, rows)):
            execute_natively(connection, native, offload)
        else:
            plan = _plan_for(connection.dialect)
            connection.exec_driver_sql(plan.sql, [plan.bind(row) for row in rows])
    except SQLAlchemyError as error:
        raise WebhookError(describe_error(error)) from error
    log.debug("%d callbacks queued", len(rows))


SQLITE_ROWS_PER_STATEMENT: Final = 256
"""The most callbacks one SQLite statement of :func:`native_insert_statements` holds.

A statement is cached by its text (``sqlite3`` keeps the last 128 per
connection), and a prepared 256-row statement takes ~0.6 MB: with the
smaller sizes below it, ~1.2 MB for them all. 2 048 rows took 4 MB."""


def native_insert_statements(
    connection: Connection, rows: Sequence[CallbackRow]
) -> Statements | None:
    """The rows as multi-row INSERTs for SQLite's native thread (see
    :mod:`fsconf.store.native`), or None on another database.

    Why not executemany there: it binds each row with the GIL and steps it
    without, so a thread running it waits for the GIL once per row (the hub
    holds it), 1-7 ms each. One statement binds many rows at once and steps
    once. Each statement holds a power of two of rows, so that a handful of
    texts are ever prepared and cached; the last one is padded with rows of
    NULLs, which its ``WHERE`` leaves out (``account_sid`` is never NULL).
    The rows go in list order: ``VALUES`` yields them in order.
    """
    plan = _plan_for(connection.dialect)
    if plan.utc_text is None:
        return None
    statements: Statements = []
    width = len(_CALLBACK_COLUMNS)
    for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
        chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
        size = padded(len(chunk))
        values: list[object] = [value for row in chunk for value in plan.bind(row)]
        values += [None] * (width * (size - len(chunk)))
        statements.append((_values_insert(size), values))
    return statements


_VALUES_INSERTS: dict[int, str] = {}


def _values_insert(size: int) -> str:
    sql = _VALUES_INSERTS.get(size)
    if sql is None:
        row = "(" + ", ".join("?" * len(_CALLBACK_COLUMNS)) + ")"
        head = f"INSERT INTO callbacks ({', '.join(_CALLBACK_COLUMNS)})"
        # Our own column names and placeholders only: the values are bound.
        body = f" SELECT * FROM (VALUES {', '.join([row] * size)})"  # noqa: S608
        sql = _VALUES_INSERTS[size] = head + body + " WHERE column1 IS NOT NULL"
    return sql


def _copy_callbacks(connection: Connection, rows: Sequence[CallbackRow]) -> None:
    """COPY the rows on the transaction's own psycopg connection (the values
    need no bind processing there: psycopg takes aware datetimes as is)."""
    dialect = connection.dialect
    raw: Any = connection.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(_COPY_CALLBACKS) as copy:
            for row in rows:
                copy.write_row(row)
    except dialect.loaded_dbapi.Error as error:
        # As SQLAlchemy would have raised it (OperationalError for a lost
        # connection...), so the callers' retry rules see the same classes.
        raise DBAPIError.instance(
            _COPY_CALLBACKS, None, error, dialect.loaded_dbapi.Error, dialect=dialect
        ) from error


def enqueue(
    session: Session,
    *,
    account_sid: str,
    url: str,
    method: str,
    params: Params,
    kind: str,
    conference_sid: str | None = None,
    call_sid: str | None = None,
    sequence_number: int | None = None,
    ordering_key: str | None = None,
    now: datetime | None = None,
) -> Callback:
    """Insert one pending callback in the caller's transaction (nothing is sent).

    ``ordering_key`` defaults to ``conference_sid``: the callbacks of one
    conference go out in the order they were enqueued.
    """
    moment = now or utc_now()
    verb = method.upper()
    if verb not in ("GET", "POST"):
        raise WebhookError(f"callback method must be GET or POST, got {method!r}")
    if not url:
        raise WebhookError("callback URL is empty")
    callback = Callback(
        account_sid=account_sid,
        conference_sid=conference_sid,
        call_sid=call_sid,
        kind=kind,
        sequence_number=sequence_number,
        ordering_key=ordering_key if ordering_key is not None else conference_sid,
        url=url,
        method=verb,
        params=json.dumps(_pairs(params), ensure_ascii=False),
        status="pending",
        attempts=0,
        next_attempt_at=moment,
        created=moment,
    )
    session.add(callback)
    try:
        session.flush()
    except SQLAlchemyError as error:
        raise WebhookError(describe_error(error)) from error
    log.debug(
        "callback %s queued: %s %s conference=%s call=%s seq=%s",
        callback.id,
        kind,
        verb,
        conference_sid,
        call_sid,
        sequence_number,
    )
    return callback


def enqueue_conference_callback(
    session: Session,
    *,
    conference: Conference,
    event: str,
    params: Params | None = None,
    now: datetime | None = None,
) -> Callback | None:
    """Queue the ``statusCallback`` request for ``event`` (e.g. ``participant-join``).

    Returns None, and allocates no SequenceNumber, when the conference has no
    statusCallback or its statusCallbackEvent does not include ``event``.
    ``params`` are the event's own parameters (CallSid, Muted, Hold, ...,
    ReasonConferenceEnded, ...); the common ones (ConferenceSid, FriendlyName,
    AccountSid, SequenceNumber, Timestamp, StatusCallbackEvent) are added here.
    """
    group = CONFERENCE_EVENT_GROUPS.get(event)
    if group is None:
        raise WebhookError(f"unknown conference event {event!r}")
    if not conference.status_callback or group not in conference.status_callback_event_set:
        return None
    extra = _pairs(params)
    clashing = sorted({name for name, _value in extra} & _BASE_CONFERENCE_PARAMS)
    if clashing:
        raise WebhookError(f"{event} parameters may not override {', '.join(clashing)}")
    moment = now or utc_now()
    sequence = next_sequence_number(session, conference_sid=conference.sid)
    pairs: list[tuple[str, str]] = [
        ("ConferenceSid", conference.sid),
        ("FriendlyName", conference.friendly_name),
        ("AccountSid", conference.account_sid),
        ("SequenceNumber", str(sequence)),
        ("Timestamp", format_rfc2822(moment)),
        ("StatusCallbackEvent", event),
        *extra,
    ]
    call_sid = next((value for name, value in extra if name == "CallSid"), None)
    return enqueue(
        session,
        account_sid=conference.account_sid,
        url=conference.status_callback,
        method=conference.status_callback_method,
        params=pairs,
        kind="conference-status",
        conference_sid=conference.sid,
        call_sid=call_sid,
        sequence_number=sequence,
        ordering_key=conference.sid,
        now=moment,
    )


def enqueue_recording_callback(
    session: Session,
    *,
    conference: Conference,
    recording: Recording,
    status: str,
    recording_url: str,
    extra: Sequence[tuple[str, str]] = (),
    now: datetime | None = None,
) -> Callback | None:
    """Queue the ``recordingStatusCallback`` request for ``status``.

    ``status`` is ``in-progress``, ``completed`` or ``absent``; None is
    returned when the conference did not ask for it.  ``extra`` carries e.g.
    ``ErrorCode`` for ``absent``.
    """
    if status not in RECORDING_EVENTS:
        raise WebhookError(f"unknown recording event {status!r}")
    if (
        not conference.recording_status_callback
        or status not in conference.recording_status_callback_event_set
    ):
        return None
    moment = now or utc_now()
    started = recording.start_time or recording.date_created
    pairs: list[tuple[str, str]] = [
        ("AccountSid", recording.account_sid),
        ("ConferenceSid", conference.sid),
        ("RecordingSid", recording.sid),
        ("RecordingUrl", recording_url),
        ("RecordingStatus", status),
    ]
    # The duration is only known once the file is closed: an in-progress
    # callback carries no RecordingDuration rather than a made-up one.
    if recording.duration is not None:
        pairs.append(("RecordingDuration", str(recording.duration)))
    pairs += [
        ("RecordingChannels", str(recording.channels)),
        ("RecordingStartTime", format_rfc2822(started)),
        ("RecordingSource", recording.source),
        *_pairs(extra),
    ]
    return enqueue(
        session,
        account_sid=recording.account_sid,
        url=conference.recording_status_callback,
        method=conference.recording_status_callback_method,
        params=pairs,
        kind="recording-status",
        conference_sid=conference.sid,
        call_sid=recording.call_sid,
        ordering_key=recording.sid,
        now=moment,
    )
