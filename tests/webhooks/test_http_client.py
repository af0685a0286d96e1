"""The transport's lean HTTP/1.1 client against scripted servers on loopback.

Each server is a real socket that writes exactly the bytes a test chooses
(framing, closes, stalls), so every answer the client must survive is
reproduced on the wire.  Tests wait on queues, never on ``sleep``.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.queue
import pytest
import requests
from gevent.server import StreamServer

from fsconf.webhooks.transport import HttpResponseError, Transport, parse_head

HEADERS = {"User-Agent": "TwilioProxy/1.1", "X-Twilio-Signature": "sig"}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Handler = Callable[["Peer"], None]


class Peer:
    """The server side of one accepted connection."""

    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number
        self._buffer = b""

    def request(self) -> bytes | None:
        """One whole request (head and Content-Length body), or None at EOF."""
        while b"\r\n\r\n" not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                return None
            self._buffer += data
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self._buffer = rest[length:]
        return head + b"\r\n\r\n" + rest[:length]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


class Scripted:
    """A loopback server running ``handler`` for every connection it accepts."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.requests: gevent.queue.Queue[tuple[int, bytes]] = gevent.queue.Queue()
        self.connections = 0
        options: dict[str, Any] = {} if tls is None else {"ssl_context": tls}
        self._server = StreamServer(("127.0.0.1", 0), self._accept, **options)
        self._server.start()
        self.port = self._server.server_port

    def _accept(self, sock: socket.socket, _address: Any) -> None:
        self.connections += 1
        peer = Peer(sock, self.connections)
        try:
            self.handler(peer)
        except OSError:
            pass  # the client went away: what some tests do on purpose
        finally:
            sock.close()

    def url(self, path: str = "/hook", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._server.stop(timeout=1)


@pytest.fixture
def servers() -> Iterator[Callable[..., Scripted]]:
    started: list[Scripted] = []

    def start(handler: Handler, **options: Any) -> Scripted:
        server = Scripted(handler, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def lean_transport(monkeypatch: pytest.MonkeyPatch, *, max_body: int = 64 * 1024) -> Transport:
    """A transport whose session must never be used (the lean path only)."""
    session = requests.Session()

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("requests was used")

    monkeypatch.setattr(session, "request", forbidden)
    return Transport(session, maxsize=4, max_body=max_body)


def post(transport: Transport, url: str, timeout: tuple[float, float] = (1.0, 2.0)) -> Any:
    return transport.send("POST", url, dict(HEADERS), b"A=1&B=2", timeout)


def answer_each(*responses: bytes) -> Handler:
    """Answer the requests of a connection with ``responses``, in turn, then wait for EOF."""

    def handler(peer: Peer) -> None:
        for response in responses:
            if peer.request() is None:
                return
            peer.send(response)
        while peer.request() is not None:
            peer.send(OK)

    return handler


def recording(server_requests: list[bytes], handler: Handler) -> Handler:
    def wrapped(peer: Peer) -> None:
        original = peer.request

        def request() -> bytes | None:
            data = original()
            if data is not None:
                server_requests.append(data)
            return data

        peer.request = request  # type: ignore[method-assign]
        handler(peer)

    return wrapped


# --- the pure head parser ----------------------------------------------------------


def test_parse_head_reads_framing_reuse_and_redirects() -> None:
    head = parse_head(
        b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\nConnection: Keep-Alive"
    )
    assert (head.status, head.keep_alive, head.content_length, head.location) == (
        302,
        True,
        0,
        True,
    )
    head = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5")
    assert (head.chunked, head.content_length) == (True, None)  # chunked wins
    assert not parse_head(b"HTTP/1.1 204 No Content\r\nConnection: close").keep_alive
    assert not parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 1").keep_alive


@pytest.mark.parametrize(
    "block",
    [
        b"SSH-2.0-OpenSSH_9.0",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2",
    ],
)
def test_parse_head_refuses_what_is_not_http(block: bytes) -> None:
    with pytest.raises(HttpResponseError):
        parse_head(block)


# --- on the wire ---------------------------------------------------------------------


def test_keep_alive_reuses_one_connection_and_sends_one_exact_request(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []
    server = servers(recording(seen, answer_each()))
    transport = lean_transport(monkeypatch)
    for _ in range(20):
        reply = post(transport, server.url("/hook?tenant=1"))
        assert (reply.status_code, reply.error) == (200, None)
    assert server.connections == 1
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /hook?tenant=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"X-Twilio-Signature: sig" in lines
    assert b"User-Agent: TwilioProxy/1.1" in lines  # ours, not requests' default
    assert b"Content-Length: 7" in lines and body == b"A=1&B=2"
    assert len([line for line in lines if line.lower().startswith(b"user-agent")]) == 1


def test_chunked_and_content_length_bodies_are_framed_exactly(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    chunked = (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    split = b"HTTP/1.1 202 Accepted\r\nContent-Length: 10\r\n\r\n01234"

    def handler(peer: Peer) -> None:
        for response in (chunked, None, OK):
            assert peer.request() is not None
            if response is None:  # the body in two writes, the second one late
                peer.send(split)
                gevent.idle()
                peer.send(b"56789")
            else:
                peer.send(response)
        peer.request()

    server = servers(handler)
    transport = lean_transport(monkeypatch)
    assert [post(transport, server.url()).status_code for _ in range(3)] == [201, 202, 200]
    assert server.connections == 1  # each body ended exactly where the next answer began


def test_interim_answers_are_skipped(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers(answer_each(b"HTTP/1.1 100 Continue\r\n\r\n" + OK))
    assert post(lean_transport(monkeypatch), server.url()).status_code == 200


def test_a_server_closing_mid_response_is_an_error_and_the_connection_is_dropped(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    def handler(peer: Peer) -> None:
        if peer.number == 1:
            peer.request()
            peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
            return  # closes with 90 bytes missing
        answer_each()(peer)

    server = servers(handler)
    transport = lean_transport(monkeypatch)
    reply = post(transport, server.url())
    assert reply.status_code is None
    assert reply.error is not None and reply.error.startswith("ConnectionError: ")
    assert post(transport, server.url()).status_code == 200
    assert server.connections == 2


def test_a_server_that_never_answers_hits_the_read_timeout(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = gevent.event.Event()

    def handler(peer: Peer) -> None:
        peer.request()
        release.wait(10)

    server = servers(handler)
    try:
        reply = post(lean_transport(monkeypatch), server.url(), timeout=(1.0, 0.2))
    finally:
        release.set()
    assert reply.status_code is None
    assert reply.error is not None and reply.error.startswith("ReadTimeout: ")


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + b"x" * 1048576,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"10000\r\n"
        + b"x" * 65536
        + b"\r\n"
        + b"10000\r\n"
        + b"x" * 65536
        + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 1048576,
    ],
    ids=["content-length", "chunked", "until-close"],
)
def test_an_oversized_response_keeps_its_status_and_loses_its_connection(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch, response: bytes
) -> None:
    server = servers(answer_each(response))
    transport = lean_transport(monkeypatch, max_body=1024)
    assert post(transport, server.url()).status_code == 200
    assert post(transport, server.url()).status_code == 200
    assert server.connections == 2  # the first one was closed, not drained


def test_connection_close_is_honoured(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    closing = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    server = servers(answer_each(closing))
    transport = lean_transport(monkeypatch)
    assert post(transport, server.url()).status_code == 204
    assert post(transport, server.url()).status_code == 204
    assert server.connections == 2


def test_an_idle_connection_the_server_closed_is_not_reused(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = gevent.event.Event()

    def handler(peer: Peer) -> None:
        if peer.number == 1:
            peer.request()
            peer.send(OK)  # keep-alive, then the server's idle timeout fires
            peer.sock.shutdown(socket.SHUT_RDWR)
            closed.set()
            return
        answer_each()(peer)

    server = servers(handler)
    transport = lean_transport(monkeypatch)
    assert post(transport, server.url()).status_code == 200
    assert closed.wait(5)
    assert post(transport, server.url()).status_code == 200
    assert server.connections == 2


def test_a_reused_connection_closed_as_the_request_arrives_is_retried_once(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []

    def handler(peer: Peer) -> None:
        if peer.number == 1:
            peer.request()
            peer.send(OK)
            peer.request()  # read, then close without a byte of answer
            return
        answer_each()(peer)

    server = servers(recording(seen, handler))
    transport = lean_transport(monkeypatch)
    assert post(transport, server.url()).status_code == 200
    assert post(transport, server.url()).status_code == 200
    # At-least-once: the request the server dropped was sent again on a new connection.
    assert (len(seen), server.connections) == (3, 2)


def test_garbage_instead_of_http_is_an_error(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers(answer_each(b"SSH-2.0-OpenSSH_9.0\r\n\r\n"))
    reply = post(lean_transport(monkeypatch), server.url())
    assert reply.status_code is None
    assert reply.error is not None and reply.error.startswith("ConnectionError: bad response")


def test_basic_auth_from_the_url_on_the_lean_path(
    servers: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []
    server = servers(recording(seen, answer_each()))
    url = server.url("/hook?token=secret").replace("http://", "http://us%40er:p%3Ass@")
    reply = post(lean_transport(monkeypatch), url)
    assert reply.status_code == 200
    lines = seen[0].split(b"\r\n")
    expected = requests.auth._basic_auth_str("us@er", "p:ss").encode()  # what requests sends
    assert b"Authorization: " + expected in lines
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines  # no credentials in Host


def test_errors_never_quote_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    url = f"http://user:hunter2@127.0.0.1:{port}/hook?token=secret"
    reply = post(lean_transport(monkeypatch), url)
    assert reply.error is not None and reply.error.startswith("ConnectionError: ")
    assert "secret" not in reply.error and "hunter2" not in reply.error


# --- TLS ---------------------------------------------------------------------------


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed (made by the openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def tls_server(
    servers: Callable[..., Scripted], certificate: tuple[Path, Path], seen: list[bytes]
) -> Scripted:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return servers(recording(seen, answer_each()), tls=context)


def test_tls_with_an_unknown_issuer_fails_verification(
    servers: Callable[..., Scripted],
    monkeypatch: pytest.MonkeyPatch,
    self_signed: tuple[Path, Path],
) -> None:
    seen: list[bytes] = []
    server = tls_server(servers, self_signed, seen)
    reply = post(lean_transport(monkeypatch), server.url(scheme="https"))
    assert reply.status_code is None
    assert reply.error is not None and reply.error.startswith("SSLError: ")
    assert seen == []  # nothing was sent to an unverified peer


def test_tls_verifies_against_the_sessions_ca_bundle_and_keeps_alive(
    servers: Callable[..., Scripted],
    monkeypatch: pytest.MonkeyPatch,
    self_signed: tuple[Path, Path],
) -> None:
    seen: list[bytes] = []
    server = tls_server(servers, self_signed, seen)
    session = requests.Session()
    session.verify = str(self_signed[0])  # the operator trusts this certificate

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("requests was used")

    monkeypatch.setattr(session, "request", forbidden)
    transport = Transport(session, maxsize=2, max_body=1024)
    assert [post(transport, server.url(scheme="https")).status_code for _ in range(3)] == [200] * 3
    assert (len(seen), server.connections) == (3, 1)


def test_a_target_with_a_space_goes_out_percent_encoded_never_raw(
    servers: Callable[..., Scripted],
) -> None:
    """A statusCallback URL with a space or unicode in its path is sent the way requests
    always sent it (percent-encoded), not written raw onto the request line."""
    seen: list[bytes] = []
    server = servers(recording(seen, answer_each()))
    transport = Transport(requests.Session(), maxsize=4, max_body=64 * 1024)
    try:
        for path in ("/my hook", "/caf\u00e9"):
            reply = post(transport, server.url(path))
            assert (reply.status_code, reply.error) == (200, None)
        plain = post(transport, server.url("/plain"))
        assert plain.status_code == 200
    finally:
        transport.close()
    request_lines = [request.split(b"\r\n", 1)[0] for request in seen]
    assert request_lines == [
        b"POST /my%20hook HTTP/1.1",
        b"POST /caf%C3%A9 HTTP/1.1",
        b"POST /plain HTTP/1.1",
    ]
