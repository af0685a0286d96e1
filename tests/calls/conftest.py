"""Fixtures for the end-to-end call tests: a TwiML web server, FakeSwitch, the call service.

Everything is real and on loopback: the HTTP server is gevent's WSGI server,
FakeSwitch connects to our OutboundServer like FreeSWITCH's ``socket`` app,
and the store is a migrated SQLite file. Waiting is on events (a request
arrived, the session handler returned), never on sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import gevent
import gevent.event
import pytest
from gevent.pywsgi import WSGIServer
from twilio.request_validator import RequestValidator

from fsconf.calls import CallService, CallSettings, Fetcher, FetchTimeouts
from fsconf.calls.gateway import CallHandle
from fsconf.calls.program import DialOutcome
from fsconf.esl.outbound import OutboundServer, OutboundSession
from fsconf.store import create_account, get_call, list_alerts, transaction
from fsconf.testing import FakeSwitch
from fsconf.twiml import Conference, Dial

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "secret-token-1234"

#: A route answers (status, content type, body) or blocks (slow server).
Handler = Callable[[dict[str, str]], tuple[int, str, bytes]]


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    url: str
    signature: str | None
    valid: bool


@dataclass
class TwimlServer:
    routes: dict[str, Handler | tuple[int, str, bytes]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    arrived: gevent.event.Event = field(default_factory=gevent.event.Event)
    release: threading.Event = field(default_factory=threading.Event)
    base: str = ""

    def url(self, path: str) -> str:
        return self.base + path

    def xml(self, path: str, body: str | bytes) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = (200, "text/xml", data)
        return self.url(path)

    def app(self, environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        method = str(environ["REQUEST_METHOD"])
        path = str(environ["PATH_INFO"])
        query = str(environ.get("QUERY_STRING") or "")
        url = self.base + path + (f"?{query}" if query else "")
        if method == "POST":
            stream = environ["wsgi.input"]
            form = dict(parse_qsl(stream.read().decode(), keep_blank_values=True))  # type: ignore[attr-defined]
            params = form
            signed_params: dict[str, str] = form
        else:
            params = dict(parse_qsl(query, keep_blank_values=True))
            signed_params = {}
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE")
        valid = RequestValidator(AUTH_TOKEN).validate(url, signed_params, str(signature or ""))
        self.requests.append(
            Request(method, path, params, url, signature and str(signature), valid)
        )
        self.arrived.set()
        route = self.routes.get(path, (404, "text/plain", b"not found"))
        status, content_type, body = route(params) if callable(route) else route
        start_response(f"{status} X", [("Content-Type", content_type)])
        return [body]

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


@pytest.fixture
def web() -> Iterator[TwimlServer]:
    server = TwimlServer()
    wsgi = WSGIServer(("127.0.0.1", 0), server.app, log=None, error_log=None)
    wsgi.start()
    server.base = f"http://127.0.0.1:{wsgi.server_port}"
    yield server
    server.release.set()
    wsgi.stop(timeout=1)


@dataclass
class RecordingGateway:
    """The conference double: records each join, then returns the chosen outcome."""

    outcome: DialOutcome = field(default_factory=DialOutcome)
    behaviour: Callable[[CallHandle], DialOutcome | None] | None = None
    joins: list[tuple[str, Dial, Conference]] = field(default_factory=list)

    def join(self, call: CallHandle, dial: Dial, conference: Conference) -> DialOutcome:
        self.joins.append((call.call_sid, dial, conference))
        if self.behaviour is not None:
            outcome = self.behaviour(call)
            if outcome is not None:
                return outcome
        return self.outcome


@dataclass
class Harness:
    fs: FakeSwitch
    web: TwimlServer
    gateway: RecordingGateway
    sessions: object
    outbound: OutboundServer
    finished: gevent.event.Event
    settings: CallSettings

    def call(self, voice_url: str | None = None, *, wait: bool = True, **variables: str) -> str:
        if voice_url is not None:
            variables["fsconf_voice_url"] = voice_url
        uuid = self.fs.place_call(
            self.outbound.address,
            caller_id_number="+15551230001",
            caller_id_name="Alice",
            destination="+15550000000",
            variables=variables,
        )
        if wait:
            self.wait_finished()
        return uuid

    def until(self, predicate: Callable[[], bool]) -> None:
        """FakeSwitch's event-driven wait (the contract's ``wait_until``)."""
        self.fs.wait_until(predicate, timeout=5.0)

    def wait_finished(self) -> None:
        assert self.finished.wait(10), "the call handler did not finish"

    def apps(self) -> list[tuple[str, str | None]]:
        """Every application sent on outbound sessions, in order (hangup included)."""
        out: list[tuple[str, str | None]] = []
        for recorded in self.fs.commands:
            command = recorded.command
            if command.verb != "sendmsg":
                continue
            kind = command.headers.get("call-command")
            if kind == "execute":
                name = command.headers["execute-app-name"]
                out.append((name, command.body or command.headers.get("execute-app-arg")))
            elif kind == "hangup":
                out.append(("hangup", command.headers.get("hangup-cause")))
        return out

    def api_commands(self) -> list[str]:
        return [r.command.argument for r in self.fs.commands if r.command.verb == "api"]

    def app_names(self) -> list[str]:
        return [name for name, _ in self.apps()]

    def alerts(self) -> list[int]:
        with transaction(self.sessions) as db:  # type: ignore[arg-type]
            return sorted(alert.error_code for alert in list_alerts(db))

    def call_status(self, uuid: str) -> str:
        with transaction(self.sessions) as db:  # type: ignore[arg-type]
            call = get_call(db, sid="CA" + uuid.replace("-", ""))
            assert call is not None
            return call.status


def make_harness(
    session_factory: object,
    web: TwimlServer,
    *,
    fallback_url: str | None = None,
    timeouts: FetchTimeouts | None = None,
    max_idle_documents: int = 50,
    voice_url: str = "",
    time_scale: float = 0.001,
) -> Iterator[Harness]:
    with transaction(session_factory) as db:  # type: ignore[arg-type]
        create_account(
            db,
            sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            fallback_url=fallback_url,
            fallback_method="POST",
        )
    fs = FakeSwitch(time_scale=time_scale).start()
    gateway = RecordingGateway()
    settings = CallSettings(
        account_sid=ACCOUNT_SID, voice_url=voice_url, max_idle_documents=max_idle_documents
    )
    service = CallService(
        sessions=session_factory,  # type: ignore[arg-type]
        settings=settings,
        fetcher=Fetcher(timeouts=timeouts or FetchTimeouts(connect=2, read=2, total=3)),
        gateway=gateway,
    )
    finished = gevent.event.Event()

    def handler(session: OutboundSession) -> None:
        try:
            service.handle(session)
        finally:
            finished.set()

    outbound = OutboundServer(("127.0.0.1", 0), handler)
    outbound.start()
    try:
        yield Harness(fs, web, gateway, session_factory, outbound, finished, settings)
    finally:
        outbound.stop(timeout=1)
        fs.stop()


@pytest.fixture
def harness(session_factory: object, web: TwimlServer) -> Iterator[Harness]:
    yield from make_harness(session_factory, web)
