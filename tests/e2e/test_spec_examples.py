"""The spec's eight ``<Dial><Conference>`` examples, end to end.

Each example's TwiML is written with ``VoiceResponse`` exactly as the spec's
code sample writes it (plus a statusCallback to the customer application with
all nine events, so every step is observable), and runs through the real
pipeline: FakeSwitch -> fsconf serve -> the customer application.
"""

from __future__ import annotations

import re

from tests.e2e import support
from tests.e2e.support import (
    COMMON,
    END,
    ENDING,
    LEAVE,
    PARTICIPANT,
    api_lines,
    app_args,
    apps,
    conference_sid,
    connection_of,
    first,
    has,
    named,
    names,
    requested,
    rest,
    twiml,
    uuid_of,
    wait,
    wait_app,
    wait_command,
)

stack = support.stack


def test_example_1_first_caller_waits_with_music_second_starts(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml("Room 1234", events_url=customer.url("/events"))
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    wait(customer, has("participant-join"), "Alice's join")
    alice_conn = connection_of(stack, alice)
    wait_app(stack, alice_conn, "playback")
    # No waitUrl: the configured default hold music plays on Alice's own channel.
    assert app_args(stack, alice_conn, "playback")[0] == "local_stream://moh"
    assert not app_args(stack, alice_conn, "conference"), "one caller is parked, not in a room"
    assert not named(customer.callbacks(), "conference-start")

    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    bob_conn = connection_of(stack, bob)
    for connection in (alice_conn, bob_conn):
        wait_app(stack, connection, "conference")
        assert app_args(stack, connection, "conference") == [f"{sid}@fsconf"]
        multiset = app_args(stack, connection, "multiset")[0]
        # beep defaults to true: both sounds are set on each channel.
        assert "conference_enter_sound=" in multiset and "conference_exit_sound=" in multiset
    events = [r.get("StatusCallbackEvent") for r in customer.callbacks()]
    assert events == ["participant-join", "participant-join", "conference-start"]


def test_example_2_moderated_conference(stack):
    customer = stack.customer
    events = customer.url("/events")
    customer.documents["/waiting"] = twiml(
        "moderated-conference-room",
        events_url=events,
        after="The moderator has left",
        start_conference_on_enter=False,
    )
    customer.documents["/moderator"] = twiml(
        "moderated-conference-room",
        events_url=events,
        start_conference_on_enter=True,
        end_conference_on_exit=True,
    )
    alice = stack.call("/waiting", caller="+15551230001", name="Alice")
    bob = stack.call("/waiting", caller="+15551230002", name="Bob")
    connections = {call: connection_of(stack, call) for call in (alice, bob)}
    wait(customer, has("participant-join", 2), "two waiting callers")
    for waiting in (alice, bob):
        connection = connections[waiting]
        wait_app(stack, connection, "playback")
        assert not app_args(stack, connection, "conference")
    assert not named(customer.callbacks(), "conference-start"), "nobody may start it"

    moderator = stack.call("/moderator", caller="+15551230000", name="Moderator")
    wait(customer, has("conference-start"), "the moderator's start")
    sid = conference_sid(customer)
    for call in (alice, bob, moderator):
        wait_app(stack, connection_of(stack, call), "conference")
    stack.switch.wait_until(lambda: len(stack.switch.rooms.get(sid).members) == 3, timeout=5)

    stack.hangup(moderator)
    wait(customer, has("conference-end"), "the end")
    end = first(customer, "conference-end")
    assert end.get("ReasonConferenceEnded") == "participant-with-end-conference-on-exit-left"
    assert end.get("CallSidEndingConference") == moderator
    leaves = {r.get("CallSid"): r for r in named(customer.callbacks(), "participant-leave")}
    assert leaves[moderator].get("ReasonParticipantLeft") == "participant_hung_up"
    for waiting in (alice, bob):
        assert leaves[waiting].get("ReasonParticipantLeft") == "moderator_ended_conference"
        assert leaves[waiting].get("ParticipantCallStatus") == "in-progress"
        # Their <Dial> completed: the next verb really runs on their channel.
        connection = connections[waiting]
        wait_app(stack, connection, "speak")
        assert "The moderator has left" in app_args(stack, connection, "speak")[0]
    # Kicked one by one, never `kick all`.
    assert not [line for line in api_lines(stack) if line.endswith("kick all")]


def test_example_3_evented_conference_parameter_sets(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "EventedConf",
        events_url=customer.url("/events"),
        events="start end join leave mute hold",
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    stack.switch.wait_until(lambda: len(stack.switch.rooms.get(sid).members) == 2, timeout=5)
    participant = rest(stack).conferences(sid).participants(alice)
    participant.update(muted=True)
    participant.update(muted=False)
    participant.update(hold=True)
    participant.update(hold=False)
    wait(customer, has("participant-unhold"), "unhold")
    # "modify" and "speaker" are not asked for: no callbacks for them.
    stack.switch.start_talking(uuid_of(bob))
    stack.hangup(alice)
    wait(customer, has("participant-leave"), "Alice's leave")
    stack.hangup(bob)
    wait(customer, lambda _: len(customer.callbacks()) >= 10, "ten callbacks")

    callbacks = customer.callbacks()
    # Received in SequenceNumber order (DESIGN: the outbox delivers in order per conference).
    assert [r.get("StatusCallbackEvent") for r in callbacks] == [
        "participant-join",
        "participant-join",
        "conference-start",
        "participant-mute",
        "participant-unmute",
        "participant-hold",
        "participant-unhold",
        "participant-leave",
        "participant-leave",
        "conference-end",
    ]
    assert [r.get("SequenceNumber") for r in callbacks] == [str(n) for n in range(1, 11)]
    assert all(r.signature_ok and r.method == "POST" for r in callbacks)
    for request in callbacks:
        assert request.get("ConferenceSid") == sid
        assert request.get("FriendlyName") == "EventedConf"
        assert request.get("AccountSid") == stack.account_sid
        assert re.match(support.RFC2822, request.get("Timestamp") or "")
    by_event = {r.get("StatusCallbackEvent"): r for r in callbacks}
    assert names(by_event["conference-start"]) == sorted(COMMON)
    for event in ("participant-join", "participant-mute", "participant-hold"):
        assert names(by_event[event]) == sorted(COMMON + PARTICIPANT), event
    assert names(by_event["participant-leave"]) == sorted(COMMON + PARTICIPANT + LEAVE)
    assert names(by_event["conference-end"]) == sorted(COMMON + END + ENDING)
    assert by_event["participant-mute"].get("Muted") == "true"
    assert by_event["participant-unmute"].get("Muted") == "false"
    assert by_event["participant-hold"].get("Hold") == "true"
    assert by_event["participant-unhold"].get("Hold") == "false"
    assert by_event["conference-end"].get("ReasonConferenceEnded") == "last-participant-left"
    assert by_event["conference-end"].get("CallSidEndingConference") == bob


def test_example_4_join_muted(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "SimpleRoom", events_url=customer.url("/events"), muted=True
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    for call in (alice, bob):
        connection = connection_of(stack, call)
        wait_app(stack, connection, "conference")
        assert app_args(stack, connection, "conference") == [f"{sid}@fsconf+flags{{mute}}"]
    joins = named(customer.callbacks(), "participant-join")
    assert [j.get("Muted") for j in joins] == ["true", "true"]
    stack.switch.wait_until(lambda: len(stack.switch.rooms.get(sid).members) == 2, timeout=5)
    assert all(not member.speak for member in stack.switch.rooms[sid].members)
    # Joining muted is not a mute event: no participant-mute callback.
    assert not named(customer.callbacks(), "participant-mute")
    # ...and it can be lifted in real time via the REST API.
    rest(stack).conferences(sid).participants(alice).update(muted=False)
    wait(customer, has("participant-unmute"), "unmute")
    assert first(customer, "participant-unmute").get("CallSid") == alice


def test_example_5_bridging_without_music_or_beep(stack):
    customer = stack.customer
    customer.documents["/hold-page"] = "<Response><Pause length=\"60\"/></Response>"
    customer.documents["/voice"] = twiml(
        "NoMusicNoBeepRoom",
        events_url=customer.url("/events"),
        after="Bridge over",
        beep=False,
        wait_url=customer.url("/hold-page"),
        start_conference_on_enter=True,
        end_conference_on_exit=True,
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    wait(customer, requested("/hold-page"), "the waitUrl page")
    alice_conn = connection_of(stack, alice)
    wait_app(stack, alice_conn, "sleep")
    assert not app_args(stack, alice_conn, "playback"), "no music: only the page's Pause"
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    bob_conn = connection_of(stack, bob)
    # The wait page's Pause is broken off (never `uuid_break ... all`, B12).
    wait_command(stack, lambda line: line == f"uuid_break {uuid_of(alice)}")
    for connection in (alice_conn, bob_conn):
        wait_app(stack, connection, "conference")
        multiset = app_args(stack, connection, "multiset")[0]
        assert "conference_enter_sound" not in multiset
        assert "conference_exit_sound" not in multiset
    stack.switch.wait_until(lambda: len(stack.switch.rooms.get(sid).members) == 2, timeout=5)

    stack.hangup(bob)
    wait(customer, has("conference-end"), "the end")
    end = first(customer, "conference-end")
    assert end.get("ReasonConferenceEnded") == "participant-with-end-conference-on-exit-left"
    assert end.get("CallSidEndingConference") == bob
    # Alice's call goes on with the next verb.
    wait_app(stack, alice_conn, "speak")


def test_example_6_hold_style_waiting_room(stack):
    customer = stack.customer
    events = customer.url("/events")
    customer.documents["/customer"] = twiml(
        "Customer Waiting Room", events_url=events, after="Thanks for calling", beep=False
    )
    customer.documents["/agent"] = twiml(
        "Customer Waiting Room", events_url=events, beep=False, end_conference_on_exit=True
    )
    caller = stack.call("/customer", caller="+15551230001", name="Caller")
    wait(customer, has("participant-join"), "the caller's join")
    caller_conn = connection_of(stack, caller)
    wait_app(stack, caller_conn, "playback")
    assert not named(customer.callbacks(), "conference-start"), "alone: on hold with music"

    agent = stack.call("/agent", caller="+15551230002", name="Agent")
    wait(customer, has("conference-start"), "the agent's start")
    sid = conference_sid(customer)
    agent_conn = connection_of(stack, agent)
    for connection in (caller_conn, agent_conn):
        wait_app(stack, connection, "conference")
        assert "conference_enter_sound" not in app_args(stack, connection, "multiset")[0]
    stack.switch.wait_until(lambda: len(stack.switch.rooms.get(sid).members) == 2, timeout=5)

    stack.hangup(agent)
    wait(customer, has("conference-end"), "the end")
    assert first(customer, "conference-end").get("ReasonConferenceEnded") == (
        "participant-with-end-conference-on-exit-left"
    )
    wait_app(stack, caller_conn, "speak")


def test_example_7_dial_action_hangup_on_star(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "LoveTwilio",
        events_url=customer.url("/events"),
        dial={"action": "/left", "method": "POST", "hangup_on_star": True, "time_limit": 30},
    )
    customer.documents["/left"] = "<Response><Say>You left</Say></Response>"
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    alice_conn = connection_of(stack, alice)
    wait_app(stack, alice_conn, "conference")
    assert "conference_controls=fsconf-hangup-on-star" in app_args(stack, alice_conn, "multiset")[0]
    stack.switch.wait_until(lambda: len(stack.switch.rooms.get(sid).members) == 2, timeout=5)

    stack.switch.receive_dtmf(uuid_of(alice), "*")
    wait(customer, requested("/left"), "the Dial action")
    wait(customer, has("participant-leave"), "the leave callback (outbox, not ordered with it)")
    action = customer.callbacks("/left")[0]
    assert action.method == "POST" and action.signature_ok
    assert action.get("DialCallStatus") == "completed"
    assert action.get("CallSid") == alice and action.get("CallStatus") == "in-progress"
    leave = first(customer, "participant-leave")
    assert leave.get("CallSid") == alice
    assert leave.get("ParticipantCallStatus") == "in-progress"
    # The action's TwiML runs on Alice's channel; Bob stays in the conference.
    wait_app(stack, alice_conn, "speak")
    assert "You left" in app_args(stack, alice_conn, "speak")[0]
    assert not named(customer.callbacks(), "conference-end")
    assert [m.channel.uuid for m in stack.switch.rooms[sid].members] == [uuid_of(bob)]


def test_example_7_time_limit_kicks_only_that_member(stack):
    customer = stack.customer
    events = customer.url("/events")
    customer.documents["/limited"] = twiml(
        "LoveTwilio", events_url=events, dial={"action": "/left", "time_limit": 1}
    )
    customer.documents["/open"] = twiml("LoveTwilio", events_url=events)
    customer.documents["/left"] = "<Response><Hangup/></Response>"
    limited = stack.call("/limited", caller="+15551230001", name="Limited")
    other = stack.call("/open", caller="+15551230002", name="Other")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    wait(customer, requested("/left"), "the time limit")
    wait(customer, has("participant-leave"), "the leave callback")
    action = customer.callbacks("/left")[0]
    assert action.get("CallSid") == limited and action.get("DialCallStatus") == "completed"
    leave = first(customer, "participant-leave")
    assert leave.get("CallSid") == limited
    kicks = [line for line in api_lines(stack) if " kick " in line]
    assert len(kicks) == 1 and not kicks[0].endswith("kick all")
    # The other participant is still in the room, and the conference goes on.
    assert not named(customer.callbacks(), "conference-end")
    assert [m.channel.uuid for m in stack.switch.rooms[sid].members] == [uuid_of(other)]


def test_example_8_recording_with_status_callback(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "LoveTwilio",
        events_url=customer.url("/events"),
        record="record-from-start",
        recording_status_callback=customer.url("/recording"),
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    wait(customer, has("participant-join"), "Alice's join")
    wait_app(stack, connection_of(stack, alice), "playback")
    assert not [line for line in api_lines(stack) if " record " in line], "never while parked"

    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    wait_command(stack, lambda line: line.startswith(f"conference {sid} record "))
    records = [line for line in api_lines(stack) if line.startswith(f"conference {sid} record ")]
    assert len(records) == 1
    room = stack.switch.rooms[sid]
    assert len(room.members) == 2, "recording starts when the first two are bridged"
    assert not customer.callbacks("/recording"), "only completed is asked for (the default)"

    stack.hangup(alice)
    stack.hangup(bob)
    wait(customer, has("conference-end"), "the end")
    wait(customer, requested("/recording"), "the recording callback")
    end_index = customer.received.index(first(customer, "conference-end"))
    recording = customer.callbacks("/recording")[0]
    assert customer.received.index(recording) > end_index
    assert recording.method == "POST" and recording.signature_ok
    assert names(recording) == sorted(
        [
            "AccountSid",
            "ConferenceSid",
            "RecordingChannels",
            "RecordingDuration",
            "RecordingSid",
            "RecordingSource",
            "RecordingStartTime",
            "RecordingStatus",
            "RecordingUrl",
        ]
    )
    assert recording.get("RecordingStatus") == "completed"
    assert recording.get("RecordingChannels") == "1"
    assert recording.get("RecordingSource") == "Conference"
    assert recording.get("ConferenceSid") == sid
    assert recording.get("AccountSid") == stack.account_sid
    recording_sid = recording.get("RecordingSid") or ""
    assert re.fullmatch(r"RE[0-9a-f]{32}", recording_sid)
    assert recording.get("RecordingUrl", ).endswith(
        f"/2010-04-01/Accounts/{stack.account_sid}/Recordings/{recording_sid}"
    )
    assert int(recording.get("RecordingDuration") or "-1") >= 0
    assert re.match(support.RFC2822, recording.get("RecordingStartTime") or "")
    fetched = rest(stack).conferences(sid).recordings(recording_sid).fetch()
    assert fetched.conference_sid == sid and fetched.status == "completed"
    assert apps(stack)  # the whole scenario went through real sendmsg frames
