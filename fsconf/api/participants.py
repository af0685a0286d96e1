"""``/Conferences/{Sid}/Participants``: list, fetch, update, delete (kick), create.

Theory of operation
-------------------
* A participant is named by its CallSid or by its label (Twilio accepts both
  in the path); only participants still in the conference are found, since
  Twilio's Participants resource keeps no history.
* Every parameter is parsed into a frozen :class:`ParticipantUpdate` or
  :class:`ParticipantCreate` first; a single bad value refuses the request
  with 400 and nothing reaches the control.
* Create may name the conference by its friendly name (the control joins or
  creates the account's active conference of that name) or by a ConferenceSid
  of this account (anything that looks like a SID must exist: 404 otherwise).
"""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from fsconf.api import context, params, queries, serializers
from fsconf.api.conferences import current_uri, load_conference
from fsconf.api.errors import ParameterError, ResourceNotFound
from fsconf.api.paging import list_body
from fsconf.service.control import ParticipantCreate, ParticipantUpdate
from fsconf.store import repositories as repo
from fsconf.store.ids import is_sid
from fsconf.store.models import BEEP_VALUES, JITTER_BUFFER_SIZES, Participant

log = logging.getLogger(__name__)

bp = Blueprint("participants", __name__)

MAX_LABEL = 128
MAX_FRIENDLY_NAME = 128
CONFERENCE_EVENTS = (
    "start",
    "end",
    "join",
    "leave",
    "mute",
    "hold",
    "modify",
    "speaker",
    "announcement",
)
RECORDING_EVENTS = ("in-progress", "completed", "absent")
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
CONFERENCE_RECORD = {
    "true": "record-from-start",
    "record-from-start": "record-from-start",
    "false": "do-not-record",
    "do-not-record": "do-not-record",
}
TRIM_VALUES = ("trim-silence", "do-not-trim")
REGIONS = ("us1", "us2", "ie1", "de1", "sg1", "br1", "au1", "jp1")


def load_participant(conference_sid: str, call_sid_or_label: str) -> Participant:
    with context.session_scope() as session:
        row = queries.present_participant(
            session, conference_sid=conference_sid, call_sid_or_label=call_sid_or_label
        )
    if row is None:
        raise ResourceNotFound()
    return row


def _json(row: Participant, **extra: Any) -> Response:
    return jsonify(serializers.participant(row, account_sid=context.account_sid(), **extra))


# --- list / fetch ---------------------------------------------------------------------


@bp.get("/Conferences/<conference_sid>/Participants.json")
def list_participants(conference_sid: str) -> ResponseReturnValue:
    account_sid = context.account_sid()
    query, filters = queries.participants(request.args, conference_sid=conference_sid)
    load_conference(conference_sid)
    with context.session_scope() as session:
        body = list_body(
            session,
            args=request.args,
            query=query,
            keyset=queries.PARTICIPANT_ORDER,
            key_types=queries.PARTICIPANT_KEY_TYPES,
            filters=filters,
            records_key="participants",
            serialize=lambda row: serializers.participant(row, account_sid=account_sid),
            path=request.path,
            current_uri=current_uri(),
        )
    return jsonify(body)


@bp.get("/Conferences/<conference_sid>/Participants/<participant>.json")
def fetch_participant(conference_sid: str, participant: str) -> ResponseReturnValue:
    conference = load_conference(conference_sid)
    return _json(load_participant(conference.sid, participant))


# --- update / delete --------------------------------------------------------------------


def parse_update(form: MultiDict[str, str]) -> ParticipantUpdate:
    update = ParticipantUpdate(
        muted=params.boolean(form, "Muted"),
        hold=params.boolean(form, "Hold"),
        hold_url=params.url(form, "HoldUrl"),
        hold_method=params.method(form, "HoldMethod"),
        announce_url=params.url(form, "AnnounceUrl"),
        announce_method=params.method(form, "AnnounceMethod"),
        wait_url=params.url(form, "WaitUrl", allow_empty=True),
        wait_method=params.method(form, "WaitMethod"),
        beep_on_exit=params.boolean(form, "BeepOnExit"),
        end_conference_on_exit=params.boolean(form, "EndConferenceOnExit"),
        coaching=params.boolean(form, "Coaching"),
        call_sid_to_coach=params.sid(form, "CallSidToCoach", "CA"),
    )
    if update.announce_method is not None and update.announce_url is None:
        raise ParameterError(
            params.INVALID_PARAMETER, "AnnounceMethod", "AnnounceMethod needs an AnnounceUrl"
        )
    return update


def _is_empty(update: ParticipantUpdate) -> bool:
    return all(getattr(update, field.name) is None for field in fields(update))


@bp.post("/Conferences/<conference_sid>/Participants/<participant>.json")
def update_participant(conference_sid: str, participant: str) -> ResponseReturnValue:
    update = parse_update(request.form)
    conference = load_conference(conference_sid)
    row = load_participant(conference.sid, participant)
    coach_target = update.call_sid_to_coach or row.call_sid_to_coach
    if update.coaching and coach_target is None:
        raise ParameterError(
            params.INVALID_PARAMETER, "CallSidToCoach", "Coaching=true needs a CallSidToCoach"
        )
    if not _is_empty(update):
        log.info("API: update participant %s in %s", row.call_sid, conference.sid)
        context.current().control.update_participant(
            account_sid=conference.account_sid,
            conference_sid=conference.sid,
            call_sid=row.call_sid,
            update=update,
        )
    return _json(load_participant(conference.sid, row.call_sid))


@bp.delete("/Conferences/<conference_sid>/Participants/<participant>.json")
def delete_participant(conference_sid: str, participant: str) -> ResponseReturnValue:
    conference = load_conference(conference_sid)
    row = load_participant(conference.sid, participant)
    log.info("API: kick participant %s from %s", row.call_sid, conference.sid)
    context.current().control.kick_participant(
        account_sid=conference.account_sid, conference_sid=conference.sid, call_sid=row.call_sid
    )
    return "", 204


# --- create -------------------------------------------------------------------------


def parse_create(form: MultiDict[str, str]) -> ParticipantCreate:
    """Every supported parameter, validated; absent ones take Twilio's defaults."""
    given: dict[str, Any] = {
        "label": params.text(form, "Label", max_length=MAX_LABEL),
        "timeout": params.integer(form, "Timeout", low=5, high=600, code=params.INVALID_TIMEOUT),
        "beep": params.choice(form, "Beep", BEEP_VALUES),
        "muted": params.boolean(form, "Muted"),
        "start_conference_on_enter": params.boolean(form, "StartConferenceOnEnter"),
        "end_conference_on_exit": params.boolean(form, "EndConferenceOnExit"),
        "wait_url": params.url(form, "WaitUrl", allow_empty=True),
        "wait_method": params.method(form, "WaitMethod"),
        "max_participants": params.integer(form, "MaxParticipants", low=2, high=250),
        "conference_record": _record(form),
        "conference_trim": params.choice(form, "ConferenceTrim", TRIM_VALUES),
        "conference_status_callback": params.url(form, "ConferenceStatusCallback"),
        "conference_status_callback_method": params.method(form, "ConferenceStatusCallbackMethod"),
        "conference_status_callback_event": params.events(
            form, "ConferenceStatusCallbackEvent", CONFERENCE_EVENTS
        ),
        "conference_recording_status_callback": params.url(
            form, "ConferenceRecordingStatusCallback"
        ),
        "conference_recording_status_callback_method": params.method(
            form, "ConferenceRecordingStatusCallbackMethod"
        ),
        "conference_recording_status_callback_event": params.events(
            form, "ConferenceRecordingStatusCallbackEvent", RECORDING_EVENTS
        ),
        "coaching": params.boolean(form, "Coaching"),
        "call_sid_to_coach": params.sid(form, "CallSidToCoach", "CA"),
        "jitter_buffer_size": params.choice(form, "JitterBufferSize", JITTER_BUFFER_SIZES),
        "time_limit": params.integer(form, "TimeLimit", low=1, high=86400),
        "status_callback": params.url(form, "StatusCallback"),
        "status_callback_method": params.method(form, "StatusCallbackMethod"),
        "status_callback_event": params.events(form, "StatusCallbackEvent", CALL_EVENTS),
        "region": params.choice(form, "Region", REGIONS),
    }
    _check_unsupported(form)
    if given["coaching"] and given["call_sid_to_coach"] is None:
        raise ParameterError(
            params.INVALID_PARAMETER, "CallSidToCoach", "Coaching=true needs a CallSidToCoach"
        )
    to = params.address(form, "To", missing=params.TO_MISSING, bad=params.TO_INVALID)
    from_ = params.address(form, "From", missing=params.FROM_MISSING, bad=params.FROM_INVALID)
    return ParticipantCreate(
        from_=from_, to=to, **{name: value for name, value in given.items() if value is not None}
    )


def _record(form: MultiDict[str, str]) -> str | None:
    value = params.choice(form, "ConferenceRecord", tuple(CONFERENCE_RECORD))
    return CONFERENCE_RECORD[value] if value is not None else None


def _check_unsupported(form: MultiDict[str, str]) -> None:
    """Parameters fsconf does not act on, but whose values can still be wrong:
    checked for type like Twilio does, then ignored."""
    for name in ("Record", "EarlyMedia"):
        params.boolean(form, name)
    for name in ("RecordingStatusCallback", "AmdStatusCallback"):
        params.url(form, name)
    for name in ("RecordingStatusCallbackMethod", "AmdStatusCallbackMethod"):
        params.method(form, name)
    params.events(form, "RecordingStatusCallbackEvent", RECORDING_EVENTS)


def conference_reference(segment: str) -> str:
    """The conference path segment of a create: our SID, or a friendly name."""
    if segment.startswith("CF") and len(segment) == 34:
        return load_conference(segment).sid
    return params.check_text("ConferenceSid", segment, max_length=MAX_FRIENDLY_NAME)


def _created_row(account_sid: str, conference: str, call_sid: str) -> Participant | None:
    with context.session_scope() as session:
        if is_sid(conference, "CF"):
            conference_sid: str | None = conference
        else:
            active = repo.find_active_conference(
                session, account_sid=account_sid, friendly_name=conference
            )
            conference_sid = active.sid if active is not None else None
        if conference_sid is None:
            return None
        return repo.get_participant(session, conference_sid=conference_sid, call_sid=call_sid)


@bp.post("/Conferences/<conference_sid>/Participants.json")
def create_participant(conference_sid: str) -> ResponseReturnValue:
    create = parse_create(request.form)
    account_sid = context.account_sid()
    conference = conference_reference(conference_sid)
    call_sid = context.current().control.create_participant(
        account_sid=account_sid, conference=conference, create=create
    )
    log.info("API: participant %s dialled into %r", call_sid, conference)
    row = _created_row(account_sid, conference, call_sid)
    if row is None:
        # The control returned a CallSid but no row is readable: a bug in the
        # control (its contract is "rows already written"), not the client's.
        log.error("participant %s in %r has no row after create", call_sid, conference)
        raise RuntimeError(f"participant {call_sid} has no row after create")
    response = _json(row, queue_time="0")
    response.status_code = 201
    return response
