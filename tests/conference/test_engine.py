"""The engine's rules, one by one (see the rules at the top of engine.py)."""

from __future__ import annotations

import pytest

from fsconf.conference import events as ev
from fsconf.conference.effects import (
    CancelTimer,
    ContinueCall,
    PlayWait,
    RecordingFinished,
    ReportError,
    StartTimer,
    StoreConference,
    StoreParticipant,
)
from fsconf.conference.model import (
    Beep,
    ConferenceStatus,
    HttpMethod,
    Placement,
    Record,
    RecordingEvent,
    StatusCallbackToken,
)
from fsconf.errors import TransitionError, TwilioApiError
from tests.conference.support import (
    HOOK,
    SID,
    Driver,
    api,
    call_sid,
    evented,
    hooks,
    joins,
    names,
    of_type,
    settings,
    uuid,
    without_rows,
)

ACTION = "https://app.example.com/after"


def started(*configs, members: bool = True) -> Driver:
    """A conference with one participant per config, started and (optionally)
    every member confirmed with member id 10 + n."""
    driver = Driver()
    for n, config in enumerate(configs, start=1):
        driver.arrive(n, config)
    assert driver.state.status is ConferenceStatus.IN_PROGRESS
    if members:
        for n in range(1, len(configs) + 1):
            driver.added(n, 10 + n)
    driver.log.clear()
    return driver


# --- identity and start -----------------------------------------------------------------------


def test_first_caller_is_parked_on_its_wait_url() -> None:
    driver = Driver()
    effects = driver.arrive(1, settings(wait_url="", wait_method=HttpMethod.GET))
    assert without_rows(effects) == [
        StartTimer(f"{call_sid(1)}/1/time-limit", 14400),
        PlayWait(call_sid(1), "", HttpMethod.GET),
    ]
    assert driver.state.status is ConferenceStatus.INIT
    assert driver.state.participants[0].placement is Placement.PARKED


def test_start_moves_everybody_in_with_the_creator_variables() -> None:
    driver = Driver()
    driver.arrive(1)
    effects = driver.arrive(2)
    moved = joins(effects)
    assert [(j.call_sid, j.from_parked) for j in moved] == [
        (call_sid(1), True),
        (call_sid(2), False),
    ]
    for join in moved:  # R5: either may create the room
        assert ("confvar_conference_sid", SID) in join.plan.variables
        assert join.plan.conference_arg == f"{SID}@fsconf"
    assert of_type(effects, PlayWait) == []
    assert {p.placement for p in driver.state.participants} == {Placement.MIXED}
    assert driver.state.start_time == driver.now


def test_a_join_after_the_room_exists_does_not_carry_creator_variables() -> None:
    driver = started(settings(), settings())
    (join,) = joins(driver.arrive(3))
    assert join.from_parked is False
    names_ = {name for name, _ in join.plan.variables}
    assert names_.isdisjoint({"confvar_conference_sid", "conference_max_members"})


def test_no_start_without_a_start_conference_on_enter_participant() -> None:
    driver = Driver()
    quiet = settings(start_conference_on_enter=False)
    driver.arrive(1, quiet)
    effects = driver.arrive(2, quiet)
    assert driver.state.status is ConferenceStatus.INIT
    assert joins(effects) == []
    assert of_type(effects, PlayWait) == [PlayWait(call_sid(2), None, HttpMethod.POST)]
    effects = driver.arrive(3, settings())
    assert len(joins(effects)) == 3


def test_one_participant_with_start_true_waits_alone() -> None:
    driver = Driver()
    driver.arrive(1)
    assert driver.state.status is ConferenceStatus.INIT


def test_room_wide_settings_come_from_the_first_participant() -> None:
    driver = Driver()
    driver.arrive(1, settings(max_participants=3, region="ie1", record=Record.DO_NOT_RECORD))
    driver.arrive(2, evented(max_participants=9, region="us1", record=Record.RECORD_FROM_START))
    room = driver.state.room
    assert room is not None
    assert (room.max_participants, room.region, room.record) == (3, "ie1", Record.DO_NOT_RECORD)
    assert room.status_callback is None
    assert hooks(driver.log) == []


def test_participants_are_keyed_by_call_and_join_sequence() -> None:
    driver = started(settings(), settings(), settings())
    driver(ev.ApiKick(call_sid(1)))
    driver.deleted(1, 11)
    driver.arrive(1)
    again = driver.state.find(call_sid(1))
    assert again is not None and again.join_sequence == 2
    driver.added(1, 11)  # FreeSWITCH gives the same member id back (B14)
    rows = [e.row for e in of_type(driver.log, StoreParticipant) if e.row.call_sid == call_sid(1)]
    assert {(r.join_sequence, r.status) for r in rows} >= {(1, "complete"), (2, "connected")}


# --- entry checks -----------------------------------------------------------------------------


def test_duplicate_label_is_16025_and_the_call_goes_to_its_next_verb() -> None:
    driver = Driver()
    driver.arrive(1, settings(participant_label="agent"))
    before = driver.state
    effects = driver.arrive(2, settings(participant_label="agent", action=ACTION))
    assert effects == [
        ReportError(16025, "participantLabel 'agent' in use", call_sid(2)),
        ContinueCall(call_sid(2), "failed", None, HttpMethod.POST),
    ]
    assert driver.state is before


def test_a_label_is_free_again_once_its_holder_left() -> None:
    driver = started(settings(participant_label="agent"), settings(), settings())
    driver.deleted(1, 11, "NORMAL_CLEARING")
    driver.arrive(4, settings(participant_label="agent"))
    assert driver.state.find(call_sid(4)) is not None


def test_unknown_coach_is_13240_and_the_call_fails_to_its_action() -> None:
    driver = Driver()
    driver.arrive(1)
    effects = driver.arrive(2, settings(coach=call_sid(7), action=ACTION))
    assert effects == [
        ReportError(13240, f"coach {call_sid(7)} is not in the conference", call_sid(2)),
        ContinueCall(call_sid(2), "failed", ACTION, HttpMethod.POST),
    ]
    assert len(driver.state.participants) == 1


def test_a_refused_first_call_leaves_no_conference() -> None:
    driver = Driver()
    effects = driver.arrive(1, settings(coach=call_sid(7)))
    assert of_type(effects, StoreConference) == []
    assert driver.state.room is None


def test_full_conference_refuses_before_joining() -> None:
    driver = Driver()
    driver.arrive(1, settings(max_participants=2))
    driver.arrive(2)
    effects = driver.arrive(3, settings(action=ACTION))
    assert effects == [
        ReportError(16020, f"conference {SID} is full", call_sid(3)),
        ContinueCall(call_sid(3), "failed", ACTION, HttpMethod.POST),
    ]


def test_max_participants_reaches_freeswitch_on_the_creating_join() -> None:
    driver = Driver()
    driver.arrive(1, settings(max_participants=2))
    first, _ = joins(driver.arrive(2))
    assert ("conference_max_members", "2") in first.plan.variables


def test_join_refused_by_the_room_is_participant_add_failed() -> None:
    driver = started(evented(), evented(), members=False)
    driver.added(1, 11)
    driver.added(2, 12)
    driver.arrive(3, evented(action=ACTION))
    driver.log.clear()
    effects = driver(ev.JoinRefused(call_sid(3)))
    (leave,) = hooks(effects)
    assert leave.get("ReasonParticipantLeft") == "participant_add_failed"
    assert leave.get("ParticipantCallStatus") == "in-progress"
    assert ContinueCall(call_sid(3), "failed", ACTION, HttpMethod.POST) in effects
    assert of_type(effects, ReportError)[0].code == 16020
    assert driver.state.departed[-1].status.value == "failed"


# --- recording --------------------------------------------------------------------------------


def test_record_from_start_begins_when_two_members_are_bridged() -> None:
    driver = Driver()
    driver.arrive(1, settings(record=Record.RECORD_FROM_START))
    driver.arrive(2)
    assert api(driver.added(1, 11)) == []
    assert api(driver.added(2, 12)) == [f"conference {SID} record /rec/{SID}.wav"]
    driver.arrive(3)
    assert api(driver.added(3, 13)) == []


def test_do_not_record_never_records() -> None:
    driver = started(settings(), settings())
    assert not driver.state.record_requested
    assert api(driver.log) == []


def test_recording_that_fails_to_open_is_absent() -> None:
    driver = Driver()
    rsc = "https://app.example.com/rec"
    driver.arrive(
        1,
        settings(
            record=Record.RECORD_FROM_START,
            recording_status_callback=rsc,
            recording_status_callback_event=frozenset(RecordingEvent),
        ),
    )
    driver.arrive(2)
    driver.added(1, 11)
    driver.added(2, 12)
    effects = driver(ev.RecordingStarted(f"/rec/{SID}.wav", "RE1", error="could not open"))
    (absent,) = hooks(effects)
    assert absent.get("RecordingStatus") == "absent"
    assert of_type(effects, RecordingFinished)[0].status == "absent"
    assert driver(ev.RecordingStopped(f"/rec/{SID}.wav", 0, 0)) == []


def test_recording_not_started_by_us_is_a_transition_error() -> None:
    driver = started(settings(), settings())
    with pytest.raises(TransitionError):
        driver(ev.RecordingStarted("/tmp/x.wav", "RE1"))


# --- end --------------------------------------------------------------------------------------


def test_end_conference_on_exit_kicks_the_others_one_by_one() -> None:
    driver = started(
        evented(action=ACTION),
        evented(end_conference_on_exit=True, participant_label="moderator"),
        evented(),
    )
    effects = driver.deleted(2, 12, "NORMAL_CLEARING")
    assert api(effects) == [f"conference {SID} kick 11", f"conference {SID} kick 13"]
    assert names(effects) == [
        "participant-leave",
        "participant-leave",
        "participant-leave",
        "conference-end",
    ]
    assert [c.get("ReasonParticipantLeft") for c in hooks(effects)[:3]] == [
        "participant_hung_up",
        "moderator_ended_conference",
        "moderator_ended_conference",
    ]
    assert of_type(effects, ContinueCall) == [
        ContinueCall(call_sid(1), "completed", ACTION, HttpMethod.POST),
        ContinueCall(call_sid(3), "completed", None, HttpMethod.POST),
    ]
    end = hooks(effects)[-1]
    assert end.get("ReasonConferenceEnded") == "participant-with-end-conference-on-exit-left"
    assert end.get("CallSidEndingConference") == call_sid(2)
    assert end.get("ParticipantLabelEndingConference") == "moderator"
    assert driver.state.status is ConferenceStatus.COMPLETED
    assert {CancelTimer(f"{call_sid(n)}/1/time-limit") for n in (1, 2, 3)} <= set(effects)


def test_stale_events_after_the_end_are_ignored() -> None:
    driver = started(settings(end_conference_on_exit=True), settings())
    driver.deleted(1, 11)
    state = driver.state
    for stale in (
        ev.MemberKicked(call_sid(2), 12),
        ev.MemberDeleted(call_sid(2), 12),
        ev.StartTalking(call_sid(2)),
        ev.MemberMuted(call_sid(2)),
        ev.CallHungUp(call_sid(2)),
        ev.TimerFired(f"{call_sid(2)}/1/time-limit"),
        ev.PlayFileDone("AN1"),
    ):
        assert driver(stale) == []
    assert driver.state is state


def test_api_requests_after_the_end_are_16099() -> None:
    driver = started(settings(end_conference_on_exit=True), settings())
    driver.deleted(1, 11)
    with pytest.raises(TwilioApiError) as error:
        driver(ev.ApiMute(call_sid(2), True))
    assert error.value.code == 16099


def test_arrival_after_the_end_is_a_transition_error() -> None:
    driver = started(settings(end_conference_on_exit=True), settings())
    driver.deleted(1, 11)
    with pytest.raises(TransitionError) as error:
        driver.arrive(3)
    assert error.value.state is ConferenceStatus.COMPLETED


def test_late_add_member_of_a_call_removed_by_the_end_is_kicked() -> None:
    driver = started(settings(end_conference_on_exit=True), settings(), members=False)
    driver.added(1, 11)
    driver.deleted(1, 11)
    assert api(driver.added(2, 12)) == [f"conference {SID} kick 12"]


def test_a_started_conference_with_one_participant_left_goes_on() -> None:
    driver = started(settings(), settings())
    driver.deleted(1, 11, "NORMAL_CLEARING")
    assert driver.state.status is ConferenceStatus.IN_PROGRESS


def test_last_participant_left() -> None:
    driver = started(evented(), evented())
    driver.deleted(1, 11, "NORMAL_CLEARING")
    effects = driver.deleted(2, 12)
    end = hooks(effects)[-1]
    assert end.get("ReasonConferenceEnded") == "last-participant-left"
    assert end.get("CallSidEndingConference") == call_sid(2)
    assert end.get("ParticipantLabelEndingConference") is None


def test_last_participant_kicked() -> None:
    driver = started(evented(), evented())
    driver.deleted(1, 11, "NORMAL_CLEARING")
    assert api(driver(ev.ApiKick(call_sid(2)))) == [f"conference {SID} kick 12"]
    effects = driver.deleted(2, 12)
    leave, end = hooks(effects)
    assert leave.get("ReasonParticipantLeft") == "participant_updated_via_api"
    assert end.get("ReasonConferenceEnded") == "last-participant-kicked"


def test_end_on_exit_participant_kicked() -> None:
    driver = started(evented(end_conference_on_exit=True), evented())
    driver(ev.ApiKick(call_sid(1)))
    effects = driver.deleted(1, 11)
    assert hooks(effects)[-1].get("ReasonConferenceEnded") == (
        "participant-with-end-conference-on-exit-kicked"
    )


def test_end_via_api() -> None:
    driver = started(evented(), evented())
    driver.arrive(3, evented())  # still joining: no member id to kick
    effects = driver(ev.ApiEndConference())
    assert api(effects) == [f"conference {SID} kick 11", f"conference {SID} kick 12"]
    assert [c.get("ReasonParticipantLeft") for c in hooks(effects)[:3]] == [
        "conference_ended_via_api"
    ] * 3
    end = hooks(effects)[-1]
    assert end.get("ReasonConferenceEnded") == "conference-ended-via-api"
    assert end.get("CallSidEndingConference") is None
    assert api(driver.added(3, 13)) == [f"conference {SID} kick 13"]


def test_a_conference_that_never_started_ends_with_its_last_caller() -> None:
    driver = Driver()
    driver.arrive(1, evented())
    effects = driver(ev.CallHungUp(call_sid(1)))
    assert names(effects) == ["participant-leave", "conference-end"]
    assert hooks(effects)[0].get("ParticipantCallStatus") == "completed"
    assert of_type(effects, ContinueCall) == []


# --- leaving ----------------------------------------------------------------------------------


def test_hangup_in_the_room_waits_for_del_member() -> None:
    driver = started(evented(), evented(), evented())
    assert without_rows(driver(ev.CallHungUp(call_sid(1)))) == []
    effects = driver.deleted(1, 11)
    (leave,) = hooks(effects)
    assert leave.get("ParticipantCallStatus") == "completed"
    assert leave.get("ReasonParticipantLeft") == "participant_hung_up"
    assert of_type(effects, ContinueCall) == []


def test_hangup_on_star_leaves_and_the_call_continues() -> None:
    driver = started(evented(hangup_on_star=True, action=ACTION), evented(), evented())
    effects = driver.deleted(1, 11)
    (leave,) = hooks(effects)
    assert leave.get("ParticipantCallStatus") == "in-progress"
    assert of_type(effects, ContinueCall) == [
        ContinueCall(call_sid(1), "completed", ACTION, HttpMethod.POST)
    ]


def test_time_limit_kicks_that_member_only() -> None:
    driver = Driver()
    effects = driver.arrive(1, settings(time_limit=30, action=ACTION))
    assert StartTimer(f"{call_sid(1)}/1/time-limit", 30) in effects
    driver.arrive(2)
    driver.added(1, 11)
    driver.added(2, 12)
    effects = driver(ev.TimerFired(f"{call_sid(1)}/1/time-limit"))
    assert api(effects) == [f"conference {SID} kick 11"]
    effects = driver.deleted(1, 11)
    assert ContinueCall(call_sid(1), "completed", ACTION, HttpMethod.POST) in effects


def test_time_limit_of_a_parked_caller_continues_it_at_once() -> None:
    driver = Driver()
    driver.arrive(1, settings(time_limit=30, start_conference_on_enter=False))
    driver.arrive(2, settings(start_conference_on_enter=False))
    effects = driver(ev.TimerFired(f"{call_sid(1)}/1/time-limit"))
    assert ContinueCall(call_sid(1), "completed", None, HttpMethod.POST) in effects
    assert driver.state.status is ConferenceStatus.INIT


def test_kick_while_joining_is_sent_on_add_member() -> None:
    driver = started(settings(), settings(), members=False)
    assert api(driver(ev.ApiKick(call_sid(1)))) == []
    assert api(driver.added(1, 11)) == [f"conference {SID} kick 11"]


def test_wait_audio_failure_continues_the_call() -> None:
    driver = Driver()
    driver.arrive(1, evented(action=ACTION, start_conference_on_enter=False))
    driver.arrive(2, evented(start_conference_on_enter=False))
    effects = driver(ev.WaitAudioFailed(call_sid(2), "404"))
    assert ContinueCall(call_sid(2), "failed", None, HttpMethod.POST) in effects
    assert hooks(effects)[0].get("ReasonParticipantLeft") == "participant_add_failed"


def test_wait_audio_failure_after_the_start_is_stale() -> None:
    driver = started(settings(), settings(), members=False)
    assert driver(ev.WaitAudioFailed(call_sid(1))) == []


# --- mute, hold, modify, coach ----------------------------------------------------------------


def test_mute_is_sent_quiet_and_reported_on_confirmation() -> None:
    driver = started(evented(), evented())
    effects = driver(ev.ApiMute(call_sid(1), True))
    assert api(effects) == [f"conference {SID} mute 11 quiet"]
    assert hooks(effects) == []
    assert names(driver(ev.MemberMuted(call_sid(1)))) == ["participant-mute"]
    assert driver(ev.MemberMuted(call_sid(1))) == []
    assert api(driver(ev.ApiMute(call_sid(1), False))) == [f"conference {SID} unmute 11 quiet"]
    assert names(driver(ev.MemberUnmuted(call_sid(1)))) == ["participant-unmute"]


def test_muting_a_parked_caller_is_stored_and_applied_at_join() -> None:
    driver = Driver()
    driver.arrive(1, evented())
    assert names(driver(ev.ApiMute(call_sid(1), True))) == ["participant-mute"]
    first, _ = joins(driver.arrive(2, evented()))
    assert first.plan.flags == ("mute",)
    assert api(driver.added(1, 11)) == []


def test_muting_a_joining_member_is_sent_on_add_member() -> None:
    driver = started(evented(), evented(), members=False)
    driver(ev.ApiMute(call_sid(1), True))
    assert api(driver.added(1, 11)) == [f"conference {SID} mute 11 quiet"]


def test_hold_plays_the_hold_url_through_the_http_cache() -> None:
    driver = started(evented(), evented())
    effects = driver(ev.ApiHold(call_sid(1), True, "https://app.example.com/hold.mp3"))
    assert api(effects) == [
        f"conference {SID} hold 11 http_cache://https://app.example.com/hold.mp3"
    ]
    assert names(driver(ev.MemberHeld(call_sid(1)))) == ["participant-hold"]
    assert api(driver(ev.ApiHold(call_sid(1), False))) == [f"conference {SID} unhold 11"]
    assert names(driver(ev.MemberUnheld(call_sid(1)))) == ["participant-unhold"]


def test_holding_a_parked_caller_is_applied_when_it_joins() -> None:
    driver = Driver()
    driver.arrive(1, evented())
    assert names(driver(ev.ApiHold(call_sid(1), True))) == ["participant-hold"]
    driver.arrive(2, evented())
    assert api(driver.added(1, 11)) == [f"conference {SID} hold 11 /sounds/hold.wav"]
    assert driver(ev.MemberHeld(call_sid(1))) == []  # already reported


def test_hold_without_url_uses_playable_default_media() -> None:
    driver = started(settings(), settings())
    assert api(driver(ev.ApiHold(call_sid(2), True))) == [
        f"conference {SID} hold 12 /sounds/hold.wav"
    ]


def test_unknown_participant_is_20404() -> None:
    driver = started(settings(), settings())
    with pytest.raises(TwilioApiError) as error:
        driver(ev.ApiKick(call_sid(9)))
    assert (error.value.code, error.value.status) == (20404, 404)


def test_beep_on_exit_changes_the_exit_sound_variable() -> None:
    driver = started(evented(beep=Beep.ON_ENTER), evented())
    effects = driver(ev.ApiModify(call_sid(1), beep_on_exit=True))
    assert api(effects) == [f"uuid_setvar {uuid(1)} conference_exit_sound /sounds/exit.wav"]
    assert names(effects) == ["participant-modify"]
    assert driver.state.participants[0].beep is Beep.TRUE
    effects = driver(ev.ApiModify(call_sid(1), beep_on_exit=False))
    assert api(effects) == [f"uuid_setvar {uuid(1)} conference_exit_sound "]


def test_end_conference_on_exit_is_changeable() -> None:
    driver = started(evented(), evented(), evented())
    effects = driver(ev.ApiModify(call_sid(3), end_conference_on_exit=True))
    assert hooks(effects)[0].get("EndConferenceOnExit") == "true"
    driver.deleted(3, 13, "NORMAL_CLEARING")
    assert driver.state.status is ConferenceStatus.COMPLETED


def test_unchanged_modify_sends_nothing() -> None:
    driver = started(evented(), evented())
    assert driver(ev.ApiModify(call_sid(1), end_conference_on_exit=False)) == []


def test_wait_url_change_of_a_parked_caller_restarts_its_wait_audio() -> None:
    driver = Driver()
    driver.arrive(1, evented())
    effects = driver(ev.ApiModify(call_sid(1), wait_url="https://m.example.com/w.xml"))
    assert of_type(effects, PlayWait) == [
        PlayWait(call_sid(1), "https://m.example.com/w.xml", HttpMethod.POST)
    ]
    assert names(effects) == ["participant-modify"]


def test_coach_relate_is_reapplied_on_every_join() -> None:
    driver = Driver()
    driver.arrive(1)  # customer
    driver.arrive(2)  # agent
    driver.added(1, 11)
    driver.added(2, 12)
    driver.arrive(3, settings(coach=call_sid(2)))
    assert api(driver.added(3, 13)) == [f"conference {SID} relate 13 11 nospeak"]
    driver.arrive(4)
    assert api(driver.added(4, 14)) == [f"conference {SID} relate 13 11,14 nospeak"]
    assert driver.state.relations == frozenset({(13, 11), (13, 14)})


def test_coaching_off_clears_the_relations() -> None:
    driver = started(settings(), settings(), members=True)
    driver.arrive(3, evented(coach=call_sid(2)))
    driver.added(3, 13)
    effects = driver(ev.ApiModify(call_sid(3), coaching=False))
    assert api(effects) == [f"conference {SID} relate 13 11 clear"]
    assert driver.state.relations == frozenset()


def test_coaching_a_call_not_in_the_conference_via_api_is_13240() -> None:
    driver = started(settings(), settings())
    with pytest.raises(TwilioApiError) as error:
        driver(ev.ApiModify(call_sid(1), coaching=True, call_sid_to_coach=call_sid(8)))
    assert error.value.code == 13240


# --- announcements, speaker -------------------------------------------------------------------


def test_conference_announcement() -> None:
    driver = started(evented(), evented())
    effects = driver(ev.ApiAnnounce("AN1", "https://a.example.com/hi.wav"))
    assert api(effects) == [
        f"conference {SID} play {{fsconf_announce=AN1}}http_cache://https://a.example.com/hi.wav"
    ]
    assert names(driver(ev.PlayFileDone("AN1"))) == ["announcement-end"]


def test_participant_announcement_plays_to_its_member() -> None:
    driver = started(evented(), evented())
    effects = driver(ev.ApiAnnounce("AN2", "https://a/x.wav", call_sid=call_sid(2), media="/s.wav"))
    assert api(effects) == [f"conference {SID} play {{fsconf_announce=AN2}}/s.wav 12"]


def test_announcement_before_the_start_is_16099() -> None:
    driver = Driver()
    driver.arrive(1)
    with pytest.raises(TwilioApiError) as error:
        driver(ev.ApiAnnounce("AN1", "https://a.example.com/hi.wav"))
    assert error.value.code == 16099


def test_unknown_announcement_is_a_transition_error() -> None:
    driver = started(settings(), settings())
    with pytest.raises(TransitionError):
        driver(ev.PlayFileDone("AN404"))


def test_speaker_events_only_when_asked() -> None:
    driver = started(evented(), evented())
    assert names(driver(ev.StartTalking(call_sid(1)))) == ["participant-speech-start"]
    assert names(driver(ev.StopTalking(call_sid(1)))) == ["participant-speech-stop"]
    quiet = started(
        evented(status_callback_event=frozenset({StatusCallbackToken.JOIN})), settings()
    )
    assert quiet(ev.StartTalking(call_sid(1))) == []


# --- impossible transitions -------------------------------------------------------------------


def test_add_member_before_the_start_names_state_and_event() -> None:
    driver = Driver()
    driver.arrive(1)
    event = ev.MemberAdded(call_sid(1), 5)
    with pytest.raises(TransitionError) as error:
        driver(event)
    assert error.value.state is ConferenceStatus.INIT
    assert error.value.event == event


def test_event_for_an_unknown_call_is_a_transition_error() -> None:
    driver = started(settings(), settings())
    with pytest.raises(TransitionError):
        driver.deleted(9, 99)


def test_second_add_member_is_a_transition_error() -> None:
    driver = started(settings(), settings())
    with pytest.raises(TransitionError):
        driver.added(1, 11)


def test_same_call_arriving_twice_is_a_transition_error() -> None:
    driver = Driver()
    driver.arrive(1)
    with pytest.raises(TransitionError):
        driver.arrive(1)


def test_a_join_or_leave_builds_rows_for_the_present_not_for_everyone_who_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A conference that runs for hours (agents coming and going) keeps its
    departed participants; a join or a leave used to build the row of every
    one of them (124 ms per join and leave at 4 000). Now the rows built per
    step do not grow with the departed, and the stored rows are the same."""
    from fsconf.conference import engine

    driver = started(settings(), settings())
    built: list[str] = []
    row = engine.participant_row

    def counting(conference_sid: str, participant):  # type: ignore[no-untyped-def]
        built.append(participant.call_sid)
        return row(conference_sid, participant)

    monkeypatch.setattr(engine, "participant_row", counting)

    def come_and_go(n: int) -> list[StoreParticipant]:
        driver.arrive(n)
        driver.added(n, 10 + n)
        return of_type(driver.deleted(n, 10 + n), StoreParticipant)

    come_and_go(3)
    first = len(built)
    for n in range(4, 204):
        built.clear()
        stored = come_and_go(n)
        assert len(built) == first  # the same work with 200 departed as with 1
        assert [(e.row.call_sid, e.row.status) for e in stored] == [(call_sid(n), "complete")]
    assert len(driver.state.departed) == 201


def test_rows_follow_the_state() -> None:
    driver = Driver()
    driver.arrive(1, evented())
    driver.arrive(2, evented())
    conference_rows = [e.row for e in of_type(driver.log, StoreConference)]
    assert [r.status for r in conference_rows] == ["init", "in-progress"]
    assert [r.sequence_number for r in conference_rows] == [1, 3]
    assert conference_rows[-1].status_callback == HOOK
