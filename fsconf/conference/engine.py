"""The conference engine: ``apply(state, event, now) -> (state, effects)``.

Every transition of a Twilio ``<Conference>`` lives in this module, as tables
and short handlers. It does no I/O, reads no clock (``now`` is given) and makes
no ids (the shell injects ConferenceSid, RecordingSid and announcement ids).

Rules
-----
R1  Identity. The FreeSWITCH room is the ConferenceSid, never the friendly name.
    A participant is (conference sid, call sid, join sequence); FreeSWITCH
    events are matched by call sid, never by member id (reused on rejoin, B14).
R2  Room-wide settings come from the first participant that enters; later
    values are ignored (maxParticipants, region, record, trim, statusCallback*,
    recordingStatusCallback*, eventCallbackUrl).
R3  Entry checks, in order, before a call enters: a participantLabel already used
    by a present participant -> error 16025, the call goes on with the next verb;
    a coach Call SID that is not a present participant (or is the caller itself)
    -> error 13240, the call fails to its Dial action; a full conference
    (maxParticipants present) -> error 16020, the call fails to its Dial action.
    A refused call leaves the state untouched (a refused first call leaves no
    conference behind). fsconf choice: a coach may target a participant that is
    still waiting (Twilio says "in-progress conference", but with
    startConferenceOnEnter=false everybody waits until the coach arrives).
R4  Start. The conference starts when at least two participants are present and
    at least one has startConferenceOnEnter=true. Before that every participant
    is PARKED on its own waitUrl. At the start: conference-start, then every
    participant is moved into the room in arrival order. Later arrivals go
    straight into the room (MIXED). participant-join fires when a call enters
    the Twilio conference, parked or not, not when it enters the room.
R5  Room creation. The first join creates the FreeSWITCH room (there are no
    empty rooms, B9), so every join sent while no add-member has confirmed the
    room carries confvar_conference_sid and conference_max_members, which only
    the creating channel's values count for (B11).
R6  Recording. record-from-start sends ``conference <sid> record <path>`` when
    the second member is in the room ("when the first two participants are
    bridged"); wait audio is never in the room, so never recorded.
R7  Leaving. A participant leaves when: its call hangs up (a parked call at once,
    a member on del-member); its del-member comes after a kick we sent (API kick,
    timeLimit); it presses * with hangupOnStar (del-member with the call up);
    its join is refused (no member id, B11) or its wait audio fails; the
    conference ends. Every leave cancels its timer and sends participant-leave;
    unless the call hung up, the call goes on to its Dial action (or next verb),
    since hangup_after_conference=false keeps it up (B2).
R8  End. The conference ends when its last participant leaves, or when a
    participant with endConferenceOnExit=true leaves (then fsconf kicks every
    other member one by one, never ``kick all``, and each call goes on), or
    via the API. Order: the leaving participant's participant-leave, the others'
    participant-leave, then conference-end. A started conference with one
    participant left goes on. fsconf choice: a conference that never started
    also sends conference-end when its last caller leaves (Twilio created it at
    the first participant-join).
R9  Confirmation. API mute/hold/kick send commands; the state changes on the
    FreeSWITCH event that confirms it (mute-member, hold-member, del-member).
    A PARKED participant has no member: its mute/hold is stored at once, reported
    at once, and applied when it joins.
R10 Coach. ``relate <coach> <every other member but the coached> nospeak`` is
    re-applied on every add-member (relate is invisible in FreeSWITCH, B16: the
    relations live in the state).
R11 Dial. timeLimit starts a timer per participant when it enters; on expiry
    that member alone is kicked. hangupOnStar is the controls group.
R12 Callbacks go out only when statusCallback is set and the event's word is
    in statusCallbackEvent; each one sent takes the next SequenceNumber.
R13 After the end (status completed) FreeSWITCH keeps talking: del-member,
    kick-member, talking, mute/hold and play events, hangups, timers and refused
    joins are stale and ignored. Only two inputs still act: a late add-member of
    a call that already left is kicked (it must not stay alone in the room),
    and the recording's start/stop still produce the recording callbacks (the
    room's recording stops when FreeSWITCH destroys the room, after the end).
    API requests get Twilio error 16099; a new arrival is a TransitionError (the
    shell must open a new conference).
R14 Anything else that cannot happen in the current state (an event for an
    unknown call, add-member for a parked call, an unknown announcement)
    raises TransitionError naming the state and the event. An event about a
    call that already left this conference is stale and ignored.
R15 Reconciliation. After the event socket was down, or FreeSWITCH or fsconf
    restarted, the shell compares the state with what FreeSWITCH shows and
    reports the calls that are gone in one MembersVanished: each leaves as if
    its del-member had come (participant_hung_up; ParticipantCallStatus
    completed when the channel is gone, in-progress and the call goes on when
    it is still up), in arrival order, with no kick sent; then the conference
    ends if nobody is left or one of them had endConferenceOnExit (ending
    reason from that one, else from the last). A call that already left is
    skipped, so a leave is reported once whichever of del-member, CHANNEL_HANGUP
    and reconciliation comes first. After the end it is stale (R13).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from fsconf.conference import callbacks, mapping
from fsconf.conference.effects import (
    CancelTimer,
    ContinueCall,
    Effect,
    JoinRoom,
    PlayWait,
    RecordingFinished,
    ReportError,
    SendApi,
    StartTimer,
    StoreConference,
    StoreParticipant,
    conference_row,
    participant_row,
)
from fsconf.conference.events import (
    ApiAnnounce,
    ApiEndConference,
    ApiHold,
    ApiKick,
    ApiModify,
    ApiMute,
    CallHungUp,
    ConferenceInput,
    JoinRefused,
    MemberAdded,
    MemberDeleted,
    MemberHeld,
    MemberKicked,
    MemberMuted,
    MembersVanished,
    MemberUnheld,
    MemberUnmuted,
    ParticipantArrived,
    PlayFailed,
    PlayFileDone,
    RecordingStarted,
    RecordingStopped,
    StartTalking,
    StopTalking,
    TimerFired,
    WaitAudioFailed,
)
from fsconf.conference.model import (
    Announcement,
    Beep,
    ConferenceState,
    ConferenceStatus,
    Departure,
    Ending,
    Participant,
    ParticipantStatus,
    Placement,
    ReasonConferenceEnded,
    ReasonParticipantLeft,
    Record,
    Recording,
    RecordingEvent,
    RoomSettings,
    Trim,
)
from fsconf.errors import TransitionError, TwilioApiError
from fsconf.esl import commands

# --- Twilio error codes -----------------------------------------------------------------

ERROR_LABEL_IN_USE = 16025
ERROR_INVALID_COACH = 13240
ERROR_CONFERENCE_FULL = 16020
ERROR_UNEXPECTED_STATUS = 16099
ERROR_NOT_FOUND = 20404

# --- Tables -------------------------------------------------------------------------------

# R7: how a departure reads in participant-leave, and the DialCallStatus the call
# goes on with (a hung-up call does not go on, and its ParticipantCallStatus is
# completed). fsconf choice: hangupOnStar and timeLimit end the participant's
# leg of the conference as a hangup would, so Twilio's participant_hung_up.
LEAVES: Mapping[Departure, tuple[ReasonParticipantLeft, str]] = MappingProxyType(
    {
        Departure.HUNG_UP: (ReasonParticipantLeft.HUNG_UP, "completed"),
        Departure.LEFT: (ReasonParticipantLeft.HUNG_UP, "completed"),
        Departure.KICKED: (ReasonParticipantLeft.UPDATED_VIA_API, "completed"),
        Departure.ENDED_BY_MODERATOR: (
            ReasonParticipantLeft.MODERATOR_ENDED_CONFERENCE,
            "completed",
        ),
        Departure.ENDED_VIA_API: (ReasonParticipantLeft.CONFERENCE_ENDED_VIA_API, "completed"),
        Departure.ADD_FAILED: (ReasonParticipantLeft.ADD_FAILED, "failed"),
    }
)

# R8: (the leaver had endConferenceOnExit, the leaver was kicked) -> ReasonConferenceEnded.
ENDINGS: Mapping[tuple[bool, bool], ReasonConferenceEnded] = MappingProxyType(
    {
        (True, True): ReasonConferenceEnded.END_ON_EXIT_KICKED,
        (True, False): ReasonConferenceEnded.END_ON_EXIT_LEFT,
        (False, True): ReasonConferenceEnded.LAST_PARTICIPANT_KICKED,
        (False, False): ReasonConferenceEnded.LAST_PARTICIPANT_LEFT,
    }
)

# Inputs that need a FreeSWITCH room, which does not exist before the start (R4, B9).
NEEDS_ROOM: frozenset[type] = frozenset(
    {
        MemberAdded,
        MemberDeleted,
        MemberKicked,
        JoinRefused,
        StartTalking,
        StopTalking,
        MemberMuted,
        MemberUnmuted,
        MemberHeld,
        MemberUnheld,
        PlayFileDone,
        PlayFailed,
        RecordingStarted,
        RecordingStopped,
    }
)

# R13: stale after the end.
IGNORED_AFTER_END: frozenset[type] = frozenset(
    {
        MemberDeleted,
        MemberKicked,
        JoinRefused,
        CallHungUp,
        WaitAudioFailed,
        TimerFired,
        MembersVanished,
        StartTalking,
        StopTalking,
        MemberMuted,
        MemberUnmuted,
        MemberHeld,
        MemberUnheld,
        PlayFileDone,
        PlayFailed,
    }
)

API_REQUESTS: frozenset[type] = frozenset(
    {ApiMute, ApiHold, ApiAnnounce, ApiModify, ApiKick, ApiEndConference}
)

Effects = list[Effect]
Flag = Literal["muted", "hold"]
Handler = Callable[[ConferenceState, Any, datetime, Effects], ConferenceState]


# --- Entry point ------------------------------------------------------------------------


def apply(
    state: ConferenceState, event: ConferenceInput, now: datetime
) -> tuple[ConferenceState, tuple[Effect, ...]]:
    """Apply one input; return the new state and the effects, in order."""
    handler = _handler_for(state, event)
    if handler is None:
        return state, ()
    effects: Effects = []
    new_state = handler(state, event, now, effects)
    effects.extend(_rows(state, new_state))
    return new_state, tuple(effects)


def _handler_for(state: ConferenceState, event: ConferenceInput) -> Handler | None:
    kind = type(event)
    if state.status is ConferenceStatus.COMPLETED:
        if kind in IGNORED_AFTER_END:
            return None
        if kind in API_REQUESTS:
            raise TwilioApiError(ERROR_UNEXPECTED_STATUS, f"conference {state.sid} has ended")
        after_end = AFTER_END_HANDLERS.get(kind)
        if after_end is None:
            raise TransitionError(state.status, event, "the conference has ended")
        return after_end
    if state.status is ConferenceStatus.INIT and kind in NEEDS_ROOM:
        raise TransitionError(state.status, event, "the conference has not started: no room")
    return HANDLERS[kind]


# --- Lookups ----------------------------------------------------------------------------


def _participant(state: ConferenceState, event: object, call_sid: str) -> Participant | None:
    """The present participant; None if the call already left (stale, R14)."""
    participant = state.find(call_sid)
    if participant is not None:
        return participant
    if state.has_departed(call_sid):
        return None
    raise TransitionError(state.status, event, f"{call_sid} is not in conference {state.sid}")


def _member(state: ConferenceState, event: object, call_sid: str) -> Participant | None:
    """A present participant that must be in the room."""
    participant = _participant(state, event, call_sid)
    if participant is not None and participant.placement is not Placement.MIXED:
        raise TransitionError(state.status, event, f"{call_sid} is parked, not in the room")
    return participant


def _api_participant(state: ConferenceState, call_sid: str) -> Participant:
    participant = state.find(call_sid)
    if participant is None:
        raise TwilioApiError(
            ERROR_NOT_FOUND, f"participant {call_sid} not found in {state.sid}", 404
        )
    return participant


def _room(state: ConferenceState) -> RoomSettings:
    assert state.room is not None, "a conference with participants has room settings"
    return state.room


def _replace(state: ConferenceState, participant: Participant) -> ConferenceState:
    participants = tuple(
        participant if p.call_sid == participant.call_sid else p for p in state.participants
    )
    return dataclasses.replace(state, participants=participants)


def _callback(
    state: ConferenceState,
    effects: Effects,
    event_name: str,
    now: datetime,
    participant: Participant | None = None,
    extra: callbacks.Params = (),
) -> ConferenceState:
    state, callback = callbacks.status_callback(state, event_name, now, participant, extra)
    if callback is not None:
        effects.append(callback)
    return state


# --- Arrival and start (R2-R5, R11) ------------------------------------------------------


def _arrive(
    state: ConferenceState, event: ParticipantArrived, now: datetime, effects: Effects
) -> ConferenceState:
    if (event.account_sid, event.friendly_name) != (state.account_sid, state.friendly_name):
        raise TransitionError(state.status, event, "another account or friendly name")
    if state.find(event.call_sid) is not None:
        raise TransitionError(state.status, event, "the call is already in the conference")
    room = state.room or RoomSettings.from_settings(event.settings)
    refusal = _refusal(state, event, room)
    if refusal is not None:
        effects.extend(refusal)
        return state
    participant = _new_participant(state, event)
    state = dataclasses.replace(state, room=room, participants=(*state.participants, participant))
    effects.append(StartTimer(participant.timer_id, event.settings.time_limit))
    state = _callback(state, effects, "participant-join", now, participant)
    if state.status is ConferenceStatus.IN_PROGRESS:
        return _move_in(state, participant, effects, from_parked=False)
    if _start_rule(state):
        return _start(state, participant.call_sid, now, effects)
    effects.append(PlayWait(participant.call_sid, participant.wait_url, participant.wait_method))
    return state


def _refusal(
    state: ConferenceState, event: ParticipantArrived, room: RoomSettings
) -> list[Effect] | None:
    settings = event.settings
    label = settings.participant_label
    if label is not None and any(p.label == label for p in state.participants):
        # 16025: "continues to the next TwiML verb", not to the Dial action.
        return [
            ReportError(ERROR_LABEL_IN_USE, f"participantLabel {label!r} in use", event.call_sid),
            ContinueCall(event.call_sid, "failed", None, settings.method),
        ]
    coach = settings.coach
    if coach is not None and (coach == event.call_sid or state.find(coach) is None):
        return [
            ReportError(
                ERROR_INVALID_COACH, f"coach {coach} is not in the conference", event.call_sid
            ),
            ContinueCall(event.call_sid, "failed", settings.action, settings.method),
        ]
    if len(state.participants) >= room.max_participants:
        return [
            ReportError(ERROR_CONFERENCE_FULL, f"conference {state.sid} is full", event.call_sid),
            ContinueCall(event.call_sid, "failed", settings.action, settings.method),
        ]
    return None


def _new_participant(state: ConferenceState, event: ParticipantArrived) -> Participant:
    settings = event.settings
    earlier = sum(1 for p in state.departed if p.call_sid == event.call_sid)
    return Participant(
        call_sid=event.call_sid,
        call_uuid=event.call_uuid,
        join_sequence=earlier + 1,
        settings=settings,
        placement=Placement.PARKED,
        muted=settings.muted,
        coaching=settings.coach is not None,
        call_sid_to_coach=settings.coach,
        end_conference_on_exit=settings.end_conference_on_exit,
        beep=settings.beep,
        wait_url=settings.wait_url,
        wait_method=settings.wait_method,
    )


def _start_rule(state: ConferenceState) -> bool:
    present = state.participants
    return len(present) >= 2 and any(p.start_conference_on_enter for p in present)


def _start(
    state: ConferenceState, arriving_call_sid: str, now: datetime, effects: Effects
) -> ConferenceState:
    state = dataclasses.replace(state, status=ConferenceStatus.IN_PROGRESS, start_time=now)
    state = _callback(state, effects, "conference-start", now)
    for participant in state.participants:
        from_parked = participant.call_sid != arriving_call_sid
        state = _move_in(state, participant, effects, from_parked=from_parked)
    return state


def _move_in(
    state: ConferenceState, participant: Participant, effects: Effects, *, from_parked: bool
) -> ConferenceState:
    plan = mapping.join_plan(
        state.sid,
        participant,
        creates_room=not state.room_confirmed,
        max_participants=_room(state).max_participants,
        config=state.config,
    )
    effects.append(JoinRoom(participant.call_sid, plan, from_parked))
    moved = dataclasses.replace(
        participant, placement=Placement.MIXED, joined_muted=participant.muted
    )
    return _replace(state, moved)


# --- FreeSWITCH membership (R5, R6, R9, R10) -----------------------------------------------


def _member_added(
    state: ConferenceState, event: MemberAdded, now: datetime, effects: Effects
) -> ConferenceState:
    participant = state.find(event.call_sid)
    if participant is None and state.has_departed(event.call_sid):
        # R13/R14: the call left while its join was in flight; it must not stay.
        effects.append(SendApi(commands.conference_kick_cmd(state.sid, event.member_id)))
        return state
    if participant is None or not participant.joining:
        raise TransitionError(state.status, event, "add-member for a call that is not joining")
    participant = dataclasses.replace(participant, member_id=event.member_id)
    state = _replace(state, participant)
    if participant.pending_leave is not None:
        effects.append(SendApi(commands.conference_kick_cmd(state.sid, event.member_id)))
        return state
    effects.extend(_catch_up(state, participant))
    state = _sync_relations(state, effects, reapply=True)
    return _maybe_record(state, effects)


def _catch_up(state: ConferenceState, participant: Participant) -> list[Effect]:
    """Apply what was asked while the participant was parked or joining (R9)."""
    member_id = participant.member_id
    assert member_id is not None
    effects: list[Effect] = []
    if participant.muted != participant.joined_muted:
        build = (
            commands.conference_mute_cmd if participant.muted else commands.conference_unmute_cmd
        )
        effects.append(SendApi(build(state.sid, member_id)))
    if participant.hold:
        effects.append(SendApi(_hold_cmd(state, participant, member_id)))
    return effects


def _maybe_record(state: ConferenceState, effects: Effects) -> ConferenceState:
    if _room(state).record is not Record.RECORD_FROM_START or state.record_requested:
        return state
    if sum(1 for p in state.participants if p.member_id is not None) < 2:
        return state
    path = mapping.record_path(state.sid, state.config)
    effects.append(SendApi(commands.conference_record_cmd(state.sid, path)))
    return dataclasses.replace(state, record_requested=True)


def _desired_relations(state: ConferenceState) -> frozenset[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    for coach in state.participants:
        if not coach.coaching or coach.member_id is None:
            continue
        for other in state.participants:
            if other.member_id is None or other.call_sid in (
                coach.call_sid,
                coach.call_sid_to_coach,
            ):
                continue
            pairs.add((coach.member_id, other.member_id))
    return frozenset(pairs)


def _sync_relations(state: ConferenceState, effects: Effects, *, reapply: bool) -> ConferenceState:
    """R10: clear what no longer holds; set what is new (everything on a join)."""
    wanted = _desired_relations(state)
    removed = state.relations - wanted
    to_set = wanted if reapply else wanted - state.relations
    effects.extend(SendApi(c) for c in mapping.relate_cmds(state.sid, removed, "clear"))
    effects.extend(SendApi(c) for c in mapping.relate_cmds(state.sid, to_set, "nospeak"))
    return dataclasses.replace(state, relations=wanted)


def _member_deleted(
    state: ConferenceState, event: MemberDeleted, now: datetime, effects: Effects
) -> ConferenceState:
    participant = _member(state, event, event.call_sid)
    if participant is None:
        return state
    hung_up = event.hangup_cause is not None or participant.hung_up
    departure = participant.pending_leave or (Departure.HUNG_UP if hung_up else Departure.LEFT)
    return _departed(state, participant, departure, hung_up, now, effects)


def _member_kicked(
    state: ConferenceState, event: MemberKicked, now: datetime, effects: Effects
) -> ConferenceState:
    participant = _member(state, event, event.call_sid)
    if participant is None or participant.pending_leave is not None:
        return state
    # A kick we did not send (fs_cli, another tool) reads as a kick via the API.
    return _replace(state, dataclasses.replace(participant, pending_leave=Departure.KICKED))


def _join_refused(
    state: ConferenceState, event: JoinRefused, now: datetime, effects: Effects
) -> ConferenceState:
    participant = _member(state, event, event.call_sid)
    if participant is None:
        return state
    if not participant.joining:
        raise TransitionError(state.status, event, "the member is already in the room")
    effects.append(
        ReportError(ERROR_CONFERENCE_FULL, f"room {state.sid} refused the join", event.call_sid)
    )
    return _departed(state, participant, Departure.ADD_FAILED, False, now, effects)


# --- Reconciliation (R15) -------------------------------------------------------------------


def _members_vanished(
    state: ConferenceState, event: MembersVanished, now: datetime, effects: Effects
) -> ConferenceState:
    gone: list[tuple[Participant, bool]] = []
    for call_sid, call_up in event.calls:
        participant = _participant(state, event, call_sid)
        if participant is not None and all(p is not participant for p, _ in gone):
            gone.append((participant, participant.hung_up or not call_up))
    if not gone:
        return state
    ender: tuple[Participant, Departure] | None = None
    last: tuple[Participant, Departure] | None = None
    for participant, hung_up in gone:
        departure = participant.pending_leave or (Departure.HUNG_UP if hung_up else Departure.LEFT)
        state = _leave(state, participant, departure, hung_up, now, effects)
        last = (participant, departure)
        if participant.end_conference_on_exit and ender is None:
            ender = last
    if ender is None and state.participants:
        return state
    assert last is not None
    participant, departure = ender or last
    ending = Ending(
        ENDINGS[(participant.end_conference_on_exit, departure is Departure.KICKED)],
        participant.call_sid,
        participant.label,
    )
    return _end(state, ending, Departure.ENDED_BY_MODERATOR, now, effects)


# --- The call layer's facts (R7, R11) --------------------------------------------------------


def _call_hung_up(
    state: ConferenceState, event: CallHungUp, now: datetime, effects: Effects
) -> ConferenceState:
    participant = _participant(state, event, event.call_sid)
    if participant is None:
        return state
    if participant.placement is Placement.MIXED and participant.member_id is not None:
        # del-member follows (B2.3): it completes the leave with the right reason.
        return _replace(state, dataclasses.replace(participant, hung_up=True))
    return _departed(state, participant, Departure.HUNG_UP, True, now, effects)


def _wait_audio_failed(
    state: ConferenceState, event: WaitAudioFailed, now: datetime, effects: Effects
) -> ConferenceState:
    participant = _participant(state, event, event.call_sid)
    if participant is None or participant.placement is Placement.MIXED:
        return state  # the start moved it into the room meanwhile: its wait audio is over
    # The spec: a failed waitUrl means the conference is not established; the
    # call goes on to its action or next verb.
    return _departed(state, participant, Departure.ADD_FAILED, False, now, effects)


def _timer_fired(
    state: ConferenceState, event: TimerFired, now: datetime, effects: Effects
) -> ConferenceState:
    participant = next((p for p in state.participants if p.timer_id == event.timer_id), None)
    if participant is None:
        if any(p.timer_id == event.timer_id for p in state.departed):
            return state  # it left before the cancel reached the timer
        raise TransitionError(state.status, event, "no such timer")
    return _remove(state, participant, Departure.LEFT, now, effects)


def _remove(
    state: ConferenceState,
    participant: Participant,
    departure: Departure,
    now: datetime,
    effects: Effects,
) -> ConferenceState:
    """Take a participant out: at once when parked, by a kick of that member only
    otherwise (its del-member completes the leave)."""
    if participant.placement is Placement.PARKED:
        return _departed(state, participant, departure, False, now, effects)
    if participant.pending_leave is not None:
        return state
    if participant.member_id is not None:
        effects.append(SendApi(commands.conference_kick_cmd(state.sid, participant.member_id)))
    return _replace(state, dataclasses.replace(participant, pending_leave=departure))


# --- Leaving and ending (R7, R8) -------------------------------------------------------------


def _departed(
    state: ConferenceState,
    participant: Participant,
    departure: Departure,
    hung_up: bool,
    now: datetime,
    effects: Effects,
) -> ConferenceState:
    """A participant has left; end the conference if that ends it."""
    state = _leave(state, participant, departure, hung_up, now, effects)
    kicked = departure is Departure.KICKED
    if participant.end_conference_on_exit or not state.participants:
        ending = Ending(
            ENDINGS[(participant.end_conference_on_exit, kicked)],
            participant.call_sid,
            participant.label,
        )
        return _end(state, ending, Departure.ENDED_BY_MODERATOR, now, effects)
    return state


def _leave(
    state: ConferenceState,
    participant: Participant,
    departure: Departure,
    hung_up: bool,
    now: datetime,
    effects: Effects,
) -> ConferenceState:
    reason, dial_call_status = LEAVES[departure]
    failed = departure is Departure.ADD_FAILED
    gone = dataclasses.replace(
        participant,
        status=ParticipantStatus.FAILED if failed else ParticipantStatus.COMPLETE,
        pending_leave=None,
    )
    member_id = participant.member_id
    state = dataclasses.replace(
        state,
        participants=tuple(p for p in state.participants if p.call_sid != participant.call_sid),
        departed=(*state.departed, gone),
        # FreeSWITCH forgets a member's relations when it leaves.
        relations=frozenset(r for r in state.relations if member_id not in r),
    )
    effects.append(CancelTimer(participant.timer_id))
    call_status = "completed" if hung_up else "in-progress"
    extra = (("ParticipantCallStatus", call_status), ("ReasonParticipantLeft", reason.value))
    state = _callback(state, effects, "participant-leave", now, participant, extra)
    if not hung_up:
        settings = participant.settings
        effects.append(
            ContinueCall(participant.call_sid, dial_call_status, settings.action, settings.method)
        )
    return state


def _end(
    state: ConferenceState,
    ending: Ending,
    others: Departure,
    now: datetime,
    effects: Effects,
) -> ConferenceState:
    for participant in state.participants:
        if participant.member_id is not None and not participant.hung_up:
            # One by one, never `kick all` (DESIGN, timeLimit/endConferenceOnExit).
            effects.append(SendApi(commands.conference_kick_cmd(state.sid, participant.member_id)))
        state = _leave(state, participant, others, participant.hung_up, now, effects)
    state = dataclasses.replace(
        state, status=ConferenceStatus.COMPLETED, end_time=now, ending=ending
    )
    extra: list[tuple[str, str]] = []
    if ending.call_sid is not None:
        extra.append(("CallSidEndingConference", ending.call_sid))
    if ending.label is not None:
        extra.append(("ParticipantLabelEndingConference", ending.label))
    extra.append(("ReasonConferenceEnded", ending.reason.value))
    extra.append(("Reason", callbacks.END_REASON_TEXT[ending.reason]))
    return _callback(state, effects, "conference-end", now, None, tuple(extra))


# --- Talking, mute, hold (R9) ------------------------------------------------------------------


def _talking(event_name: str) -> Handler:
    def handle(
        state: ConferenceState, event: StartTalking | StopTalking, now: datetime, effects: Effects
    ) -> ConferenceState:
        participant = _member(state, event, event.call_sid)
        if participant is None:
            return state  # stale: the call already left
        # No callback asked: the state comes back unchanged (status_callback
        # checks what the room asked for; checking here too cost a storm 1 µs).
        return _callback(state, effects, event_name, now, participant)

    return handle


def _flag_confirmed(flag: Flag, value: bool, event_name: str) -> Handler:
    """mute-member/unmute-member/hold-member/unhold-member: the confirmed change."""

    def handle(
        state: ConferenceState,
        event: MemberMuted | MemberUnmuted | MemberHeld | MemberUnheld,
        now: datetime,
        effects: Effects,
    ) -> ConferenceState:
        participant = _member(state, event, event.call_sid)
        if participant is None or getattr(participant, flag) == value:
            return state  # already so (e.g. joined with +flags{mute}): no second callback
        changed = _with_flag(participant, flag, value)
        state = _replace(state, changed)
        return _callback(state, effects, event_name, now, changed)

    return handle


def _hold_cmd(state: ConferenceState, participant: Participant, member_id: int) -> str:
    # Native hold needs playable audio, or the member keeps hearing the room (B10).
    url = participant.hold_url
    media = participant.hold_media or (commands.http_media(url) if url else state.config.hold_media)
    return commands.conference_hold_media_cmd(state.sid, member_id, media)


def _api_mute(
    state: ConferenceState, event: ApiMute, now: datetime, effects: Effects
) -> ConferenceState:
    participant = _api_participant(state, event.call_sid)
    if participant.member_id is None:
        return _set_unconfirmed(state, participant, "muted", event.muted, now, effects)
    build = commands.conference_mute_cmd if event.muted else commands.conference_unmute_cmd
    effects.append(SendApi(build(state.sid, participant.member_id)))
    return state


def _api_hold(
    state: ConferenceState, event: ApiHold, now: datetime, effects: Effects
) -> ConferenceState:
    participant = _api_participant(state, event.call_sid)
    if event.hold:
        participant = dataclasses.replace(
            participant,
            hold_url=event.hold_url,
            hold_method=event.hold_method,
            hold_media=event.media,
        )
        state = _replace(state, participant)
    if participant.member_id is None:
        return _set_unconfirmed(state, participant, "hold", event.hold, now, effects)
    if event.hold:
        effects.append(SendApi(_hold_cmd(state, participant, participant.member_id)))
    else:
        effects.append(SendApi(commands.conference_unhold_cmd(state.sid, participant.member_id)))
    return state


_FLAG_EVENTS: Mapping[tuple[Flag, bool], str] = {
    ("muted", True): "participant-mute",
    ("muted", False): "participant-unmute",
    ("hold", True): "participant-hold",
    ("hold", False): "participant-unhold",
}


def _set_unconfirmed(
    state: ConferenceState,
    participant: Participant,
    flag: Flag,
    value: bool,
    now: datetime,
    effects: Effects,
) -> ConferenceState:
    """R9: no member to confirm; store now, apply on add-member (_catch_up)."""
    if getattr(participant, flag) == value:
        return state
    changed = _with_flag(participant, flag, value)
    state = _replace(state, changed)
    return _callback(state, effects, _FLAG_EVENTS[(flag, value)], now, changed)


def _with_flag(participant: Participant, flag: Flag, value: bool) -> Participant:
    if flag == "muted":
        return dataclasses.replace(participant, muted=value)
    return dataclasses.replace(participant, hold=value)


# --- Announcements ---------------------------------------------------------------------------


def _api_announce(
    state: ConferenceState, event: ApiAnnounce, now: datetime, effects: Effects
) -> ConferenceState:
    if any(a.announce_id == event.announce_id for a in state.announcements):
        raise TransitionError(state.status, event, "announcement id already in use")
    if not state.room_confirmed:
        # There is no empty room to play into (B9).
        raise TwilioApiError(ERROR_UNEXPECTED_STATUS, f"conference {state.sid} is not in progress")
    member_id: int | None = None
    if event.call_sid is not None:
        participant = _api_participant(state, event.call_sid)
        if participant.member_id is None:
            raise TwilioApiError(
                ERROR_UNEXPECTED_STATUS, f"participant {event.call_sid} is not in the room"
            )
        member_id = participant.member_id
    announcement = Announcement(event.announce_id, event.url, event.call_sid)
    if event.error is not None:
        # Nothing to play (the AnnounceUrl failed): fail now, as a -ERR would.
        return _announcement_failed(state, announcement, event.error, now, effects)
    media = event.media or commands.http_media(event.url)
    variables = {mapping.ANNOUNCE_VAR: event.announce_id}
    effects.append(
        SendApi(
            commands.conference_play_media_cmd(
                state.sid, media, member_id=member_id, variables=variables
            )
        )
    )
    return dataclasses.replace(state, announcements=(*state.announcements, announcement))


def _announcement_over(
    state: ConferenceState,
    event: PlayFileDone | PlayFailed,
    now: datetime,
    effects: Effects,
) -> ConferenceState:
    announcement = next(
        (a for a in state.announcements if a.announce_id == event.announce_id), None
    )
    if announcement is None:
        raise TransitionError(state.status, event, "unknown announcement")
    state = dataclasses.replace(
        state, announcements=tuple(a for a in state.announcements if a is not announcement)
    )
    if isinstance(event, PlayFailed):
        return _announcement_failed(state, announcement, event.reason, now, effects)
    participant = state.find(announcement.call_sid) if announcement.call_sid else None
    extra = (("AnnounceUrl", announcement.url),)
    return _callback(state, effects, "announcement-end", now, participant, extra)


def _announcement_failed(
    state: ConferenceState,
    announcement: Announcement,
    reason: str,
    now: datetime,
    effects: Effects,
) -> ConferenceState:
    # Participant parameters only if the participant is still present (spec).
    participant = state.find(announcement.call_sid) if announcement.call_sid else None
    extra: callbacks.Params = (
        ("ReasonAnnouncementFailed", reason),
        ("AnnounceUrl", announcement.url),
    )
    return _callback(state, effects, "announcement-fail", now, participant, extra)


# --- API: modify, kick, end ---------------------------------------------------------------------


def _api_modify(
    state: ConferenceState, event: ApiModify, now: datetime, effects: Effects
) -> ConferenceState:
    before = _api_participant(state, event.call_sid)
    after = _modified(state, before, event)
    if after == before:
        return state
    state = _replace(state, after)
    if after.beep != before.beep and after.placement is Placement.MIXED:
        command = mapping.exit_sound_cmd(after.call_uuid, after.beep.on_exit, state.config)
        effects.append(SendApi(command))
    if (after.coaching, after.call_sid_to_coach) != (before.coaching, before.call_sid_to_coach):
        state = _sync_relations(state, effects, reapply=False)
    if after.placement is Placement.PARKED and (after.wait_url, after.wait_method) != (
        before.wait_url,
        before.wait_method,
    ):
        effects.append(PlayWait(after.call_sid, after.wait_url, after.wait_method))
    return _callback(state, effects, "participant-modify", now, after)


def _modified(state: ConferenceState, participant: Participant, event: ApiModify) -> Participant:
    changes: dict[str, Any] = {}
    if event.beep_on_exit is not None:
        changes["beep"] = Beep.of(participant.beep.on_enter, event.beep_on_exit)
    if event.end_conference_on_exit is not None:
        changes["end_conference_on_exit"] = event.end_conference_on_exit
    if event.call_sid_to_coach is not None:
        changes["call_sid_to_coach"] = event.call_sid_to_coach
    if event.coaching is not None:
        changes["coaching"] = event.coaching
    if event.wait_url is not None:
        changes["wait_url"] = event.wait_url
    if event.wait_method is not None:
        changes["wait_method"] = event.wait_method
    after = dataclasses.replace(participant, **changes)
    target = after.call_sid_to_coach
    if after.coaching and (target is None or target == after.call_sid or not state.find(target)):
        raise TwilioApiError(ERROR_INVALID_COACH, f"coach target {target} is not in the conference")
    return after


def _api_kick(
    state: ConferenceState, event: ApiKick, now: datetime, effects: Effects
) -> ConferenceState:
    participant = _api_participant(state, event.call_sid)
    return _remove(state, participant, Departure.KICKED, now, effects)


def _api_end(
    state: ConferenceState, event: ApiEndConference, now: datetime, effects: Effects
) -> ConferenceState:
    return _end(state, Ending(ReasonConferenceEnded.VIA_API), Departure.ENDED_VIA_API, now, effects)


# --- Recording (R6) -----------------------------------------------------------------------------


def _recording_started(
    state: ConferenceState, event: RecordingStarted, now: datetime, effects: Effects
) -> ConferenceState:
    path = mapping.record_path(state.sid, state.config)
    if not state.record_requested or state.recording is not None or event.path != path:
        raise TransitionError(state.status, event, "a recording fsconf did not start")
    status = RecordingEvent.ABSENT if event.error else RecordingEvent.IN_PROGRESS
    recording = Recording(event.recording_sid, event.path, now, status)
    state = dataclasses.replace(state, recording=recording)
    # An in-progress recording has no length yet: Twilio reports -1.
    callback = callbacks.recording_callback(state, recording, status, -1 if not event.error else 0)
    if callback is not None:
        effects.append(callback)
    # The row exists from the start (RecordingDuration -1 until it ends), so the
    # REST API can list, pause and resume a recording in progress, as on Twilio.
    effects.append(_finished(state, recording, 0 if event.error else -1, 0))
    return state


def _recording_stopped(
    state: ConferenceState, event: RecordingStopped, now: datetime, effects: Effects
) -> ConferenceState:
    recording = state.recording
    if recording is None or recording.path != event.path:
        raise TransitionError(state.status, event, "no such recording")
    if recording.status is not RecordingEvent.IN_PROGRESS:
        return state  # a failed start is followed by a stop (surprise 7): already reported
    milliseconds = event.milliseconds_elapsed or 0
    size = event.file_size or 0
    empty = event.error is not None or milliseconds <= 0 or size <= 0
    status = RecordingEvent.ABSENT if empty else RecordingEvent.COMPLETED
    duration = 0 if empty else (milliseconds + 500) // 1000
    recording = dataclasses.replace(recording, status=status)
    state = dataclasses.replace(state, recording=recording)
    callback = callbacks.recording_callback(state, recording, status, duration)
    if callback is not None:
        effects.append(callback)
    effects.append(_finished(state, recording, duration, size))
    if not empty:
        state, record_end = callbacks.record_end_callback(state, recording, duration, size, now)
        if record_end is not None:
            effects.append(record_end)
    return state


def _finished(
    state: ConferenceState, recording: Recording, duration: int, size: int
) -> RecordingFinished:
    return RecordingFinished(
        recording_sid=recording.sid,
        path=recording.path,
        status=recording.status.value,
        duration=duration,
        file_size=size,
        start_time=recording.start_time,
        trim=_room(state).trim is Trim.TRIM_SILENCE,
    )


# --- Registries ---------------------------------------------------------------------------------

HANDLERS: Mapping[type, Handler] = MappingProxyType(
    {
        ParticipantArrived: _arrive,
        CallHungUp: _call_hung_up,
        JoinRefused: _join_refused,
        WaitAudioFailed: _wait_audio_failed,
        TimerFired: _timer_fired,
        MembersVanished: _members_vanished,
        MemberAdded: _member_added,
        MemberDeleted: _member_deleted,
        MemberKicked: _member_kicked,
        StartTalking: _talking("participant-speech-start"),
        StopTalking: _talking("participant-speech-stop"),
        MemberMuted: _flag_confirmed("muted", True, "participant-mute"),
        MemberUnmuted: _flag_confirmed("muted", False, "participant-unmute"),
        MemberHeld: _flag_confirmed("hold", True, "participant-hold"),
        MemberUnheld: _flag_confirmed("hold", False, "participant-unhold"),
        PlayFileDone: _announcement_over,
        PlayFailed: _announcement_over,
        RecordingStarted: _recording_started,
        RecordingStopped: _recording_stopped,
        ApiMute: _api_mute,
        ApiHold: _api_hold,
        ApiAnnounce: _api_announce,
        ApiModify: _api_modify,
        ApiKick: _api_kick,
        ApiEndConference: _api_end,
    }
)

# R13: what still acts after the end.
AFTER_END_HANDLERS: Mapping[type, Handler] = MappingProxyType(
    {
        MemberAdded: _member_added,
        RecordingStarted: _recording_started,
        RecordingStopped: _recording_stopped,
    }
)


# --- Rows -----------------------------------------------------------------------------------------


def _rows(old: ConferenceState, new: ConferenceState) -> list[Effect]:
    """Upserts for every row this step changed (the store's view of the state)."""
    if new.room is None or new is old:
        return []  # nobody entered (no conference yet), or nothing changed
    effects: list[Effect] = []
    # A new SequenceNumber is a new row: no row is built here (the hot path;
    # StoreConference builds its row when the store writes it).
    if (
        old.room is None
        or old.sequence_number != new.sequence_number
        or conference_row(old) != conference_row(new)
    ):
        effects.append(StoreConference(new))
    if old.participants is new.participants and old.departed is new.departed:
        return effects
    kept = len(old.departed)
    if new.departed[:kept] == old.departed:
        # A leave appends to ``departed`` and nothing changes the ones already
        # there: only present participants and the newly departed are looked
        # at. A conference that runs for hours (agents coming and going) has
        # thousands of departed; building all their rows took 30 ms per join
        # or leave at 1 000 and grew with every one.
        earlier, later = old.participants, (*new.participants, *new.departed[kept:])
    else:
        earlier = (*old.participants, *old.departed)
        later = (*new.participants, *new.departed)
    before = {(p.call_sid, p.join_sequence): p for p in earlier}
    for participant in later:
        previous = before.get((participant.call_sid, participant.join_sequence))
        if previous is participant:
            continue  # the same object: the same row
        prow = participant_row(new.sid, participant)
        if previous is None or participant_row(old.sid, previous) != prow:
            effects.append(StoreParticipant(prow))
    return effects


__all__ = ["HANDLERS", "apply", "conference_row", "participant_row"]
