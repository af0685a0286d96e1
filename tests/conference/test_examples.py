"""The eight examples of the <Conference> page, as engine scenarios."""

from __future__ import annotations

from fsconf.conference import events as ev
from fsconf.conference.effects import ContinueCall, PlayWait, StartTimer
from fsconf.conference.model import (
    Beep,
    ConferenceStatus,
    HttpMethod,
    Record,
    StatusCallbackToken,
)
from tests.conference.support import (
    HOOK,
    SID,
    Driver,
    api,
    call_sid,
    hooks,
    joins,
    names,
    of_type,
    settings,
)


def test_1_first_caller_hears_music_second_starts_with_a_beep() -> None:
    driver = Driver()
    assert of_type(driver.arrive(1), PlayWait) == [PlayWait(call_sid(1), None, HttpMethod.POST)]
    moved = joins(driver.arrive(2))
    assert len(moved) == 2
    for join in moved:
        assert ("conference_enter_sound", "/sounds/enter.wav") in join.plan.variables
    assert driver.state.status is ConferenceStatus.IN_PROGRESS


def test_2_moderated_conference() -> None:
    driver = Driver()
    waiting = settings(start_conference_on_enter=False)
    driver.arrive(1, waiting)
    driver.arrive(2, waiting)
    assert driver.state.status is ConferenceStatus.INIT
    moderator = settings(start_conference_on_enter=True, end_conference_on_exit=True)
    assert len(joins(driver.arrive(3, moderator))) == 3
    for n in (1, 2, 3):
        driver.added(n, 10 + n)
    effects = driver.deleted(3, 13, "NORMAL_CLEARING")
    assert api(effects) == [f"conference {SID} kick 11", f"conference {SID} kick 12"]
    assert [c.call_sid for c in of_type(effects, ContinueCall)] == [call_sid(1), call_sid(2)]
    assert driver.state.status is ConferenceStatus.COMPLETED


def test_3_evented_conference() -> None:
    events = frozenset(
        StatusCallbackToken(word) for word in ("start", "end", "join", "leave", "mute", "hold")
    )
    config = settings(status_callback=HOOK, status_callback_event=events)
    driver = Driver()
    driver.arrive(1, config)
    driver.arrive(2, config)
    driver.added(1, 11)
    driver.added(2, 12)
    driver(ev.StartTalking(call_sid(1)))
    driver(ev.MemberMuted(call_sid(1)))
    driver(ev.MemberHeld(call_sid(2)))
    driver.deleted(1, 11, "NORMAL_CLEARING")
    driver.deleted(2, 12, "NORMAL_CLEARING")
    assert names(driver.log) == [
        "participant-join",
        "participant-join",
        "conference-start",
        "participant-mute",
        "participant-hold",
        "participant-leave",
        "participant-leave",
        "conference-end",
    ]


def test_4_join_muted() -> None:
    driver = Driver()
    driver.arrive(1, settings(muted=True))
    first, _ = joins(driver.arrive(2))
    assert first.plan.conference_arg == f"{SID}@fsconf+flags{{mute}}"
    driver.added(1, 11)
    assert api(driver(ev.ApiMute(call_sid(1), False))) == [f"conference {SID} unmute 11 quiet"]


def test_5_bridging_calls_without_music_or_beep() -> None:
    bridge = settings(
        beep=Beep.FALSE,
        wait_url="http://your-webhook-host.com",
        start_conference_on_enter=True,
        end_conference_on_exit=True,
    )
    driver = Driver()
    assert of_type(driver.arrive(1, bridge), PlayWait) == [
        PlayWait(call_sid(1), "http://your-webhook-host.com", HttpMethod.POST)
    ]
    for join in joins(driver.arrive(2, bridge)):
        names_ = [name for name, _ in join.plan.variables]
        assert "conference_enter_sound" not in names_
        assert "conference_exit_sound" not in names_
    driver.added(1, 11)
    driver.added(2, 12)
    effects = driver.deleted(2, 12, "NORMAL_CLEARING")
    assert api(effects) == [f"conference {SID} kick 11"]
    assert driver.state.status is ConferenceStatus.COMPLETED


def test_6_waiting_room() -> None:
    driver = Driver()
    driver.arrive(1, settings(beep=Beep.FALSE))
    assert driver.state.status is ConferenceStatus.INIT
    driver.arrive(2, settings(beep=Beep.FALSE, end_conference_on_exit=True))
    driver.added(1, 11)
    driver.added(2, 12)
    effects = driver.deleted(2, 12, "NORMAL_CLEARING")
    assert of_type(effects, ContinueCall) == [
        ContinueCall(call_sid(1), "completed", None, HttpMethod.POST)
    ]


def test_7_dial_attributes() -> None:
    dial = settings(
        action="https://app.example.com/handleLeaveConference.php",
        method=HttpMethod.POST,
        hangup_on_star=True,
        time_limit=30,
    )
    driver = Driver()
    assert StartTimer(f"{call_sid(1)}/1/time-limit", 30) in driver.arrive(1, dial)
    first, _ = joins(driver.arrive(2))
    assert ("conference_controls", "fsconf-hangup-on-star") in first.plan.variables
    driver.added(1, 11)
    driver.added(2, 12)
    effects = driver.deleted(1, 11)  # pressed *
    assert of_type(effects, ContinueCall) == [
        ContinueCall(
            call_sid(1),
            "completed",
            "https://app.example.com/handleLeaveConference.php",
            HttpMethod.POST,
        )
    ]


def test_8_recording_with_a_recording_status_callback() -> None:
    config = settings(
        record=Record.RECORD_FROM_START, recording_status_callback="https://www.myexample.com"
    )
    driver = Driver()
    driver.arrive(1, config)
    driver.arrive(2, config)
    driver.added(1, 11)
    assert api(driver.added(2, 12)) == [f"conference {SID} record /rec/{SID}.wav"]
    driver(ev.RecordingStarted(f"/rec/{SID}.wav", "RE1"))
    driver.deleted(1, 11, "NORMAL_CLEARING")
    driver.deleted(2, 12, "NORMAL_CLEARING")
    (completed,) = hooks(driver(ev.RecordingStopped(f"/rec/{SID}.wav", 12000, 192044)))
    assert completed.url == "https://www.myexample.com"
    assert completed.get("RecordingStatus") == "completed"
    assert completed.get("RecordingDuration") == "12"
