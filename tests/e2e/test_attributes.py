"""Every ``<Conference>`` attribute end to end, with the FreeSWITCH commands it produces.

What reaches the switch is read from ``switch.commands`` (every frame fsconf
sent, on the inbound connection and on each call's outbound socket); what the
application sees is read from the customer application's requests.
"""

from __future__ import annotations

import pytest

from fsconf.esl import commands
from tests.e2e import support
from tests.e2e.support import (
    AudioServer,
    alerts,
    all_text,
    api_lines,
    app_args,
    conference_sid,
    connection_of,
    first,
    has,
    named,
    requested,
    rest,
    twiml,
    wait,
    wait_app,
    wait_command,
)

stack = support.stack


def test_muted_beep_and_jitter_buffer_become_channel_variables(stack):
    customer = stack.customer
    events = customer.url("/events")
    cases = {
        "/a": ({"beep": True, "jitter_buffer_size": "small"}, True, True, "20"),
        "/b": ({"beep": False, "jitter_buffer_size": "medium", "muted": True}, False, False, "40"),
        "/c": ({"beep": "onEnter", "jitter_buffer_size": "large"}, True, False, "60"),
        "/d": ({"beep": "onExit", "jitter_buffer_size": "off"}, False, True, None),
    }
    calls = {}
    for path, (attributes, *_expected) in cases.items():
        customer.documents[path] = twiml("Attrs", events_url=events, **attributes)
        calls[path] = stack.call(path, caller="+15551230001", name=path[1:])
        wait(customer, has("participant-join", len(calls)), f"join of {path}")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    config = stack.app.conferences.config
    for path, (attributes, enter, exit_, jitter) in cases.items():
        connection = connection_of(stack, calls[path])
        wait_app(stack, connection, "conference")
        (multiset,) = app_args(stack, connection, "multiset")
        variables = dict(part.split("=", 1) for part in multiset[3:].split(multiset[2]))
        assert variables.get("conference_enter_sound") == (config.enter_sound if enter else None)
        assert variables.get("conference_exit_sound") == (config.exit_sound if exit_ else None)
        assert variables.get("jitterbuffer_msec") == jitter, path
        assert variables["hangup_after_conference"] == "false"
        assert variables["conference_controls"] == "fsconf-none"
        flags = "+flags{mute}" if attributes.get("muted") else ""
        assert app_args(stack, connection, "conference") == [f"{sid}@fsconf{flags}"]
    joins = named(customer.callbacks(), "participant-join")
    muted = {r.get("CallSid"): r.get("Muted") for r in joins}
    assert muted == {call: "true" if path == "/b" else "false" for path, call in calls.items()}


def test_duplicate_label_is_16025_and_the_call_goes_to_its_next_verb(stack):
    customer = stack.customer
    events = customer.url("/events")
    customer.documents["/voice"] = twiml(
        "Labels",
        events_url=events,
        participant_label="agent",
        dial={"action": "/action"},
        after="Label taken",
    )
    customer.documents["/action"] = "<Response><Say>from the action</Say></Response>"
    first_agent = stack.call("/voice", caller="+15551230001", name="Agent 1")
    wait(customer, has("participant-join"), "the first agent")
    second = stack.call("/voice", caller="+15551230002", name="Agent 2")
    connection = connection_of(stack, second)
    wait_app(stack, connection, "speak")
    # "The call will not be added into the conference and instead continue to the
    # next TwiML verb": the Say after the Dial, not the Dial action.
    assert "Label taken" in app_args(stack, connection, "speak")[0]
    assert not app_args(stack, connection, "conference")
    assert not customer.callbacks("/action")
    assert [r.get("CallSid") for r in named(customer.callbacks(), "participant-join")] == [
        first_agent
    ]
    assert [(a.error_code, a.call_sid) for a in alerts(stack)] == [(16025, second)]
    rows = support.conference_row(stack, conference_sid(customer))
    assert rows.friendly_name == "Labels"


def test_wait_url_twiml_page_plays_say_pause_and_follows_redirect(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "Waiting",
        events_url=customer.url("/events"),
        wait_url=customer.url("/wait"),
        wait_method="GET",
    )
    customer.documents["/wait"] = (
        "<Response><Play>http://media.example/hold.mp3</Play><Say>Please hold</Say>"
        '<Pause length="1"/><Redirect method="POST">/wait-2</Redirect></Response>'
    )
    customer.documents["/wait-2"] = '<Response><Pause length="60"/></Response>'
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    wait(customer, requested("/wait-2"), "the Redirect")
    connection = connection_of(stack, alice)
    stack.switch.wait_until(lambda: "60000" in app_args(stack, connection, "sleep"), timeout=5)
    wait_request = customer.callbacks("/wait")[0]
    assert wait_request.method == "GET" and wait_request.signature_ok
    assert customer.callbacks("/wait-2")[0].method == "POST"
    assert app_args(stack, connection, "playback")[0] == commands.http_media(
        "http://media.example/hold.mp3"
    )
    assert "Please hold" in app_args(stack, connection, "speak")[0]
    assert app_args(stack, connection, "sleep")[:2] == ["1000", "60000"]
    assert not app_args(stack, connection, "conference")


def test_wait_url_audio_is_played_directly_and_empty_is_silence(stack):
    customer = stack.customer
    with AudioServer() as audio:
        music = audio.url("/music.mp3")
        customer.documents["/music"] = twiml(
            "Audio", events_url=customer.url("/events"), wait_url=music, wait_method="GET",
            start_conference_on_enter=False,
        )
        customer.documents["/quiet"] = twiml(
            "Audio", events_url=customer.url("/events"), wait_url="",
            start_conference_on_enter=False,
        )
        alice = stack.call("/music", caller="+15551230001", name="Alice")
        bob = stack.call("/quiet", caller="+15551230002", name="Bob")
        alice_conn, bob_conn = connection_of(stack, alice), connection_of(stack, bob)
        wait_app(stack, alice_conn, "playback")
        wait_app(stack, bob_conn, "playback")
        assert audio.requests and audio.requests[0] == ("GET", "/music.mp3")
    assert app_args(stack, alice_conn, "playback")[0] == commands.http_media(music)
    assert app_args(stack, bob_conn, "playback") == ["silence_stream://-1"]
    assert not customer.callbacks("/music.mp3")


def test_failing_wait_url_continues_to_the_dial_action(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "Broken Wait",
        events_url=customer.url("/events"),
        wait_url=customer.url("/no-such-page"),  # 204 No Content: neither TwiML nor audio
        dial={"action": "/action"},
    )
    customer.documents["/action"] = "<Response><Say>Sorry</Say></Response>"
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    connection = connection_of(stack, alice)
    wait(customer, requested("/action"), "the Dial action")
    action = customer.callbacks("/action")[0]
    assert action.get("DialCallStatus") == "failed" and action.get("CallSid") == alice
    wait_app(stack, connection, "speak")
    # The callback goes through the outbox; the action request does not wait for it.
    wait(customer, has("participant-leave"), "the leave callback")
    assert first(customer, "participant-leave").get("ReasonParticipantLeft") == (
        "participant_add_failed"
    )
    assert any(a.call_sid == alice for a in alerts(stack))


def test_coach_relation_is_reapplied_on_each_join(stack):
    customer = stack.customer
    events = customer.url("/events")
    customer.documents["/voice"] = twiml("Coached", events_url=events)
    customer.put = None
    agent = stack.call("/voice", caller="+15551230001", name="Agent")
    caller = stack.call("/voice", caller="+15551230002", name="Caller")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    customer.documents["/coach"] = twiml("Coached", events_url=events, coach=agent)
    coach = stack.call("/coach", caller="+15551230003", name="Coach")
    wait(customer, has("participant-join", 3), "the coach")
    join = named(customer.callbacks(), "participant-join")[2]
    assert join.get("Coaching") == "true" and join.get("CallSidToCoach") == agent
    room = stack.app.conferences.rooms[sid]

    def members() -> dict[str, int | None]:
        return {p.call_sid: p.member_id for p in room.state.participants}

    stack.switch.wait_until(lambda: all(members().values()) and len(members()) == 3, 5)
    ids = members()
    first_relate = f"conference {sid} relate {ids[coach]} {ids[caller]} nospeak"
    wait_command(stack, lambda line: line == first_relate)
    late = stack.call("/voice", caller="+15551230004", name="Late")
    wait(customer, has("participant-join", 4), "a later participant")
    stack.switch.wait_until(lambda: len(members()) == 4 and all(members().values()), 5)
    ids = members()
    again = f"conference {sid} relate {ids[coach]} {ids[caller]},{ids[late]} nospeak"
    wait_command(stack, lambda line: line == again)
    assert not [line for line in api_lines(stack) if f"{ids[agent]} nospeak" in line]


def test_unknown_coach_is_13240_and_the_call_fails_to_its_action(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "Coached",
        events_url=customer.url("/events"),
        coach="CA" + "0" * 32,
        dial={"action": "/action"},
    )
    customer.documents["/action"] = "<Response><Hangup/></Response>"
    call = stack.call("/voice", caller="+15551230001", name="Coach")
    wait(customer, requested("/action"), "the Dial action")
    assert customer.callbacks("/action")[0].get("DialCallStatus") == "failed"
    assert [(a.error_code, a.call_sid) for a in alerts(stack)] == [(13240, call)]
    assert not named(customer.callbacks(), "participant-join")


@pytest.mark.parametrize(
    ("events", "expected"),
    [("in-progress completed", ["in-progress", "completed"]), ("absent", [])],
)
def test_recording_status_callback_events_and_method(stack, events, expected):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "Recorded",
        events_url=customer.url("/events"),
        record="record-from-start",
        recording_status_callback=customer.url("/recording"),
        recording_status_callback_method="GET",
        recording_status_callback_event=events,
        event_callback_url=customer.url("/record-end"),
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    wait_command(stack, lambda line: line.startswith(f"conference {sid} record "))
    if expected[:1] == ["in-progress"]:
        wait(customer, requested("/recording"), "in-progress")
        assert customer.callbacks("/recording")[0].get("RecordingDuration") == "-1"
    stack.hangup(alice)
    stack.hangup(bob)
    wait(customer, has("conference-end"), "the end")
    if expected:
        wait(customer, requested("/recording", len(expected)), "the recording callbacks")
    else:
        stack.switch.wait_until(lambda: _recording_status(stack, sid) == "completed", timeout=5)
    recordings = customer.callbacks("/recording")
    assert [r.get("RecordingStatus") for r in recordings] == expected
    assert all(r.method == "GET" and r.signature_ok for r in recordings)
    assert len({r.get("RecordingSid") for r in recordings}) <= 1
    assert not customer.callbacks("/record-end"), "recordingStatusCallback silences it"


def _recording_status(stack, sid: str) -> str | None:
    found = rest(stack).conferences(sid).recordings.list()
    return found[0].status if found else None


def test_a_recorded_conference_is_released_once_its_recording_is_over(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "Released", events_url=customer.url("/events"), record="record-from-start"
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    wait_command(stack, lambda line: line.startswith(f"conference {sid} record "))
    stack.hangup(alice)
    stack.hangup(bob)
    stack.switch.wait_until(lambda: _recording_status(stack, sid) == "completed", timeout=5)
    # Nothing is left to happen to it: the service lets the room go (no leak).
    stack.switch.wait_until(lambda: sid not in stack.app.conferences.rooms, timeout=5)


def test_event_callback_url_without_recording_status_callback(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "Legacy",
        events_url=customer.url("/events"),
        record="record-from-start",
        event_callback_url=customer.url("/record-end"),
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    wait_command(stack, lambda line: line.startswith(f"conference {sid} record "))
    stack.hangup(alice)
    stack.hangup(bob)
    wait(customer, requested("/record-end"), "conference-record-end")
    request = customer.callbacks("/record-end")[0]
    assert request.method == "POST" and request.signature_ok
    assert support.names(request) == sorted(
        [
            "AccountSid",
            "ConferenceSid",
            "Duration",
            "EventName",
            "FriendlyName",
            "RecordingFileSize",
            "RecordingUrl",
            "SequenceNumber",
            "Timestamp",
        ]
    )
    assert request.get("EventName") == "conference-record-end"
    assert request.get("ConferenceSid") == sid
    assert int(request.get("RecordingFileSize") or "0") > 0
    assert int(request.get("Duration") or "-1") >= 0
    assert "/Recordings/RE" in (request.get("RecordingUrl") or "")
    # It takes the next SequenceNumber of the conference (no gap, no repeat).
    numbers = [int(r.get("SequenceNumber") or 0) for r in customer.callbacks()]
    numbers.append(int(request.get("SequenceNumber") or 0))
    assert sorted(numbers) == list(range(1, len(numbers) + 1))


def test_no_user_text_reaches_freeswitch(stack):
    customer = stack.customer
    room = 'Board "Room" ${system(rm -rf /)} \'q\' 1234'
    label = "agent ${uuid_kill} \"x\""
    customer.documents["/voice"] = twiml(
        room, events_url=customer.url("/events"), participant_label=label
    )
    customer.documents["/other"] = twiml(room, events_url=customer.url("/events"))
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    wait(customer, has("participant-join"), "Alice's join")
    stack.call("/other", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    assert first(customer, "participant-join").get("FriendlyName") == room
    assert first(customer, "participant-join").get("ParticipantLabel") == label
    rest(stack).conferences(sid).participants(alice).update(muted=True)
    wait(customer, has("participant-mute"), "mute by CallSid")
    stack.hangup(alice)
    wait(customer, has("participant-leave"), "the leave")
    text = all_text(stack)
    for fragment in (room, "Board", label, "${", "uuid_kill", "rm -rf"):
        assert fragment not in text, fragment
    assert sid in text


def test_a_caller_hanging_up_in_the_room_gets_its_action_requested_at_once(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "Hangup", events_url=customer.url("/events"), dial={"action": "/action"}
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    stack.switch.wait_until(lambda: len(stack.switch.rooms[sid].members) == 2, timeout=5)
    stack.hangup(alice)
    wait(customer, has("participant-leave"), "Alice's leave")
    # Twilio requests the action after a hangup too (its answer is ignored); it
    # must not wait for a confirmation that never comes (10 s in fsconf).
    assert customer.wait_for(requested("/action"), timeout=3), "the action came late"
    action = customer.callbacks("/action")[0]
    assert action.get("CallStatus") == "completed" and action.get("DialCallStatus") == "completed"
