"""Fuzz the decoders: they parse or raise EslProtocolError, never anything else.

Inputs are random bytes and real capture frames broken on purpose (bit flips,
truncation, duplicated or removed header lines, huge or bad Content-Length,
garbage inserted), fed in random chunks. For every input the decoder must

* return frames or raise :class:`EslProtocolError` (no other exception);
* make progress (each frame consumes bytes; after a framing error it stays
  broken instead of looping);
* hold no more than the cap allows for one incomplete frame.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsconf.errors import EslProtocolError
from fsconf.esl.codec import CommandDecoder, FrameDecoder, parse_header_block
from tests.esl import captures

CAP = 16 * 1024
FUZZ = settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@functools.cache
def seed_frames() -> tuple[bytes, ...]:
    """Every frame that is not a plain event, and every 10th plain event."""
    picked = []
    for _name, _conn, frames in captures.in_streams():
        for index, raw in enumerate(frames):
            if captures.content_type(raw) != "text/event-plain" or index % 10 == 0:
                picked.append(raw)
    return tuple(picked)


def drain(decoder: FrameDecoder) -> tuple[int, bool]:
    """Take frames until "need more" or a framing error: (frames, broken)."""
    count = 0
    while True:
        before = decoder.buffered
        try:
            frame = decoder.next_frame()
        except EslProtocolError:
            # A frame with bad content is consumed and the decoder goes on; a
            # framing error leaves it broken. Either way it must not loop.
            after = decoder.buffered
            try:
                decoder.next_frame()
            except EslProtocolError:
                if decoder.buffered == after:
                    return count, True
            continue
        if frame is None:
            return count, False
        assert decoder.buffered < before
        count += 1


def feed_in_chunks(data: bytes, cuts: list[int], cap: int = CAP) -> int:
    decoder = FrameDecoder(max_frame_bytes=cap)
    points = sorted({c % (len(data) + 1) for c in cuts})
    frames = 0
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        decoder.feed(data[start:end])
        count, broken = drain(decoder)
        frames += count
        if broken:
            return frames
        # One incomplete frame at most: a head under the cap, a body under it.
        assert decoder.buffered <= 2 * cap + 2
    return frames


# --- mutations of real frames --------------------------------------------------------


def _lines(frame: bytes) -> list[bytes]:
    return frame.split(b"\n")


def bit_flip(frame: bytes, position: int, bit: int) -> bytes:
    if not frame:
        return frame
    index = position % len(frame)
    return frame[:index] + bytes([frame[index] ^ (1 << bit)]) + frame[index + 1 :]


def truncate(frame: bytes, position: int, _bit: int) -> bytes:
    return frame[: position % (len(frame) + 1)]


def duplicate_line(frame: bytes, position: int, _bit: int) -> bytes:
    lines = _lines(frame)
    index = position % len(lines)
    return b"\n".join([*lines[: index + 1], lines[index], *lines[index + 1 :]])


def remove_line(frame: bytes, position: int, _bit: int) -> bytes:
    lines = _lines(frame)
    index = position % len(lines)
    return b"\n".join(lines[:index] + lines[index + 1 :])


def huge_length(frame: bytes, position: int, _bit: int) -> bytes:
    values = [b"99999999999999999999", b"%d" % (CAP + 1), b"4294967296", b"-1", b"0", b"x"]
    value = values[position % len(values)]
    head, sep, body = frame.partition(b"\n\n")
    lines = [
        b"Content-Length: " + value if line.startswith(b"Content-Length:") else line
        for line in head.split(b"\n")
    ]
    if not any(line.startswith(b"Content-Length:") for line in head.split(b"\n")):
        lines.append(b"Content-Length: " + value)
    return b"\n".join(lines) + sep + body


def insert_garbage(frame: bytes, position: int, bit: int) -> bytes:
    garbage = [b"\n\n", b"\n", b": ", b"%", b"%0A", b"\xff\xfe", b"\x00", b"Content-Length: 7\n"]
    index = position % (len(frame) + 1)
    return frame[:index] + garbage[bit % len(garbage)] + frame[index:]


def change_content_type(frame: bytes, position: int, _bit: int) -> bytes:
    kinds = [
        b"text/event-json",
        b"text/event-plain",
        b"api/response",
        b"log/data",
        b"text/rude-rejection",
        b"text/disconnect-notice",
        b"command/reply",
        b"auth/request",
        b"x/unknown",
    ]
    head, sep, body = frame.partition(b"\n\n")
    lines = [
        b"Content-Type: " + kinds[position % len(kinds)]
        if line.startswith(b"Content-Type:")
        else line
        for line in head.split(b"\n")
    ]
    return b"\n".join(lines) + sep + body


MUTATIONS = [
    bit_flip,
    truncate,
    duplicate_line,
    remove_line,
    huge_length,
    insert_garbage,
    change_content_type,
]


@st.composite
def mutated_stream(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    frames = seed_frames()
    picked = draw(st.lists(st.sampled_from(frames), min_size=1, max_size=3))
    out = []
    for frame in picked:
        steps = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(MUTATIONS),
                    st.integers(0, 2**20),
                    st.integers(0, 7),
                ),
                max_size=3,
            )
        )
        for mutation, position, bit in steps:
            frame = mutation(frame, position, bit)
        out.append(frame)
    cuts = draw(st.lists(st.integers(0, 2**20), max_size=8))
    return b"".join(out), cuts


@FUZZ
@given(mutated_stream())
def test_mutated_capture_frames_parse_or_raise_protocol_error(case):
    data, cuts = case
    feed_in_chunks(data, cuts)


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_random_bytes_parse_or_raise_protocol_error(data, cuts):
    feed_in_chunks(data, cuts, cap=256)


@st.composite
def framed_garbage(draw: st.DrawFn) -> bytes:
    """Valid outer framing around random content: exercises every reader."""
    kind = draw(
        st.sampled_from(
            [
                "text/event-plain",
                "text/event-json",
                "api/response",
                "command/reply",
                "text/disconnect-notice",
                "log/data",
                "text/rude-rejection",
                "auth/request",
            ]
        )
    )
    body = draw(
        st.one_of(
            st.binary(max_size=300),
            st.text(max_size=200).map(str.encode),
            st.just(b"[" * 5000),
            st.just(b'{"a":' * 5000),
            st.just(b'{"Event-Name": "X", "_body": {"nested": [1, 2.5, null]}, "n": 1e999}'),
            st.just(b'{"n": ' + b"9" * 5000 + b"}"),
            st.just(b"Event-Name: X\nContent-Length: 999\n\nshort"),
            st.just(b"Event-Name: X\nContent-Length: -3\n\n"),
            st.just(b"\n\nEvent-Name: X\n\n"),
        )
    )
    head = f"Content-Type: {kind}\nContent-Length: {len(body)}\n\n".encode()
    return head + body


@FUZZ
@given(st.lists(framed_garbage(), min_size=1, max_size=4), st.lists(st.integers(0, 2**16)))
def test_every_reader_parses_or_raises_protocol_error(frames, cuts):
    feed_in_chunks(b"".join(frames), cuts)


@settings(max_examples=500, deadline=None, database=None)
@given(st.text(max_size=300), st.booleans())
def test_parse_header_block_returns_dict_or_raises(block, decode):
    try:
        headers = parse_header_block(block, decode=decode)
    except EslProtocolError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())


@settings(max_examples=500, deadline=None, database=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_command_decoder_parses_or_raises_protocol_error(data, cuts):
    decoder = CommandDecoder(max_frame_bytes=128)
    points = sorted({c % (len(data) + 1) for c in cuts})
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        decoder.feed(data[start:end])
        try:
            list(decoder)
        except EslProtocolError:
            with pytest.raises(EslProtocolError):
                decoder.next_command()
            return


def test_deep_json_raises_protocol_error():
    for body in (b"[" * 100_000, b'{"a":' * 100_000):
        decoder = FrameDecoder()
        decoder.feed(b"Content-Type: text/event-json\nContent-Length: %d\n\n%s" % (len(body), body))
        with pytest.raises(EslProtocolError):
            decoder.next_frame()
        assert decoder.buffered == 0


def test_byte_by_byte_head_up_to_the_cap_is_linear():
    # A head that never ends, fed one byte at a time: every byte must not
    # rescan what came before (that would be quadratic, i.e. a hang).
    cap = 64 * 1024
    decoder = FrameDecoder(max_frame_bytes=cap)
    data = b"X-Pad: " + b"a" * (cap + 10)
    with pytest.raises(EslProtocolError):
        for index in range(len(data)):
            decoder.feed(data[index : index + 1])
            assert decoder.next_frame() is None
            assert decoder.buffered <= cap
    # Broken for good: nothing after a framing error is trusted.
    decoder.feed(b"\n\nContent-Type: auth/request\n\n")
    with pytest.raises(EslProtocolError):
        decoder.next_frame()


def test_caches_stay_bounded_under_unique_values():
    from fsconf.esl import codec

    decoder = FrameDecoder()
    for index in range(40_000):
        decoder.feed(
            b"Content-Type: command/reply\nReply-Text: %%2B%d\nX: %s\n\n" % (index, b"%41" * 300)
        )
        decoder.next_frame()
    assert len(codec._UNQUOTE_CACHE) <= codec._UNQUOTE_CACHE_MAX
    assert len(codec._LINE_CACHE) <= codec._LINE_CACHE_MAX
    assert all(len(key) <= codec._CACHE_MAX_TEXT for key in codec._LINE_CACHE)
