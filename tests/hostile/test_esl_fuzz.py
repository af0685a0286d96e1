"""Hostile bytes on the Event Socket: the codec at volume, then a live connection.

1. **Codec, 100,000+ inputs.** Real frames from every capture, mutated with a
   seeded generator (bit flips, truncation, duplicated header lines, bogus
   Content-Length, garbage inserted, swapped Content-Type) or replaced by
   random bytes, glued into streams and fed in random chunks.  For each input
   the decoder returns frames or raises :class:`EslProtocolError`, nothing
   else; makes progress; never holds more than one capped frame; and an
   unmutated stream gives back exactly its frames.  A watchdog timer turns a
   hang into a failure naming the input's seed.
2. **Memory.**  tracemalloc over the worst inputs (a head that never ends, a
   body that never comes, unique header values by the thousand): the peak
   stays bounded by the frame cap, not by what the peer sends.
3. **A live socket.**  A scripted FreeSWITCH sends good events, then garbage
   (and good events after it, on the same connection), to a real
   :class:`InboundClient`.  The connection is torn down and logged, the client
   reconnects and the switch sees a second ``auth`` and ``event`` subscription;
   events sent after the reconnect are delivered.  Recoverable oddities
   (invalid UTF-8, a stray newline) do not cost the connection.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator

import gevent
import gevent.queue
import pytest

from fsconf.errors import EslProtocolError
from fsconf.esl import codec
from fsconf.esl.codec import FrameDecoder, encode_event_plain, encode_frame
from fsconf.esl.frames import Event
from fsconf.esl.inbound import InboundClient
from tests.esl import captures
from tests.esl.scripted_server import WAIT, ScriptedConnection, ScriptedSwitch

CAP = 16 * 1024
INPUTS = 100_000
SEED = 20250301


# --- the generator ---------------------------------------------------------------------


def seed_frames() -> list[bytes]:
    """Every distinct frame FreeSWITCH sent in the captures, in file order."""
    seen: dict[bytes, None] = {}
    for _name, _conn, frames in captures.in_streams():
        for frame in frames:
            seen.setdefault(frame, None)
    return list(seen)


def _bit_flip(rng: random.Random, frame: bytes) -> bytes:
    if not frame:
        return frame
    index = rng.randrange(len(frame))
    return frame[:index] + bytes([frame[index] ^ (1 << rng.randrange(8))]) + frame[index + 1 :]


def _truncate(rng: random.Random, frame: bytes) -> bytes:
    return frame[: rng.randrange(len(frame) + 1)]


def _duplicate_header(rng: random.Random, frame: bytes) -> bytes:
    head, sep, body = frame.partition(b"\n\n")
    lines = head.split(b"\n")
    index = rng.randrange(len(lines))
    lines.insert(index, lines[index])
    return b"\n".join(lines) + sep + body


_LENGTHS = (
    b"-1", b"+12", b" 12", b"1_0", b"0x10", b"1e3", b"\xd9\xa3", b"", b"99999999999999999999",
    b"%d" % (CAP + 1), b"4294967296", b"0", b"1", b"00000000000000000000000007",
)  # fmt: skip


def _bogus_length(rng: random.Random, frame: bytes) -> bytes:
    head, sep, body = frame.partition(b"\n\n")
    value = rng.choice(_LENGTHS)
    lines = [line for line in head.split(b"\n") if not line.lower().startswith(b"content-length:")]
    lines.insert(
        rng.randrange(len(lines) + 1),
        rng.choice((b"Content-Length", b"content-length")) + b": " + value,
    )
    return b"\n".join(lines) + sep + body


_GARBAGE = (
    b"\n\n", b"\n", b": ", b":", b"%", b"%0A", b"%%%", b"\xff\xfe\xfd", b"\x00" * 3, b"\r\n",
    b"Content-Length: 7\n", b"Content-Type: text/event-json\n", b"\n\n\n\n", b"{", b"\x80",
)  # fmt: skip


def _insert_garbage(rng: random.Random, frame: bytes) -> bytes:
    index = rng.randrange(len(frame) + 1)
    junk = rng.randbytes(rng.randrange(1, 64)) if rng.random() < 0.2 else rng.choice(_GARBAGE)
    return frame[:index] + junk + frame[index:]


_KINDS = (
    b"text/event-json", b"text/event-plain", b"api/response", b"log/data", b"command/reply",
    b"text/rude-rejection", b"text/disconnect-notice", b"auth/request", b"x/unknown", b"",
)  # fmt: skip


def _swap_content_type(rng: random.Random, frame: bytes) -> bytes:
    head, sep, body = frame.partition(b"\n\n")
    kind = rng.choice(_KINDS)
    lines = [
        b"Content-Type: " + kind if line.startswith(b"Content-Type:") else line
        for line in head.split(b"\n")
    ]
    return b"\n".join(lines) + sep + body


MUTATIONS: tuple[Callable[[random.Random, bytes], bytes], ...] = (
    _bit_flip,
    _truncate,
    _duplicate_header,
    _bogus_length,
    _insert_garbage,
    _swap_content_type,
)


def make_input(rng: random.Random, seeds: list[bytes]) -> tuple[bytes, int, bool]:
    """One stream: (bytes, number of frames used, whether it was left intact)."""
    if rng.random() < 0.1:
        return rng.randbytes(rng.randrange(1, 400)), 1, False
    count = rng.choice((1, 1, 1, 2, 3))
    intact = rng.random() < 0.05
    parts = []
    for _ in range(count):
        frame = rng.choice(seeds)
        if not intact:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                frame = rng.choice(MUTATIONS)(rng, frame)
        parts.append(frame)
    return b"".join(parts), count, intact


# --- the oracle ------------------------------------------------------------------------


@contextlib.contextmanager
def watchdog(seconds: float, what: Callable[[], str]) -> Iterator[None]:
    """Fail (instead of hanging CI) if the block runs longer than ``seconds``."""

    def expired(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"no progress within {seconds:g}s on {what()}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def decode(data: bytes, cuts: list[int], outcome: Counter[str], cap: int = CAP) -> int:
    """Feed ``data`` in chunks; return the frames decoded. Any other exception fails."""
    decoder = FrameDecoder(max_frame_bytes=cap)
    frames = 0
    start = 0
    for end in [*cuts, len(data)]:
        decoder.feed(data[start:end])
        start = end
        # Every frame consumes at least one byte, so the frames of one chunk
        # are bounded by the bytes buffered: a loop past that is a hang.
        for _ in range(decoder.buffered + 2):
            before = decoder.buffered
            try:
                frame = decoder.next_frame()
            except EslProtocolError:
                after = decoder.buffered
                try:
                    decoder.next_frame()
                except EslProtocolError:
                    if decoder.buffered == after:
                        outcome["broken"] += 1  # framing lost: stays broken
                        return frames
                outcome["bad content, skipped"] += 1
                continue
            if frame is None:
                break
            assert decoder.buffered < before, "a frame consumed nothing"
            frames += 1
        else:
            raise AssertionError("the decoder kept returning frames without consuming bytes")
        assert decoder.buffered <= 2 * cap + 2, f"{decoder.buffered} bytes buffered"
    outcome["incomplete" if decoder.buffered else "clean"] += 1
    return frames


def test_codec_survives_100k_mutated_and_random_inputs() -> None:
    seeds = seed_frames()
    rng = random.Random(SEED)
    outcome: Counter[str] = Counter()
    frames_in = frames_out = byte_count = 0
    current = [0]
    started = time.perf_counter()
    with watchdog(120, lambda: f"input #{current[0]} (seed {SEED})"):
        for number in range(INPUTS):
            current[0] = number
            data, used, intact = make_input(rng, seeds)
            cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(4)))
            decoded = decode(data, cuts, outcome)
            if intact:
                assert decoded == used, f"input #{number}: an intact stream lost frames"
            frames_in += used
            frames_out += decoded
            byte_count += len(data)
    elapsed = time.perf_counter() - started
    assert frames_in >= INPUTS
    # The caches stay bounded whatever the peer sent.
    assert len(codec._UNQUOTE_CACHE) <= codec._UNQUOTE_CACHE_MAX
    assert len(codec._LINE_CACHE) <= codec._LINE_CACHE_MAX
    print(
        f"\nESL codec fuzz: {INPUTS} inputs, {frames_in} frames in ({byte_count / 1e6:.1f} MB), "
        f"{frames_out} frames decoded, {dict(outcome)}; {frames_in / elapsed:,.0f} frames/s, "
        f"{byte_count / elapsed / 1e6:.1f} MB/s"
    )


def test_memory_is_bounded_by_the_cap_not_by_the_peer() -> None:
    cap = 256 * 1024
    chunk = b"X-Pad: " + b"a" * 65_529  # 64 kB, no blank line
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        # A head that never ends: 8 MB offered, refused at the cap.
        decoder = FrameDecoder(max_frame_bytes=cap)
        with pytest.raises(EslProtocolError):
            for _ in range(128):
                decoder.feed(chunk)
                assert decoder.next_frame() is None
        # A body that never comes: a legal length under the cap, then silence.
        decoder = FrameDecoder(max_frame_bytes=cap)
        decoder.feed(b"Content-Type: api/response\nContent-Length: %d\n\n" % cap)
        for _ in range(3):
            decoder.feed(b"b" * 65_536)
            assert decoder.next_frame() is None
        del decoder
        # Thousands of distinct, long header values (the caches must not keep them all).
        decoder = FrameDecoder(max_frame_bytes=cap)
        for number in range(5_000):
            decoder.feed(
                b"Content-Type: command/reply\nReply-Text: +OK %d %s\n\n" % (number, b"%41" * 90)
            )
            decoder.next_frame()
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    # A few frames' worth plus the bounded caches; the peer offered 8 MB.
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes"
    print(
        f"\nESL codec memory: peak {peak / 1e6:.1f} MB while the peer offered "
        "8.4 MB of unframed bytes"
    )


# --- a live connection -----------------------------------------------------------------

ROOM = "CF" + "e" * 32


def event(number: int, core: str = "core-1") -> bytes:
    return encode_event_plain(
        {
            "Event-Name": "CUSTOM",
            "Core-UUID": core,
            "Event-Subclass": "conference::maintenance",
            "Conference-Name": ROOM,
            "Action": "fuzz-marker",
            "Marker": str(number),
        }
    )


#: Bytes after which nothing on the connection can be trusted.
UNRECOVERABLE: dict[str, bytes] = {
    "not a header line": b"this is not ESL\n\n",
    "empty header name": b": x\nContent-Type: api/response\n\n",
    "negative Content-Length": b"Content-Type: api/response\nContent-Length: -5\n\n",
    "huge Content-Length": b"Content-Type: api/response\nContent-Length: 99999999999\n\n",
    "non-ASCII digits": "Content-Type: api/response\nContent-Length: \u0663\n\nabc".encode(),
    "unknown Content-Type": b"Content-Type: x/evil\nContent-Length: 3\n\nabc",
    "bad event JSON": encode_frame("text/event-json", b'{"Event-Name": "CUSTOM", '),
    "deep event JSON": encode_frame("text/event-json", b"[" * 50_000),
    "head over the cap": b"X-Pad: " + b"z" * (codec.DEFAULT_MAX_FRAME_BYTES + 16),
}


@pytest.fixture
def switch() -> Iterator[ScriptedSwitch]:
    with ScriptedSwitch(core_uuid="core-1") as scripted:
        yield scripted


def markers(events: gevent.queue.Queue[Event], count: int) -> list[str]:
    found = []
    for _ in range(count):
        item = events.get(timeout=WAIT)
        found.append(str(item.get("Marker")))
    return found


def handshake(peer: ScriptedConnection) -> list[str]:
    return [command.line.split(" ", 1)[0] for command in peer.received]


def start_client(
    switch: ScriptedSwitch, on_event: Callable[[Event], None]
) -> tuple[InboundClient, gevent.queue.Queue[int]]:
    """A real client; the queue gets one item per connection made ready.

    The reconcile hook runs after auth and the event subscription of each
    connection, before dispatch resumes: it is how the test knows, without
    polling, that a reconnect has completed.
    """
    ready: gevent.queue.Queue[int] = gevent.queue.Queue()
    client = InboundClient(
        "127.0.0.1",
        switch.port,
        "ClueCon",
        subscriptions=["conference::maintenance"],
        on_event=on_event,
        reconcile=lambda inbound: ready.put(inbound.connections_made + 1),
        random=lambda: 0.0,
        connect_timeout=WAIT,
        command_timeout=WAIT,
    )
    client.start()
    return client, ready


def test_garbage_tears_the_connection_down_and_the_client_resubscribes(
    switch: ScriptedSwitch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fsconf.esl")
    events: gevent.queue.Queue[Event] = gevent.queue.Queue()
    client, ready = start_client(
        switch, lambda item: events.put(item) if item.name == "CUSTOM" else None
    )
    try:
        assert ready.get(timeout=WAIT) == 1
        peer = switch.next_connection()
        number = 0
        for kind, garbage in UNRECOVERABLE.items():
            # Good events arrive...
            peer.send(event(number), event(number + 1))
            assert markers(events, 2) == [str(number), str(number + 1)], kind
            # ...then garbage, and a good event right behind it on the same socket.
            with contextlib.suppress(OSError):  # the client may close first
                peer.send(garbage + event(number + 2))
            assert peer.wait_closed(WAIT), f"{kind}: the connection was kept"
            switch_seen = switch.next_connection()
            # The same handshake again: auth, core uuid, one event subscription.
            assert ready.get(timeout=WAIT) == number // 4 + 2, kind
            assert handshake(switch_seen) == ["auth", "api", "event"], kind
            assert switch_seen.received[2].line == (
                "event plain HEARTBEAT BACKGROUND_JOB CUSTOM conference::maintenance"
            )
            # Events after the reconnect are delivered; the one behind the garbage is not.
            switch_seen.send(event(number + 3))
            assert markers(events, 1) == [str(number + 3)], kind
            peer = switch_seen
            number += 4
        assert client.connections_made == 1 + len(UNRECOVERABLE)
        assert events.empty()
    finally:
        client.stop()
    # Every teardown was logged (never silent), and no log line quotes the bytes.
    torn = [
        r
        for r in caplog.records
        if "not ESL" in r.getMessage() or "protocol error" in r.getMessage()
    ]
    assert len({id(r) for r in torn}) >= len(UNRECOVERABLE)
    assert not any("this is not ESL" in r.getMessage() for r in caplog.records)
    assert not any("x/evil" in r.getMessage() for r in caplog.records)
    unexpected = [
        r for r in caplog.records if r.exc_info and not isinstance(r.exc_info[1], EslProtocolError)
    ]
    assert unexpected == []
    print(
        f"\nESL live socket: {len(UNRECOVERABLE)} kinds of garbage, "
        f"{len(UNRECOVERABLE)} teardowns, "
        f"{client.connections_made} connections (each re-authenticated and resubscribed), "
        f"{number // 4 * 3} good events delivered"
    )


def test_recoverable_oddities_keep_the_connection(switch: ScriptedSwitch) -> None:
    events: gevent.queue.Queue[Event] = gevent.queue.Queue()
    client, ready = start_client(
        switch, lambda item: events.put(item) if item.name == "CUSTOM" else None
    )
    try:
        assert ready.get(timeout=WAIT) == 1
        peer = switch.next_connection()
        odd = encode_event_plain(
            {
                "Event-Name": "CUSTOM",
                "Event-Subclass": "conference::maintenance",
                "Conference-Name": ROOM,
                "Marker": "odd",
                "Caller-Caller-ID-Name": "Zo\udcffe %0A\r\nX-Injected: 1",
            },
            body="\udcfe\udcff body bytes",
        )
        peer.send(b"\n\n", odd, b"\n", event(1))
        first, second = events.get(timeout=WAIT), events.get(timeout=WAIT)
        assert first.get("Marker") == "odd" and second.get("Marker") == "1"
        # Decoded once: the encoded CR/LF stayed inside its value, no new header.
        assert first.get("X-Injected") is None
        assert first.get("Caller-Caller-ID-Name") == "Zo\udcffe %0A\r\nX-Injected: 1"
        assert first.body is not None and first.body.startswith("\udcfe\udcff")
        assert client.connections_made == 1 and peer.closed.is_set() is False
    finally:
        client.stop()


def test_random_mutated_streams_over_a_live_socket(
    switch: ScriptedSwitch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever a stream does to the client, the next connection works again."""
    seeds = seed_frames()
    rng = random.Random(SEED + 1)
    events: gevent.queue.Queue[Event] = gevent.queue.Queue()
    failures: list[BaseException] = []
    lazy_errors = Counter[str]()

    def handle(item: Event) -> None:
        try:
            # Read every header, as a handler could.
            dict(item.headers)
        except EslProtocolError:
            lazy_errors["handler saw EslProtocolError reading headers"] += 1
        except Exception as error:  # anything else is a bug to report
            failures.append(error)
        if item.get("Action") == "fuzz-marker":
            events.put(item)

    client, ready = start_client(switch, handle)
    rounds = 60
    frames_sent = 0
    try:
        assert ready.get(timeout=WAIT) == 1
        peer = switch.next_connection()
        for number in range(rounds):
            stream = b"".join(make_input(rng, seeds)[0] for _ in range(5))
            frames_sent += 5
            with contextlib.suppress(OSError):
                peer.send(stream)
            # The switch hangs up after the stream: whatever state the client
            # was in, it must come back, resubscribe and deliver.
            peer.close()
            peer = switch.next_connection()
            assert ready.get(timeout=WAIT) == number + 2, f"round {number}"
            assert handshake(peer) == ["auth", "api", "event"]
            peer.send(event(number))
            while True:
                item = events.get(timeout=WAIT)
                if item.get("Marker") == str(number):
                    break
        assert failures == []
        assert client.connections_made == rounds + 1
    finally:
        client.stop()
    dropped = [r for r in caplog.records if "on_frame failed" in r.getMessage()]
    print(
        f"\nESL live fuzz: {rounds} mutated streams ({frames_sent} frames), {rounds} reconnects, "
        f"all resubscribed; {dict(lazy_errors)}; on_frame failures {len(dropped)}"
    )
