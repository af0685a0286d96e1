"""Every callback with its exact, ordered parameter list."""

from __future__ import annotations

from fsconf.conference import events as ev
from fsconf.conference.callbacks import PARAMETER_SETS, timestamp
from fsconf.conference.effects import Callback
from fsconf.conference.model import HttpMethod, Record, RecordingEvent
from tests.conference.support import (
    ACCOUNT,
    HOOK,
    NAME,
    SID,
    STAMP0,
    T0,
    Driver,
    call_sid,
    evented,
    hooks,
    settings,
)

RSC = "https://app.example.com/recordings"


def common(seq: int, event: str, stamp: str = STAMP0) -> list[tuple[str, str]]:
    return [
        ("ConferenceSid", SID),
        ("FriendlyName", NAME),
        ("AccountSid", ACCOUNT),
        ("SequenceNumber", str(seq)),
        ("Timestamp", stamp),
        ("StatusCallbackEvent", event),
    ]


def who(n: int, **flags: str) -> list[tuple[str, str]]:
    values = {
        "Muted": "false",
        "Hold": "false",
        "Coaching": "false",
        "EndConferenceOnExit": "false",
        "StartConferenceOnEnter": "true",
    }
    values.update(flags)
    return [("CallSid", call_sid(n)), *values.items()]


def only(effects: list) -> Callback:
    (callback,) = hooks(effects)
    return callback


def test_timestamp_is_rfc_2822_like_twilio() -> None:
    assert timestamp(T0) == "Thu, 01 Jun 2017 20:48:32 +0000"


def test_join_start_and_sequence() -> None:
    driver = Driver()
    join = only(driver.arrive(1, evented(participant_label="alice")))
    assert join == Callback(
        "status",
        HOOK,
        HttpMethod.POST,
        (*common(1, "participant-join"), *who(1), ("ParticipantLabel", "alice")),
    )
    effects = driver.arrive(2, evented(muted=True, start_conference_on_enter=False))
    second, start = hooks(effects)
    assert list(second.params) == [
        *common(2, "participant-join"),
        *who(2, Muted="true", StartConferenceOnEnter="false"),
    ]
    assert list(start.params) == common(3, "conference-start")


def test_mute_hold_modify_speaker() -> None:
    driver = Driver()
    driver.arrive(1, evented())
    driver.arrive(2, evented())
    driver.added(1, 11)
    driver.added(2, 12)
    assert list(only(driver(ev.MemberMuted(call_sid(1)))).params) == [
        *common(4, "participant-mute"),
        *who(1, Muted="true"),
    ]
    assert list(only(driver(ev.MemberHeld(call_sid(1)))).params) == [
        *common(5, "participant-hold"),
        *who(1, Muted="true", Hold="true"),
    ]
    assert list(only(driver(ev.MemberUnheld(call_sid(1)))).params) == [
        *common(6, "participant-unhold"),
        *who(1, Muted="true"),
    ]
    assert list(only(driver(ev.MemberUnmuted(call_sid(1)))).params) == [
        *common(7, "participant-unmute"),
        *who(1),
    ]
    assert list(only(driver(ev.ApiModify(call_sid(2), end_conference_on_exit=True))).params) == [
        *common(8, "participant-modify"),
        *who(2, EndConferenceOnExit="true"),
    ]
    assert list(only(driver(ev.StartTalking(call_sid(2)))).params) == [
        *common(9, "participant-speech-start"),
        *who(2, EndConferenceOnExit="true"),
    ]
    assert list(only(driver(ev.StopTalking(call_sid(2)))).params) == [
        *common(10, "participant-speech-stop"),
        *who(2, EndConferenceOnExit="true"),
    ]


def test_coaching_participant_sends_call_sid_to_coach() -> None:
    driver = Driver()
    driver.arrive(1, evented())
    driver.arrive(2, evented())
    join = only(driver.arrive(3, evented(coach=call_sid(2))))
    assert list(join.params) == [
        *common(4, "participant-join"),
        *who(3, Coaching="true"),
        ("CallSidToCoach", call_sid(2)),
    ]


def test_leave_and_end() -> None:
    driver = Driver()
    driver.arrive(1, evented(end_conference_on_exit=True, participant_label="mod"))
    driver.arrive(2, evented())
    driver.added(1, 11)
    driver.added(2, 12)
    leave_1, leave_2, end = hooks(driver.deleted(1, 11, "NORMAL_CLEARING"))
    assert list(leave_1.params) == [
        *common(4, "participant-leave"),
        *who(1, EndConferenceOnExit="true"),
        ("ParticipantLabel", "mod"),
        ("ParticipantCallStatus", "completed"),
        ("ReasonParticipantLeft", "participant_hung_up"),
    ]
    assert list(leave_2.params) == [
        *common(5, "participant-leave"),
        *who(2),
        ("ParticipantCallStatus", "in-progress"),
        ("ReasonParticipantLeft", "moderator_ended_conference"),
    ]
    assert list(end.params) == [
        *common(6, "conference-end"),
        ("CallSidEndingConference", call_sid(1)),
        ("ParticipantLabelEndingConference", "mod"),
        ("ReasonConferenceEnded", "participant-with-end-conference-on-exit-left"),
        ("Reason", "Participant with endConferenceOnExit left the conference"),
    ]


def test_end_via_api_has_no_ending_participant() -> None:
    driver = Driver()
    driver.arrive(1, evented())
    *_, end = hooks(driver(ev.ApiEndConference()))
    assert list(end.params) == [
        *common(3, "conference-end"),
        ("ReasonConferenceEnded", "conference-ended-via-api"),
        ("Reason", "Conference ended via API"),
    ]


def test_announcements() -> None:
    driver = Driver()
    driver.arrive(1, evented())
    driver.arrive(2, evented())
    driver.added(1, 11)
    driver.added(2, 12)
    driver(ev.ApiAnnounce("AN1", "https://a.example.com/1.wav"))
    assert list(only(driver(ev.PlayFileDone("AN1"))).params) == [
        *common(4, "announcement-end"),
        ("AnnounceUrl", "https://a.example.com/1.wav"),
    ]
    driver(ev.ApiAnnounce("AN2", "https://a.example.com/2.wav", call_sid=call_sid(2)))
    assert list(only(driver(ev.PlayFailed("AN2", "File not found"))).params) == [
        *common(5, "announcement-fail"),
        *who(2),
        ("ReasonAnnouncementFailed", "File not found"),
        ("AnnounceUrl", "https://a.example.com/2.wav"),
    ]
    driver.arrive(3, evented())
    driver.added(3, 13)
    driver(ev.ApiAnnounce("AN3", "https://a.example.com/3.wav", call_sid=call_sid(2)))
    driver.deleted(2, 12, "NORMAL_CLEARING")
    # The participant left: no participant parameters any more.
    assert [name for name, _ in only(driver(ev.PlayFileDone("AN3"))).params] == [
        *(name for name, _ in common(0, "")),
        "AnnounceUrl",
    ]


def test_every_event_name_has_a_parameter_set() -> None:
    assert set(PARAMETER_SETS) == {
        "conference-start",
        "conference-end",
        "participant-join",
        "participant-leave",
        "participant-mute",
        "participant-unmute",
        "participant-hold",
        "participant-unhold",
        "participant-modify",
        "participant-speech-start",
        "participant-speech-stop",
        "announcement-end",
        "announcement-fail",
    }


def test_no_status_callback_without_url_or_token() -> None:
    driver = Driver()
    driver.arrive(1, settings(status_callback_event=frozenset()))
    driver.arrive(2)
    assert hooks(driver.log) == []
    assert driver.state.sequence_number == 0


def recorded(**room: object) -> Driver:
    driver = Driver()
    driver.arrive(1, settings(record=Record.RECORD_FROM_START, **room))
    driver.arrive(2)
    driver.added(1, 11)
    driver.added(2, 12)
    return driver


def recording_params(status: str, duration: str) -> list[tuple[str, str]]:
    return [
        ("AccountSid", ACCOUNT),
        ("ConferenceSid", SID),
        ("RecordingSid", "RE1"),
        (
            "RecordingUrl",
            f"https://fsconf.example.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE1",
        ),
        ("RecordingStatus", status),
        ("RecordingDuration", duration),
        ("RecordingChannels", "1"),
        ("RecordingStartTime", STAMP0),
        ("RecordingSource", "Conference"),
    ]


def test_recording_status_callbacks() -> None:
    driver = recorded(
        recording_status_callback=RSC,
        recording_status_callback_method=HttpMethod.GET,
        recording_status_callback_event=frozenset(RecordingEvent),
    )
    started = only(driver(ev.RecordingStarted(f"/rec/{SID}.wav", "RE1")))
    assert (started.kind, started.url, started.method) == ("recording", RSC, HttpMethod.GET)
    assert list(started.params) == recording_params("in-progress", "-1")
    driver(ev.ApiEndConference())
    done = only(driver(ev.RecordingStopped(f"/rec/{SID}.wav", 6400, 90786)))
    assert list(done.params) == recording_params("completed", "6")


def test_recording_default_events_is_completed_only() -> None:
    driver = recorded(recording_status_callback=RSC)
    assert hooks(driver(ev.RecordingStarted(f"/rec/{SID}.wav", "RE1"))) == []
    done = only(driver(ev.RecordingStopped(f"/rec/{SID}.wav", 2500, 44)))
    assert list(done.params) == recording_params("completed", "3")


def test_absent_is_not_sent_unless_asked() -> None:
    driver = recorded(recording_status_callback=RSC)
    driver(ev.RecordingStarted(f"/rec/{SID}.wav", "RE1"))
    assert hooks(driver(ev.RecordingStopped(f"/rec/{SID}.wav", 0, 0))) == []


def test_empty_recording_is_absent() -> None:
    driver = recorded(
        recording_status_callback=RSC, recording_status_callback_event=frozenset(RecordingEvent)
    )
    driver(ev.RecordingStarted(f"/rec/{SID}.wav", "RE1"))
    absent = only(driver(ev.RecordingStopped(f"/rec/{SID}.wav", 0, 44)))
    assert list(absent.params) == recording_params("absent", "0")


def test_event_callback_url_gets_conference_record_end() -> None:
    driver = recorded(event_callback_url="https://old.example.com/ev")
    driver(ev.RecordingStarted(f"/rec/{SID}.wav", "RE1"))
    driver(ev.ApiEndConference())
    record_end = only(driver(ev.RecordingStopped(f"/rec/{SID}.wav", 6000, 90786)))
    assert (record_end.kind, record_end.url, record_end.method) == (
        "event",
        "https://old.example.com/ev",
        HttpMethod.POST,
    )
    assert list(record_end.params) == [
        ("ConferenceSid", SID),
        ("FriendlyName", NAME),
        ("AccountSid", ACCOUNT),
        ("SequenceNumber", "1"),
        ("Timestamp", STAMP0),
        ("EventName", "conference-record-end"),
        (
            "RecordingUrl",
            f"https://fsconf.example.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE1",
        ),
        ("Duration", "6"),
        ("RecordingFileSize", "90786"),
    ]


def test_event_callback_url_is_unused_with_a_recording_status_callback() -> None:
    driver = recorded(
        event_callback_url="https://old.example.com/ev", recording_status_callback=RSC
    )
    driver(ev.RecordingStarted(f"/rec/{SID}.wav", "RE1"))
    callbacks = hooks(driver(ev.RecordingStopped(f"/rec/{SID}.wav", 6000, 90786)))
    assert [c.kind for c in callbacks] == ["recording"]


def test_sequence_numbers_are_gap_free_over_a_whole_conference() -> None:
    driver = Driver()
    driver.arrive(1, evented(end_conference_on_exit=True))
    driver.arrive(2, evented())
    driver.arrive(3, evented())
    for n in (1, 2, 3):
        driver.added(n, 10 + n)
    driver(ev.StartTalking(call_sid(2)))
    driver(ev.ApiMute(call_sid(3), True))
    driver(ev.MemberMuted(call_sid(3)))
    driver.deleted(1, 11, "NORMAL_CLEARING")
    numbers = [int(c.get("SequenceNumber") or 0) for c in hooks(driver.log)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) == 10  # 3 joins, start, speech, mute, 3 leaves, end
