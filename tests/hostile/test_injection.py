"""Injection corpus: FreeSWITCH syntax in every value a customer or caller controls.

The values carry CR, LF, spaces, ``@``, ``+``, ``{}``, ``|``, quotes, ``${...}``
and a whole ``conference x kick all``.  They go in through TwiML (room names,
participant labels), through the caller's side (From, caller name, To) and
through the REST API with the official ``twilio`` client (Label,
StatusCallback, AnnounceUrl, HoldUrl, WaitUrl, From, To ...), on the real
stack.  The FakeSwitch records every command fsconf sent; the assertions are
on that record:

* no command line, header or body holds a raw value (``${`` is never sent, the
  room is always our ConferenceSid, URLs are percent-encoded);
* a value the API cannot accept is answered 400 with Twilio's error body
  (``code``, ``message``, ``more_info``, ``status``), and nothing is sent;
* an accepted but odd value (a URL with ``${x}|{y}`` in its path) is sent
  encoded, never raw.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from fsconf.demo import Stack
from tests.e2e.support import AudioServer, has, rest, wait
from tests.hostile.support import Placed, hang_up, place, settle, switch_text, watch

MARK = "INJECT9z"
KICK = "conference x kick all"
RAW = (
    f"{MARK}\r\n{KICK}\n\n",
    f"{MARK} ${{uuid_kill ${{uuid}}}}",
    f"{MARK}@default+flags{{moderator}}|x",
    f"{MARK}'\"{{a=b}}|'{KICK}'",
)


def assert_nothing_raw(text: str) -> None:
    for needle in (MARK, KICK, "${", "kick all", "flags{moderator}", "hupall"):
        assert needle not in text, f"{needle!r} reached FreeSWITCH"


@dataclass
class Live:
    """A conference in progress with two participants, on the shared stack."""

    conference_sid: str
    alice: Placed
    bob: Placed
    client: Client


@pytest.fixture
def live(stack: Stack) -> Iterator[Live]:
    events = f"/inject-events/{uuid_module.uuid4().hex}"
    room = f"Injection room {uuid_module.uuid4().hex[:8]}"
    body = (
        f'<Response><Dial><Conference statusCallback="{stack.customer.url(events)}" '
        f'statusCallbackEvent="start end join leave mute hold announcement">{room}'
        "</Conference></Dial></Response>"
    )
    alice = place(stack, "alice", body, caller="+15551230001", name="Alice")
    bob = place(stack, "bob", body, caller="+15551230002", name="Bob")
    settle(stack, [alice, bob])
    wait(stack.customer, has("conference-start", path=events), "conference-start")
    start = next(
        r
        for r in stack.customer.callbacks(events)
        if r.get("StatusCallbackEvent") == "conference-start"
    )
    sid = start.get("ConferenceSid")
    assert sid is not None
    yield Live(sid, alice, bob, rest(stack))
    hang_up(stack, [alice, bob])


def refused(call: Any, status: int = 400) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()
    error = caught.value
    assert error.status == status, error
    return error


def test_rest_parameters_are_validated_or_sent_encoded(stack: Stack, live: Live) -> None:
    sent_before = len(stack.switch.commands)
    conference = live.client.conferences(live.conference_sid)
    participant = conference.participants(live.alice.call_sid)
    host, port = stack.app.http_address
    base = f"http://{host}:{port}/2010-04-01/Accounts/{stack.account_sid}"
    auth = (stack.account_sid, stack.auth_token)

    invalid_updates: list[tuple[dict[str, str], int]] = [
        ({"HoldUrl": f"http://127.0.0.1:9/{MARK}\r\n{KICK}"}, 21205),
        ({"HoldUrl": f"http://127.0.0.1:9/{MARK} {KICK}"}, 21205),
        ({"HoldUrl": f"${{uuid_kill {MARK}}}"}, 21205),
        ({"HoldUrl": f"{{a=b}}http://127.0.0.1:9/{MARK}"}, 21205),
        ({"AnnounceUrl": f"http://127.0.0.1:9/{MARK}\n"}, 21205),
        ({"AnnounceUrl": f"file:///etc/{MARK}"}, 21205),
        ({"WaitUrl": f"javascript:{MARK}"}, 21205),
        ({"HoldMethod": f"GET\r\nX-{MARK}: 1"}, 21209),
        ({"Muted": f"true\r\n{KICK}"}, 20001),
        ({"BeepOnExit": f"'{KICK}'"}, 20001),
        ({"CallSidToCoach": f"CA${{{MARK}}}"}, 20001),
        ({"Hold": "true", "HoldUrl": f"http://127.0.0.1:9/a\x00{MARK}"}, 21205),
    ]
    answers = []
    for form, code in invalid_updates:
        response = requests.post(
            f"{base}/Conferences/{live.conference_sid}/Participants/{live.alice.call_sid}.json",
            data=form,
            auth=auth,
            timeout=5,
        )
        assert response.status_code == 400, (form, response.text)
        body = response.json()
        assert set(body) == {"code", "message", "more_info", "status"}
        assert body["code"] == code and body["status"] == 400, (form, body)
        assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
        answers.append(code)
    # Through the official client too: the same refusal, as a TwilioRestException.
    error = refused(lambda: participant.update(hold=True, hold_url=f"http://x/{MARK}\r\n{KICK}"))
    assert error.code == 21205
    error = refused(lambda: conference.update(announce_url=f"http://x/{MARK} {KICK}"))
    assert error.code == 21205
    error = refused(lambda: conference.update(status=f"completed\r\n{KICK}"))
    assert error.code == 20001
    # Nothing at all was sent to FreeSWITCH for a refused request.
    assert len(stack.switch.commands) == sent_before

    # Accepted odd values: valid URLs whose path is full of FreeSWITCH syntax,
    # on a live audio host (fsconf fetches a HoldUrl/AnnounceUrl before playing
    # it, since it may be TwiML).
    with AudioServer() as audio:
        odd = audio.url(f"/{MARK}/${{uuid_kill}}|{{a=b}}'\"@+^(x)")
        held = participant.update(hold=True, hold_url=odd, hold_method="GET")
        assert held.hold is True
        unheld = participant.update(hold=False)
        assert unheld.hold is False
        conference.update(announce_url=odd)
        participant.update(announce_url=odd, announce_method="GET")
        host = audio.url("")
    assert len(stack.switch.commands) > sent_before
    text = switch_text(stack)
    # Sent percent-encoded (hold media and both announcements), never raw.
    encoded = f"http_cache://{host}/{MARK}/%24%7Buuid_kill%7D%7C%7Ba=b%7D%27%22@+%5E(x)"
    assert text.count(encoded) >= 3, [line for line in text.splitlines() if MARK in line]
    assert_nothing_raw(text.replace(encoded, ""))
    print(
        f"\ninjection REST updates: {len(answers) + 3} refused with 400 ({sorted(set(answers))}), "
        f"4 odd-but-valid URLs sent percent-encoded; "
        f"{len(stack.switch.commands) - sent_before} switch commands scanned"
    )


def test_rest_participant_create_and_paths(stack: Stack, live: Live) -> None:
    sent_before = len(stack.switch.commands)
    participants = live.client.conferences(live.conference_sid).participants
    cases: list[tuple[dict[str, Any], int]] = [
        ({"from_": f"+1555\r\n{KICK}", "to": "+15550100"}, 21212),
        ({"from_": "+15551230001", "to": f"sip:{MARK}@x\n{KICK}"}, 21211),
        ({"from_": f" {MARK}", "to": "+15550100"}, 21212),
        ({"from_": "+15551230001", "to": ""}, 21201),
        ({"from_": "+15551230001", "to": "+15550100", "label": f"{MARK}\r\n{KICK}"}, 20001),
        ({"from_": "+15551230001", "to": "+15550100", "label": MARK * 20}, 20001),
        (
            {"from_": "+15551230001", "to": "+15550100", "status_callback": f"http://x/{MARK} y"},
            21205,
        ),
        ({"from_": "+15551230001", "to": "+15550100", "wait_url": f"${{{MARK}}}"}, 21205),
        (
            {
                "from_": "+15551230001",
                "to": "+15550100",
                "conference_status_callback": f"{{{MARK}}}",
            },
            21205,
        ),
        ({"from_": "+15551230001", "to": "+15550100", "timeout": f"5{KICK}"}, 21208),
        # Well-formed requests whose addresses carry FreeSWITCH syntax: only
        # +digits, sip:user@host and client:name may be dialled.
        ({"from_": "+15551230001", "to": f"sip:{MARK}@h;x={{y}}|z"}, 21211),
        ({"from_": "+15551230001", "to": f"user/{MARK}${{x}}", "label": f"{MARK}'{KICK}'"}, 21211),
        ({"from_": f"+1555{MARK}@{{a=b}}|${{x}}'", "to": "+15550100"}, 21212),
        ({"from_": f"client:{MARK} {KICK}", "to": "+15550100"}, 21212),
    ]
    codes = []
    for kwargs, code in cases:
        error = refused(lambda kwargs=kwargs: participants.create(**kwargs))
        assert error.code == code, (kwargs, error)
        codes.append(code)
    # A friendly name in the path (create by name) with control characters.
    host, port = stack.app.http_address
    base = f"http://{host}:{port}/2010-04-01/Accounts/{stack.account_sid}"
    auth = (stack.account_sid, stack.auth_token)
    for segment in (f"{MARK}\r\n{KICK}", f"{MARK}\x00", MARK * 20):
        response = requests.post(
            f"{base}/Conferences/{quote(segment, safe='')}/Participants.json",
            data={"From": "+15551230001", "To": "+15550100"},
            auth=auth,
            timeout=5,
        )
        assert response.status_code == 400 and response.json()["code"] == 20001, response.text
        codes.append(20001)
    # Participants and conferences named by hostile paths are simply not found.
    for name in (f"{MARK}' OR '1'='1", f"${{{MARK}}}", f"{MARK}|{KICK}", "%"):
        path = f"{base}/Conferences/{live.conference_sid}/Participants/{quote(name, safe='')}.json"
        assert requests.get(path, auth=auth, timeout=5).status_code == 404
        path = f"{base}/Conferences/{quote(name, safe='')}.json"
        assert requests.get(path, auth=auth, timeout=5).status_code == 404
    # A list filter is a value, not SQL.
    assert live.client.conferences.list(friendly_name=f"x' OR '1'='1' --{MARK}") == []
    assert len(stack.switch.commands) == sent_before
    # A valid dial-out whose Label and callback URLs are full of FreeSWITCH
    # syntax: whatever happens to the call, none of it reaches a command.
    odd = f"http://127.0.0.1:9/{MARK}/${{x}}|{{y}}'"
    try:
        created = participants.create(
            from_="+15551230001",
            to="+15550100",
            label=f"{MARK} {KICK} ${{uuid_kill}}|{{a=b}}",
            status_callback=odd,
            conference_status_callback=odd,
            wait_url=odd,
        )
        dialled = f"201 {created.call_sid}"
    except TwilioRestException as error:  # dial-out not possible here: still Twilio's body
        assert error.status == 400 and error.code == 21220, error
        dialled = "400 21220"
    text = switch_text(stack, since=sent_before)
    assert_nothing_raw(
        text.replace(f"http_cache://http://127.0.0.1:9/{MARK}/%24%7Bx%7D%7C%7By%7D%27", "")
    )
    print(
        f"\ninjection REST create/paths: {len(codes)} refused with 400 ({sorted(set(codes))}), "
        f"8 hostile paths 404, odd-but-valid dial-out: {dialled}, nothing raw sent"
    )


def test_twiml_labels_and_caller_identity_never_reach_freeswitch(stack: Stack) -> None:
    labels = [
        f"{MARK} {KICK}",
        f"{MARK}${{uuid_kill ${{uuid}}}}",
        f"{MARK}@default+flags{{moderator}}|x",
        f"{MARK}'\"{{a=b}}",
    ]
    room = f"{MARK} {KICK} {{origination_uuid=x}}|${{y}}"
    sent_before = len(stack.switch.commands)
    calls = []
    for index, label in enumerate(labels):
        body = (
            f"<Response><Dial><Conference participantLabel={_attr(label)}>{_text(room)}"
            "</Conference></Dial></Response>"
        )
        calls.append(
            place(
                stack,
                label,
                body,
                caller=f"+1555{index}{MARK}${{x}}|{{a=b}}@h",
                name=f"Eve {index}' {KICK} ${{uuid_kill}}",
            )
        )
    # The destination (To) is the caller's side too.
    path = f"/inject-to/{uuid_module.uuid4().hex}"
    stack.customer.documents[path] = (
        f"<Response><Dial><Conference>{_text(room)}</Conference></Dial></Response>"
    )
    destination_uuid = stack.switch.place_call(
        stack.app.outbound.address,
        caller_id_number="+15551239999",
        caller_id_name="Mallory",
        destination=f"{MARK}${{x}}|{{y}} {KICK}",
        variables={"fsconf_voice_url": stack.customer.url(path)},
        uuid=str(uuid_module.uuid4()),
    )
    calls.append(
        watch(
            stack,
            Placed(
                "destination",
                path,
                "CA" + destination_uuid.replace("-", ""),
                destination_uuid,
                calls[0].started,
            ),
        )
    )
    settle(stack, calls)
    assert all(call.seated for call in calls), [(c.key, c.apps) for c in calls]
    # The labels are stored as given, and a participant can be fetched by it.
    client = rest(stack)
    with stack.app.sessions() as session:
        from fsconf.store import models

        rows = session.query(models.Participant).filter(
            models.Participant.call_sid.in_([c.call_sid for c in calls])
        )
        stored = {row.call_sid: (row.label, row.conference_sid) for row in rows}
    conference_sid = stored[calls[0].call_sid][1]
    assert {label for label, _ in stored.values()} == {*labels, None}
    fetched = client.conferences(conference_sid).participants(quote(labels[0], safe="")).fetch()
    assert fetched.label == labels[0]
    hang_up(stack, calls)
    text = switch_text(stack, since=sent_before)
    assert_nothing_raw(text)
    assert f"conference {conference_sid}" in text or conference_sid in text
    print(
        f"\ninjection TwiML/caller: {len(calls)} calls seated with hostile labels, room, "
        "From, caller name and To; none reached FreeSWITCH"
    )


def _attr(value: str) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(value)


def _text(value: str) -> str:
    from xml.sax.saxutils import escape

    return escape(value)
