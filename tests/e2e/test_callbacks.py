"""Every statusCallbackEvent end to end, with the exact parameter set of each request.

The spec's "Request Parameters" table says which names each event carries;
these tests compare whole requests (every name and every value) as the
customer application received them, signed, numbered without gaps, in order.
Speech events use the FakeSwitch's ``start_talking``/``stop_talking``: the
stimulus that stands in for real audio crossing mod_conference's energy
threshold.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from fsconf.demo import Received
from fsconf.esl import commands
from tests.e2e import support
from tests.e2e.support import (
    alerts,
    api_lines,
    conference_row,
    conference_sid,
    first,
    has,
    named,
    requested,
    rest,
    twiml,
    uuid_of,
    wait,
)

stack = support.stack


def params_of(received: Received) -> dict[str, str]:
    params = dict(received.params)
    assert len(params) == len(received.params), f"a name sent twice: {received.params}"
    assert re.match(support.RFC2822, params.pop("Timestamp", "")), received.params
    return params


def participant(
    call_sid: str,
    *,
    muted: bool = False,
    hold: bool = False,
    coaching: bool = False,
    end_on_exit: bool = False,
    start_on_enter: bool = True,
    **extra: str,
) -> dict[str, str]:
    def text(value: bool) -> str:
        return "true" if value else "false"

    return {
        "CallSid": call_sid,
        "Muted": text(muted),
        "Hold": text(hold),
        "Coaching": text(coaching),
        "EndConferenceOnExit": text(end_on_exit),
        "StartConferenceOnEnter": text(start_on_enter),
        **extra,
    }


class Expect:
    """The common names of one conference's requests, numbered in order."""

    def __init__(self, stack, sid: str, friendly_name: str) -> None:
        self.stack = stack
        self.sid = sid
        self.friendly_name = friendly_name

    def __call__(self, sequence: int, event: str, **extra: str) -> dict[str, str]:
        return {
            "ConferenceSid": self.sid,
            "FriendlyName": self.friendly_name,
            "AccountSid": self.stack.account_sid,
            "SequenceNumber": str(sequence),
            "StatusCallbackEvent": event,
            **extra,
        }


def check_numbering(callbacks: list[Received]) -> None:
    assert [r.get("SequenceNumber") for r in callbacks] == [
        str(n) for n in range(1, len(callbacks) + 1)
    ]
    assert all(r.signature_ok for r in callbacks), "every request is signed"


def start_two(stack, room: str, *, alice_doc: str = "/voice", bob_doc: str = "/voice"):
    customer = stack.customer
    alice = stack.call(alice_doc, caller="+15551230001", name="Alice")
    wait(customer, has("participant-join"), "Alice's join")
    bob = stack.call(bob_doc, caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    stack.switch.wait_until(lambda: len(stack.switch.rooms[sid].members) == 2, timeout=5)
    # add-member reached fsconf too (the REST API needs a member id to act on)
    wait_member_ids(stack, sid, 2)
    return alice, bob, sid


def wait_member_ids(stack, sid: str, count: int) -> None:
    room = stack.app.conferences.rooms[sid]
    stack.switch.wait_until(
        lambda: sum(p.member_id is not None for p in room.state.participants) >= count, timeout=5
    )


def test_all_nine_events_with_exact_parameters(stack):
    customer = stack.customer
    events = customer.url("/events")
    customer.documents["/alice"] = twiml(
        "All Events", events_url=events, participant_label="alice"
    )
    customer.documents["/voice"] = twiml("All Events", events_url=events)
    alice, bob, sid = start_two(stack, "All Events", alice_doc="/alice")
    client = rest(stack)
    conference = client.conferences(sid)

    conference.participants(alice).update(muted=True)
    conference.participants(alice).update(muted=False)
    conference.participants(alice).update(hold=True)
    conference.participants(alice).update(hold=False)
    conference.participants(alice).update(beep_on_exit=False)
    stack.switch.start_talking(uuid_of(bob))
    stack.switch.stop_talking(uuid_of(bob))
    wait(customer, has("participant-speech-stop"), "speech stop")

    conference_url = customer.url("/announce.mp3")
    conference.update(announce_url=conference_url)
    wait(customer, has("announcement-end"), "the conference announcement")
    member_url = customer.url("/member.mp3")
    conference.participants(alice).update(announce_url=member_url)
    wait(customer, has("announcement-end", 2), "the participant announcement")
    missing_url = customer.url("/missing.mp3")
    stack.switch.missing_files.add(commands.http_media(missing_url))
    conference.update(announce_url=missing_url)
    wait(customer, has("announcement-fail"), "the failed announcement")
    conference.participants(alice).update(end_conference_on_exit=True)
    wait(customer, has("participant-modify", 2), "the second modify")

    stack.hangup(alice)
    wait(customer, has("conference-end"), "the end")
    callbacks = customer.callbacks()
    check_numbering(callbacks)
    expect = Expect(stack, sid, "All Events")
    alice_params = participant(alice, ParticipantLabel="alice")
    fail = first(customer, "announcement-fail")
    assert fail.get("ReasonAnnouncementFailed"), "a reason is given"
    expected = [
        expect(1, "participant-join", **alice_params),
        expect(2, "participant-join", **participant(bob)),
        expect(3, "conference-start"),
        expect(4, "participant-mute", **{**alice_params, "Muted": "true"}),
        expect(5, "participant-unmute", **alice_params),
        expect(6, "participant-hold", **{**alice_params, "Hold": "true"}),
        expect(7, "participant-unhold", **alice_params),
        expect(8, "participant-modify", **alice_params),
        expect(9, "participant-speech-start", **participant(bob)),
        expect(10, "participant-speech-stop", **participant(bob)),
        expect(11, "announcement-end", AnnounceUrl=conference_url),
        expect(12, "announcement-end", **alice_params, AnnounceUrl=member_url),
        expect(
            13,
            "announcement-fail",
            AnnounceUrl=missing_url,
            ReasonAnnouncementFailed=fail.get("ReasonAnnouncementFailed") or "",
        ),
        expect(14, "participant-modify", **{**alice_params, "EndConferenceOnExit": "true"}),
        expect(
            15,
            "participant-leave",
            **{**alice_params, "EndConferenceOnExit": "true"},
            ParticipantCallStatus="completed",
            ReasonParticipantLeft="participant_hung_up",
        ),
        expect(
            16,
            "participant-leave",
            **participant(bob),
            ParticipantCallStatus="in-progress",
            ReasonParticipantLeft="moderator_ended_conference",
        ),
        expect(
            17,
            "conference-end",
            CallSidEndingConference=alice,
            ParticipantLabelEndingConference="alice",
            ReasonConferenceEnded="participant-with-end-conference-on-exit-left",
            Reason=first(customer, "conference-end").get("Reason") or "",
        ),
    ]
    assert [params_of(r) for r in callbacks] == expected
    assert first(customer, "conference-end").get("Reason"), "Reason is a human text"
    # BeepOnExit=false took effect on FreeSWITCH: the exit sound was unset.
    unset = f"uuid_setvar {uuid_of(alice)} conference_exit_sound"
    assert unset in [line.strip() for line in api_lines(stack)]
    assert all(r.method == "POST" for r in callbacks)
    assert stack.app.wait_delivered(len(callbacks))
    assert conference_row(stack, sid).sequence_number == len(callbacks)


def _ended(stack, sid: str) -> dict[str, str]:
    wait(stack.customer, has("conference-end"), "the end")
    callbacks = stack.customer.callbacks()
    check_numbering(callbacks)
    end = params_of(first(stack.customer, "conference-end"))
    assert end.pop("Reason"), "Reason is a human text"
    expected_common = Expect(stack, sid, "Ending")(len(callbacks), "conference-end")
    for name, value in expected_common.items():
        assert end.pop(name) == value, name
    assert callbacks[-1].get("StatusCallbackEvent") == "conference-end", "end comes last"
    return end


def _leaves(stack) -> dict[str, tuple[str | None, str | None]]:
    return {
        r.get("CallSid") or "": (r.get("ParticipantCallStatus"), r.get("ReasonParticipantLeft"))
        for r in named(stack.customer.callbacks(), "participant-leave")
    }


def test_end_last_participant_left(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml("Ending", events_url=customer.url("/events"))
    alice, bob, sid = start_two(stack, "Ending")
    stack.hangup(alice)
    wait(customer, has("participant-leave"), "Alice's leave")
    assert not named(customer.callbacks(), "conference-end"), "a started conference goes on"
    stack.hangup(bob)
    assert _ended(stack, sid) == {
        "CallSidEndingConference": bob,
        "ReasonConferenceEnded": "last-participant-left",
    }
    assert _leaves(stack) == {
        alice: ("completed", "participant_hung_up"),
        bob: ("completed", "participant_hung_up"),
    }


def test_end_via_api(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml("Ending", events_url=customer.url("/events"))
    alice, bob, sid = start_two(stack, "Ending")
    rest(stack).conferences(sid).update(status="completed")
    assert _ended(stack, sid) == {"ReasonConferenceEnded": "conference-ended-via-api"}
    assert _leaves(stack) == {
        alice: ("in-progress", "conference_ended_via_api"),
        bob: ("in-progress", "conference_ended_via_api"),
    }


def test_end_last_participant_kicked(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml("Ending", events_url=customer.url("/events"))
    alice, bob, sid = start_two(stack, "Ending")
    conference = rest(stack).conferences(sid)
    conference.participants(bob).delete()
    wait(customer, has("participant-leave"), "Bob's kick")
    assert not named(customer.callbacks(), "conference-end")
    conference.participants(alice).delete()
    assert _ended(stack, sid) == {
        "CallSidEndingConference": alice,
        "ReasonConferenceEnded": "last-participant-kicked",
    }
    assert _leaves(stack) == {
        alice: ("in-progress", "participant_updated_via_api"),
        bob: ("in-progress", "participant_updated_via_api"),
    }


def test_end_moderator_kicked_with_label(stack):
    customer = stack.customer
    events = customer.url("/events")
    customer.documents["/voice"] = twiml("Ending", events_url=events)
    customer.documents["/moderator"] = twiml(
        "Ending", events_url=events, end_conference_on_exit=True, participant_label="host"
    )
    alice, moderator, sid = start_two(stack, "Ending", bob_doc="/moderator")
    rest(stack).conferences(sid).participants(moderator).delete()
    assert _ended(stack, sid) == {
        "CallSidEndingConference": moderator,
        "ParticipantLabelEndingConference": "host",
        "ReasonConferenceEnded": "participant-with-end-conference-on-exit-kicked",
    }
    assert _leaves(stack) == {
        moderator: ("in-progress", "participant_updated_via_api"),
        alice: ("in-progress", "moderator_ended_conference"),
    }


def test_leave_participant_add_failed_when_wait_url_fails(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "Ending",
        events_url=customer.url("/events"),
        after="Could not join",
        start_conference_on_enter=False,
        wait_url=customer.url("/no-such-wait"),  # answers 204: not TwiML, not audio
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    wait(customer, has("conference-end"), "the end")
    sid = conference_sid(customer)
    assert _leaves(stack) == {alice: ("in-progress", "participant_add_failed")}
    assert _ended(stack, sid) == {
        "CallSidEndingConference": alice,
        "ReasonConferenceEnded": "last-participant-left",
    }
    assert any(a.call_sid == alice for a in alerts(stack)), "the failed fetch is an alert"


def test_get_status_callback_method_sends_query_parameters(stack):
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "By GET",
        events_url=customer.url("/events"),
        events="join leave",
        status_callback_method="GET",
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    wait(customer, has("participant-join"), "the join")
    stack.hangup(alice)
    wait(customer, has("participant-leave"), "the leave")
    callbacks = customer.callbacks()
    assert [r.method for r in callbacks] == ["GET", "GET"]
    check_numbering(callbacks)
    sid = conference_sid(customer)
    assert params_of(callbacks[0]) == Expect(stack, sid, "By GET")(
        1, "participant-join", **participant(alice)
    )
    with stack.app.sessions() as session:
        from fsconf.store import models

        urls = [row.url for row in session.query(models.Callback)]
    assert urls and all(urlsplit(url).path == "/events" for url in urls)
    assert all(not parse_qsl(urlsplit(url).query) for url in urls), "params are added per request"


def test_room_settings_come_from_the_first_participant(stack):
    customer = stack.customer
    customer.documents["/first"] = twiml(
        "First Wins",
        events_url=customer.url("/events"),
        events="join leave",
        region="ie1",
        max_participants=2,
        start_conference_on_enter=False,
    )
    customer.documents["/later"] = twiml(
        "First Wins",
        events_url=customer.url("/other"),
        status_callback_method="GET",
        region="de1",
        max_participants=10,
        after="Full",
    )
    alice = stack.call("/first", caller="+15551230001", name="Alice")
    wait(customer, has("participant-join"), "Alice's join")
    bob = stack.call("/later", caller="+15551230002", name="Bob")
    wait(customer, has("participant-join", 2), "Bob's join")
    sid = conference_sid(customer)
    carol = stack.call("/later", caller="+15551230003", name="Carol")
    # maxParticipants=2 from Alice: Carol is refused (Bob's 10 is ignored) and goes on.
    carol_connection = support.connection_of(stack, carol)
    support.wait_app(stack, carol_connection, "speak")
    assert not support.app_args(stack, carol_connection, "conference")
    assert [a.error_code for a in alerts(stack) if a.call_sid == carol] == [16020]
    assert [r.get("StatusCallbackEvent") for r in customer.callbacks()] == [
        "participant-join",
        "participant-join",
    ], "only join and leave, from Alice's statusCallbackEvent; no conference-start"
    assert not customer.callbacks("/other"), "Bob's statusCallback is ignored"
    assert all(r.method == "POST" for r in customer.callbacks())
    row = conference_row(stack, sid)
    assert (row.region, row.max_participants) == ("ie1", 2)
    assert row.status_callback == customer.url("/events")
    fetched = rest(stack).conferences(sid).fetch()
    assert fetched.region == "ie1"
    assert {alice, bob} == {r.get("CallSid") for r in customer.callbacks()}


def test_modify_wait_url_and_coaching(stack):
    customer = stack.customer
    events = customer.url("/events")
    customer.documents["/waiting"] = twiml(
        "Modify", events_url=events, start_conference_on_enter=False
    )
    customer.documents["/wait-2"] = "<Response><Pause length=\"30\"/></Response>"
    alice = stack.call("/waiting", caller="+15551230001", name="Alice")
    wait(customer, has("participant-join"), "Alice's join")
    sid = conference_sid(customer)
    conference = rest(stack).conferences(sid)
    conference.participants(alice).update(wait_url=customer.url("/wait-2"))
    wait(customer, requested("/wait-2"), "the new waitUrl")
    wait(customer, has("participant-modify"), "the modify callback")
    modify = first(customer, "participant-modify")
    expect = Expect(stack, sid, "Modify")
    assert params_of(modify) == expect(
        2, "participant-modify", **participant(alice, start_on_enter=False)
    )

    customer.documents["/voice"] = twiml("Modify", events_url=events)
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    carol = stack.call("/voice", caller="+15551230003", name="Carol")
    wait(customer, has("participant-join", 3), "Carol's join")
    wait_member_ids(stack, sid, 3)
    conference.participants(carol).update(coaching=True, call_sid_to_coach=alice)
    wait(customer, has("participant-modify", 2), "coaching")
    coached = named(customer.callbacks(), "participant-modify")[1]
    assert params_of(coached) == expect(
        int(coached.get("SequenceNumber") or 0),
        "participant-modify",
        **participant(carol, coaching=True, CallSidToCoach=alice),
    )
    # Carol may speak to Alice only: relate Carol -> Bob nospeak.
    room = stack.app.conferences.rooms[sid].state
    member = {p.call_sid: p.member_id for p in room.participants}
    assert f"conference {sid} relate {member[carol]} {member[bob]} nospeak" in api_lines(stack)
    check_numbering(customer.callbacks())
