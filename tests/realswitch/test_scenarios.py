"""Real switch: the end-to-end scenarios of tests/e2e, as a real FreeSWITCH shows them.

Each scenario places calls with ``originate ... loopback/fsconf_sock_<port>``
(see :mod:`fsconf.testing.realswitch`): the B-leg is the caller fsconf runs,
the CallSid is ``CA`` + its uuid. Nothing here reads which commands fsconf
sent; the assertions are on what the switch shows (the CHANNEL_EXECUTE
``Application``/``Application-Data`` of the caller's channel, the
conference::maintenance events, ``conference <sid> list``, ``uuid_exists``),
on the callbacks the customer application received, and on fsconf's rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from fsconf.demo import Received
from fsconf.esl.frames import Event
from fsconf.store import models
from fsconf.testing.realswitch import RealStack, uuid_of

ALL_EVENTS = "start end join leave mute hold modify speaker announcement"
PAUSE = '<Response><Pause length="30"/></Response>'
"""A Dial action's TwiML that keeps the channel up and shows as ``sleep``."""

JOIN_PARAMS = sorted(
    [
        "AccountSid",
        "CallSid",
        "Coaching",
        "ConferenceSid",
        "EndConferenceOnExit",
        "FriendlyName",
        "Hold",
        "Muted",
        "SequenceNumber",
        "StartConferenceOnEnter",
        "StatusCallbackEvent",
        "Timestamp",
    ]
)


# --- helpers ---------------------------------------------------------------------------


def twiml(
    room: str, events_url: str, *, dial: dict[str, Any] | None = None, **attributes: Any
) -> str:
    response = VoiceResponse()
    response.dial(**(dial or {})).conference(
        room, status_callback=events_url, status_callback_event=ALL_EVENTS, **attributes
    )
    return str(response)


def named(received: list[Received], event: str) -> list[Received]:
    return [r for r in received if r.path == "/events" and r.get("StatusCallbackEvent") == event]


def has(event: str, count: int = 1) -> Callable[[list[Received]], bool]:
    return lambda received: len(named(received, event)) >= count


def requested(path: str) -> Callable[[list[Received]], bool]:
    return lambda received: any(r.path == path for r in received)


def wait(stack: RealStack, predicate: Callable[[list[Received]], bool], what: str) -> None:
    if not stack.customer.wait_for(predicate, timeout=stack.switch.timeout):
        seen = ", ".join(
            f"{r.path}:{r.get('StatusCallbackEvent') or ''}" for r in stack.customer.received
        )
        raise AssertionError(f"timed out waiting for {what}; received: {seen}")


def first(stack: RealStack, event: str) -> Received:
    found = named(stack.customer.received, event)
    assert found, f"no {event}"
    return found[0]


def conference_sid(stack: RealStack) -> str:
    sid = first(stack, "participant-join").get("ConferenceSid")
    assert sid is not None and re.fullmatch(r"CF[0-9a-f]{32}", sid)
    return sid


def in_room(stack: RealStack, sid: str, *call_sids: str) -> None:
    """Wait until ``conference <sid> list`` shows exactly these calls' channels."""
    wanted = {uuid_of(call_sid) for call_sid in call_sids}
    stack.switch.wait_until(lambda: {m.uuid for m in stack.switch.members(sid)} == wanted)


def app_names(stack: RealStack, call_sid: str) -> list[str]:
    return [name for name, _ in stack.switch.executions(uuid_of(call_sid))]


def wait_app(stack: RealStack, call_sid: str, app: str) -> Event:
    uuid = uuid_of(call_sid)
    return stack.switch.wait_event(
        lambda e: e.name == "CHANNEL_EXECUTE"
        and e.unique_id == uuid
        and e.get("Application") == app,
        what=f"{app} on {call_sid}",
    )


def rest(stack: RealStack) -> Client:
    client = Client(stack.account_sid, stack.auth_token)
    host, port = stack.app.http_address
    client.api.base_url = f"http://{host}:{port}"
    return client


def two_in_a_room(stack: RealStack, room: str, **attributes: Any) -> tuple[str, str, str]:
    """Alice and Bob in ``room`` (started); ``(alice, bob, ConferenceSid)``."""
    stack.customer.documents["/voice"] = twiml(room, stack.customer.url("/events"), **attributes)
    stack.customer.documents["/after"] = PAUSE
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(stack, has("conference-start"), "the conference start")
    sid = conference_sid(stack)
    in_room(stack, sid, alice, bob)
    return alice, bob, sid


# --- scenarios -------------------------------------------------------------------------


def test_moderated_conference_spec_example_2_exact_callbacks(real_stack: RealStack) -> None:
    stack, switch, customer = real_stack, real_stack.switch, real_stack.customer
    events = customer.url("/events")
    room = "moderated-conference-room"
    customer.documents["/waiting"] = twiml(room, events, start_conference_on_enter=False)
    customer.documents["/moderator"] = twiml(
        room, events, start_conference_on_enter=True, end_conference_on_exit=True
    )
    alice = stack.call("/waiting", caller="+15551230001", name="Alice")
    wait(stack, has("participant-join"), "Alice's join")
    bob = stack.call("/waiting", caller="+15551230002", name="Bob")
    wait(stack, has("participant-join", 2), "Bob's join")
    # Parked: nobody may start it, so nobody runs the conference app yet.
    for waiting in (alice, bob):
        assert "conference" not in app_names(stack, waiting)
    assert not named(customer.received, "conference-start")

    moderator = stack.call("/moderator", caller="+15551230000", name="Moderator")
    wait(stack, has("conference-start"), "the moderator's start")
    sid = conference_sid(stack)
    in_room(stack, sid, alice, bob, moderator)

    stack.hangup(moderator)
    wait(stack, has("conference-end"), "the end")
    wait(stack, has("participant-leave", 3), "three leaves")

    callbacks = customer.callbacks("/events")
    assert all(r.signature_ok for r in callbacks)
    assert [int(r.get("SequenceNumber") or 0) for r in callbacks] == list(range(1, 9))
    steps = [(r.get("StatusCallbackEvent"), r.get("CallSid")) for r in callbacks]
    assert steps[:5] == [
        ("participant-join", alice),
        ("participant-join", bob),
        ("participant-join", moderator),
        ("conference-start", None),
        ("participant-leave", moderator),
    ]
    # The room ends under the other two; FreeSWITCH removes them in its own order.
    assert sorted(steps[5:7]) == sorted([("participant-leave", alice), ("participant-leave", bob)])
    assert steps[7] == ("conference-end", None)
    join = callbacks[0]
    assert sorted(name for name, _ in join.params) == JOIN_PARAMS
    assert join.get("FriendlyName") == room and join.get("AccountSid") == stack.account_sid
    assert callbacks[4].get("ReasonParticipantLeft") == "participant_hung_up"
    for leave in callbacks[5:7]:
        assert leave.get("ReasonParticipantLeft") == "moderator_ended_conference"
        assert leave.get("ParticipantCallStatus") == "in-progress"
    end = callbacks[7]
    assert end.get("ReasonConferenceEnded") == "participant-with-end-conference-on-exit-left"
    assert end.get("CallSidEndingConference") == moderator

    switch.wait_until(lambda: switch.members(sid) == [])  # the room is gone on the switch
    assert stack.app.wait_delivered(8)
    with stack.app.sessions() as session:
        row = session.get(models.Conference, sid)
        assert row is not None and row.status == "completed" and row.friendly_name == room


def test_mute_via_rest_is_mute_member_and_list_shows_no_speak(real_stack: RealStack) -> None:
    stack, switch = real_stack, real_stack.switch
    alice, bob, sid = two_in_a_room(stack, "Mute Room")
    participant = rest(stack).conferences(sid).participants(alice).update(muted=True)
    assert participant.muted is True
    wait(stack, has("participant-mute"), "participant-mute")
    assert first(stack, "participant-mute").get("CallSid") == alice

    event = switch.wait_event(
        lambda e: e.action == "mute-member" and e.unique_id == uuid_of(alice),
        what="mute-member of Alice",
    )
    assert event.get("Speak") == "false"
    listed = {m.uuid: m for m in switch.members(sid)}
    assert "speak" not in listed[uuid_of(alice)].flags
    assert "hear" in listed[uuid_of(alice)].flags
    assert "speak" in listed[uuid_of(bob)].flags


def test_kick_via_rest_continues_to_the_dial_action_with_the_channel_up(
    real_stack: RealStack,
) -> None:
    stack, switch, customer = real_stack, real_stack.switch, real_stack.customer
    alice, bob, sid = two_in_a_room(stack, "Kick Room", dial={"action": "/after"})
    rest(stack).conferences(sid).participants(bob).delete()

    wait(stack, requested("/after"), "Bob's Dial action")
    action = next(r for r in customer.received if r.path == "/after")
    assert action.signature_ok and action.get("CallSid") == bob
    assert action.get("DialCallStatus") == "completed"
    assert action.get("CallStatus") == "in-progress"
    wait(stack, has("participant-leave"), "Bob's leave")
    leave = first(stack, "participant-leave")
    assert leave.get("CallSid") == bob
    assert leave.get("ReasonParticipantLeft") == "participant_updated_via_api"

    bob_uuid = uuid_of(bob)
    assert switch.conference_events("kick-member", uuid=bob_uuid)
    # B2: the kick only ended the conference app; the action's TwiML runs on the channel.
    wait_app(stack, bob, "sleep")
    names = app_names(stack, bob)
    assert names.index("sleep") > names.index("conference")
    assert switch.exists(bob_uuid)
    assert not switch.find(
        lambda e: e.name == "CHANNEL_HANGUP_COMPLETE" and e.unique_id == bob_uuid
    )
    assert [m.uuid for m in switch.members(sid)] == [uuid_of(alice)]


def test_hangup_on_star_leaves_the_room_and_runs_the_dial_action(real_stack: RealStack) -> None:
    stack, switch, customer = real_stack, real_stack.switch, real_stack.customer
    alice, bob, sid = two_in_a_room(
        stack, "Star Room", dial={"action": "/after", "hangup_on_star": True}
    )
    alice_uuid = uuid_of(alice)
    # B2.3: the control acts when the member RECEIVES the digit.
    switch.receive_dtmf(alice_uuid, "*")

    wait(stack, requested("/after"), "Alice's Dial action")
    action = next(r for r in customer.received if r.path == "/after")
    assert action.get("CallSid") == alice and action.get("DialCallStatus") == "completed"
    assert action.get("CallStatus") == "in-progress"
    wait(stack, has("participant-leave"), "Alice's leave")
    leave = first(stack, "participant-leave")
    assert leave.get("CallSid") == alice and leave.get("ParticipantCallStatus") == "in-progress"

    dtmf = switch.wait_event(
        lambda e: e.name == "DTMF" and e.unique_id == alice_uuid, what="Alice's DTMF"
    )
    assert dtmf.get("DTMF-Digit") == "*"
    assert not switch.conference_events("kick-member", uuid=alice_uuid), "a control, not a kick"
    wait_app(stack, alice, "sleep")
    assert switch.exists(alice_uuid)
    assert [m.uuid for m in switch.members(sid)] == [uuid_of(bob)]
    assert not named(customer.received, "conference-end")


def test_full_room_refuses_silently(real_stack: RealStack) -> None:
    stack, switch, customer = real_stack, real_stack.switch, real_stack.customer
    alice, bob, sid = two_in_a_room(
        stack, "Small Room", max_participants=2, dial={"action": "/after"}
    )
    # maxParticipants reached mod_conference on the creating join.
    assert switch.api(f"conference {sid} get max_members").strip() == "2"

    # B11, on the switch: a member fsconf does not control is refused without a word.
    intruder = switch.originate_member(sid)
    done = switch.wait_event(
        lambda e: e.name == "CHANNEL_EXECUTE_COMPLETE"
        and e.unique_id == intruder
        and e.get("Application") == "conference",
        what="the intruder's conference app returning",
    )
    assert done.get("variable_conference_member_id") is None
    assert not switch.find(
        lambda e: e.subclass == "conference::maintenance" and e.unique_id == intruder
    )
    assert {m.uuid for m in switch.members(sid)} == {uuid_of(alice), uuid_of(bob)}

    # fsconf checks the size before joining: the third caller goes to its Dial action.
    carol = stack.call("/voice", caller="+15551230003", name="Carol")
    wait(stack, requested("/after"), "Carol's Dial action")
    action = next(r for r in customer.received if r.path == "/after")
    assert action.get("CallSid") == carol and action.get("DialCallStatus") == "failed"
    wait_app(stack, carol, "sleep")
    assert "conference" not in app_names(stack, carol)
    assert switch.exists(uuid_of(carol))
    assert {m.uuid for m in switch.members(sid)} == {uuid_of(alice), uuid_of(bob)}


def test_record_from_start_sends_the_recording_callback(real_stack: RealStack) -> None:
    stack, switch, customer = real_stack, real_stack.switch, real_stack.customer
    recordings_dir = stack.app.tuning.engine.recordings_dir  # type: ignore[union-attr]
    alice, bob, sid = two_in_a_room(
        stack,
        "Rec Room",
        record="record-from-start",
        recording_status_callback=customer.url("/recording"),
    )
    started = switch.wait_event(
        lambda e: e.action == "start-recording" and e.get("Conference-Name") == sid,
        what="start-recording",
    )
    assert started.get("Error") is None, (
        f"FreeSWITCH could not write {started.get('Path')}: set FSCONF_TEST_RECORDINGS_DIR "
        "to a directory on the switch that FreeSWITCH may write"
    )
    assert (started.get("Path") or "").startswith(recordings_dir)

    stack.hangup(alice)
    stack.hangup(bob)
    wait(stack, has("conference-end"), "the end")
    wait(stack, requested("/recording"), "the recording callback")
    recording = next(r for r in customer.received if r.path == "/recording")
    assert recording.method == "POST" and recording.signature_ok
    assert recording.get("RecordingStatus") == "completed"
    assert recording.get("ConferenceSid") == sid
    assert recording.get("RecordingChannels") == "1"
    assert recording.get("RecordingSource") == "Conference"
    assert re.fullmatch(r"RE[0-9a-f]{32}", recording.get("RecordingSid") or "")
    assert int(recording.get("RecordingDuration") or "-1") >= 0
    assert switch.conference_events("stop-recording")


def test_the_join_is_one_multiset_and_the_conference_app(real_stack: RealStack) -> None:
    """DESIGN's hot path, as the switch's CHANNEL_EXECUTE events show it."""
    stack, switch = real_stack, real_stack.switch
    alice, bob, sid = two_in_a_room(stack, "Hot Path")
    multisets = []
    for call in (alice, bob):
        executed = switch.executions(uuid_of(call))
        names = [name for name, _ in executed]
        joined = names.index("conference")
        before = executed[:joined]
        assert "set" not in [name for name, _ in before], executed
        call_multisets = [data for name, data in before if name == "multiset"]
        assert len(call_multisets) == 1, executed
        assert "hangup_after_conference=false" in call_multisets[0]
        multisets += call_multisets
        assert executed[joined][1].startswith(f"{sid}@fsconf")
        assert "Hot Path" not in " ".join(data for _, data in executed)
    assert any(f"confvar_conference_sid={sid}" in data for data in multisets)
    # The room's creator carried confvar_conference_sid: every event of the room has it.
    added = [e for e in switch.conference_events("add-member") if e.get("Conference-Name") == sid]
    assert len(added) == 2 and all(e.get("conference_sid") == sid for e in added)


def test_real_audio_makes_the_member_talk_and_a_speech_callback(real_stack: RealStack) -> None:
    stack, switch, customer = real_stack, real_stack.switch, real_stack.customer
    customer.documents["/voice"] = twiml("Talk Room", customer.url("/events"))
    talker = stack.call("/voice", caller="+15551230001", name="Talker", talking=True)
    listener = stack.call("/voice", caller="+15551230002", name="Listener")
    wait(stack, has("conference-start"), "the start")
    sid = conference_sid(stack)
    in_room(stack, sid, talker, listener)

    wait(stack, has("participant-speech-start"), "participant-speech-start")
    speech = first(stack, "participant-speech-start")
    assert speech.get("CallSid") == talker and speech.get("ConferenceSid") == sid
    assert switch.conference_events("start-talking", uuid=uuid_of(talker))
