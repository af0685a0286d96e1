"""Rebuild a conference's engine state from its stored rows (fsconf restarted).

Theory of operation
-------------------
Every step of the engine writes its rows (conference, participants) and its
callbacks in one transaction, so the rows of an active conference are the
state as of its last completed step: :func:`restore_conference` turns them
back into a :class:`~fsconf.conference.model.ConferenceState`. It is the
inverse of :func:`fsconf.conference.engine.conference_row` and
``participant_row`` for everything the rows hold:

* the SequenceNumber counter continues from the stored value, so the next
  callback takes the next number: no gap, no reuse;
* room settings (statusCallback and its events, record, trim, ...) come back
  as the first participant set them (R2);
* present participants come back in their join order with their placement,
  member id, mute/hold, coach and endConferenceOnExit; departed ones keep
  their rows so that a rejoin gets the next join sequence.

What the rows do not hold is lost, and stays lost: a participant's Dial
``action``, ``timeLimit`` and ``hangupOnStar`` (its call lost its outbound
socket with the old process, so fsconf can no longer continue it anyway: on a
real FreeSWITCH the member stays in the room and the channel hangs up when it
leaves), announcements in flight (their play-file-done is stale), and the
relations, which are recomputed from the coach settings (FreeSWITCH keeps
them while the members stay). The shell then reconciles the restored state
with what FreeSWITCH shows (R15).

Pure: rows in, state out; no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable

from fsconf.conference.effects import ConferenceRow, ParticipantRow
from fsconf.conference.engine import _desired_relations
from fsconf.conference.model import (
    Beep,
    ConferenceState,
    ConferenceStatus,
    EngineConfig,
    HttpMethod,
    JitterBufferSize,
    Participant,
    ParticipantSettings,
    ParticipantStatus,
    Placement,
    Record,
    Recording,
    RecordingEvent,
    RoomSettings,
    StatusCallbackToken,
    Trim,
)

GONE = frozenset({ParticipantStatus.COMPLETE.value, ParticipantStatus.FAILED.value})


def call_uuid_of(call_sid: str) -> str:
    """CallSid = ``CA`` + the channel UUID without dashes (DESIGN, Identity)."""
    return str(uuid.UUID(call_sid[2:]))


def room_settings(row: ConferenceRow) -> RoomSettings:
    return RoomSettings(
        max_participants=row.max_participants,
        region=row.region,
        record=Record(row.record),
        trim=Trim(row.trim),
        status_callback=row.status_callback,
        status_callback_method=HttpMethod(row.status_callback_method),
        status_callback_event=frozenset(
            StatusCallbackToken(word) for word in row.status_callback_events.split()
        ),
        recording_status_callback=row.recording_status_callback,
        recording_status_callback_method=HttpMethod(row.recording_status_callback_method),
        recording_status_callback_event=frozenset(
            RecordingEvent(word) for word in row.recording_status_callback_events.split()
        ),
        event_callback_url=row.event_callback_url,
    )


def participant_of(row: ParticipantRow) -> Participant:
    settings = ParticipantSettings(
        muted=row.muted,
        beep=Beep(row.beep),
        start_conference_on_enter=row.start_conference_on_enter,
        end_conference_on_exit=row.end_conference_on_exit,
        participant_label=row.label,
        jitter_buffer_size=JitterBufferSize(row.jitter_buffer_size),
        wait_url=row.wait_url,
        wait_method=HttpMethod(row.wait_method),
        coach=row.call_sid_to_coach if row.coaching else None,
    )
    return Participant(
        call_sid=row.call_sid,
        call_uuid=call_uuid_of(row.call_sid),
        join_sequence=row.join_sequence,
        settings=settings,
        placement=Placement(row.placement),
        status=ParticipantStatus(row.status),
        member_id=row.member_id,
        muted=row.muted,
        hold=row.hold,
        coaching=row.coaching,
        call_sid_to_coach=row.call_sid_to_coach,
        end_conference_on_exit=row.end_conference_on_exit,
        beep=Beep(row.beep),
        wait_url=row.wait_url,
        wait_method=HttpMethod(row.wait_method),
        hold_url=row.hold_url,
        hold_method=HttpMethod(row.hold_method),
        joined_muted=row.muted,
    )


def restore_conference(
    row: ConferenceRow,
    participants: Iterable[ParticipantRow],
    *,
    config: EngineConfig,
    recording: Recording | None = None,
) -> ConferenceState:
    """The state the rows describe; ``participants`` in join order.

    ``recording`` is the conference's recording row still running (in-progress
    or paused), if any: its stop-recording must still produce the callbacks.
    """
    present: list[Participant] = []
    departed: list[Participant] = []
    for participant_row in participants:
        participant = participant_of(participant_row)
        (departed if participant_row.status in GONE else present).append(participant)
    status = ConferenceStatus(row.status)
    room = room_settings(row) if (present or departed) else None
    state = ConferenceState(
        sid=row.sid,
        account_sid=row.account_sid,
        friendly_name=row.friendly_name,
        config=config,
        status=status,
        room=room,
        participants=tuple(present),
        departed=tuple(departed),
        sequence_number=row.sequence_number,
        start_time=row.start_time,
        end_time=row.end_time,
        # record-from-start is sent when the second member is confirmed (R6):
        # with two confirmed members stored, it was sent.
        record_requested=recording is not None
        or (
            room is not None
            and room.record is Record.RECORD_FROM_START
            and sum(1 for p in present if p.member_id is not None) >= 2
        ),
        recording=recording,
    )
    return dataclasses.replace(state, relations=_desired_relations(state))


__all__ = ["call_uuid_of", "participant_of", "restore_conference", "room_settings"]
