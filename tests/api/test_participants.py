"""Participants: JSON shape, filters, update/create parameters, bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fsconf.errors import TwilioApiError
from fsconf.service.control import ParticipantCreate, ParticipantUpdate
from tests.api.fakes import FakeControl
from tests.api.support import Api, World, assert_twilio_error

PARTICIPANT_FIELDS = {
    "account_sid",
    "call_sid",
    "call_sid_to_coach",
    "coaching",
    "conference_sid",
    "date_created",
    "date_updated",
    "end_conference_on_exit",
    "hold",
    "label",
    "muted",
    "queue_time",
    "start_conference_on_enter",
    "status",
    "uri",
}
HOLD_URL = "https://example.com/hold.xml"
OTHER_CALL = "CA" + "1" * 32


@pytest.fixture
def room(world: World):
    return world.conference(world.alice)


@pytest.fixture
def person(world: World, room):
    return world.participant(world.alice, room, label="customer")


def path(room, ident: str | None = None) -> str:
    base = f"Conferences/{room.sid}/Participants"
    return f"{base}.json" if ident is None else f"{base}/{ident}.json"


def test_participant_json_is_twilios(api: Api, world: World, room):
    moment = datetime(2024, 5, 1, 12, tzinfo=UTC)
    person = world.participant(world.alice, room, label="a b/c", muted=True, now=moment)
    body = api.get(path(room, person.call_sid)).json()
    assert body == {
        "account_sid": world.alice.sid,
        "call_sid": person.call_sid,
        "call_sid_to_coach": None,
        "coaching": False,
        "conference_sid": room.sid,
        "date_created": "Wed, 01 May 2024 12:00:00 +0000",
        "date_updated": "Wed, 01 May 2024 12:00:00 +0000",
        "end_conference_on_exit": False,
        "hold": False,
        "label": "a b/c",
        "muted": True,
        "queue_time": None,
        "start_conference_on_enter": True,
        "status": "connected",
        "uri": f"/2010-04-01/Accounts/{world.alice.sid}/Conferences/{room.sid}"
        f"/Participants/{person.call_sid}.json",
    }


def test_fetch_by_label_with_unsafe_characters(api: Api, world: World, room):
    person = world.participant(world.alice, room, label="agent 7 (ünïcode).json")
    response = api.get(
        f"Conferences/{room.sid}/Participants/agent%207%20(%C3%BCn%C3%AFcode).json.json"
    )
    assert response.status_code == 200, response.text
    assert response.json()["call_sid"] == person.call_sid


def test_list_only_present_and_filters(api: Api, world: World, room):
    muted = world.participant(world.alice, room, muted=True)
    held = world.participant(world.alice, room, hold=True)
    coach = world.participant(world.alice, room, coaching=True, call_sid_to_coach=held.call_sid)
    gone = world.participant(world.alice, room)
    world.leave(gone)

    def call_sids(**params):
        response = api.get(path(room), params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body["participants"][0]) == PARTICIPANT_FIELDS if body["participants"] else True
        return [p["call_sid"] for p in body["participants"]]

    assert call_sids() == [muted.call_sid, held.call_sid, coach.call_sid]
    assert call_sids(Muted="true") == [muted.call_sid]
    assert call_sids(Muted="false") == [held.call_sid, coach.call_sid]
    assert call_sids(Hold="true") == [held.call_sid]
    assert call_sids(Coaching="true") == [coach.call_sid]
    assert call_sids(Coaching="true", Hold="true") == []
    assert_twilio_error(api.get(path(room), params={"Muted": "yes"}), 400, 20001)
    # A participant that left is not found (no history), by CallSid or label.
    assert_twilio_error(api.get(path(room, gone.call_sid)), 404, 20404)


def test_update_passes_every_parameter(api: Api, world: World, room, person, control: FakeControl):
    coached = world.participant(world.alice, room)
    data = {
        "Muted": "true",
        "Hold": "TRUE",
        "HoldUrl": HOLD_URL,
        "HoldMethod": "POST",
        "AnnounceUrl": "https://example.com/announce.mp3",
        "AnnounceMethod": "get",
        "WaitUrl": "",
        "WaitMethod": "GET",
        "BeepOnExit": "false",
        "EndConferenceOnExit": "true",
        "Coaching": "false",
        "CallSidToCoach": coached.call_sid,
        "NotATwilioParameter": "ignored",
    }
    response = api.post(path(room, "customer"), data)
    assert response.status_code == 200, response.text
    (call,) = control.calls
    assert call.method == "update_participant"
    assert call.kwargs["call_sid"] == person.call_sid
    assert call.kwargs["update"] == ParticipantUpdate(
        muted=True,
        hold=True,
        hold_url=HOLD_URL,
        hold_method="POST",
        announce_url="https://example.com/announce.mp3",
        announce_method="GET",
        wait_url="",
        wait_method="GET",
        beep_on_exit=False,
        end_conference_on_exit=True,
        coaching=False,
        call_sid_to_coach=coached.call_sid,
    )


def test_update_answers_with_the_row_after_the_change(api: Api, room, person, control):
    body = api.post(path(room, person.call_sid), {"Muted": "true", "Hold": "true"}).json()
    assert (body["muted"], body["hold"]) == (True, True)
    body = api.post(path(room, person.call_sid), {"Muted": "false"}).json()
    assert (body["muted"], body["hold"]) == (False, True)


def test_empty_update_changes_nothing(api: Api, room, person, control: FakeControl):
    response = api.post(path(room, person.call_sid), {"Unknown": "x"})
    assert response.status_code == 200
    assert control.calls == []


def test_coaching_needs_a_target(api: Api, world: World, room, person, control: FakeControl):
    response = api.post(path(room, person.call_sid), {"Coaching": "true"})
    assert_twilio_error(response, 400, 20001)
    other = world.participant(world.alice, room)
    data = {"Coaching": "true", "CallSidToCoach": other.call_sid}
    body = api.post(path(room, person.call_sid), data).json()
    assert (body["coaching"], body["call_sid_to_coach"]) == (True, other.call_sid)
    # 13240 from the control (the coached call is not in the conference).
    response = api.post(path(room, person.call_sid), {"CallSidToCoach": OTHER_CALL})
    assert_twilio_error(response, 400, 13240)


UPDATE_ERRORS = [
    ({"Muted": "yes"}, 20001),
    ({"Muted": "1"}, 20001),
    ({"Muted": ""}, 20001),
    ({"Hold": "on"}, 20001),
    ({"HoldUrl": "hold.xml"}, 21205),
    ({"HoldUrl": ""}, 21205),
    ({"HoldMethod": "PUT"}, 21209),
    ({"AnnounceUrl": "file:///etc/passwd"}, 21205),
    ({"AnnounceUrl": "https://example.com/a", "AnnounceMethod": "DELETE"}, 21209),
    ({"AnnounceMethod": "GET"}, 20001),
    ({"WaitUrl": "http://exa mple.com/"}, 21205),
    ({"WaitMethod": "HEAD"}, 21209),
    ({"BeepOnExit": "onExit"}, 20001),
    ({"EndConferenceOnExit": "maybe"}, 20001),
    ({"Coaching": "sure", "CallSidToCoach": OTHER_CALL}, 20001),
    ({"CallSidToCoach": "CA123"}, 20001),
    ({"CallSidToCoach": "CF" + "1" * 32}, 20001),
    ({"Muted": "true", "HoldUrl": "nope"}, 21205),  # one bad value refuses all
]


@pytest.mark.parametrize(("data", "code"), UPDATE_ERRORS)
def test_bad_update(api: Api, room, person, control: FakeControl, data, code):
    assert_twilio_error(api.post(path(room, person.call_sid), data), 400, code)
    assert control.calls == []


def test_delete_kicks(api: Api, room, person, control: FakeControl):
    response = api.delete(path(room, "customer"))
    assert response.status_code == 204
    assert response.content == b""
    assert control.calls[0].kwargs["call_sid"] == person.call_sid
    assert_twilio_error(api.delete(path(room, "customer")), 404, 20404)


# --- create ------------------------------------------------------------------------


def test_create_with_every_parameter(api: Api, world: World, room, control: FakeControl):
    coached = world.participant(world.alice, room)
    data = [
        ("From", "+15550001111"),
        ("To", "client:alice"),
        ("Label", "agent"),
        ("Timeout", "30"),
        ("Beep", "onExit"),
        ("Muted", "true"),
        ("StartConferenceOnEnter", "false"),
        ("EndConferenceOnExit", "true"),
        ("WaitUrl", "https://example.com/wait.xml"),
        ("WaitMethod", "GET"),
        ("MaxParticipants", "10"),
        ("ConferenceRecord", "true"),
        ("ConferenceTrim", "do-not-trim"),
        ("ConferenceStatusCallback", "https://example.com/conf"),
        ("ConferenceStatusCallbackMethod", "GET"),
        ("ConferenceStatusCallbackEvent", "start"),
        ("ConferenceStatusCallbackEvent", "end join"),
        ("ConferenceRecordingStatusCallback", "https://example.com/rec"),
        ("ConferenceRecordingStatusCallbackMethod", "GET"),
        ("ConferenceRecordingStatusCallbackEvent", "in-progress completed"),
        ("Coaching", "true"),
        ("CallSidToCoach", coached.call_sid),
        ("JitterBufferSize", "small"),
        ("TimeLimit", "3600"),
        ("StatusCallback", "https://example.com/call"),
        ("StatusCallbackMethod", "GET"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("Region", "ie1"),
        ("EarlyMedia", "true"),
        ("SomethingElse", "ignored"),
    ]
    response = api.post(path(room), data)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == PARTICIPANT_FIELDS
    assert body["status"] == "queued"
    assert body["label"] == "agent"
    assert body["queue_time"] == "0"
    (call,) = control.calls
    assert call.kwargs["conference"] == room.sid
    assert call.kwargs["create"] == ParticipantCreate(
        from_="+15550001111",
        to="client:alice",
        label="agent",
        timeout=30,
        beep="onExit",
        muted=True,
        start_conference_on_enter=False,
        end_conference_on_exit=True,
        wait_url="https://example.com/wait.xml",
        wait_method="GET",
        max_participants=10,
        conference_record="record-from-start",
        conference_trim="do-not-trim",
        conference_status_callback="https://example.com/conf",
        conference_status_callback_method="GET",
        conference_status_callback_event=("start", "end", "join"),
        conference_recording_status_callback="https://example.com/rec",
        conference_recording_status_callback_method="GET",
        conference_recording_status_callback_event=("in-progress", "completed"),
        coaching=True,
        call_sid_to_coach=coached.call_sid,
        jitter_buffer_size="small",
        time_limit=3600,
        status_callback="https://example.com/call",
        status_callback_method="GET",
        status_callback_event=("ringing", "answered"),
        region="ie1",
    )


def test_create_defaults(api: Api, room, control: FakeControl):
    response = api.post(path(room), {"From": "+1555", "To": "+1556"})
    assert response.status_code == 201
    assert control.calls[0].kwargs["create"] == ParticipantCreate(from_="+1555", to="+1556")


def test_duplicate_label_from_the_control(api: Api, room, person):
    response = api.post(path(room), {"From": "+1555", "To": "+1556", "Label": "customer"})
    assert_twilio_error(response, 400, 16025)


def test_create_in_a_named_conference(api: Api, world: World, control: FakeControl):
    response = api.post("Conferences/Sales%20Room/Participants.json", {"From": "+1", "To": "+2"})
    assert response.status_code == 201, response.text
    assert control.calls[0].kwargs["conference"] == "Sales Room"
    conference = api.get(f"Conferences/{response.json()['conference_sid']}.json").json()
    assert conference["friendly_name"] == "Sales Room"
    # The same name in bob's account is another conference.
    bob = Api(api.base_url, world.bob)
    other = bob.post("Conferences/Sales%20Room/Participants.json", {"From": "+1", "To": "+2"})
    assert other.json()["conference_sid"] != response.json()["conference_sid"]


CREATE_ERRORS = [
    ({"From": None}, 21213),
    ({"From": "", "To": "+1556"}, 21213),
    ({"To": None}, 21201),
    ({"From": "+1555", "To": ""}, 21201),
    ({"From": "+1555\r\nX-Evil: 1", "To": "+1556"}, 21212),
    ({"From": " +1555", "To": "+1556"}, 21212),
    ({"From": "+1555", "To": "+1556\x00"}, 21211),
    ({"From": "+1555", "To": "x" * 256}, 21211),
    ({"Label": ""}, 20001),
    ({"Label": "x" * 129}, 20001),
    ({"Label": "bad\nlabel"}, 20001),
    ({"Timeout": "4"}, 21208),
    ({"Timeout": "601"}, 21208),
    ({"Timeout": "ten"}, 21208),
    ({"Timeout": "-5"}, 21208),
    ({"Timeout": "1.5"}, 21208),
    ({"Beep": "loud"}, 20001),
    ({"Beep": "True"}, 20001),
    ({"Muted": "yes"}, 20001),
    ({"StartConferenceOnEnter": "1"}, 20001),
    ({"EndConferenceOnExit": "no"}, 20001),
    ({"WaitUrl": "wait.xml"}, 21205),
    ({"WaitMethod": "PATCH"}, 21209),
    ({"MaxParticipants": "1"}, 20001),
    ({"MaxParticipants": "251"}, 20001),
    ({"MaxParticipants": "many"}, 20001),
    ({"ConferenceRecord": "always"}, 20001),
    ({"ConferenceTrim": "trim"}, 20001),
    ({"ConferenceStatusCallback": "example.com"}, 21205),
    ({"ConferenceStatusCallbackMethod": "PUT"}, 21209),
    ({"ConferenceStatusCallbackEvent": "start finish"}, 20001),
    ({"ConferenceRecordingStatusCallback": "//example.com/x"}, 21205),
    ({"ConferenceRecordingStatusCallbackMethod": "put"}, 21209),
    ({"ConferenceRecordingStatusCallbackEvent": "paused"}, 20001),
    ({"Coaching": "true"}, 20001),
    ({"Coaching": "maybe", "CallSidToCoach": OTHER_CALL}, 20001),
    ({"CallSidToCoach": "CAxyz"}, 20001),
    ({"JitterBufferSize": "huge"}, 20001),
    ({"TimeLimit": "0"}, 20001),
    ({"TimeLimit": "86401"}, 20001),
    ({"TimeLimit": "1h"}, 20001),
    ({"StatusCallback": "mailto:x@example.com"}, 21205),
    ({"StatusCallbackMethod": "OPTIONS"}, 21209),
    ({"StatusCallbackEvent": "completed hungup"}, 20001),
    ({"Region": "mars1"}, 20001),
    ({"Record": "please"}, 20001),
    ({"EarlyMedia": "nope"}, 20001),
    ({"RecordingStatusCallback": "x"}, 21205),
]


@pytest.mark.parametrize(("data", "code"), CREATE_ERRORS)
def test_bad_create(api: Api, room, control: FakeControl, data, code):
    merged = {"From": "+1555", "To": "+1556", **data}
    full = {name: value for name, value in merged.items() if value is not None}
    assert_twilio_error(api.post(path(room), full), 400, code)
    assert control.calls == []


@pytest.mark.parametrize("name", ["", "x" * 129, "bad\x01name"])
def test_bad_friendly_name(api: Api, control: FakeControl, name):
    from urllib.parse import quote

    response = api.post(f"Conferences/{quote(name)}/Participants.json", {"From": "+1", "To": "+2"})
    assert response.status_code in (400, 404)
    assert control.calls == []


def test_control_failure_on_create(api: Api, room, control: FakeControl):
    control.fail_next = TwilioApiError(21220, "the call could not be placed", 400)
    response = api.post(path(room), {"From": "+1", "To": "+2"})
    assert_twilio_error(response, 400, 21220)
