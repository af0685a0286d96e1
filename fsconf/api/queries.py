"""Account-scoped look-ups and the list queries (filters + keyset order).

Theory of operation
-------------------
Every look-up takes the authenticated AccountSid and answers "not found" for
a row of another account exactly as for a row that does not exist: the views
turn both into the same 404.

The list filters (dates, booleans) are not in :mod:`fsconf.store.repositories`
yet, so the list queries are built here, read-only, on the store's models.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session
from werkzeug.datastructures import MultiDict

from fsconf.api import params
from fsconf.api.paging import Keyset
from fsconf.store import repositories as repo
from fsconf.store.ids import is_sid
from fsconf.store.models import PARTICIPANT_GONE, Conference, Participant, Recording

#: Newest first, as Twilio lists conferences and recordings.
CONFERENCE_ORDER = Keyset(columns=(Conference.date_created, Conference.sid), descending=True)
RECORDING_ORDER = Keyset(columns=(Recording.date_created, Recording.sid), descending=True)
#: Join order, as Twilio lists participants.
PARTICIPANT_ORDER = Keyset(
    columns=(Participant.date_created, Participant.call_sid, Participant.join_sequence),
    descending=False,
)
CONFERENCE_KEY_TYPES = (datetime, str)
RECORDING_KEY_TYPES = (datetime, str)
PARTICIPANT_KEY_TYPES = (datetime, str, int)


# --- single rows -------------------------------------------------------------


def conference(session: Session, *, account_sid: str, sid: str) -> Conference | None:
    if not is_sid(sid, "CF"):
        return None
    row = repo.get_conference(session, sid=sid)
    return row if row is not None and row.account_sid == account_sid else None


def present_participant(
    session: Session, *, conference_sid: str, call_sid_or_label: str
) -> Participant | None:
    """By CallSid, else by label; only participants still in the conference
    (Twilio's Participants resource keeps no history)."""
    if is_sid(call_sid_or_label, "CA"):
        row = repo.get_participant(
            session, conference_sid=conference_sid, call_sid=call_sid_or_label
        )
        return row if row is not None and row.present else None
    return repo.get_participant_by_label(
        session, conference_sid=conference_sid, label=call_sid_or_label
    )


def recording(
    session: Session, *, account_sid: str, sid: str, conference_sid: str | None = None
) -> Recording | None:
    if not is_sid(sid, "RE"):
        return None
    row = repo.get_recording(session, sid=sid)
    if row is None or row.account_sid != account_sid:
        return None
    if conference_sid is not None and row.conference_sid != conference_sid:
        return None
    return row


# --- date filters ---------------------------------------------------------------


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def date_filters(
    args: MultiDict[str, str], name: str, column: InstrumentedAttribute[datetime]
) -> tuple[list[ColumnElement[bool]], list[tuple[str, str]]]:
    """``Name=YYYY-MM-DD`` (that day), ``Name<=`` (on or before), ``Name>=``
    (on or after), in UTC; returns the conditions and the parameters to repeat
    in page links."""
    conditions: list[ColumnElement[bool]] = []
    echo: list[tuple[str, str]] = []
    for key in (name, f"{name}<", f"{name}>"):
        value = args.get(key)
        if value is None:
            continue
        start = _midnight(params.day(key, value))
        end = start + timedelta(days=1)
        if key == name:
            conditions += [column >= start, column < end]
        elif key.endswith("<"):
            conditions.append(column < end)
        else:
            conditions.append(column >= start)
        echo.append((key, value))
    return conditions, echo


# --- lists -----------------------------------------------------------------------


def conferences(
    args: MultiDict[str, str], *, account_sid: str
) -> tuple[Select[Any], list[tuple[str, str]]]:
    query = select(Conference).where(Conference.account_sid == account_sid)
    echo: list[tuple[str, str]] = []
    name = args.get("FriendlyName")
    if name is not None:
        query = query.where(Conference.friendly_name == name)
        echo.append(("FriendlyName", name))
    status = params.choice(args, "Status", ("init", "in-progress", "completed"))
    if status is not None:
        query = query.where(Conference.status == status)
        echo.append(("Status", status))
    for field, column in (
        ("DateCreated", Conference.date_created),
        ("DateUpdated", Conference.date_updated),
    ):
        conditions, more = date_filters(args, field, column)
        query = query.where(*conditions)
        echo += more
    return query, echo


def participants(
    args: MultiDict[str, str], *, conference_sid: str
) -> tuple[Select[Any], list[tuple[str, str]]]:
    query = select(Participant).where(
        Participant.conference_sid == conference_sid,
        Participant.status.not_in(PARTICIPANT_GONE),
    )
    echo: list[tuple[str, str]] = []
    for name, column in (
        ("Muted", Participant.muted),
        ("Hold", Participant.hold),
        ("Coaching", Participant.coaching),
    ):
        value = params.boolean(args, name)
        if value is not None:
            query = query.where(column == value)
            echo.append((name, "true" if value else "false"))
    return query, echo


def recordings(
    args: MultiDict[str, str], *, account_sid: str, conference_sid: str
) -> tuple[Select[Any], list[tuple[str, str]]]:
    query = select(Recording).where(
        Recording.account_sid == account_sid, Recording.conference_sid == conference_sid
    )
    conditions, echo = date_filters(args, "DateCreated", Recording.date_created)
    return query.where(*conditions), echo
