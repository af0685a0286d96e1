"""The sans-IO ESL codec against the real FreeSWITCH captures in tests/data.

Oracle: every ``in`` line of a capture is exactly one frame, so decoding it on
its own must give exactly one frame and leave nothing behind; the whole
stream, however it is chunked, must give the same frames in the same order.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsconf.errors import EslProtocolError
from fsconf.esl.codec import (
    CommandDecoder,
    FrameDecoder,
    encode_api_response,
    encode_command_reply,
    encode_event_json,
    encode_event_plain,
    parse_header_block,
)
from fsconf.esl.frames import (
    ApiResponse,
    AuthRequest,
    CommandReply,
    DisconnectNotice,
    Event,
    LogData,
    RudeRejection,
)
from tests.esl import captures

STREAMS = captures.in_streams()
STREAM_IDS = [f"{name}:{conn}" for name, conn, _ in STREAMS]
COMMAND_STREAMS = captures.out_streams()
COMMAND_IDS = [f"{name}:{conn}" for name, conn, _ in COMMAND_STREAMS]

TYPE_OF_CONTENT = {
    "auth/request": AuthRequest,
    "command/reply": CommandReply,
    "api/response": ApiResponse,
    "text/event-plain": Event,
    "text/event-json": Event,
    "text/disconnect-notice": DisconnectNotice,
}

# The "frames in" column of the tables in tests/data/README.md.
README_FRAMES_IN = {
    "basic_two_party.jsonl": 145,
    "moderated.jsonl": 197,
    "mute_hold_kick.jsonl": 344,
    "recording.jsonl": 169,
    "maxmembers_lock.jsonl": 542,
    "hangup_causes.jsonl": 418,
    "json_events.jsonl": 145,
    "errors.jsonl": 250,
    "outbound_socket.jsonl": 50,
    "extras.jsonl": 331,
    "sipp_inbound.jsonl": 89,
    "b2_outbound_conference_flow.jsonl": 270,
    "b2_end_room_continue.jsonl": 667,
    "b2_hangup_on_star.jsonl": 263,
    "b2_relate_coach.jsonl": 241,
    "b2_announcements.jsonl": 544,
    "b2_hold_native.jsonl": 207,
    "b2_max_members_full.jsonl": 473,
    "b2_record_lifecycle.jsonl": 420,
    "b2_speaker_storm.jsonl": 301,
    "b2_park_then_join.jsonl": 228,
    "b2_reconcile_views.jsonl": 388,
    "b2_bgapi_jobuuid.jsonl": 44,
    "b2_jitterbuffer.jsonl": 237,
    "b2_tts_and_http_play.jsonl": 210,
    "b2_dtmf_in_conference.jsonl": 226,
}


def decode_each(frames: tuple[bytes, ...]) -> list[object]:
    """The reference: every captured frame decoded on its own."""
    out = []
    for raw in frames:
        decoder = FrameDecoder()
        decoded = decoder.frames(raw)
        assert len(decoded) == 1, raw[:200]
        assert decoder.buffered == 0
        out.append(decoded[0])
    return out


def decode_chunks(chunks: list[bytes]) -> tuple[list[object], FrameDecoder]:
    decoder = FrameDecoder()
    out: list[object] = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    return out, decoder


def random_chunks(data: bytes, seed: str, largest: int = 5000) -> list[bytes]:
    rng = random.Random(seed)
    chunks, offset = [], 0
    while offset < len(data):
        size = rng.randint(1, largest)
        chunks.append(data[offset : offset + size])
        offset += size
    return chunks


def byte_sample(frames: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """Frames fed byte by byte: every frame that is not a plain event, every
    event with an inner body, and the first 25 events of the connection.

    Feeding all 15 MB of captures one byte at a time would take minutes; this
    keeps every frame type, every content-length shape and every connection.
    """
    picked, events = [], 0
    for raw in frames:
        kind = captures.content_type(raw)
        if kind != "text/event-plain":
            picked.append(raw)
        elif b"\n\n" in raw.split(b"\n\n", 1)[1].rstrip(b"\n") or events < 25:
            events += 1
            picked.append(raw)
    return tuple(picked)


def only(data: bytes) -> object:
    decoder = FrameDecoder()
    frames = decoder.frames(data)
    assert len(frames) == 1
    assert decoder.buffered == 0
    return frames[0]


# --- every capture, every chunking ---------------------------------------------


@pytest.mark.parametrize(("name", "conn", "frames"), STREAMS, ids=STREAM_IDS)
def test_whole_stream_gives_each_captured_frame(name, conn, frames):
    expected = decode_each(frames)
    decoded, decoder = decode_chunks([b"".join(frames)])
    assert decoded == expected
    assert decoder.buffered == 0
    assert decoder.next_frame() is None


@pytest.mark.parametrize(("name", "conn", "frames"), STREAMS, ids=STREAM_IDS)
def test_random_chunks_give_the_same_frames(name, conn, frames):
    expected = decode_each(frames)
    decoded, decoder = decode_chunks(random_chunks(b"".join(frames), f"{name}:{conn}"))
    assert decoded == expected
    assert decoder.buffered == 0


@pytest.mark.parametrize(("name", "conn", "frames"), STREAMS, ids=STREAM_IDS)
def test_byte_by_byte_gives_the_same_frames(name, conn, frames):
    sample = byte_sample(frames)
    expected = decode_each(sample)
    data = b"".join(sample)
    decoded, decoder = decode_chunks([data[i : i + 1] for i in range(len(data))])
    assert decoded == expected
    assert decoder.buffered == 0


@pytest.mark.parametrize(("name", "conn", "frames"), STREAMS, ids=STREAM_IDS)
def test_trailing_partial_frame_stays_buffered(name, conn, frames):
    expected = decode_each(frames)
    first = frames[0]
    for cut in (1, len(first) // 2, len(first) - 1):
        partial = first[:cut]
        decoder = FrameDecoder()
        decoded = decoder.frames(b"".join(frames) + partial)
        assert decoded == expected
        assert decoder.buffered == len(partial)
        assert decoder.next_frame() is None
        assert decoder.frames(first[cut:]) == [expected[0]]
        assert decoder.buffered == 0


@pytest.mark.parametrize("name", captures.capture_names())
def test_frame_counts_per_type(name):
    expected: dict[str, int] = {}
    decoded: dict[str, int] = {}
    total = 0
    for frames in captures.in_frames(name).values():
        for raw, frame in zip(frames, decode_each(frames), strict=True):
            kind = captures.content_type(raw)
            assert type(frame) is TYPE_OF_CONTENT[kind], kind
            if isinstance(frame, Event):
                assert frame.format == ("json" if kind == "text/event-json" else "plain")
            expected[kind] = expected.get(kind, 0) + 1
            key = type(frame).__name__ + (f"/{frame.format}" if isinstance(frame, Event) else "")
            decoded[key] = decoded.get(key, 0) + 1
            total += 1
    assert total == README_FRAMES_IN[name]
    assert expected["auth/request"] == decoded["AuthRequest"] == 1
    assert expected.get("command/reply", 0) == decoded.get("CommandReply", 0)
    assert expected.get("api/response", 0) == decoded.get("ApiResponse", 0)
    assert expected.get("text/event-plain", 0) == decoded.get("Event/plain", 0)
    assert expected.get("text/event-json", 0) == decoded.get("Event/json", 0)
    assert expected.get("text/disconnect-notice", 0) == decoded.get("DisconnectNotice", 0)


def test_known_counts_of_basic_two_party():
    counts: dict[str, int] = {}
    for frame in decode_each(captures.in_frames("basic_two_party.jsonl")["main"]):
        counts[type(frame).__name__] = counts.get(type(frame).__name__, 0) + 1
    assert counts == {
        "AuthRequest": 1,
        "CommandReply": 5,
        "ApiResponse": 5,
        "Event": 133,
        "DisconnectNotice": 1,
    }


# --- what the captures say, frame by frame ----------------------------------------


def test_outbound_connect_reply_carries_channel_data():
    # Surprise 17: CHANNEL_DATA headers first, then Content-Type, and an
    # URL-encoded Reply-Text.
    raw = captures.in_frames("outbound_socket.jsonl")["outbound"][0]
    assert b"Reply-Text: %2BOK%0A\n" in raw
    assert raw.index(b"Event-Name: CHANNEL_DATA") < raw.index(b"Content-Type: command/reply")
    frame = only(raw)
    assert isinstance(frame, CommandReply)
    assert frame.reply_text == "+OK\n"
    assert frame.ok
    assert frame.headers["Event-Name"] == "CHANNEL_DATA"
    assert frame.headers["Content-Type"] == "command/reply"
    assert frame.headers["Socket-Mode"] == "async"
    assert frame.headers["Control"] == "full"
    assert frame.headers["variable_current_application_data"] == "127.0.0.1:8084 async full"
    assert frame.headers["FreeSWITCH-IPv6"] == "fd00::2"
    assert frame.headers["Event-Date-GMT"] == "Wed, 25 Nov 2026 14:12:26 GMT"
    assert "Content-Length" not in frame.headers


def test_every_connect_reply_of_batch_2_is_a_command_reply_with_channel_data():
    seen = 0
    for name in captures.capture_names():
        for conn, frames in captures.in_frames(name).items():
            if not conn.startswith("call-"):
                continue
            frame = only(frames[0])
            assert isinstance(frame, CommandReply)
            assert frame.reply_text == "+OK\n"
            assert frame.headers["Event-Name"] == "CHANNEL_DATA"
            seen += 1
    assert seen >= 20


def test_background_job_body_is_the_api_output():
    raw = captures.find_frame("basic_two_party.jsonl", b"Event-Name: BACKGROUND_JOB")
    frame = only(raw)
    assert isinstance(frame, Event)
    assert frame.name == "BACKGROUND_JOB"
    assert frame.body == "+OK 7dea7e7f-57b9-4d1e-8b20-aaff175e8a28\n"
    assert frame.job_uuid == "e069c4e2-878c-4f4f-9191-91bcb7795c7a"
    assert frame.headers["Job-Command"] == "originate"
    assert frame.headers["Job-Command-Arg"] == (
        "{origination_uuid=7dea7e7f-57b9-4d1e-8b20-aaff175e8a28,"
        "origination_caller_id_number=1001,origination_caller_id_name=Alice}"
        "loopback/talk/default &conference(room-basic@default)"
    )
    assert frame.headers["Content-Length"] == "41"
    # The body never leaks into a header (greenswitch's defect).
    assert not any("+OK" in value for value in frame.headers.values())


def test_every_background_job_has_a_body_cut_by_its_content_length():
    seen = 0
    for _name, _conn, frames in STREAMS:
        for raw, frame in zip(frames, decode_each(frames), strict=True):
            if isinstance(frame, Event) and frame.name == "BACKGROUND_JOB":
                assert frame.body is not None
                assert len(frame.body.encode()) == int(frame.headers["Content-Length"])
                if frame.format == "plain":
                    assert raw.endswith(b"\n\n" + frame.body.encode())
                seen += 1
    assert seen > 50


def test_json_events_use_body_and_string_values():
    frames = captures.in_frames("json_events.jsonl")["main"]
    events = [f for f in decode_each(frames) if isinstance(f, Event)]
    assert len(events) == 133
    raw_events = [r for r in frames if captures.content_type(r) == "text/event-json"]
    for raw, event in zip(raw_events, events, strict=True):
        assert event.format == "json"
        assert all(isinstance(v, str) for v in event.headers.values())
        original = json.loads(raw.split(b"\n\n", 1)[1])
        assert event.body == original.pop("_body", None)
        assert dict(event.headers) == original
    jobs = [e for e in events if e.name == "BACKGROUND_JOB"]
    assert jobs
    assert jobs[0].body is not None
    assert jobs[0].body.startswith("+OK ")
    assert jobs[0].body.endswith("\n")
    assert len(jobs[0].body.encode()) == int(jobs[0].headers["Content-Length"])


def test_disconnect_notice_linger_then_disconnect():
    notices = [
        f
        for f in decode_each(captures.in_frames("outbound_socket.jsonl")["outbound"])
        if isinstance(f, DisconnectNotice)
    ]
    assert len(notices) == 2
    linger, goodbye = notices
    assert linger.linger
    assert linger.linger_time == -1
    assert linger.body == ""
    assert not goodbye.linger
    assert goodbye.linger_time is None
    assert goodbye.headers["Content-Disposition"] == "disconnect"
    assert goodbye.body == "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def test_empty_api_output_is_err_no_reply():
    # Surprise 3: "get wait_mod" when false.
    frame = only(captures.find_frame("moderated.jsonl", b"-ERR no reply"))
    assert isinstance(frame, ApiResponse)
    assert frame.body == "-ERR no reply\n"
    assert frame.is_error


def test_api_answers_without_newline_or_ok_are_kept_exactly():
    bodies = [
        f.body
        for f in decode_each(captures.in_frames("mute_hold_kick.jsonl")["main"])
        if isinstance(f, ApiResponse)
    ]
    assert "+OK mute 7\n" in bodies
    assert any(body.isdigit() for body in bodies)  # "list count": no +OK, no newline
    assert "-ERR Non-Existant ID 999\n" in bodies


def test_percent_in_captured_value_is_decoded_once():
    raw = captures.find_frame(
        "b2_outbound_conference_flow.jsonl",
        b"variable_conference_enter_sound: tone_stream%3A//%25(200,0,800)\n",
    )
    frame = only(raw)
    assert isinstance(frame, Event)
    assert frame.headers["variable_conference_enter_sound"] == "tone_stream://%(200,0,800)"


def test_header_values_are_decoded_exactly_once():
    frame = only(
        b"Content-Type: command/reply\nReply-Text: %25\nA: 100%2525\nB: 50%\nC: %zz%4\n"
        b"D: a%3A%20b%0AE%3A%20x\n\n"
    )
    assert isinstance(frame, CommandReply)
    assert frame.reply_text == "%"
    assert frame.headers["A"] == "100%25"
    assert frame.headers["B"] == "50%"
    assert frame.headers["C"] == "%zz%4"
    # Decoded after splitting: an encoded newline or ": " makes no header.
    assert frame.headers["D"] == "a: b\nE: x"
    assert "E" not in frame.headers


def test_body_with_blank_lines_and_content_length_text_is_not_split():
    body = b"Content-Length: 3\n\nabc\n\nContent-Type: auth/request\n\n"
    data = b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(body), body)
    decoder = FrameDecoder()
    frames = decoder.frames(data + b"Content-Type: auth/request\n\n")
    assert frames == [ApiResponse(body.decode(), frames[0].headers), AuthRequest()]
    assert decoder.buffered == 0


def test_event_body_with_blank_lines_is_cut_by_its_own_length():
    inner_body = b"line1\n\nContent-Length: 99\n\nline3\n"
    inner = b"Event-Name: BACKGROUND_JOB\nContent-Length: %d\n\n%s" % (len(inner_body), inner_body)
    frame = only(b"Content-Type: text/event-plain\nContent-Length: %d\n\n%s" % (len(inner), inner))
    assert isinstance(frame, Event)
    assert frame.body == inner_body.decode()
    assert frame.name == "BACKGROUND_JOB"


def test_invalid_utf8_survives_in_body_and_headers():
    bad = b"caf\xc3\xa9 \xff\xfe \xc3 end"
    api = only(b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(bad), bad))
    assert isinstance(api, ApiResponse)
    assert api.body.encode("utf-8", "surrogateescape") == bad
    assert "café" in api.body

    reply = only(b"Content-Type: command/reply\nReply-Text: -ERR " + bad + b"\nX: %FF%C3\n\n")
    assert isinstance(reply, CommandReply)
    assert reply.reply_text.encode("utf-8", "surrogateescape") == b"-ERR " + bad
    assert reply.headers["X"].encode("utf-8", "surrogateescape") == b"\xff\xc3"

    inner = b"Event-Name: CUSTOM\nCaller-Name: " + bad + b"\nContent-Length: %d\n\n" % len(bad)
    inner += bad
    event = only(b"Content-Type: text/event-plain\nContent-Length: %d\n\n%s" % (len(inner), inner))
    assert isinstance(event, Event)
    assert event.headers["Caller-Name"].encode("utf-8", "surrogateescape") == bad
    assert event.body is not None
    assert event.body.encode("utf-8", "surrogateescape") == bad


def test_unknown_content_type_raises_then_the_next_frame_decodes():
    decoder = FrameDecoder()
    decoder.feed(
        b"Content-Type: text/unheard-of\nContent-Length: 5\n\nhello"
        b"Content-Type: api/response\nContent-Length: 3\n\n+OK"
    )
    with pytest.raises(EslProtocolError, match="unknown Content-Type"):
        decoder.next_frame()
    frame = decoder.next_frame()
    assert isinstance(frame, ApiResponse)
    assert frame.body == "+OK"
    assert decoder.buffered == 0


def test_frame_without_content_type_raises_and_is_skipped():
    decoder = FrameDecoder()
    decoder.feed(b"Reply-Text: +OK\n\nContent-Type: auth/request\n\n")
    with pytest.raises(EslProtocolError):
        decoder.next_frame()
    assert decoder.next_frame() == AuthRequest()


def test_head_over_the_cap_raises_and_stays_broken():
    decoder = FrameDecoder(max_frame_bytes=1024)
    decoder.feed(b"Content-Type: api/response\n" + b"X-Pad: " + b"a" * 900)
    assert decoder.next_frame() is None
    decoder.feed(b"a" * 200)
    with pytest.raises(EslProtocolError, match="1024"):
        decoder.next_frame()
    decoder.feed(b"\n\n")
    with pytest.raises(EslProtocolError):
        decoder.next_frame()


def test_content_length_over_the_cap_raises_before_the_body_arrives():
    decoder = FrameDecoder(max_frame_bytes=1024)
    decoder.feed(b"Content-Type: api/response\nContent-Length: 1025\n\n")
    with pytest.raises(EslProtocolError, match="out of range"):
        decoder.next_frame()


@pytest.mark.parametrize(
    "length", [b"-1", b"abc", b"", b" 5", b"+5", b"1_0", b"0x10", b"\xd9\xa3", b"5.0", b"9" * 40]
)
def test_bad_content_length_raises(length):
    decoder = FrameDecoder()
    decoder.feed(b"Content-Type: api/response\nContent-Length: " + length + b"\n\n12345")
    with pytest.raises(EslProtocolError):
        decoder.next_frame()


def test_bad_inner_content_length_raises_and_the_stream_goes_on():
    inner = b"Event-Name: API\nContent-Length: 50\n\nshort"
    decoder = FrameDecoder()
    decoder.feed(b"Content-Type: text/event-plain\nContent-Length: %d\n\n%s" % (len(inner), inner))
    decoder.feed(b"Content-Type: auth/request\n\n")
    with pytest.raises(EslProtocolError):
        decoder.next_frame()
    assert decoder.next_frame() == AuthRequest()


def test_lines_that_are_not_headers_raise():
    with pytest.raises(EslProtocolError):
        only(b"Content-Type: command/reply\nthis is not a header\n\n")
    with pytest.raises(EslProtocolError):
        parse_header_block(": no name")
    assert parse_header_block("Empty:\nX:y\n\nA: b") == {"Empty": "", "X": "y", "A": "b"}


def test_stray_newlines_between_frames_are_skipped():
    decoder = FrameDecoder()
    assert decoder.frames(b"\n\nContent-Type: auth/request\n\n\n") == [AuthRequest()]
    assert decoder.buffered == 0


def test_log_data():
    body = b"2026-11-25 14:10:47.864409 [DEBUG] switch_core.c:123 hello\n"
    frame = only(
        b"Content-Type: log/data\nContent-Length: %d\nLog-Level: 7\nLog-File: switch_core.c\n\n%s"
        % (len(body), body)
    )
    assert isinstance(frame, LogData)
    assert frame.body == body.decode()
    assert frame.headers["Log-Level"] == "7"


def test_rude_rejection():
    decoder = FrameDecoder()
    frames = decoder.frames(
        b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
    )
    assert len(frames) == 1
    frame = frames[0]
    assert isinstance(frame, RudeRejection)
    assert frame.body == "Access Denied, go away.\n"
    assert decoder.buffered == 0


# --- encoders are the inverse of the decoder ---------------------------------------

_NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=":"),
    min_size=1,
    max_size=12,
).filter(lambda name: name.lower() != "content-length")
_VALUE = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(["%", "%25", "%2525", ": ", "a: b", "\n", "%0A", "+OK\n", "100%", "é€😀"]),
    st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
_BODY = st.one_of(
    st.none(),
    st.text(min_size=1, max_size=200),
    st.binary(min_size=1, max_size=100).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.just("Content-Length: 3\n\nabc\n\n"),
)
_HEADERS = st.dictionaries(_NAME, _VALUE, max_size=8)
ROUND_TRIP = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _with_length(headers: dict[str, str], body: str | None) -> dict[str, str]:
    if not body:
        return headers
    return {**headers, "Content-Length": str(len(body.encode("utf-8", "surrogateescape")))}


@ROUND_TRIP
@given(_HEADERS, _BODY)
def test_event_plain_round_trip(headers, body):
    frame = only(encode_event_plain(headers, body))
    assert isinstance(frame, Event)
    assert frame.format == "plain"
    assert dict(frame.headers) == _with_length(headers, body)
    assert frame.body == (body or None)


@ROUND_TRIP
@given(st.dictionaries(st.text(max_size=12), _VALUE, max_size=8), _BODY)
def test_event_json_round_trip(headers, body):
    headers.pop("_body", None)
    headers.pop("Content-Length", None)
    frame = only(encode_event_json(headers, body))
    assert isinstance(frame, Event)
    assert frame.format == "json"
    assert dict(frame.headers) == _with_length(headers, body)
    assert frame.body == (body or None)


@ROUND_TRIP
@given(_BODY)
def test_api_response_round_trip(body):
    frame = only(encode_api_response(body or ""))
    assert isinstance(frame, ApiResponse)
    assert frame.body == (body or "")


@ROUND_TRIP
@given(_VALUE, _HEADERS)
def test_command_reply_round_trip(reply_text, extra):
    for reserved in ("Content-Type", "Reply-Text"):
        extra.pop(reserved, None)
    frame = only(encode_command_reply(reply_text, extra))
    assert isinstance(frame, CommandReply)
    assert frame.reply_text == reply_text
    assert dict(frame.headers) == {
        "Content-Type": "command/reply",
        "Reply-Text": reply_text,
        **extra,
    }


def test_command_reply_is_literal_when_it_can_be():
    assert encode_command_reply("+OK accepted") == (
        b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
    )
    assert encode_command_reply("+OK\n") == b"Content-Type: command/reply\nReply-Text: +OK%0A\n\n"


@ROUND_TRIP
@given(st.lists(st.tuples(_HEADERS, _BODY), min_size=1, max_size=5), st.randoms())
def test_encoded_stream_in_random_chunks(events, rng):
    data = b"".join(encode_event_plain(h, b) for h, b in events)
    cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 6)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    decoded, decoder = decode_chunks(chunks)
    assert [(dict(e.headers), e.body) for e in decoded] == [
        (_with_length(h, b), b or None) for h, b in events
    ]
    assert decoder.buffered == 0


# --- what a switch receives: every command of every capture ------------------------


def decode_commands(chunks: list[bytes]) -> list[object]:
    decoder = CommandDecoder()
    out: list[object] = []
    for chunk in chunks:
        decoder.feed(chunk)
        out.extend(decoder)
    return out


def rebuild(command) -> bytes:
    text = command.line + "\n" + "".join(f"{k}: {v}\n" for k, v in command.headers.items())
    if command.body is None:
        return (text + "\n").encode()
    return (text + "\n").encode() + command.body.encode()


@pytest.mark.parametrize(("name", "conn", "commands"), COMMAND_STREAMS, ids=COMMAND_IDS)
def test_command_decoder_reads_every_captured_command(name, conn, commands):
    data = b"".join(commands)
    whole = decode_commands([data])
    assert len(whole) == len(commands)
    for raw, command in zip(commands, whole, strict=True):
        assert rebuild(command) == raw
        assert command.line == raw.split(b"\n", 1)[0].decode()
    assert decode_commands([data[i : i + 1] for i in range(len(data))]) == whole


def test_sendmsg_argument_travels_as_a_body():
    commands = captures.out_commands("b2_outbound_conference_flow.jsonl")["call-1"]
    decoded = decode_commands(list(commands))
    with_body = [c for c in decoded if c.body is not None]
    assert len(with_body) == 2
    first = with_body[0]
    assert first.verb == "sendmsg"
    assert first.headers["execute-app-name"] == "set"
    assert first.headers["content-length"] == "49"
    assert first.body == "conference_enter_sound=tone_stream://%(200,0,800)"
    # The body is not followed by a blank line: the next command starts at once.
    index = decoded.index(first)
    assert decoded[index + 1].headers["execute-app-arg"] == (
        "conference_exit_sound=tone_stream://%(200,0,400)"
    )


def test_bgapi_job_uuid_header_is_kept_literal():
    decoded = decode_commands(list(captures.out_commands("b2_bgapi_jobuuid.jsonl")["inbound"]))
    jobs = [c for c in decoded if c.verb == "bgapi"]
    assert jobs[0].argument == "status"
    assert jobs[0].headers == {"Job-UUID": "ddbfa445-c005-4f54-bb10-73caf0dac22a"}
    assert any(c.headers.get("Job-UUID") == "fsconf-job-not-a-uuid-0001" for c in jobs)


def test_command_decoder_bad_content_length_stays_broken():
    decoder = CommandDecoder()
    decoder.feed(b"sendmsg\ncontent-length: nope\n\nexit\n\n")
    with pytest.raises(EslProtocolError):
        decoder.next_command()
    with pytest.raises(EslProtocolError):
        decoder.next_command()


@pytest.mark.parametrize(
    "frame",
    [
        b"Content-Type: text/plain\nSECRET-no-colon-line\n\n",
        b"Content-Type: text/event-plain\nContent-Length: SECRETx\n\n",
        b"Content-Type: SECRET/type\n\n",
    ],
)
def test_protocol_errors_never_quote_what_the_peer_sent(frame):
    """Error texts end up in logs: they measure the offending bytes, never show them."""
    decoder = FrameDecoder()
    with pytest.raises(EslProtocolError) as info:
        decoder.frames(frame)
    assert "SECRET" not in str(info.value)


def test_a_lazily_parsed_bad_header_block_raises_without_quoting_it():
    body = b"Event-Name: CUSTOM\nSECRET-garbage-line\n\n"
    frame = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body
    [event] = FrameDecoder().frames(frame)
    assert event.name == "CUSTOM"
    with pytest.raises(EslProtocolError) as info:
        dict(event.headers)
    assert "SECRET" not in str(info.value)
