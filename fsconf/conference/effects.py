"""Outputs of the conference engine: what the shell must do, as data.

Theory of operation
-------------------
The shell runs the effects of one ``apply`` in order, on the conference's
serial queue. It writes the rows and the callbacks in one transaction (the
outbox), then sends the commands. Every FreeSWITCH command text in an effect
was written by :mod:`fsconf.esl.commands`, so it is already validated.

* :class:`SendApi` is an api command text for the inbound connection (the shell
  sends it as ``bgapi`` with its own Job-UUID).
* :class:`JoinRoom` carries a whole join plan: the shell sends its ``sendmsg``
  frames on the call's outbound socket (:func:`fsconf.conference.mapping.join_frames`).
* :class:`PlayWait` and :class:`ContinueCall` go to the call layer.
* :class:`Callback` is one signed HTTP request to queue; its parameters are
  already in Twilio's order.
* :class:`StoreConference` / :class:`StoreParticipant` are the rows as they are
  after this step (upserts), with the store's field names; the conference row
  is built from the step's state when the store writes it (:func:`conference_row`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fsconf.conference.mapping import JoinPlan
from fsconf.conference.memo import IdentityMemo
from fsconf.conference.model import (
    ConferenceState,
    HttpMethod,
    Participant,
    RecordingEvent,
    RoomSettings,
    StatusCallbackToken,
)

CallbackKind = Literal["status", "recording", "event"]


@dataclass(frozen=True, slots=True)
class SendApi:
    command: str


@dataclass(frozen=True, slots=True)
class JoinRoom:
    """Move the call into the FreeSWITCH room. ``from_parked``: stop its wait
    audio first (``uuid_break <uuid> all``, so no queued wait message runs)."""

    call_sid: str
    plan: JoinPlan
    from_parked: bool


@dataclass(frozen=True, slots=True)
class PlayWait:
    """Park the call on its waitUrl: ``''`` silence, ``None`` the default music.
    Only Play, Say, Pause and Redirect may run there."""

    call_sid: str
    url: str | None
    method: HttpMethod


@dataclass(frozen=True, slots=True)
class ContinueCall:
    """The call left the conference with its channel up: stop the wait audio
    or let the conference app return, then request the Dial ``action`` with
    DialCallStatus (or run the next verb when ``action`` is None)."""

    call_sid: str
    dial_call_status: str
    action: str | None
    method: HttpMethod


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer_id: str
    seconds: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer_id: str


@dataclass(frozen=True, slots=True)
class Callback:
    kind: CallbackKind
    url: str
    method: HttpMethod
    params: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class ReportError:
    """A Twilio error notification (an alert row), e.g. 16025 or 13240."""

    code: int
    message: str
    call_sid: str | None


@dataclass(frozen=True, slots=True)
class RecordingFinished:
    """Store the recording row; ``trim`` asks the shell to trim leading and
    trailing silence (Twilio's trim-silence) before publishing it."""

    recording_sid: str
    path: str
    status: str
    duration: int
    file_size: int
    start_time: datetime
    trim: bool


@dataclass(frozen=True, slots=True)
class ConferenceRow:
    sid: str
    account_sid: str
    friendly_name: str
    status: str
    region: str | None
    max_participants: int
    record: str
    trim: str
    status_callback: str | None
    status_callback_method: str
    status_callback_events: str
    recording_status_callback: str | None
    recording_status_callback_method: str
    recording_status_callback_events: str
    event_callback_url: str | None
    sequence_number: int
    reason_ended: str | None
    call_sid_ending_conference: str | None
    participant_label_ending_conference: str | None
    start_time: datetime | None
    end_time: datetime | None


@dataclass(frozen=True, slots=True)
class ParticipantRow:
    conference_sid: str
    call_sid: str
    join_sequence: int
    label: str | None
    member_id: int | None
    placement: str
    status: str
    muted: bool
    hold: bool
    coaching: bool
    call_sid_to_coach: str | None
    start_conference_on_enter: bool
    end_conference_on_exit: bool
    beep: str
    wait_url: str | None
    wait_method: str
    hold_url: str | None
    hold_method: str
    jitter_buffer_size: str


@dataclass(frozen=True, slots=True)
class StoreConference:
    """The conference row as it is after its step, built when it is written.

    Every status callback changes the row (its SequenceNumber) and the store
    writes only the last one of a batch per conference, so in a talking storm
    building each at apply time was a third of the engine's work per event.
    """

    state: ConferenceState

    @property
    def sid(self) -> str:
        return self.state.sid

    @property
    def row(self) -> ConferenceRow:
        return conference_row(self.state)


@dataclass(frozen=True, slots=True)
class StoreParticipant:
    row: ParticipantRow


Effect = (
    SendApi
    | JoinRoom
    | PlayWait
    | ContinueCall
    | StartTimer
    | CancelTimer
    | Callback
    | ReportError
    | RecordingFinished
    | StoreConference
    | StoreParticipant
)


# --- Rows: what the store keeps of a state ----------------------------------------------------


_RoomColumns = tuple[
    str | None, int, str, str, str | None, str, str, str | None, str, str, str | None
]


def _compute_room_columns(room: RoomSettings) -> _RoomColumns:
    """ConferenceRow's fields from ``region`` to ``event_callback_url``, in order."""
    return (
        room.region,
        room.max_participants,
        room.record.value,
        room.trim.value,
        room.status_callback,
        room.status_callback_method.value,
        " ".join(t.value for t in StatusCallbackToken if t in room.status_callback_event),
        room.recording_status_callback,
        room.recording_status_callback_method.value,
        " ".join(e.value for e in RecordingEvent if e in room.recording_status_callback_event),
        room.event_callback_url,
    )


# The conference row's room columns, once per RoomSettings object (see memo):
# every status callback rewrites the row for its SequenceNumber.
_room_columns: IdentityMemo[RoomSettings, _RoomColumns] = IdentityMemo(_compute_room_columns)


def conference_row(state: ConferenceState) -> ConferenceRow:
    room = state.room
    assert room is not None, "a conference row needs room settings"
    ending = state.ending
    # Positional, in ConferenceRow's field order: keywords cost twice as much
    # on the hot path (one row per status callback).
    return ConferenceRow(
        state.sid,
        state.account_sid,
        state.friendly_name,
        state.status.value,
        *_room_columns(room),
        state.sequence_number,
        ending.reason.value if ending else None,
        ending.call_sid if ending else None,
        ending.label if ending else None,
        state.start_time,
        state.end_time,
    )


def participant_row(conference_sid: str, participant: Participant) -> ParticipantRow:
    return ParticipantRow(
        conference_sid=conference_sid,
        call_sid=participant.call_sid,
        join_sequence=participant.join_sequence,
        label=participant.label,
        member_id=participant.member_id,
        placement=participant.placement.value,
        status=participant.status.value,
        muted=participant.muted,
        hold=participant.hold,
        coaching=participant.coaching,
        call_sid_to_coach=participant.call_sid_to_coach,
        start_conference_on_enter=participant.start_conference_on_enter,
        end_conference_on_exit=participant.end_conference_on_exit,
        beep=participant.beep.value,
        wait_url=participant.wait_url,
        wait_method=participant.wait_method.value,
        hold_url=participant.hold_url,
        hold_method=participant.hold_method.value,
        jitter_buffer_size=participant.settings.jitter_buffer_size.value,
    )
