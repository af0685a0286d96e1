"""A small scripted "FreeSWITCH" for the ESL shell tests.

It speaks real ESL over loopback TCP: it reads what the client sends with our
:class:`~fsconf.esl.codec.CommandDecoder`, answers the handshake (auth, event,
``global_getvar core_uuid``) the way the captures show, and hands every other
command to the test through a queue, so a test decides byte for byte what the
switch answers, and when. Nothing here sleeps: tests wait on queues and
events with timeouts.

(The full FakeSwitch lives in ``fsconf/testing``; these tests deliberately do
not depend on it.)
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable
from pathlib import Path

import gevent
import gevent.event
import gevent.queue
import gevent.server

from fsconf.esl.codec import CommandDecoder, encode_api_response, encode_command_reply
from fsconf.esl.frames import ClientCommand

DATA = Path(__file__).resolve().parent.parent / "data"
WAIT = 3.0
"""Upper bound of every wait in these tests; they normally take milliseconds."""

CORE_UUID = "0de83979-364e-44c2-9f6c-50deb8a1e6b0"
AUTH_REQUEST = b"Content-Type: auth/request\n\n"
ACCEPTED = encode_command_reply("+OK accepted")
DENIED = encode_command_reply("-ERR invalid")
GOODBYE = (
    b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
    b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
)
RUDE_REJECTION = (
    b"Content-Type: text/rude-rejection\nContent-Length: 34\n\n"
    b"Access Denied, go away.\n" + b"\n" * 10
)


def capture(name: str) -> list[dict[str, object]]:
    """The records of one capture file (``tests/data/<name>``)."""
    with open(DATA / name, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]


def raw(record: dict[str, object]) -> bytes:
    text = record["raw"]
    assert isinstance(text, str)
    return text.encode("utf-8", "surrogateescape")


def frames_in(name: str, conn: str | None = None) -> list[bytes]:
    """Every frame the switch sent in a capture (optionally one connection's)."""
    return [
        raw(record)
        for record in capture(name)
        if record["dir"] == "in" and (conn is None or record.get("conn") == conn)
    ]


CommandHook = Callable[["ScriptedConnection", ClientCommand], bool]


class ScriptedConnection:
    """One end of a loopback ESL connection, played by the test."""

    def __init__(self, sock: socket.socket, on_command: CommandHook | None = None) -> None:
        self.sock = sock
        self.on_command = on_command
        self.commands: gevent.queue.Queue[ClientCommand] = gevent.queue.Queue()
        self.received: list[ClientCommand] = []
        self.bytes_received = bytearray()
        self.closed = gevent.event.Event()
        self._decoder = CommandDecoder()
        self._reader = gevent.spawn(self._read)

    def send(self, *frames: bytes) -> None:
        for frame in frames:
            self.sock.sendall(frame)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def expect(self, prefix: str, timeout: float = WAIT) -> ClientCommand:
        """The next command not handled by the hook; it must start with ``prefix``."""
        command = self.commands.get(timeout=timeout)
        assert command.line.startswith(prefix), f"expected {prefix!r}, got {command.line!r}"
        return command

    def wait_closed(self, timeout: float = WAIT) -> bool:
        return bool(self.closed.wait(timeout))

    def join(self, timeout: float = WAIT) -> None:
        self._reader.join(timeout)

    def _read(self) -> None:
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.bytes_received += data
                self._decoder.feed(data)
                for command in self._decoder:
                    self.received.append(command)
                    if self.on_command is None or not self.on_command(self, command):
                        self.commands.put(command)
        except OSError:
            pass
        finally:
            self.closed.set()


class ScriptedSwitch:
    """Listens like FreeSWITCH's mod_event_socket and plays the handshake.

    ``greeting``: ``"auth"`` (send auth/request), ``"rude"`` (ACL refusal) or
    ``None`` (say nothing). ``core_uuid`` answers ``global_getvar core_uuid``.
    ``hook(connection, command) -> bool`` may handle more commands itself.
    """

    def __init__(
        self,
        *,
        password: str = "ClueCon",
        greeting: str | None = "auth",
        core_uuid: str = CORE_UUID,
        hook: CommandHook | None = None,
    ) -> None:
        self.password = password
        self.greeting = greeting
        self.core_uuid = core_uuid
        self.hook = hook
        self.connections: gevent.queue.Queue[ScriptedConnection] = gevent.queue.Queue()
        self.accepted: list[ScriptedConnection] = []
        self._server = gevent.server.StreamServer(("127.0.0.1", 0), self._serve)

    def __enter__(self) -> ScriptedSwitch:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.address[1])

    def stop(self) -> None:
        self._server.stop(timeout=0.5)
        for connection in self.accepted:
            connection.close()

    def next_connection(self, timeout: float = WAIT) -> ScriptedConnection:
        return self.connections.get(timeout=timeout)

    def _serve(self, sock: socket.socket, address: object) -> None:
        connection = ScriptedConnection(sock, self._handshake)
        self.accepted.append(connection)
        if self.greeting == "auth":
            connection.send(AUTH_REQUEST)
        elif self.greeting == "rude":
            connection.send(RUDE_REJECTION)
            connection.close()
        self.connections.put(connection)
        # StreamServer closes the socket when this returns: stay until EOF.
        connection.closed.wait()

    def _handshake(self, connection: ScriptedConnection, command: ClientCommand) -> bool:
        if command.verb == "auth":
            if command.argument == self.password:
                connection.send(ACCEPTED)
            else:
                connection.send(DENIED, GOODBYE)
                connection.close()
            return True
        if command.verb == "event":
            fmt = command.argument.split(" ", 1)[0]
            connection.send(encode_command_reply(f"+OK event listener enabled {fmt}"))
            return True
        if command.line == "api global_getvar core_uuid":
            connection.send(encode_api_response(self.core_uuid))
            return True
        return self.hook is not None and self.hook(connection, command)


def dial(address: tuple[str, int], *, hook: CommandHook | None = None) -> ScriptedConnection:
    """Connect to an outbound server as FreeSWITCH does for one call."""
    sock = socket.create_connection(address, timeout=WAIT)
    sock.settimeout(None)
    return ScriptedConnection(sock, hook)
