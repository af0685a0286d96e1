"""The HTTP transport: the lean keep-alive client when it changes nothing, requests otherwise.

A real WSGI server on loopback; every test checks what reached the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from gevent.pywsgi import WSGIServer
from requests.adapters import HTTPAdapter

from fsconf.webhooks.transport import Transport

Seen = list[dict[str, Any]]


class Server:
    """Answers by path: /ok (204), /big (a 1 MiB body), /moved (302 to /ok)."""

    def __init__(self) -> None:
        self.seen: Seen = []
        self._server = WSGIServer(("127.0.0.1", 0), self._app, log=None, error_log=None)
        self._server.start()
        self.base = f"http://127.0.0.1:{self._server.server_port}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        self.seen.append(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ["PATH_INFO"],
                "query": environ.get("QUERY_STRING", ""),
                "body": body,
                "port": environ.get("REMOTE_PORT"),
                "user_agent": environ.get("HTTP_USER_AGENT"),
                "signature": environ.get("HTTP_X_TWILIO_SIGNATURE"),
                "authorization": environ.get("HTTP_AUTHORIZATION"),
            }
        )
        path = environ["PATH_INFO"]
        if path == "/moved":
            start_response("302 Found", [("Location", self.base + "/ok")])
            return [b""]
        if path == "/big":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"x" * (1 << 20)]
        start_response("204 No Content", [])
        return [b""]

    def close(self) -> None:
        self._server.stop(timeout=1)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


HEADERS = {"User-Agent": "TwilioProxy/1.1", "X-Twilio-Signature": "sig"}


def send(transport: Transport, url: str, method: str = "POST") -> Any:
    body = b"A=1&B=2" if method == "POST" else None
    return transport.send(method, url, dict(HEADERS), body, (1.0, 2.0))


def test_plain_session_goes_through_the_lean_client_with_keep_alive(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = requests.Session()

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("requests was used")

    monkeypatch.setattr(session, "request", forbidden)
    transport = Transport(session, maxsize=4, max_body=64 * 1024)
    for _ in range(20):
        reply = send(transport, server.base + "/ok?tenant=1")
        assert (reply.status_code, reply.error) == (204, None)
    assert {seen["port"] for seen in server.seen} == {server.seen[0]["port"]}  # one connection
    first = server.seen[0]
    assert (first["method"], first["path"], first["query"], first["body"]) == (
        "POST",
        "/ok",
        "tenant=1",
        b"A=1&B=2",
    )
    assert (first["user_agent"], first["signature"]) == ("TwilioProxy/1.1", "sig")


def test_a_redirect_is_followed_with_requests_policy(server: Server) -> None:
    transport = Transport(requests.Session(), maxsize=4, max_body=64 * 1024)
    reply = send(transport, server.base + "/moved")
    assert reply.status_code == 204
    # The fast path's attempt, then requests from the start: POST, and 302 -> GET.
    assert [(seen["method"], seen["path"]) for seen in server.seen] == [
        ("POST", "/moved"),
        ("POST", "/moved"),
        ("GET", "/ok"),
    ]
    server.seen.clear()
    send(transport, server.base + "/moved")  # that origin now goes to requests at once
    assert [(seen["method"], seen["path"]) for seen in server.seen] == [
        ("POST", "/moved"),
        ("GET", "/ok"),
    ]


def test_a_large_response_is_cut_and_its_connection_dropped(server: Server) -> None:
    transport = Transport(requests.Session(), maxsize=4, max_body=64 * 1024)
    assert send(transport, server.base + "/big").status_code == 200
    assert send(transport, server.base + "/ok").status_code == 204
    ports = [seen["port"] for seen in server.seen]
    assert ports[0] != ports[1]  # not reused: the rest of the body was never read


def test_sessions_with_extras_keep_using_requests(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = requests.Session()

    class Adapter(HTTPAdapter):
        pass

    custom.mount("http://", Adapter())
    proxied = requests.Session()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    for session in (custom, proxied):
        calls: list[str] = []
        original = session.request

        def spy(
            method: str,
            url: str,
            *args: Any,
            _calls: list[str] = calls,
            _original: Any = original,
            **kwargs: Any,
        ) -> Any:
            _calls.append(url)
            return _original(method, url, *args, **kwargs)

        monkeypatch.setattr(session, "request", spy)
        transport = Transport(session, maxsize=4, max_body=1024)
        send(transport, server.base + "/ok")
        assert calls == [server.base + "/ok"]


def test_errors_use_requests_words_and_hide_the_query() -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    transport = Transport(requests.Session(), maxsize=4, max_body=1024)
    reply = send(transport, f"http://127.0.0.1:{port}/status?token=secret")
    assert reply.status_code is None
    assert reply.error is not None and reply.error.startswith("ConnectionError: ")
    assert "secret" not in reply.error


def test_close_drops_idle_connections_and_the_next_request_reconnects(server: Server) -> None:
    transport = Transport(requests.Session(), maxsize=4, max_body=1024)
    assert send(transport, server.base + "/ok").status_code == 204
    transport.close()
    assert send(transport, server.base + "/ok").status_code == 204
    ports = [seen["port"] for seen in server.seen]
    assert ports[0] != ports[1]


def test_credentials_in_the_url_become_basic_auth(server: Server) -> None:
    """Twilio supports https://user:pass@host/... for callbacks."""
    transport = Transport(requests.Session(), maxsize=4, max_body=64 * 1024)
    url = server.base.replace("http://", "http://user:secret@") + "/ok"
    reply = send(transport, url)
    assert reply.status_code == 204
    assert server.seen[-1]["authorization"] == "Basic dXNlcjpzZWNyZXQ="  # user:secret
