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
import re
from collections.abc import Callable, Iterator, Mapping
from itertools import repeat
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
_FIND_HEADER_END = re.compile(re.escape(_HEADER_END)).search
"""``data.find(_HEADER_END, start, end)`` for long spans: CPython's ``find``
with a two-byte needle advances at most three bytes a step, while ``re``'s
literal-prefix scan jumps from newline to newline; on a 2.5 KB event it
takes 1.0 µs instead of 2.3 (measured), and every event is searched once."""
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


def _text(data: bytes) -> str:
    return data.decode(_ENCODING, _ERRORS)


# Caches bounded in entries *and* in the size of what they keep, so a
# hostile peer cannot make them hold more than a few MB.
_CACHE_MAX_TEXT = 256
_UNQUOTE_CACHE: dict[str, str] = {}
_UNQUOTE_CACHE_MAX = 8192
_LINE_CACHE: dict[str, tuple[str, str]] = {}
# Each entry costs about 250 bytes. Every call adds ~20 lines of its own (its
# uuid, numbers, times) through its ``connect`` reply, so the cap is what
# this cache weighs under load: 8192 entries, about 2 MB, whatever the
# number of calls. (Events are parsed lazily and seldom reach it.)
_LINE_CACHE_MAX = 8192


def _unquote(value: str) -> str:
    # Header values repeat a lot (host names, the date of this second, the
    # channel's own variables on every event), so decoded values are cached;
    # the cache is simply emptied when full.
    decoded = _UNQUOTE_CACHE.get(value)
    if decoded is None:
        decoded = unquote(value, _ENCODING, _ERRORS)
        if len(value) <= _CACHE_MAX_TEXT:
            if len(_UNQUOTE_CACHE) >= _UNQUOTE_CACHE_MAX:
                _UNQUOTE_CACHE.clear()
            _UNQUOTE_CACHE[value] = decoded
    return decoded


def _parse_header_lines(lines: list[str], decode: bool) -> dict[str, str]:
    """The careful line-by-line parser: blank lines, ``Name:``, errors."""
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(": ")
        if not sep:
            if not line:
                continue
            # "Name:" with nothing after it is an empty value; anything
            # without a colon is not a header at all.
            name, sep, value = line.partition(":")
            if not sep:
                raise EslProtocolError(f"not a header line ({len(line)} characters)")
        if not name:
            raise EslProtocolError(f"empty header name ({len(line)} characters)")
        headers[name] = _unquote(value) if decode and "%" in value else value
    return headers


def _decoded_pairs(lines: list[str]) -> list[tuple[str, str]] | None:
    """``(name, decoded value)`` per line, or None if a line is not simple.

    Whole lines are cached: in real traffic about 96% of the header lines of
    an event were already seen in an earlier one (the channel's variables
    travel on every event of the call; hostnames, dates of this second...), so
    most lines cost one dict lookup instead of a split, two new strings and a
    URL-decode.
    """
    cache = _LINE_CACHE
    pairs = list(map(cache.get, lines))
    if None not in pairs:
        return pairs  # type: ignore[return-value]
    for index, pair in enumerate(pairs):
        if pair is not None:
            continue
        line = lines[index]
        name, sep, value = line.partition(": ")
        if not sep or not name:
            return None
        if "%" in value:
            value = _unquote(value)
        pairs[index] = pair = (name, value)
        if len(line) <= _CACHE_MAX_TEXT:
            if len(cache) >= _LINE_CACHE_MAX:
                cache.clear()
            cache[line] = pair
    return pairs  # type: ignore[return-value]


def parse_header_block(block: str, *, decode: bool = True) -> dict[str, str]:
    """Parse ``Name: value`` lines; URL-decode the values when ``decode``.

    Each line is split on its first ``": "`` *before* its value is decoded, so
    an encoded ``%0A`` or ``%3A%20`` in a value can never make a new line or a
    new header. A value is decoded exactly once. Blank lines are skipped,
    ``Name:`` is an empty value, a line with no colon or an empty name raises
    :class:`EslProtocolError`. A repeated name keeps its last value.
    """
    lines = block.split("\n")
    if decode:
        pairs = _decoded_pairs(lines)
        if pairs is not None:
            return dict(pairs)
    else:
        try:
            # No Python code per line; a line without ": " makes a pair of
            # the wrong length and takes the careful path.
            headers = dict(map(str.split, lines, repeat(": "), repeat(1)))
        except ValueError:
            pass
        else:
            if "" not in headers:
                return headers
    return _parse_header_lines(lines, decode)


def _content_length(headers: Mapping[str, str], limit: int) -> int:
    raw = headers.get("Content-Length")
    if raw is None:
        raw = headers.get("content-length")
        if raw is None:
            return 0
    # int() would also take " 12", "+12", "1_2" and non-ASCII digits: a
    # length is ASCII digits only, or the framing is not ESL.
    if not (raw.isascii() and raw.isdigit()):
        raise EslProtocolError(f"bad Content-Length ({len(raw)} characters, not a number)")
    if len(raw) > 12 or int(raw) > limit:
        raise EslProtocolError(f"Content-Length {raw[:40]} out of range")
    return int(raw)


# --- frame readers: one per Content-Type ------------------------------------


def _read_auth(headers: dict[str, str], body: bytes) -> Frame:
    return AuthRequest()


def _read_command_reply(headers: dict[str, str], body: bytes) -> Frame:
    return CommandReply(headers)


def _read_api_response(headers: dict[str, str], body: bytes) -> Frame:
    return ApiResponse(_text(body), headers)


class EventHeaders(Mapping[str, str]):
    """An event's headers, parsed only as far as they are read.

    Dispatching an event needs three or four of its ~70 headers (Event-Name,
    the subclass, Unique-ID, the conference), and so do most handlers. A
    single-name lookup therefore finds that line in the raw block (the
    ``"\nName: "`` search can only match at a line start, since values are
    URL-encoded and hold no newline; the last occurrence wins, as in a full
    parse) and decodes just its value; iterating, ``len`` or ``dict(...)``
    parse the whole block once, with the same rules as
    :func:`parse_header_block`, which may raise :class:`EslProtocolError`.
    """

    __slots__ = ("_block", "_parsed", "_seen")

    def __init__(self, block: str) -> None:
        self._block = block
        self._parsed: dict[str, str] | None = None
        self._seen: dict[str, str | None] = {}

    def _all(self) -> dict[str, str]:
        if self._parsed is None:
            self._parsed = parse_header_block(self._block)
        return self._parsed

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        # The hot path of dispatch: kept to one call and C-level searches.
        parsed = self._parsed
        if parsed is not None:
            return parsed.get(name, default)
        seen = self._seen
        if name in seen:
            value: str | None = seen[name]
        else:
            value = seen[name] = self._find(name)
        return default if value is None else value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def _find(self, name: str) -> str | None:
        block = self._block
        line = _LINE_STARTS.get(name) or _line_start(name)
        index = block.rfind(line)
        if index >= 0:
            start = index + len(line)
        elif block.startswith(line[1:]):
            start = len(line) - 1
        else:
            return None
        end = block.find("\n", start)
        value = block[start:] if end < 0 else block[start:end]
        if value.startswith(" "):
            value = value[1:]
        elif value:
            # "Name:value" is not a header line of this name ("Name:" then a
            # space is the separator; a bare "Name:" is an empty value).
            return self._all().get(name)
        return _unquote(value) if "%" in value else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"EventHeaders({self._all()!r})"


_LINE_STARTS: dict[str, str] = {}
"""Header name -> ``"\nName:"``, what :meth:`EventHeaders._find` searches for
(the same few names are looked up in every event)."""
_LINE_STARTS_MAX = 1024


def _line_start(name: str) -> str:
    line = f"\n{name}:"
    if len(_LINE_STARTS) >= _LINE_STARTS_MAX:
        _LINE_STARTS.clear()  # names come from our code, but bound it anyway
    _LINE_STARTS[name] = line
    return line


def _read_event_plain(headers: dict[str, str], body: bytes) -> Frame:
    end = body.find(_HEADER_END)
    if end < 0:
        # An event with no inner body may end with a single newline.
        inner = body[:-1] if body.endswith(b"\n") else body
        rest = b""
    else:
        inner, rest = body[:end], body[end + 2 :]
    event_headers = EventHeaders(inner.decode(_ENCODING, _ERRORS))
    inner_length = _content_length(event_headers, len(rest)) if rest else 0
    event_body = rest[:inner_length].decode(_ENCODING, _ERRORS) if inner_length else None
    return Event(event_headers, event_body, "plain")


def _read_event_json(headers: dict[str, str], body: bytes) -> Frame:
    try:
        data = json.loads(_text(body))
        if not isinstance(data, dict):
            raise EslProtocolError("event JSON is not an object")
        event_body = data.pop("_body", None)
        # FreeSWITCH sends every value as a string; anything else is
        # stringified rather than trusted, so handlers see one type.
        event_headers = {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        if event_body is not None and not isinstance(event_body, str):
            event_body = json.dumps(event_body)
    except (ValueError, RecursionError) as error:
        # ValueError: not JSON (or a number over int's digit limit);
        # RecursionError: nesting deeper than the interpreter's stack.
        raise EslProtocolError(f"bad event JSON: {str(error)[:80]}") from None
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

    def append(self, data: bytes | bytearray | memoryview) -> None:
        if self._start:
            # bytearray drops a prefix in O(1) (it moves its start pointer).
            del self._data[: self._start]
            self._start = 0
        self._data += data

    def find(self, needle: bytes, offset: int = 0) -> int:
        index = self._data.find(needle, self._start + offset)
        return -1 if index < 0 else index - self._start

    def take(self, count: int) -> bytes:
        start = self._start
        chunk = bytes(self._data[start : start + count])
        self._start = start + count
        return chunk

    def skip_leading_newlines(self) -> None:
        # FreeSWITCH never sends them, but a stray newline between frames must
        # not be read as an empty header block.
        data, start = self._data, self._start
        while start < len(data) and data[start] == 0x0A:
            start += 1
        self._start = start


_HEAD_CACHE_MAX = 4096
# Outer heads, shared by every decoder: one outbound session sees a dozen
# heads that other sessions see too (``command/reply`` + ``+OK``, the event
# lengths), and a per-decoder copy of them cost every call about 3.5 KB.
_HEAD_CACHE: dict[bytes, tuple[str, dict[str, str], int]] = {}


class FrameDecoder:
    """Decode what the switch sends: feed bytes, take frames.

    >>> d = FrameDecoder(); d.feed(b"Content-Type: auth/request\\n\\n")
    >>> d.next_frame()
    AuthRequest()

    Cost is linear in the bytes fed, however they are chunked: the search for
    the end of a header block resumes where the last one stopped, and
    consumed bytes are dropped from the front of the buffer in O(1).
    """

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._data = bytearray()
        self._start = 0
        # Where to resume looking for the blank line that ends the head.
        self._scan = 0
        self._max = max_frame_bytes
        # (Content-Type, headers, Content-Length) of a head whose body is
        # still incomplete.
        self._pending: tuple[str, dict[str, str], int] | None = None
        self._broken: EslProtocolError | None = None
        self._heads = _HEAD_CACHE

    @property
    def buffered(self) -> int:
        return len(self._data) - self._start

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        start = self._start
        if start:
            # bytearray drops a prefix in O(1) (it moves its start pointer).
            del self._data[:start]
            self._scan -= start
            self._start = 0
        self._data += data

    def next_frame(self) -> Frame | None:
        if self._broken is not None:
            raise self._broken
        frame = self._next_frame()
        if frame is None:
            self._release_consumed()
        return frame

    def __iter__(self) -> Iterator[Frame]:
        next_frame = self._next_frame
        while True:
            if self._broken is not None:
                raise self._broken
            frame = next_frame()
            if frame is None:
                self._release_consumed()
                return
            yield frame

    def _release_consumed(self) -> None:
        # Waiting for more with everything consumed: drop the buffer, or an
        # idle connection (one per call) keeps its last chunks' bytes until
        # its next feed. ``_pending`` stays: its body starts at the next byte.
        if self._start and self._start == len(self._data):
            self._data = bytearray()
            self._start = self._scan = 0

    def frames(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Feed ``data`` and return every frame now complete."""
        self.feed(data)
        return list(self)

    def _next_frame(self) -> Frame | None:
        data = self._data
        start = self._start
        pending = self._pending
        if pending is None:
            if data.startswith(b"\n", start):
                # FreeSWITCH never sends them, but a stray newline between
                # frames must not be read as an empty header block.
                while start < len(data) and data[start] == 0x0A:
                    start += 1
                self._start = start
            end = data.find(_HEADER_END, max(start, self._scan))
            if end < 0:
                if len(data) - start > self._max:
                    self._broken = EslProtocolError(f"no end of headers within {self._max} bytes")
                    raise self._broken
                # The last byte may be the first half of the blank line.
                self._scan = max(start, len(data) - 1)
                return None
            raw_head = bytes(data[start:end])
            start = end + 2
            self._start = self._scan = start
            head = self._heads.get(raw_head)
            if head is None:
                head = self._parse_head(raw_head)
            if len(data) - start < head[2]:
                self._pending = head
                return None
        else:
            head = pending
            if len(data) - start < head[2]:
                return None
            self._pending = None
        content_type, headers, length = head
        end = start + length
        self._start = self._scan = end
        if content_type == "text/event-plain":
            return _event_plain_at(data, start, end)
        reader = READERS.get(content_type)
        if reader is None:
            raise EslProtocolError(f"unknown Content-Type ({len(content_type)} characters)")
        # Frames keep their outer headers: each gets its own dict.
        return reader(headers.copy(), bytes(data[start:end]))

    def _parse_head(self, raw_head: bytes) -> tuple[str, dict[str, str], int]:
        try:
            headers = parse_header_block(_text(raw_head))
            length = _content_length(headers, self._max)
        except EslProtocolError as error:
            # The framing itself is unknown now: nothing after this is safe.
            self._broken = error
            raise
        head = (headers.get("Content-Type", ""), headers, length)
        # Outer heads repeat ("Content-Length: 1234\nContent-Type:
        # text/event-plain"); a cached one is never handed out, only copies.
        if len(raw_head) <= _CACHE_MAX_TEXT:
            if len(self._heads) >= _HEAD_CACHE_MAX:
                self._heads.clear()
            self._heads[raw_head] = head
        return head


def _event_plain_at(data: bytearray, start: int, end: int) -> Frame:
    """``_read_event_plain`` of ``data[start:end]``, without copying it twice.

    The common event (no inner body: the block ends with the one blank line)
    is decoded once and wrapped in :class:`EventHeaders`, which parses only
    what is read. Anything else goes to the general reader.
    """
    found = _FIND_HEADER_END(data, start, end)
    blank = -1 if found is None else found.start()
    if blank > start and blank == end - 2:
        # The blank line ends the frame, so there is no inner body, whatever
        # an inner Content-Length says (it can only be 0).
        return Event(EventHeaders(data[start:blank].decode(_ENCODING, _ERRORS)), None, "plain")
    return _read_event_plain({}, bytes(data[start:end]))


class CommandDecoder:
    """Decode what a client sends to a switch (the FakeSwitch's side).

    A command is a first line, header lines, a blank line, and a body of
    ``content-length`` bytes when that header is there (``sendmsg`` with its
    application argument as body). Header values are kept literal: FreeSWITCH
    does not URL-decode what clients send. After a framing error (no blank line
    within the cap, a bad content-length) every later call raises it again.
    """

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buffer = _Buffer()
        self._max = max_frame_bytes
        self._pending: tuple[str, dict[str, str], int] | None = None
        self._broken: EslProtocolError | None = None
        # Bytes already searched for the blank line (resumed, never rescanned).
        self._scanned = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer.append(data)

    def __iter__(self) -> Iterator[ClientCommand]:
        while (command := self.next_command()) is not None:
            yield command

    def next_command(self) -> ClientCommand | None:
        if self._broken is not None:
            raise self._broken
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
        end = self._buffer.find(_HEADER_END, self._scanned)
        if end < 0:
            if len(self._buffer) > self._max:
                self._broken = EslProtocolError(f"no end of command within {self._max} bytes")
                raise self._broken
            self._scanned = max(0, len(self._buffer) - 1)
            return None
        self._scanned = 0
        block = _text(self._buffer.take(end + 2)[:end])
        line, _, rest = block.partition("\n")
        try:
            headers = parse_header_block(rest, decode=False) if rest else {}
            length = _content_length(headers, self._max)
        except EslProtocolError as error:
            self._broken = error
            raise
        return line.rstrip("\r"), headers, length


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


def _literal_or_encoded(value: str) -> str:
    # What FreeSWITCH sends literally (Reply-Text: +OK accepted) stays
    # literal; a value the decoder would change (a "%XX", a newline) is
    # URL-encoded, as FreeSWITCH does in the connect reply (surprise 17), so
    # decoding gives back exactly ``value``.
    return url_encode(value) if "%" in value or "\n" in value else value


def encode_command_reply(reply_text: str, extra: Mapping[str, str] | None = None) -> bytes:
    headers = [("Content-Type", "command/reply"), ("Reply-Text", _literal_or_encoded(reply_text))]
    if extra:
        headers.extend((name, _literal_or_encoded(value)) for name, value in extra.items())
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
