"""Sans-IO Event Socket codec: bytes in, typed frames out.

Theory of operation
-------------------
:class:`FrameDecoder` is fed whatever the socket delivered, in any chunking,
and hands back complete frames (:mod:`fsconf.esl.frames`) one at a time, or
``None`` when it needs more bytes. It never touches a socket.

An ESL frame is a header block ended by a blank line, then exactly
``Content-Length`` *bytes* of body. Events nest a second header block (and an
optional second body with its own Content-Length) inside that body.

Invariants (each one a defect of greenswitch's reader, see STYLE.md):

* Bodies are cut by Content-Length in bytes, never by lines, and are never
  URL-decoded. Only header values are URL-decoded, after splitting each line on
  its first ``": "``.
* Text is decoded once a frame is complete, as UTF-8 with ``surrogateescape``:
  invalid bytes are kept, not dropped, and never raise.
* An incomplete frame larger than ``max_frame_bytes`` raises
  :class:`EslProtocolError`, as does anything that is not ESL. The decoder
  consumes a whole frame before raising for its content, so the caller may
  choose to go on; after a framing error the stream is unrecoverable and the
  owner must drop the connection.
* Only :class:`EslProtocolError` ever escapes (a fuzz test holds us to it).

:class:`CommandDecoder` is the same for the other direction (what a switch
receives), used by the FakeSwitch. The ``encode_*`` functions build the bytes a
switch sends; they are the exact inverse of the decoders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import quote, unquote

from fsconf.errors import EslProtocolError
from fsconf.esl.frames import (
    ApiResponse,
    AuthRequest,
    ClientCommand,
    CommandReply,
    DisconnectNotice,
    Event,
    Frame,
    LogData,
    RudeRejection,
)

DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
"""An incomplete frame bigger than this is an attack or a bug, not ESL."""

_HEADER_END = b"\n\n"
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


def _text(data: bytes) -> str:
    return data.decode(_ENCODING, _ERRORS)


_UNQUOTE_CACHE: dict[str, str] = {}
_UNQUOTE_CACHE_MAX = 8192


def _unquote(value: str) -> str:
    # Header values repeat a lot (host names, the date of this second, the
    # channel's own variables on every event), so decoded values are cached;
    # the cache is simply emptied when full.
    decoded = _UNQUOTE_CACHE.get(value)
    if decoded is None:
        decoded = unquote(value, _ENCODING, _ERRORS)
        if len(_UNQUOTE_CACHE) >= _UNQUOTE_CACHE_MAX:
            _UNQUOTE_CACHE.clear()
        _UNQUOTE_CACHE[value] = decoded
    return decoded


def parse_header_block(block: str, *, decode: bool = True) -> dict[str, str]:
    """Parse ``Name: value`` lines; URL-decode the values when ``decode``."""
    headers: dict[str, str] = {}
    for line in block.split("\n"):
        name, sep, value = line.partition(": ")
        if not sep:
            if not line:
                continue
            # "Name:" with nothing after it is an empty value; anything
            # without a colon is not a header at all.
            name, sep, value = line.partition(":")
            if not sep or not name:
                raise EslProtocolError(f"not a header line: {line[:80]!r}")
        # Most values have no escapes; testing for "%" here, not in a call,
        # is the biggest saving on the event path.
        headers[name] = _unquote(value) if decode and "%" in value else value
    return headers


def _content_length(headers: Mapping[str, str], limit: int) -> int:
    raw = headers.get("Content-Length") or headers.get("content-length")
    if raw is None:
        return 0
    try:
        length = int(raw)
    except ValueError:
        raise EslProtocolError(f"bad Content-Length {raw[:40]!r}") from None
    if length < 0 or length > limit:
        raise EslProtocolError(f"Content-Length {length} out of range")
    return length


# --- frame readers: one per Content-Type ------------------------------------


def _read_auth(headers: dict[str, str], body: bytes) -> Frame:
    return AuthRequest()


def _read_command_reply(headers: dict[str, str], body: bytes) -> Frame:
    return CommandReply(headers)


def _read_api_response(headers: dict[str, str], body: bytes) -> Frame:
    return ApiResponse(_text(body), headers)


def _read_event_plain(headers: dict[str, str], body: bytes) -> Frame:
    end = body.find(_HEADER_END)
    if end < 0:
        # An event with no inner body may end with a single newline.
        inner, rest = body, b""
    else:
        inner, rest = body[:end], body[end + 2 :]
    event_headers = parse_header_block(_text(inner))
    inner_length = _content_length(event_headers, len(rest))
    event_body = _text(rest[:inner_length]) if inner_length else None
    return Event(event_headers, event_body, "plain")


def _read_event_json(headers: dict[str, str], body: bytes) -> Frame:
    try:
        data = json.loads(_text(body))
    except ValueError as error:
        raise EslProtocolError(f"bad event JSON: {error}") from None
    if not isinstance(data, dict):
        raise EslProtocolError("event JSON is not an object")
    event_body = data.pop("_body", None)
    # FreeSWITCH sends every value as a string; anything else is stringified
    # rather than trusted, so handlers see one type.
    event_headers = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    if event_body is not None and not isinstance(event_body, str):
        event_body = json.dumps(event_body)
    return Event(event_headers, event_body, "json")


def _read_disconnect(headers: dict[str, str], body: bytes) -> Frame:
    return DisconnectNotice(headers, _text(body))


def _read_rude_rejection(headers: dict[str, str], body: bytes) -> Frame:
    return RudeRejection(_text(body), headers)


def _read_log(headers: dict[str, str], body: bytes) -> Frame:
    return LogData(_text(body), headers)


Reader = Callable[[dict[str, str], bytes], Frame]

READERS: dict[str, Reader] = {
    "auth/request": _read_auth,
    "command/reply": _read_command_reply,
    "api/response": _read_api_response,
    "text/event-plain": _read_event_plain,
    "text/event-json": _read_event_json,
    "text/disconnect-notice": _read_disconnect,
    "text/rude-rejection": _read_rude_rejection,
    "log/data": _read_log,
}


class _Buffer:
    """A byte buffer that only ever removes what was consumed (h11 style)."""

    __slots__ = ("_data", "_start")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0

    def __len__(self) -> int:
        return len(self._data) - self._start

    def append(self, data: bytes) -> None:
        if self._start and self._start > len(self._data) // 2:
            del self._data[: self._start]
            self._start = 0
        self._data += data

    def find(self, needle: bytes) -> int:
        index = self._data.find(needle, self._start)
        return -1 if index < 0 else index - self._start

    def take(self, count: int) -> bytes:
        chunk = bytes(self._data[self._start : self._start + count])
        self._start += count
        return chunk

    def skip_leading_newlines(self) -> None:
        # FreeSWITCH never sends them, but a stray newline between frames must
        # not be read as an empty header block.
        data, start = self._data, self._start
        while start < len(data) and data[start] == 0x0A:
            start += 1
        self._start = start


class FrameDecoder:
    """Decode what the switch sends: feed bytes, take frames.

    >>> d = FrameDecoder(); d.feed(b"Content-Type: auth/request\\n\\n")
    >>> d.next_frame()
    AuthRequest()
    """

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buffer = _Buffer()
        self._max = max_frame_bytes
        self._pending: tuple[dict[str, str], int] | None = None
        self._broken: EslProtocolError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer.append(data)

    def next_frame(self) -> Frame | None:
        if self._broken is not None:
            raise self._broken
        return self._next_frame()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.next_frame()) is not None:
            yield frame

    def frames(self, data: bytes) -> list[Frame]:
        """Feed ``data`` and return every frame now complete."""
        self.feed(data)
        return list(self)

    def _next_frame(self) -> Frame | None:
        if self._pending is None:
            self._pending = self._read_head()
            if self._pending is None:
                return None
        headers, length = self._pending
        if len(self._buffer) < length:
            return None
        self._pending = None
        body = self._buffer.take(length)
        content_type = headers.get("Content-Type", "")
        reader = READERS.get(content_type)
        if reader is None:
            raise EslProtocolError(f"unknown Content-Type {content_type[:60]!r}")
        return reader(headers, body)

    def _read_head(self) -> tuple[dict[str, str], int] | None:
        self._buffer.skip_leading_newlines()
        end = self._buffer.find(_HEADER_END)
        if end < 0:
            if len(self._buffer) > self._max:
                self._broken = EslProtocolError(f"no end of headers within {self._max} bytes")
                raise self._broken
            return None
        block = self._buffer.take(end + 2)[:end]
        try:
            headers = parse_header_block(_text(block))
            length = _content_length(headers, self._max)
        except EslProtocolError as error:
            # The framing itself is unknown now: nothing after this is safe.
            self._broken = error
            raise
        return headers, length


class CommandDecoder:
    """Decode what a client sends to a switch (the FakeSwitch's side)."""

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buffer = _Buffer()
        self._max = max_frame_bytes
        self._pending: tuple[str, dict[str, str], int] | None = None

    def feed(self, data: bytes) -> None:
        self._buffer.append(data)

    def __iter__(self) -> Iterator[ClientCommand]:
        while (command := self.next_command()) is not None:
            yield command

    def next_command(self) -> ClientCommand | None:
        if self._pending is None:
            self._pending = self._read_head()
            if self._pending is None:
                return None
        line, headers, length = self._pending
        if len(self._buffer) < length:
            return None
        self._pending = None
        body = _text(self._buffer.take(length)) if length else None
        return ClientCommand(line, headers, body)

    def _read_head(self) -> tuple[str, dict[str, str], int] | None:
        self._buffer.skip_leading_newlines()
        end = self._buffer.find(_HEADER_END)
        if end < 0:
            if len(self._buffer) > self._max:
                raise EslProtocolError(f"no end of command within {self._max} bytes")
            return None
        block = _text(self._buffer.take(end + 2)[:end])
        line, _, rest = block.partition("\n")
        headers = parse_header_block(rest, decode=False) if rest else {}
        return line.rstrip("\r"), headers, _content_length(headers, self._max)


# --- encoders (the switch's side) --------------------------------------------

# FreeSWITCH's switch_url_encode leaves these alone (see the captures:
# "Wed,%2025%20Nov", "loopback/4000/default").
_SAFE = "-_.!~*'(),/@+=[]{}&;?|#$^"


def url_encode(value: str) -> str:
    return quote(value, safe=_SAFE, encoding=_ENCODING, errors=_ERRORS)


def encode_headers(headers: Mapping[str, str] | list[tuple[str, str]], *, encode: bool) -> bytes:
    items = headers.items() if isinstance(headers, Mapping) else headers
    lines = [f"{k}: {url_encode(v) if encode else v}\n" for k, v in items]
    return "".join(lines).encode(_ENCODING, _ERRORS)


def encode_frame(
    content_type: str,
    body: bytes | str = b"",
    extra_headers: Mapping[str, str] | list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> bytes:
    """An outer frame: Content-Type, extra headers, Content-Length, body."""
    payload = body.encode(_ENCODING, _ERRORS) if isinstance(body, str) else body
    head = [("Content-Type", content_type)]
    items = list(extra_headers.items() if isinstance(extra_headers, Mapping) else extra_headers)
    head.extend(items)
    if payload:
        head.append(("Content-Length", str(len(payload))))
    return encode_headers(head, encode=False) + b"\n" + payload


def encode_command_reply(reply_text: str, extra: Mapping[str, str] | None = None) -> bytes:
    headers = [("Content-Type", "command/reply"), ("Reply-Text", reply_text)]
    if extra:
        headers.extend(extra.items())
    return encode_headers(headers, encode=False) + b"\n"


def encode_api_response(body: str) -> bytes:
    return encode_frame("api/response", body)


def encode_event_plain(headers: Mapping[str, str], body: str | None = None) -> bytes:
    """An event as ``event plain`` delivers it (values URL-encoded)."""
    items = list(headers.items())
    payload = body.encode(_ENCODING, _ERRORS) if body else b""
    if payload:
        items.append(("Content-Length", str(len(payload))))
    inner = encode_headers(items, encode=True) + b"\n" + payload
    return encode_frame("text/event-plain", inner)


def encode_event_json(headers: Mapping[str, str], body: str | None = None) -> bytes:
    """An event as ``event json`` delivers it (values plain, body in _body)."""
    data: dict[str, str] = dict(headers)
    if body:
        data["Content-Length"] = str(len(body.encode(_ENCODING, _ERRORS)))
        data["_body"] = body
    return encode_frame("text/event-json", json.dumps(data, ensure_ascii=False))
