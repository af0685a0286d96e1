"""Dial-out end to end: ``participants.create`` -> originate -> answer -> join.

Everything is real and on loopback (FakeSwitch, ``Fsconf``, the customer
application); the twilio helper library drives the REST API. The callee's
behaviour is the FakeSwitch dialplan of its number, as FreeSWITCH's own
dialplan would be behind the default ``FSCONF_DIAL_STRING``
(``loopback/{to}/default``).
"""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from fsconf.demo import Received, running_stack
from fsconf.errors import EslArgumentError
from fsconf.esl import commands
from fsconf.store import models
from fsconf.store.ids import uuid_from_call_sid
from fsconf.testing.dialplan import Silent

UUID = "0f0e0d0c-0b0a-4909-8807-060504030201"
CALLEE = "+15550002222"
CALLER = "+15550001111"
ALL_CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


@pytest.fixture
def stack(db_url):
    with running_stack(db_url) as running:
        yield running


def client_for(stack) -> Client:
    client = Client(stack.account_sid, stack.auth_token)
    host, port = stack.app.http_address
    client.api.base_url = f"http://{host}:{port}"
    return client


def call_events(received: list[Received], call_sid: str) -> list[Received]:
    return [r for r in received if r.path == "/call-status" and r.get("CallSid") == call_sid]


def statuses(received: list[Received], call_sid: str) -> list[str]:
    return [r.get("CallStatus") for r in call_events(received, call_sid)]


def conference_event(received: list[Received], name: str, call_sid: str) -> list[Received]:
    return [
        r
        for r in received
        if r.path == "/events"
        and r.get("StatusCallbackEvent") == name
        and r.get("CallSid") == call_sid
    ]


def originates(stack) -> list[str]:
    return [
        c.command.line
        for c in stack.switch.commands
        if c.command.verb == "bgapi" and " originate " in f" {c.command.line} "
    ]


def dial(stack, room: str = "Room", **extra):
    customer = stack.customer
    return (
        client_for(stack)
        .conferences(room)
        .participants.create(
            from_=CALLER,
            to=CALLEE,
            status_callback=customer.url("/call-status"),
            status_callback_event=ALL_CALL_EVENTS,
            conference_status_callback=customer.url("/events"),
            conference_status_callback_event=["join", "leave", "end"],
            **extra,
        )
    )


# --- the command builder -------------------------------------------------------------------


def test_originate_socket_cmd_golden():
    line = commands.originate_socket_cmd(
        origination_uuid=UUID,
        endpoint="loopback/+15550002222/default",
        host="127.0.0.1",
        port=8084,
        variables={"fsconf_dialout": "CA" + "1" * 32, "origination_caller_id_number": CALLER},
        timeout=30,
    )
    assert line == (
        f"originate {{origination_uuid={UUID},fsconf_dialout=CA{'1' * 32},"
        f"origination_caller_id_number={CALLER},originate_timeout=30}}"
        "loopback/+15550002222/default '&socket(127.0.0.1:8084 async full)'"
    )


@pytest.mark.parametrize(
    "host, port",
    [
        ("127.0.0.1 x", 8084),
        ("h'ost", 8084),
        ("h)ost", 8084),
        ("${x}", 8084),
        ("h", 0),
        ("h", True),
    ],
)
def test_socket_app_arg_refuses_what_would_break_the_quotes(host, port):
    with pytest.raises(EslArgumentError):
        commands.originate_socket_cmd(
            origination_uuid=UUID, endpoint="loopback/1/default", host=host, port=port
        )


def test_originate_socket_cmd_refuses_user_text_in_the_endpoint():
    for endpoint in ("loopback/+1 555/default", "loopback/'x'/default", "loopback/${x}/d"):
        with pytest.raises(EslArgumentError):
            commands.originate_socket_cmd(
                origination_uuid=UUID, endpoint=endpoint, host="127.0.0.1", port=8084
            )


# --- end to end ------------------------------------------------------------------------------


def test_create_dials_and_the_answered_leg_joins_with_its_label(stack):
    stack.switch.dialplan[CALLEE] = Silent()
    customer = stack.customer

    participant = dial(stack, label="agent", muted=True, start_conference_on_enter=False)

    assert participant.status == "queued"
    assert participant.label == "agent"
    call_sid = participant.call_sid
    assert customer.wait_for(lambda r: conference_event(r, "participant-join", call_sid))
    join = conference_event(customer.received, "participant-join", call_sid)[0]
    assert join.get("ParticipantLabel") == "agent"
    assert join.get("FriendlyName") == "Room"
    assert join.get("Muted") == "true" and join.signature_ok

    assert customer.wait_for(
        lambda r: statuses(r, call_sid)[:3] == ["initiated", "ringing", "in-progress"]
    )
    progress = call_events(customer.received, call_sid)
    assert [r.get("SequenceNumber") for r in progress] == ["0", "1", "2"]
    assert all(r.signature_ok for r in progress)
    first = progress[0]
    assert first.get("CallbackSource") == "call-progress-events"
    assert first.get("Direction") == "outbound-api"
    assert (first.get("From"), first.get("To")) == (CALLER, CALLEE)
    assert first.get("AccountSid") == stack.account_sid
    assert first.get("ApiVersion") == "2010-04-01"
    assert first.get("Timestamp").endswith("+0000")

    [line] = originates(stack)
    uuid = call_sid[2:]
    dashed = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
    host, port = stack.app.outbound.address
    assert line.startswith(f"bgapi originate {{origination_uuid={dashed},")
    assert f"fsconf_dialout={call_sid}" in line
    assert f"origination_caller_id_number={CALLER}" in line
    assert "originate_timeout=60" in line
    assert line.endswith(f"}}loopback/{CALLEE}/default '&socket({host}:{port} async full)'")
    assert "Room" not in line and "agent" not in line

    client = client_for(stack)
    conference_sid = join.get("ConferenceSid")
    fetched = client.conferences(conference_sid).participants("agent").fetch()
    assert fetched.call_sid == call_sid and fetched.status == "connected"
    assert fetched.muted is True
    with stack.app.sessions() as session:
        call = session.get(models.Call, call_sid)
        assert (call.direction, call.status) == ("outbound-api", "in-progress")
        assert (call.from_, call.to) == (CALLER, CALLEE)

    # Kicked, a participant Twilio dialled has nothing to go on with: it hangs up.
    client.conferences(conference_sid).participants(call_sid).delete()
    assert customer.wait_for(lambda r: "completed" in statuses(r, call_sid))
    completed = call_events(customer.received, call_sid)[-1]
    assert completed.get("SequenceNumber") == "3"
    assert completed.get("CallStatus") == "completed"
    assert completed.get("CallDuration").isdigit()
    assert dashed not in stack.switch.channels or stack.switch.channels[dashed].hungup
    with stack.app.sessions() as session:
        assert session.get(models.Call, call_sid).status == "completed"


def test_create_by_sid_joins_the_running_conference_and_starts_it(stack):
    stack.switch.dialplan[CALLEE] = Silent()
    customer = stack.customer
    customer.documents["/voice"] = (
        f'<Response><Dial><Conference statusCallback="{customer.url("/events")}" '
        'statusCallbackEvent="start join leave end" startConferenceOnEnter="false">'
        "Sales</Conference></Dial></Response>"
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    assert customer.wait_for(lambda r: conference_event(r, "participant-join", alice))
    conference_sid = conference_event(customer.received, "participant-join", alice)[0].get(
        "ConferenceSid"
    )

    participant = dial(stack, conference_sid)

    assert participant.conference_sid == conference_sid
    assert customer.wait_for(
        lambda r: [x for x in r if x.get("StatusCallbackEvent") == "conference-start"]
    )
    rows = client_for(stack).conferences(conference_sid).participants.list()
    assert sorted(p.call_sid for p in rows) == sorted([alice, participant.call_sid])


def test_create_by_sid_of_an_ended_conference_is_404_and_dials_nothing(stack):
    client = client_for(stack)
    stack.switch.dialplan[CALLEE] = Silent()
    first = dial(stack, "Old Room")
    assert stack.customer.wait_for(lambda r: "in-progress" in statuses(r, first.call_sid))
    client.conferences(first.conference_sid).update(status="completed")
    assert stack.customer.wait_for(lambda r: "completed" in statuses(r, first.call_sid))

    with pytest.raises(TwilioRestException) as raised:
        dial(stack, first.conference_sid)
    assert raised.value.status == 404
    assert len(originates(stack)) == 1


@pytest.mark.parametrize("ring", ["ring_ready", "pre_answer"])
def test_ringing_is_reported_when_the_callee_rings_not_when_the_job_is_accepted(stack, ring):
    """A 180 (ring_ready: CHANNEL_PROGRESS) or a 183 (early media:
    CHANNEL_PROGRESS_MEDIA) on our leg is Twilio's "ringing"; accepting the
    originate job is only "initiated"."""
    stack.switch.dialplan[CALLEE] = [("park", "")]  # silent until the test rings it
    customer = stack.customer

    participant = dial(stack, "Ringing", label="callee")

    call_sid = participant.call_sid
    assert customer.wait_for(lambda r: "initiated" in statuses(r, call_sid))
    # Job accepted, the callee silent: nothing more to say yet.
    assert not customer.wait_for(lambda r: len(statuses(r, call_sid)) > 1, timeout=0.5)
    conference = client_for(stack).conferences(participant.conference_sid)
    assert conference.participants("callee").fetch().status == "queued"

    callee = stack.switch.channels[uuid_from_call_sid(call_sid)].other
    getattr(callee, ring)()  # the callee's phone rings (or plays early media)

    assert customer.wait_for(lambda r: "ringing" in statuses(r, call_sid))
    assert statuses(customer.received, call_sid) == ["initiated", "ringing"]
    assert conference.participants("callee").fetch().status == "ringing"

    callee.answer()

    assert customer.wait_for(lambda r: conference_event(r, "participant-join", call_sid))
    assert customer.wait_for(lambda r: "in-progress" in statuses(r, call_sid))
    assert statuses(customer.received, call_sid)[:3] == ["initiated", "ringing", "in-progress"]
    sequence = [r.get("SequenceNumber") for r in call_events(customer.received, call_sid)]
    assert sequence[:3] == ["0", "1", "2"]
    assert conference.participants("callee").fetch().status == "connected"


@pytest.mark.parametrize(
    "plan, timeout, status, rang",
    [
        # Refused before it rang: Twilio reports no "ringing".
        ([("hangup", "USER_BUSY")], None, "busy", False),
        ([("hangup", "CALL_REJECTED")], None, "failed", False),
        # The ring and the originate's end arrive back to back: on PostgreSQL the end
        # took the leg first and the ring was lost, until a leg kept that it rang.
        ([("ring_ready", ""), ("hangup", "NO_ANSWER")], None, "no-answer", True),
        ([("ring_ready", ""), ("park", "")], 5, "no-answer", True),  # originate_timeout
    ],
)
def test_a_leg_that_is_not_answered_ends_failed_with_twilios_status(
    stack, plan, timeout, status, rang
):
    stack.switch.dialplan[CALLEE] = plan
    customer = stack.customer
    extra = {"timeout": timeout} if timeout else {}

    participant = dial(stack, "Lonely", label="callee", **extra)

    call_sid = participant.call_sid
    assert participant.status == "queued"
    assert customer.wait_for(lambda r: status in statuses(r, call_sid), timeout=15)
    expected = ["initiated", "ringing", status] if rang else ["initiated", status]
    assert statuses(customer.received, call_sid) == expected
    final = call_events(customer.received, call_sid)[-1]
    assert final.get("CallDuration") == "0" and final.signature_ok
    assert not conference_event(customer.received, "participant-join", call_sid)
    if timeout:
        assert f"originate_timeout={timeout}" in originates(stack)[0]
    assert stack.app.wait_delivered(len(expected))
    with stack.app.sessions() as session:
        assert session.get(models.Call, call_sid).status == status
        row = session.query(models.Participant).filter_by(call_sid=call_sid).one()
        assert row.status == "failed"
        # Nobody ever joined the conference made for it: it is over, the name is free.
        conference = session.get(models.Conference, row.conference_sid)
        assert conference.status == "completed"
    # and a failed participant is no longer listed, as on Twilio
    assert client_for(stack).conferences(row.conference_sid).participants.list() == []


@pytest.mark.parametrize(
    "field, value, code",
    [
        ("to", "+1 555", 21211),
        ("to", "x\r\ny", 21211),
        ("to", "${x}", 21211),
        ("to", "'conference x kick all'", 21211),
        ("to", "sip:a b@example.com", 21211),
        ("to", "+1555)", 21211),
        ("from_", "+1 555", 21212),
        ("from_", "x\r\ny", 21212),
        ("from_", "${x}", 21212),
        ("from_", "'conference x kick all'", 21212),
        ("from_", "client:a,b=c", 21212),
    ],
)
def test_bad_from_or_to_is_400_and_nothing_reaches_freeswitch(stack, field, value, code):
    stack.switch.dialplan[CALLEE] = Silent()
    before = [c.command.line for c in stack.switch.commands]
    arguments = {"from_": CALLER, "to": CALLEE, field: value}

    with pytest.raises(TwilioRestException) as raised:
        client_for(stack).conferences("Room").participants.create(**arguments)

    assert raised.value.status == 400
    assert raised.value.code == code
    assert [c.command.line for c in stack.switch.commands] == before
    with stack.app.sessions() as session:
        assert session.query(models.Call).count() == 0
        assert session.query(models.Conference).count() == 0


@pytest.mark.parametrize("to", ["+15550002222", "sip:alice@pbx.example.com:5060", "client:alice_1"])
def test_the_three_address_forms_are_dialled_through_the_dial_string(stack, to):
    stack.switch.dialplan[to] = Silent()
    participant = (
        client_for(stack).conferences("Forms").participants.create(from_="client:agent", to=to)
    )
    assert participant.status == "queued"
    stack.switch.wait_until(lambda: bool(originates(stack)))
    assert f"}}loopback/{to}/default '&socket(" in originates(stack)[0]


def test_a_duplicate_label_is_refused_before_dialling(stack):
    stack.switch.dialplan[CALLEE] = Silent()
    first = dial(stack, "Labels", label="agent")
    assert stack.customer.wait_for(lambda r: "in-progress" in statuses(r, first.call_sid))
    with pytest.raises(TwilioRestException) as raised:
        dial(stack, "Labels", label="agent")
    assert raised.value.code == 16025 and raised.value.status == 400
    assert len(originates(stack)) == 1


# --- the FakeSwitch's originate, as FreeSWITCH's (see NOTES_FROM_FAKESWITCH.md) -----------


def test_fakeswitch_originate_reads_a_quoted_target_as_one_word():
    from fsconf.testing import FakeSwitch

    switch = FakeSwitch().start()
    try:
        switch.dialplan["2000"] = Silent()
        reply = switch.api(
            f"originate {{origination_uuid={UUID}}}loopback/2000/default '&sleep(100000 ms)'"
        )
        assert reply == f"+OK {UUID}\n"
        channel = switch.channels[UUID]
        switch.wait_until(lambda: channel.variables.get("current_application") == "sleep")
    finally:
        switch.stop()


def test_fakeswitch_originate_answers_the_callees_cause_at_once():
    from fsconf.testing import FakeSwitch

    switch = FakeSwitch().start()
    try:
        switch.dialplan["2001"] = [("hangup", "USER_BUSY")]
        # originate_timeout=600: only the B-leg's hangup can end this quickly
        reply = switch.api(
            f"originate {{origination_uuid={UUID},originate_timeout=600}}"
            "loopback/2001/default &park"
        )
        assert reply == "-ERR USER_BUSY\n"
    finally:
        switch.stop()
