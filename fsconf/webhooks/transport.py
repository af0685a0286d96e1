"""How a signed callback request goes on the wire: a lean HTTP/1.1 client first,
requests when needed.

Theory of operation
-------------------
* The delivery worker is given a :class:`requests.Session` (injected, so tests
  and operators decide proxies, CA bundles, adapters).  ``Session.request``
  costs about 0.7 ms of CPU per POST on loopback and urllib3's pool about
  0.3 ms; at thousands of callbacks a second that is the CPU budget of the
  whole process.  A callback is one small request with a tiny answer, so
  :class:`Transport` speaks HTTP/1.1 itself on gevent sockets for the common
  case: the request head and body built as one ``bytes`` and sent with one
  ``sendall``, and only the status line and the four headers that frame or
  redirect a response parsed (:func:`parse_head`, pure).  About 50 µs a POST.
* **The lean path is only taken when it cannot change behaviour**: a plain
  ``requests.Session`` with requests' own adapters, no auth, no hooks, no
  cookies, no client certificate, and, for the URL's origin, an ASCII host, no
  proxy and a verified TLS configuration (the environment is read once per
  origin through ``Session.merge_environment_settings``, as requests does per
  request, so ``HTTPS_PROXY``/``NO_PROXY`` and ``REQUESTS_CA_BUNDLE`` keep
  working).  TLS is verified against the CA bundle requests would use, with
  hostname checking.  The session's default headers go out under ours, as
  requests merges them.  ``user:pass@`` in the URL becomes Basic auth, exactly
  as requests encodes it.
* **Redirects keep requests' policy.**  The lean path never follows one: a 3xx
  with a ``Location`` marks the origin as "through requests" and the request
  is sent again with ``Session.request(allow_redirects=True)``.  The
  redirecting endpoint sees that first request twice; callbacks are
  at-least-once anyway.
* **Keep-alive.**  Each origin keeps up to ``maxsize`` idle connections (the
  worker's concurrency, so none is thrown away under load).  A connection is
  put back only after a complete response that allows reuse (HTTP/1.1 without
  ``Connection: close``).  An idle connection the server has closed is
  noticed before reuse (readable while idle means EOF or garbage), and a
  reused connection that fails before the first byte of an answer (the server
  closed it in the same instant) is retried once on a new connection: the
  server answered nothing, and callbacks are at-least-once.
* **Bounded everything.**  A connect timeout, a read timeout on every receive
  (the caller adds an overall deadline), no retries beyond the one above (the
  outbox retries), at most 64 KiB of response head and ``max_body`` bytes of
  body: beyond that the status is kept and the connection is closed rather
  than drained.  Any exception, the caller's deadline included, closes the
  connection it was using.
* Errors come back as text in requests' vocabulary (``ConnectionError: ...``,
  ``ReadTimeout: ...``), never with the URL's query string or credentials.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, unquote, urlsplit

import gevent.socket
import gevent.ssl
import requests
from gevent import monkey
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from fsconf.errors import WebhookError

__all__ = ["HttpResponseError", "Reply", "ResponseHead", "Transport", "parse_head"]

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_ORIGIN_CACHE_LIMIT: Final = 4096
_CHUNK: Final = 8192
_RECV: Final = 65536
_MAX_HEAD: Final = 64 * 1024
_MAX_CHUNK_LINE: Final = 4096
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# The real select(): a zero-timeout readability probe on an idle socket, with
# no trip through the hub (gevent's patched select would schedule a timer).
_select = monkey.get_original("select", "select")


#: A path and query the lean client sends as they are: printable ASCII, no space.
#: Anything else (a space, unicode) goes to requests, which percent-encodes it as it
#: always has, rather than onto the request line raw.
_PLAIN_TARGET = re.compile(r"[!-~]*\Z")

class HttpResponseError(WebhookError):
    """The server's answer is not HTTP/1.x we can frame (or it exceeds a cap)."""


@dataclass(frozen=True)
class Reply:
    """What came back: a status code, or an error text (never both)."""

    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class ResponseHead:
    """The parts of a response head that frame its body or redirect it."""

    status: int
    keep_alive: bool
    content_length: int | None
    chunked: bool
    location: bool


def parse_head(block: bytes) -> ResponseHead:
    """Parse a response head (without its final blank line); pure.

    Only what decides framing, reuse and redirects is read: the status line,
    ``Content-Length``, ``Transfer-Encoding``, ``Connection`` and whether a
    ``Location`` is present.  Raises :class:`HttpResponseError` otherwise.
    """
    lines = block.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpResponseError("not an HTTP/1.x status line")
    code = parts[1]
    if len(code) != 3 or not code.isdigit():
        raise HttpResponseError("bad status code")
    keep_alive = parts[0] == b"HTTP/1.1"
    length: int | None = None
    chunked = location = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise HttpResponseError("header line without a colon")
        name = name.lower()
        if name == b"content-length":
            text = value.strip()
            if not text.isdigit() or (length is not None and int(text) != length):
                raise HttpResponseError("bad Content-Length")
            length = int(text)
        elif name == b"transfer-encoding":
            chunked = value.strip().lower().endswith(b"chunked")
        elif name == b"connection":
            tokens = {token.strip() for token in value.lower().split(b",")}
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
        elif name == b"location":
            location = bool(value.strip())
    if chunked:
        length = None  # RFC 9112 6.3: chunked wins over a Content-Length
    return ResponseHead(int(code), keep_alive, length, chunked, location)


class _StaleConnection(Exception):
    """A reused connection failed before any byte of an answer arrived."""


class _ConnectTimeout(Exception):
    """No TCP connection (or TLS handshake) within the connect timeout."""


class _Connection:
    """One socket and the bytes received on it but not consumed yet."""

    __slots__ = ("buffer", "reused", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.reused = False

    def fill(self) -> None:
        """Receive more; EOF raises (a stale reused connection says so)."""
        data = self.sock.recv(_RECV)
        if not data:
            raise ConnectionError("connection closed by the server")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class _Origin:
    """Where the lean path connects: address, TLS context, and the head it sends."""

    host: str
    port: int
    tls: ssl.SSLContext | None
    host_header: str
    authorization: str | None


class _Route:
    """How to reach one origin: its idle connections, or None for requests."""

    __slots__ = ("idle", "origin")

    def __init__(self, origin: _Origin | None) -> None:
        self.origin = origin
        self.idle: list[_Connection] = []


def _plain_session(session: requests.Session) -> bool:
    """True when requests would add nothing to a request that the lean path does not."""
    if type(session) is not requests.Session:
        return False
    for prefix in ("http://", "https://"):
        if type(session.adapters.get(prefix)) is not HTTPAdapter:
            return False
    if len(session.adapters) != 2:
        return False
    hooks = session.hooks or {}
    return (
        session.auth is None
        and not session.cert
        and not session.proxies
        and not any(hooks.values())
        and not session.cookies
    )


def _basic_auth(username: str, password: str) -> str:
    # requests: get_auth_from_url() unquotes, _basic_auth_str() encodes latin-1.
    token = f"{unquote(username)}:{unquote(password)}".encode("latin-1")
    return "Basic " + base64.b64encode(token).decode("ascii")


class Transport:
    """Sends one request; see the module docstring."""

    def __init__(self, session: requests.Session, *, maxsize: int, max_body: int) -> None:
        self.session = session
        self.maxsize = maxsize
        self.max_body = max_body
        self._fast = _plain_session(session)
        self._routes: dict[tuple[str, str], _Route] = {}
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}
        # The session's defaults (requests merges them under the request's own).
        self._defaults = {
            name: value.decode("latin-1") if isinstance(value, bytes) else value
            for name, value in session.headers.items()
        }

    def close(self) -> None:
        """Close every idle keep-alive connection."""
        for route in self._routes.values():
            while route.idle:
                route.idle.pop().close()

    def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: tuple[float, float],
    ) -> Reply:
        parts = urlsplit(url)
        key = (parts.scheme.lower(), parts.netloc.lower())
        route = self._routes.get(key)
        if route is None:
            route = self._new_route(url)
            if len(self._routes) >= _ORIGIN_CACHE_LIMIT:
                self.close()
                self._routes.clear()
            self._routes[key] = route
        if route.origin is not None and _PLAIN_TARGET.match(parts.path + parts.query):
            reply = self._send_lean(route, method, parts, headers, body, timeout)
            if reply is not None:
                return reply
            # A redirect: from now on this origin goes through requests.
            self._discard(route)
            self._routes[key] = _Route(None)
        return self._send_requests(method, url, headers, body, timeout)

    # --- routes ------------------------------------------------------------------

    def _new_route(self, url: str) -> _Route:
        if not self._fast:
            return _Route(None)
        parts = urlsplit(url)
        host = parts.hostname
        if not host or not host.isascii() or not parts.netloc.isascii():
            return _Route(None)  # IDNA and friends: requests' business
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme.lower()]
        except (ValueError, KeyError):
            return _Route(None)
        settings = self.session.merge_environment_settings(url, {}, None, self.session.verify, None)
        proxies = {key: value for key, value in (settings.get("proxies") or {}).items() if value}
        if proxies or settings.get("cert"):
            return _Route(None)
        tls: ssl.SSLContext | None = None
        if parts.scheme.lower() == "https":
            verify = settings.get("verify", True)
            if verify is False:
                return _Route(None)  # requests' unverified mode (with its warnings)
            tls = self._context(DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify))
        authorization = None
        if parts.username is not None:
            authorization = _basic_auth(parts.username, parts.password or "")
        host_header = parts.netloc.rpartition("@")[2]
        return _Route(_Origin(host, port, tls, host_header, authorization))

    def _context(self, bundle: str) -> ssl.SSLContext:
        kind = "dir" if os.path.isdir(bundle) else "file"
        context = self._contexts.get((kind, bundle))
        if context is None:
            # What requests' HTTPAdapter.cert_verify asks of urllib3 for a bundle.
            context = gevent.ssl.create_default_context(
                cafile=bundle if kind == "file" else None,
                capath=bundle if kind == "dir" else None,
            )
            context.check_hostname = True
            context.verify_mode = ssl.CERT_REQUIRED
            self._contexts[(kind, bundle)] = context
        return context

    @staticmethod
    def _discard(route: _Route) -> None:
        while route.idle:
            route.idle.pop().close()

    # --- the lean path -------------------------------------------------------------

    def _request_bytes(
        self,
        origin: _Origin,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | None,
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {origin.host_header}"]
        if self._defaults:
            # requests merges case-insensitively: ours replace the session's.
            ours = {name.lower() for name in headers}
            lines.extend(
                f"{name}: {value}"
                for name, value in self._defaults.items()
                if value is not None and name.lower() not in ours
            )
        lines.extend(f"{name}: {value}" for name, value in headers.items() if value is not None)
        if origin.authorization is not None:
            lines.append(f"Authorization: {origin.authorization}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = "\r\n".join(lines)
        bare = head.replace("\r\n", "")
        if "\n" in bare or "\r" in bare:
            raise HttpResponseError("CR or LF in a request header")
        data = (head + "\r\n\r\n").encode("latin-1")
        return data + body if body else data

    def _send_lean(
        self,
        route: _Route,
        method: str,
        parts: SplitResult,
        headers: dict[str, str],
        body: bytes | None,
        timeout: tuple[float, float],
    ) -> Reply | None:
        origin = route.origin
        assert origin is not None
        path = parts.path or "/"
        target = f"{path}?{parts.query}" if parts.query else path
        try:
            request = self._request_bytes(origin, method, target, headers, body)
        except (UnicodeEncodeError, HttpResponseError):
            return Reply(error="InvalidHeader: a header or the URL is not latin-1 text")
        for _attempt in (1, 2):
            connection = self._checkout(route)
            try:
                if connection is None:
                    connection = self._connect(origin, timeout)
                head, reusable = self._exchange(connection, request, method)
            except _StaleConnection:
                assert connection is not None
                connection.close()
                continue  # the server closed it as we sent: once more, on a new one
            except BaseException as error:  # the deadline too: never reuse a half-read socket
                if connection is not None:
                    connection.close()
                if isinstance(error, Exception):
                    return Reply(error=_describe(error))
                raise
            if reusable and len(route.idle) < self.maxsize:
                route.idle.append(connection)
            else:
                connection.close()
            if head.status in _REDIRECTS and head.location:
                return None
            return Reply(status_code=head.status)
        return Reply(error="ConnectionError: keep-alive connection closed twice")

    def _checkout(self, route: _Route) -> _Connection | None:
        while route.idle:
            connection = route.idle.pop()
            # Readable while idle: EOF or bytes nobody asked for.  Either way, not reusable.
            try:
                readable = _select([connection.sock], [], [], 0)[0]
            except (OSError, ValueError):
                readable = [connection]
            if readable or connection.buffer:
                connection.close()
                continue
            connection.reused = True
            return connection
        return None

    @staticmethod
    def _connect(origin: _Origin, timeout: tuple[float, float]) -> _Connection:
        try:
            sock = gevent.socket.create_connection((origin.host, origin.port), timeout=timeout[0])
        except TimeoutError as error:
            raise _ConnectTimeout(f"no connection within {timeout[0]:g}s") from error
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if origin.tls is not None:
                sock = origin.tls.wrap_socket(sock, server_hostname=origin.host)
            sock.settimeout(timeout[1])
        except TimeoutError as error:
            sock.close()
            raise _ConnectTimeout(f"no TLS handshake within {timeout[0]:g}s") from error
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _exchange(
        self, connection: _Connection, request: bytes, method: str
    ) -> tuple[ResponseHead, bool]:
        """Send ``request`` and read one whole response: (its head, reusable?)."""
        try:
            connection.sock.sendall(request)
            head = self._read_head(connection)
        except (ConnectionError, OSError) as error:
            if connection.reused and not connection.buffer and not isinstance(error, TimeoutError):
                raise _StaleConnection() from error
            raise
        while 100 <= head.status < 200:  # interim answers (100 Continue, 103 ...)
            head = self._read_head(connection)
        if method == "HEAD" or head.status in (204, 304):
            return head, head.keep_alive
        if head.chunked:
            complete = self._read_chunked(connection)
        elif head.content_length is not None:
            complete = self._read_length(connection, head.content_length)
        else:
            self._read_to_eof(connection)
            return head, False
        return head, complete and head.keep_alive

    @staticmethod
    def _read_head(connection: _Connection) -> ResponseHead:
        buffer = connection.buffer
        end = buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(buffer) > _MAX_HEAD:
                raise HttpResponseError("response head over 64 KiB")
            searched = max(0, len(buffer) - 3)  # a terminator may straddle two reads
            connection.fill()
            end = buffer.find(b"\r\n\r\n", searched)
        head = parse_head(bytes(buffer[:end]))
        del buffer[: end + 4]
        return head

    def _read_length(self, connection: _Connection, length: int) -> bool:
        """Consume ``length`` body bytes; False if over the cap (left unread)."""
        if length > self.max_body:
            return False
        buffer = connection.buffer
        while len(buffer) < length:
            connection.fill()
        del buffer[:length]
        return True

    def _read_chunked(self, connection: _Connection) -> bool:
        """Consume a chunked body and its trailers; False if over the cap."""
        buffer = connection.buffer
        received = 0
        while True:
            end = buffer.find(b"\r\n")
            while end < 0:
                if len(buffer) > _MAX_CHUNK_LINE:
                    raise HttpResponseError("chunk size line too long")
                connection.fill()
                end = buffer.find(b"\r\n")
            size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpResponseError("bad chunk size") from None
            if size < 0:
                raise HttpResponseError("bad chunk size")
            del buffer[: end + 2]
            if size == 0:
                self._read_trailers(connection)
                return True
            received += size
            if received > self.max_body:
                return False
            while len(buffer) < size + 2:
                connection.fill()
            if buffer[size : size + 2] != b"\r\n":
                raise HttpResponseError("chunk not followed by CRLF")
            del buffer[: size + 2]

    @staticmethod
    def _read_trailers(connection: _Connection) -> None:
        buffer = connection.buffer
        while True:
            if buffer[:2] == b"\r\n":
                del buffer[:2]
                return
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                del buffer[: end + 4]
                return
            if len(buffer) > _MAX_HEAD:
                raise HttpResponseError("trailers over 64 KiB")
            connection.fill()

    def _read_to_eof(self, connection: _Connection) -> None:
        """A body framed by the end of the connection: read it to EOF or the cap."""
        buffer = connection.buffer
        while len(buffer) <= self.max_body:
            data = connection.sock.recv(_RECV)
            if not data:
                return
            buffer += data

    # --- requests ------------------------------------------------------------------

    def _send_requests(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: tuple[float, float],
    ) -> Reply:
        try:
            response = self.session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                stream=True,
                allow_redirects=True,
            )
            try:
                received = 0
                for chunk in response.iter_content(_CHUNK):
                    received += len(chunk)
                    if received > self.max_body:
                        break
            finally:
                response.close()
        except requests.RequestException as error:
            # The message quotes the URL (query tokens included): keep the
            # class and the root cause's class only; last_error is shown by the CLI.
            cause = error.__context__ or error.__cause__
            reason = f" ({type(cause).__name__})" if cause is not None else ""
            return Reply(error=f"{type(error).__name__}{reason}")
        return Reply(status_code=response.status_code)


def _describe(error: Exception) -> str:
    """A lean-path error in requests' words (the outbox's last_error vocabulary).

    Only the error's class and its OS-level text: never the URL.
    """
    if isinstance(error, ssl.SSLError):
        return f"SSLError: {error.__class__.__name__}: {getattr(error, 'reason', None) or error}"
    if isinstance(error, _ConnectTimeout):
        return f"ConnectTimeout: {error}"
    if isinstance(error, HttpResponseError):
        return f"ConnectionError: bad response: {error}"
    if isinstance(error, TimeoutError):
        return f"ReadTimeout: {error}"
    if isinstance(error, socket.gaierror):
        return f"ConnectionError: name resolution failed: {error.strerror or error}"
    return f"ConnectionError: {error.__class__.__name__}: {error}"
