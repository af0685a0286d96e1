"""End to end: FakeSwitch -> fsconf serve's whole pipeline -> a Twilio application.

Every part is real and on loopback: the FakeSwitch speaks ESL (inbound and
outbound) like the recorded FreeSWITCH, fsconf is the same ``Fsconf`` object
``fsconf serve`` runs (engine, SQL, outbox, signed webhooks, REST API), and the
customer application serves TwiML and receives callbacks. Runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import io

import pytest
import requests
from twilio.rest import Client

from fsconf.demo import CustomerApp, Received, run_demo, running_stack
from fsconf.store import models

JOIN_PARAMS = [
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


def conference(room: str, events: str, **attributes: str) -> str:
    extra = " ".join(f'{name}="{value}"' for name, value in attributes.items())
    return (
        f'<Response><Dial><Conference statusCallback="{events}" '
        f'statusCallbackEvent="start end join leave mute hold" {extra}>{room}'
        "</Conference></Dial></Response>"
    )


def events_named(received: list[Received], name: str) -> list[Received]:
    return [r for r in received if r.get("StatusCallbackEvent") == name]


def has(name: str, count: int = 1):
    return lambda received: len(events_named(received, name)) >= count


@pytest.fixture
def stack(db_url):
    with running_stack(db_url) as running:
        yield running


def test_demo_exits_0_and_prints_every_callback():
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    for event in ("participant-join", "conference-start", "participant-leave", "conference-end"):
        assert f"callback {event}" in text
    assert "BAD SIGNATURE" not in text
    assert "done: 8 callbacks, all signed: True" in text


def test_two_callers_start_the_conference_and_the_last_one_ends_it(stack):
    customer: CustomerApp = stack.customer
    customer.documents["/voice"] = conference("Room 1234", customer.url("/events"))
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    assert customer.wait_for(has("participant-join"))
    assert not events_named(customer.received, "conference-start"), "one caller waits"
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    assert customer.wait_for(has("conference-start"))
    stack.hangup(alice)
    stack.hangup(bob)
    assert customer.wait_for(has("conference-end"))

    callbacks = customer.callbacks()
    assert all(r.signature_ok for r in callbacks)
    assert [int(r.get("SequenceNumber")) for r in callbacks] == list(range(1, len(callbacks) + 1))
    join = events_named(callbacks, "participant-join")[0]
    assert sorted(name for name, _ in join.params) == JOIN_PARAMS
    assert join.get("CallSid") == alice and join.get("FriendlyName") == "Room 1234"
    assert join.get("AccountSid") == stack.account_sid
    assert join.get("Timestamp").endswith("+0000")
    end = events_named(callbacks, "conference-end")[0]
    assert end.get("ReasonConferenceEnded") == "last-participant-left"
    assert end.get("CallSidEndingConference") == bob

    assert stack.app.wait_delivered(len(callbacks))
    with stack.app.sessions() as session:
        row = session.get(models.Conference, join.get("ConferenceSid"))
        assert row.status == "completed" and row.friendly_name == "Room 1234"
        assert row.sequence_number == len(callbacks)
        statuses = {p.call_sid: p.status for p in session.query(models.Participant)}
        assert statuses == {alice: "complete", bob: "complete"}
        delivered = session.query(models.Callback).filter_by(status="delivered").count()
        assert delivered == len(callbacks)


def test_the_join_is_one_multiset_and_the_conference_app(stack):
    """DESIGN's hot path: no per-variable `set`, the room is our ConferenceSid."""
    customer = stack.customer
    customer.documents["/voice"] = conference(
        "Hot Path", customer.url("/events"), startConferenceOnEnter="true"
    )
    stack.call("/voice", caller="+15551230001", name="A")
    stack.call("/voice", caller="+15551230002", name="B")
    assert customer.wait_for(has("conference-start"))
    apps = [
        (c.command.headers.get("execute-app-name"), c.command.body)
        for c in stack.switch.commands
        if c.command.verb == "sendmsg" and c.connection.startswith("call")
    ]
    conference_sid = events_named(customer.callbacks(), "conference-start")[0].get("ConferenceSid")
    joins = [body for app, body in apps if app == "conference"]
    assert joins and all(body.startswith(f"{conference_sid}@fsconf") for body in joins)
    assert "Hot Path" not in " ".join(str(body) for _, body in apps)
    assert not [app for app, _ in apps if app == "set"]
    multisets = [body for app, body in apps if app == "multiset"]
    assert any("hangup_after_conference=false" in body for body in multisets)
    assert any(f"confvar_conference_sid={conference_sid}" in body for body in multisets)


def test_rest_api_mutes_holds_and_kicks_through_freeswitch(stack):
    customer = stack.customer
    customer.documents["/voice"] = conference("Ops Room", customer.url("/events"))
    customer.documents["/after"] = "<Response><Hangup/></Response>"
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    assert customer.wait_for(has("conference-start"))
    conference_sid = events_named(customer.callbacks(), "conference-start")[0].get("ConferenceSid")

    client = Client(stack.account_sid, stack.auth_token)
    host, port = stack.app.http_address
    client.api.base_url = f"http://{host}:{port}"
    live = client.conferences.list(status="in-progress")
    assert [c.sid for c in live] == [conference_sid]
    assert live[0].friendly_name == "Ops Room"

    updated = client.conferences(conference_sid).participants(alice).update(muted=True)
    assert updated.muted is True
    assert customer.wait_for(has("participant-mute"))
    sent = [c.command.line for c in stack.switch.commands if c.command.verb == "api"]
    assert any(
        line.startswith(f"api conference {conference_sid} mute ") and line.endswith(" quiet")
        for line in sent
    )

    client.conferences(conference_sid).participants(bob).delete()
    assert customer.wait_for(has("participant-leave"))
    left = events_named(customer.callbacks(), "participant-leave")[0]
    assert left.get("CallSid") == bob
    assert left.get("ReasonParticipantLeft") == "participant_updated_via_api"

    client.conferences(conference_sid).update(status="completed")
    assert customer.wait_for(has("conference-end"))
    end = events_named(customer.callbacks(), "conference-end")[0]
    assert end.get("ReasonConferenceEnded") == "conference-ended-via-api"
    assert client.conferences(conference_sid).fetch().status == "completed"


def test_rest_api_refuses_another_account_and_bad_auth(stack):
    host, port = stack.app.http_address
    base = f"http://{host}:{port}/2010-04-01/Accounts"
    other = "AC" + "0" * 32
    response = requests.get(
        f"{base}/{other}/Conferences.json", auth=(stack.account_sid, stack.auth_token), timeout=5
    )
    assert response.status_code == 404
    response = requests.get(
        f"{base}/{stack.account_sid}/Conferences.json", auth=(stack.account_sid, "wrong"), timeout=5
    )
    assert response.status_code == 401
    assert response.json()["code"] == 20003


def test_metrics_expose_live_state_and_no_secrets(stack):
    customer = stack.customer
    customer.documents["/voice"] = conference(
        "Metrics Room", customer.url("/events"), startConferenceOnEnter="false"
    )
    stack.call("/voice", caller="+15551230001", name="Alice")
    assert customer.wait_for(has("participant-join"))
    host, port = stack.app.http_address
    text = requests.get(f"http://{host}:{port}/metrics", timeout=5).text
    assert "fsconf_conferences_active 1.0" in text
    assert "fsconf_participants_parked 1.0" in text
    assert 'fsconf_esl_connected{node="' in text
    assert "fsconf_esl_events_total" in text
    assert "fsconf_callback_latency_seconds_count" in text
    assert stack.auth_token not in text and stack.switch.password not in text


def test_serve_checkpoints_sqlite_itself_never_inside_a_commit(stack, db_url):
    """fsconf.store.checkpoint: the app's own connections never checkpoint (a
    checkpoint inside a commit stalls every greenlet); its checkpointer does."""
    app = stack.app
    if not db_url.startswith("sqlite"):
        assert app.checkpointer is None  # PostgreSQL checkpoints itself
        return
    assert app.checkpointer is not None
    with app.db.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    result = app.checkpointer.checkpoint()
    assert not result.busy and result.behind == 0
