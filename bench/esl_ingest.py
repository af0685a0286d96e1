"""ESL event ingest: fsconf's codec against greenswitch's reader, over loopback TCP.

Run from the repository root::

    python -m bench.esl_ingest [--events 50000] [--rounds 3]

What it does
------------
* Builds a stream of real events: every ``text/event-plain`` frame of every
  capture in ``tests/data`` (``in`` lines), repeated until ``--events`` frames.
* A server greenlet on 127.0.0.1 (ephemeral port) plays FreeSWITCH: it sends
  ``Content-Type: auth/request``, waits for ``auth ...``, answers
  ``+OK accepted`` and then writes the whole stream with ``sendall`` as fast as
  the socket takes it. The clock starts right before that ``sendall``.
* Client (a): ``greenswitch.InboundESL`` with ``register_handle('*', handler)``.
  The handler runs in greenswitch's own processing greenlet and counts; the
  clock stops when it has seen the last event. Every event really goes through
  greenswitch's reader, its queue and its dispatcher.
* Client (b): fsconf's ingest: a greenlet reads the socket with ``recv_into``
  in 256 KiB chunks, feeds :class:`fsconf.esl.codec.FrameDecoder` and hands
  every :class:`~fsconf.esl.frames.Event` to a no-op handler that counts.
  ``fsconf.esl.inbound.InboundClient`` is not measured: after auth it
  subscribes and reconciles, which this flood server does not answer.
* Both clients run in the same process, alternating, ``--rounds`` times; the
  best round of each is reported (the least disturbed by the other users of
  the machine), and every round is printed.
* Codec only: the same stream decoded from memory (no socket), frames/s.

The last line is exactly ``ratio fsconf/greenswitch: <number>``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.socket  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fsconf.esl.codec import FrameDecoder, encode_api_response, encode_command_reply  # noqa: E402
from fsconf.esl.inbound import InboundClient  # noqa: E402
from tests.esl import captures  # noqa: E402

AUTH_REQUEST = b"Content-Type: auth/request\n\n"
AUTH_OK = b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
BYE = b"Content-Type: command/reply\nReply-Text: +OK bye\n\n"
PASSWORD = "ClueCon"
CORE_UUID = "0de83979-364e-44c2-9f6c-50deb8a1e6b0"
READ_CHUNK = 256 * 1024
TIMEOUT = 120.0


def build_stream(count: int) -> tuple[bytes, int]:
    """``count`` real event-plain frames (the captures, repeated) as one blob."""
    frames = captures.event_plain_frames()
    if not frames:
        raise SystemExit("no text/event-plain frames in tests/data")
    chosen = [frames[i % len(frames)] for i in range(count)]
    return b"".join(chosen), len(chosen)


class StreamServer:
    """A fake FreeSWITCH that authenticates one client, then floods the stream."""

    def __init__(self, stream: bytes, handshake_until: bytes | None = None) -> None:
        self.stream = stream
        self.handshake_until = handshake_until
        self.listener = gevent.socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port: int = self.listener.getsockname()[1]
        self.started: float | None = None
        self._greenlet = gevent.spawn(self._serve_one)

    def _read_command(self, sock: gevent.socket.socket, pending: bytearray) -> bytes:
        while b"\n\n" not in pending:
            data = sock.recv(4096)
            if not data:
                return b""
            pending += data
        command, _, rest = bytes(pending).partition(b"\n\n")
        pending[:] = rest
        return command

    def _serve_one(self) -> None:
        sock, _ = self.listener.accept()
        try:
            pending = bytearray()
            sock.sendall(AUTH_REQUEST)
            command = self._read_command(sock, pending)
            if not command.startswith(b"auth "):
                raise RuntimeError(f"expected auth, got {command!r}")
            sock.sendall(AUTH_OK)
            self._handshake(sock, pending)
            self.started = time.perf_counter()
            sock.sendall(self.stream)
            # Keep the connection open until the client is done with it: a
            # close now would make greenswitch drop what it has queued.
            while True:
                command = self._read_command(sock, pending)
                if not command:
                    break
                if command.startswith(b"exit"):
                    sock.sendall(BYE)
                    break
        except OSError:
            pass
        finally:
            sock.close()
            self.listener.close()

    def _handshake(self, sock: gevent.socket.socket, pending: bytearray) -> None:
        """Answer what a client sends before it listens, until it subscribes.

        greenswitch sends nothing after auth; fsconf's InboundClient asks for
        the Core-UUID (to tell a restart from a dropped socket) and then
        subscribes. The flood starts after the subscription, for both.
        """
        if self.handshake_until is None:
            return
        while True:
            command = self._read_command(sock, pending)
            if not command:
                raise RuntimeError("client left during the handshake")
            if command.startswith(b"api "):
                sock.sendall(encode_api_response(CORE_UUID))
            else:
                sock.sendall(encode_command_reply("+OK event listener enabled plain"))
            if command.startswith(self.handshake_until):
                return

    def close(self) -> None:
        self._greenlet.kill(block=True, timeout=5)
        self.listener.close()


class Counter:
    """The handler both clients call: counts, and notes the last arrival."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.finished: float | None = None
        self.done = gevent.event.Event()

    def __call__(self, event: object) -> None:
        self.count += 1
        if self.count == self.expected:
            self.finished = time.perf_counter()
            self.done.set()


def _elapsed(server: StreamServer, counter: Counter, name: str) -> float:
    if not counter.done.wait(TIMEOUT):
        raise RuntimeError(f"{name}: only {counter.count}/{counter.expected} events arrived")
    assert server.started is not None and counter.finished is not None
    return counter.finished - server.started


def run_greenswitch(stream: bytes, count: int) -> float:
    import greenswitch

    server = StreamServer(stream)
    counter = Counter(count)
    client = greenswitch.InboundESL(host="127.0.0.1", port=server.port, password=PASSWORD)
    client.register_handle("*", counter)
    client.connect()
    try:
        return count / _elapsed(server, counter, "greenswitch")
    finally:
        # stop() would wait up to a second for the processing greenlet's
        # queue timeout; nothing is measured any more, so just tear down.
        client._run = False
        gevent.killall(
            [
                g
                for g in (client._receive_events_greenlet, client._process_events_greenlet)
                if g is not None
            ],
            block=True,
            timeout=5,
        )
        client.sock.close()
        server.close()


def run_fsconf(stream: bytes, count: int) -> float:
    """fsconf's real ingest path: InboundClient (transport, codec, per-key dispatch)."""
    server = StreamServer(stream, handshake_until=b"event ")
    counter = Counter(count)
    client = InboundClient(
        "127.0.0.1",
        server.port,
        PASSWORD,
        subscriptions=["ALL"],
        on_event=counter,
        heartbeat_timeout=TIMEOUT,
        queue_warn_at=10 * count,
    )
    client.start()
    try:
        return count / _elapsed(server, counter, "fsconf")
    finally:
        client.stop(timeout=5)
        server.close()


def codec_only(stream: bytes, count: int, chunk: int = READ_CHUNK) -> float:
    decoder = FrameDecoder()
    view = memoryview(stream)
    seen = 0
    started = time.perf_counter()
    for offset in range(0, len(stream), chunk):
        decoder.feed(view[offset : offset + chunk])
        for _frame in decoder:
            seen += 1
    elapsed = time.perf_counter() - started
    if seen != count or decoder.buffered:
        raise RuntimeError(f"codec decoded {seen}/{count} frames, {decoder.buffered} left")
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    stream, count = build_stream(args.events)
    fsconf_label = "fsconf InboundClient (transport + codec + per-key serial dispatch)"
    print(f"stream: {count} text/event-plain frames, {len(stream) / 1e6:.1f} MB")
    print(f"measuring: greenswitch {greenswitch_version()} vs {fsconf_label}")

    greenswitch_rates: list[float] = []
    fsconf_rates: list[float] = []
    for round_number in range(1, args.rounds + 1):
        # Alternate who goes first so warm-up and noise are shared.
        order = ("greenswitch", "fsconf") if round_number % 2 else ("fsconf", "greenswitch")
        for name in order:
            if name == "greenswitch":
                rate = run_greenswitch(stream, count)
                greenswitch_rates.append(rate)
            else:
                rate = run_fsconf(stream, count)
                fsconf_rates.append(rate)
            print(f"round {round_number} {name}: {rate:,.0f} events/s")

    codec_rate = max(codec_only(stream, count) for _ in range(args.rounds))
    greenswitch_best = max(greenswitch_rates)
    fsconf_best = max(fsconf_rates)
    print(f"greenswitch events/s: {greenswitch_best:,.0f}")
    print(f"fsconf events/s: {fsconf_best:,.0f}")
    print(f"codec only frames/s: {codec_rate:,.0f}")
    print(f"ratio fsconf/greenswitch: {fsconf_best / greenswitch_best:.2f}")
    return 0


def greenswitch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("greenswitch")
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
