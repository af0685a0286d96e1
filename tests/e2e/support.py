"""Shared helpers for the end-to-end scenarios (spec examples, callbacks, attributes).

Everything goes through :func:`fsconf.demo.running_stack`: the FakeSwitch speaking
real ESL, the whole ``fsconf serve`` pipeline, and a customer application that
serves TwiML and records every request. TwiML is written with the ``twilio``
helper library's ``VoiceResponse``, as an application would write it.

Synchronisation is always on something observable (a callback arriving, a
command reaching the switch), never on time.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from fsconf.demo import CustomerApp, Received, Stack, running_stack
from fsconf.store import models

ALL_EVENTS = "start end join leave mute hold modify speaker announcement"

COMMON = [
    "AccountSid",
    "ConferenceSid",
    "FriendlyName",
    "SequenceNumber",
    "StatusCallbackEvent",
    "Timestamp",
]
PARTICIPANT = [
    "CallSid",
    "Coaching",
    "EndConferenceOnExit",
    "Hold",
    "Muted",
    "StartConferenceOnEnter",
]
LEAVE = ["ParticipantCallStatus", "ReasonParticipantLeft"]
END = ["Reason", "ReasonConferenceEnded"]
ENDING = ["CallSidEndingConference"]

RFC2822 = r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$"


@pytest.fixture
def stack(db_url: str) -> Iterator[Stack]:
    with running_stack(db_url) as running:
        yield running


# --- TwiML -----------------------------------------------------------------------------


def twiml(
    room: str,
    *,
    dial: dict[str, Any] | None = None,
    after: str | None = None,
    events_url: str | None = None,
    events: str | None = ALL_EVENTS,
    **attributes: Any,
) -> str:
    """``<Dial><Conference>room</Conference></Dial>`` (+ ``<Say>after</Say>``).

    With ``events_url`` the conference asks for ``events`` there (all nine by
    default), as the scenarios all listen to every callback.
    """
    response = VoiceResponse()
    dial_verb = response.dial(**(dial or {}))
    if events_url is not None:
        attributes.setdefault("status_callback", events_url)
        if events is not None:
            attributes.setdefault("status_callback_event", events)
    dial_verb.conference(room, **attributes)
    if after is not None:
        response.say(after)
    return str(response)


def document(*verbs: Callable[[VoiceResponse], object]) -> str:
    response = VoiceResponse()
    for verb in verbs:
        verb(response)
    return str(response)


# --- callbacks ----------------------------------------------------------------------------


def named(received: list[Received], event: str) -> list[Received]:
    return [r for r in received if r.get("StatusCallbackEvent") == event]


def has(event: str, count: int = 1, path: str = "/events") -> Callable[[list[Received]], bool]:
    return lambda received: (
        len([r for r in named(received, event) if r.path == path]) >= count
    )


def requested(path: str, count: int = 1) -> Callable[[list[Received]], bool]:
    return lambda received: len([r for r in received if r.path == path]) >= count


def names(received: Received) -> list[str]:
    return sorted(name for name, _ in received.params)


def first(customer: CustomerApp, event: str, path: str = "/events") -> Received:
    found = named(customer.callbacks(path), event)
    seen = [r.get("StatusCallbackEvent") for r in customer.received]
    assert found, f"no {event} on {path}: {seen}"
    return found[0]


def conference_sid(customer: CustomerApp, path: str = "/events") -> str:
    sid = first(customer, "participant-join", path).get("ConferenceSid")
    assert sid is not None
    return sid


def wait(customer: CustomerApp, predicate: Callable[[list[Received]], bool], what: str) -> None:
    assert customer.wait_for(predicate), f"timed out waiting for {what}: " + ", ".join(
        f"{r.path}:{r.get('StatusCallbackEvent') or ''}" for r in customer.received
    )


# --- the switch's side -----------------------------------------------------------------


def uuid_of(call_sid: str) -> str:
    return str(uuid_module.UUID(call_sid[2:]))


def connection_of(stack: Stack, call_sid: str) -> str:
    """The FakeSwitch name of the call's outbound ESL connection (``call-N``)."""
    uuid = uuid_of(call_sid)
    channel = stack.switch.channels[uuid]
    stack.switch.wait_until(lambda: channel.connection is not None, timeout=5)
    assert channel.connection is not None
    return channel.connection.name


def apps(stack: Stack, connection: str | None = None) -> list[tuple[str, str]]:
    """(application, argument) of every ``sendmsg execute`` (on one connection)."""
    return [
        (str(c.command.headers.get("execute-app-name")), c.command.body or "")
        for c in stack.switch.commands
        if c.command.verb == "sendmsg"
        and (connection is None or c.connection == connection)
        and c.command.headers.get("execute-app-name")
    ]


def app_args(stack: Stack, connection: str, app: str) -> list[str]:
    return [arg for name, arg in apps(stack, connection) if name == app]


def api_lines(stack: Stack) -> list[str]:
    """Every ``api``/``bgapi`` command text the switch received, without the verb."""
    return [
        c.command.argument
        for c in stack.switch.commands
        if c.command.verb in ("api", "bgapi")
    ]


def wait_command(stack: Stack, predicate: Callable[[str], bool], timeout: float = 5.0) -> None:
    stack.switch.wait_until(lambda: any(predicate(line) for line in api_lines(stack)), timeout)


def wait_app(stack: Stack, connection: str, app: str, timeout: float = 5.0) -> None:
    stack.switch.wait_until(lambda: bool(app_args(stack, connection, app)), timeout)


def all_text(stack: Stack) -> str:
    """Every byte of every command fsconf sent to FreeSWITCH, as one text."""
    return "\n".join(
        "\n".join(
            [
                c.command.line,
                *(f"{k}: {v}" for k, v in c.command.headers.items()),
                c.command.body or "",
            ]
        )
        for c in stack.switch.commands
    )


# --- REST ---------------------------------------------------------------------------------


def rest(stack: Stack) -> Client:
    client = Client(stack.account_sid, stack.auth_token)
    host, port = stack.app.http_address
    client.api.base_url = f"http://{host}:{port}"
    return client


def alerts(stack: Stack) -> list[models.Alert]:
    with stack.app.sessions() as session:
        rows = session.query(models.Alert).all()
        session.expunge_all()
        return rows


def conference_row(stack: Stack, sid: str) -> models.Conference:
    with stack.app.sessions() as session:
        row = session.get(models.Conference, sid)
        assert row is not None
        session.expunge(row)
        return row


class AudioServer:
    """A static audio host on loopback (the customer app only serves TwiML)."""

    def __init__(self) -> None:
        from gevent.pywsgi import WSGIServer

        self.requests: list[tuple[str, str]] = []
        self._server = WSGIServer(("127.0.0.1", 0), self._wsgi, log=None)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")))
        start_response("200 OK", [("Content-Type", "audio/mpeg")])
        return [b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00" * 64]

    def url(self, path: str) -> str:
        host, port = self._server.address[:2]
        return f"http://{host}:{port}{path}"

    def __enter__(self) -> AudioServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(timeout=1)
