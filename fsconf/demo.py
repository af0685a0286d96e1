"""``fsconf demo``: a whole moderated conference, with no FreeSWITCH.

Theory of operation
-------------------
Three real parts run in this one process, talking over loopback sockets:

* the FakeSwitch (``fsconf.testing``), which speaks real ESL and behaves like
  mod_conference as recorded from a real FreeSWITCH;
* fsconf itself (:class:`~fsconf.service.app.Fsconf`, exactly what ``fsconf
  serve`` runs) with a throwaway SQLite database;
* :class:`CustomerApp`, a tiny Twilio application: it serves the spec's
  "moderated conference" TwiML and receives the status callbacks, checking
  each ``X-Twilio-Signature`` the way Twilio's helper library does.

The script places two waiting callers and a moderator, then hangs the
moderator up, printing each step and each callback as it arrives. The same
classes drive the end-to-end tests.
"""

from __future__ import annotations

import secrets
import tempfile
import uuid as uuid_module
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl

import gevent
import gevent.event
from gevent.pywsgi import WSGIServer

from fsconf.conference.model import EngineConfig
from fsconf.config import EslNode, Settings
from fsconf.service.app import Fsconf, Tuning
from fsconf.testing import FakeSwitch
from fsconf.webhooks.signing import compute_signature


@dataclass(frozen=True)
class Received:
    """One HTTP request the customer application received."""

    path: str
    method: str
    params: tuple[tuple[str, str], ...]
    signature_ok: bool

    def get(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


class CustomerApp:
    """A Twilio application on loopback: TwiML by path, callbacks recorded."""

    def __init__(self, auth_token: str) -> None:
        self.auth_token = auth_token
        self.documents: dict[str, str] = {}
        self.received: list[Received] = []
        self._arrived = gevent.event.Event()
        self._server = WSGIServer(("127.0.0.1", 0), self._wsgi, log=None)
        self.on_request: Callable[[Received], None] | None = None

    def start(self) -> CustomerApp:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(timeout=1)

    def url(self, path: str) -> str:
        host, port = self._server.address[:2]
        return f"http://{host}:{port}{path}"

    def callbacks(self, path: str = "/events") -> list[Received]:
        return [r for r in self.received if r.path == path]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(self.received)`` holds (re-checked per request)."""
        with gevent.Timeout(timeout, False):
            while not predicate(self.received):
                self._arrived.wait()
                self._arrived.clear()
            return True
        return predicate(self.received)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode() if length else ""
        query = environ.get("QUERY_STRING", "")
        params = tuple(parse_qsl(body if method == "POST" else query, keep_blank_values=True))
        url = self.url(path) + (f"?{query}" if method == "GET" and query else "")
        expected = compute_signature(self.auth_token, url, params if method == "POST" else None)
        received = Received(
            path, method, params, environ.get("HTTP_X_TWILIO_SIGNATURE") == expected
        )
        self.received.append(received)
        self._arrived.set()
        if self.on_request is not None:
            self.on_request(received)
        document = self.documents.get(path)
        if document is None:
            start_response("204 No Content", [])
            return [b""]
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [document.encode()]


@dataclass
class Stack:
    """FakeSwitch + fsconf + the customer application, all on loopback."""

    switch: FakeSwitch
    app: Fsconf
    customer: CustomerApp
    account_sid: str
    auth_token: str

    def call(self, voice_path: str, *, caller: str, name: str) -> str:
        """An inbound call whose dialplan hands it to fsconf; returns the CallSid."""
        uuid = self.switch.place_call(
            self.app.outbound.address,
            caller_id_number=caller,
            caller_id_name=name,
            destination="+15550100",
            variables={"fsconf_voice_url": self.customer.url(voice_path)},
            uuid=str(uuid_module.uuid4()),
        )
        return "CA" + uuid.replace("-", "")

    def hangup(self, call_sid: str) -> None:
        uuid = str(uuid_module.UUID(call_sid[2:]))
        self.switch.hangup(uuid)


@contextmanager
def running_stack(database_url: str | None = None, *, time_scale: float = 0.05) -> Iterator[Stack]:
    """Start the three parts; stop them all on exit."""
    account_sid = "AC" + secrets.token_hex(16)
    auth_token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="fsconf-demo-") as workdir:
        switch = FakeSwitch(time_scale=time_scale).start()
        customer = CustomerApp(auth_token).start()
        host, port = switch.address
        settings = Settings(
            database_url=database_url or f"sqlite:///{Path(workdir) / 'demo.db'}",
            esl_nodes=(EslNode(host, port, switch.password),),
            outbound_listen=("127.0.0.1", 0),
            http_listen=("127.0.0.1", 0),
            public_url="http://127.0.0.1:8080",
            account_sid=account_sid,
            auth_token=auth_token,
            voice_url="",
            voice_method="POST",
        )
        recordings = Path(workdir) / "recordings"
        recordings.mkdir()
        app = Fsconf(
            settings,
            tuning=Tuning(
                delivery_base_delay=0.05,
                delivery_poll_interval=0.05,
                engine=EngineConfig(
                    public_url=settings.public_url, recordings_dir=str(recordings)
                ),
            ),
        )
        app.start()
        try:
            for node in app.nodes:
                node.wait_connected(10)
            yield Stack(switch, app, customer, account_sid, auth_token)
        finally:
            # Calls still up hang up first, so their last rows are written
            # while the database is still there.
            for channel_uuid in list(switch.channels):
                switch.hangup(channel_uuid)
            app.stop(grace=2)
            customer.stop()
            switch.stop()


# --- the demo script -------------------------------------------------------------------

WAITING = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Dial>
    <Conference startConferenceOnEnter="false" statusCallback="{events}"
                statusCallbackEvent="start end join leave">moderated-conference-room</Conference>
  </Dial>
</Response>"""

MODERATOR = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Dial>
    <Conference startConferenceOnEnter="true" endConferenceOnExit="true"
                statusCallback="{events}"
                statusCallbackEvent="start end join leave">moderated-conference-room</Conference>
  </Dial>
</Response>"""


def _describe(received: Received) -> str:
    event = received.get("StatusCallbackEvent") or received.path
    details = [f"SequenceNumber={received.get('SequenceNumber')}"]
    for name in ("CallSid", "ReasonParticipantLeft", "ReasonConferenceEnded"):
        value = received.get(name)
        if value:
            details.append(f"{name}={value}")
    signed = "signature ok" if received.signature_ok else "BAD SIGNATURE"
    return f"  callback {event:<20} {' '.join(details)} ({signed})"


def _has_event(name: str, count: int = 1) -> Callable[[list[Received]], bool]:
    return lambda received: sum(r.get("StatusCallbackEvent") == name for r in received) >= count


def run_demo(out: TextIO, *, timeout: float = 20.0) -> int:
    """The spec's example 2, a moderated conference; 0 when it went as on Twilio."""

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    with running_stack() as stack:
        customer = stack.customer
        events = customer.url("/events")
        customer.documents["/waiting"] = WAITING.format(events=events)
        customer.documents["/moderator"] = MODERATOR.format(events=events)
        customer.on_request = lambda r: say(_describe(r)) if r.path == "/events" else None
        say(
            f"FakeSwitch on {stack.switch.address[0]}:{stack.switch.address[1]}, "
            f"fsconf outbound ESL on {stack.app.outbound.address[1]}, "
            f"application on {customer.url('/')}"
        )
        say("1. two callers dial in; startConferenceOnEnter=false: they wait with music")
        stack.call("/waiting", caller="+15551230001", name="Alice")
        stack.call("/waiting", caller="+15551230002", name="Bob")
        ok = customer.wait_for(_has_event("participant-join", 2), timeout)
        say("2. the moderator dials in (startConferenceOnEnter=true, endConferenceOnExit=true)")
        moderator = stack.call("/moderator", caller="+15551230000", name="Moderator")
        ok = ok and customer.wait_for(_has_event("conference-start"), timeout)
        say("3. the moderator hangs up: the conference ends, the others continue")
        stack.hangup(moderator)
        ok = ok and customer.wait_for(_has_event("conference-end"), timeout)
        ok = ok and customer.wait_for(_has_event("participant-leave", 3), timeout)
        callbacks = customer.callbacks()
        signed = all(r.signature_ok for r in callbacks)
        say(f"done: {len(callbacks)} callbacks, all signed: {signed}")
        return 0 if ok and signed else 1
