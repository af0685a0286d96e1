"""The twilio helper library against the whole real stack (no fake control).

``tests/api/test_twilio_library.py`` checks the REST layer over a fake
control; here every call goes through ``LiveControl`` to the engine and the
FakeSwitch, and the assertions are on what FreeSWITCH was told and what the
application received.
"""

from __future__ import annotations

import pytest
from twilio.rest import Client

from fsconf.demo import Received, running_stack
from fsconf.store import models
from fsconf.testing.dialplan import Silent

AGENT = "+15550009999"


@pytest.fixture
def stack(db_url):
    with running_stack(db_url) as running:
        yield running


def client_for(stack) -> Client:
    client = Client(stack.account_sid, stack.auth_token)
    host, port = stack.app.http_address
    client.api.base_url = f"http://{host}:{port}"
    return client


def named(received: list[Received], event: str, call_sid: str | None = None) -> list[Received]:
    return [
        r
        for r in received
        if r.get("StatusCallbackEvent") == event
        and (call_sid is None or r.get("CallSid") == call_sid)
    ]


def api_lines(stack) -> list[str]:
    return [c.command.line for c in stack.switch.commands if c.command.verb == "api"]


def test_the_twilio_library_drives_a_live_conference(stack):
    customer = stack.customer
    events = customer.url("/events")
    customer.documents["/voice"] = (
        f'<Response><Dial action="{customer.url("/after")}">'
        f'<Conference statusCallback="{events}" record="record-from-start" '
        'statusCallbackEvent="start end join leave mute hold">Acceptance</Conference>'
        "</Dial></Response>"
    )
    customer.documents["/after"] = "<Response><Hangup/></Response>"
    stack.switch.dialplan[AGENT] = Silent()
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    assert customer.wait_for(lambda r: named(r, "conference-start"))
    client = client_for(stack)

    # conferences.list
    [conference] = client.conferences.list(status="in-progress")
    assert conference.friendly_name == "Acceptance"
    sid = conference.sid

    # participants.list
    listed = client.conferences(sid).participants.list()
    assert sorted(p.call_sid for p in listed) == sorted([alice, bob])
    member = {
        p.call_sid: stack.app.conferences.rooms[sid].state.find(p.call_sid).member_id
        for p in listed
    }

    # participants(...).update(muted, hold, hold_url): FreeSWITCH is told, quietly
    hold_url = customer.url("/hold.wav")
    updated = (
        client.conferences(sid).participants(alice).update(muted=True, hold=True, hold_url=hold_url)
    )
    assert updated.muted is True and updated.hold is True
    assert customer.wait_for(lambda r: named(r, "participant-hold", alice))
    lines = api_lines(stack)
    assert f"api conference {sid} mute {member[alice]} quiet" in lines
    holds = [
        line for line in lines if line.startswith(f"api conference {sid} hold {member[alice]} ")
    ]
    assert holds and "hold.wav" in holds[0]

    # participants.create (dial-out) and fetch by label
    created = client.conferences(sid).participants.create(
        from_="+15550001111", to=AGENT, label="agent"
    )
    assert created.status == "queued"
    assert customer.wait_for(lambda r: named(r, "participant-join", created.call_sid))
    fetched = client.conferences(sid).participants("agent").fetch()
    assert fetched.call_sid == created.call_sid and fetched.status == "connected"

    # participants(sid).delete(): the kicked call goes on to its Dial action
    client.conferences(sid).participants(bob).delete()
    assert customer.wait_for(
        lambda r: [x for x in r if x.path == "/after" and x.get("CallSid") == bob]
    )
    action = next(x for x in customer.received if x.path == "/after" and x.get("CallSid") == bob)
    assert action.get("DialCallStatus") == "completed" and action.signature_ok
    assert action.get("ConferenceSid") in (None, sid)
    # The action request and the status callback travel independently (as on
    # Twilio): wait for the callback rather than assume it came first.
    assert customer.wait_for(lambda r: named(r, "participant-leave", bob))
    left = named(customer.received, "participant-leave", bob)[0]
    assert left.get("ReasonParticipantLeft") == "participant_updated_via_api"

    # conferences(sid).update(status="completed"), then recordings.list
    client.conferences(sid).update(status="completed")
    assert customer.wait_for(lambda r: named(r, "conference-end"))
    assert client.conferences(sid).fetch().status == "completed"

    def recorded() -> bool:
        with stack.app.sessions() as session:
            return session.query(models.Recording).filter_by(status="completed").count() == 1

    stack.switch.wait_until(recorded, timeout=10)
    [recording] = client.conferences(sid).recordings.list()
    assert recording.conference_sid == sid
    assert recording.status == "completed"
    assert any(line.startswith(f"api conference {sid} record ") for line in api_lines(stack))
