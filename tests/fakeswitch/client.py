"""A tiny ESL test client: a raw loopback socket, our FrameDecoder, our builders.

Never sleeps: every wait is a blocking read with a timeout.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from fsconf.esl import commands
from fsconf.esl.codec import FrameDecoder
from fsconf.esl.frames import ApiResponse, CommandReply, Event, Frame

TIMEOUT = 5.0


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(TIMEOUT)
        self.decoder = FrameDecoder()
        self.backlog: list[Frame] = []
        self.raw = bytearray()

    @classmethod
    def connect(cls, address: tuple[str, int], password: str | None = "ClueCon") -> Client:
        client = cls(socket.create_connection(address, timeout=TIMEOUT))
        if password is not None:
            client.next_frame()  # auth/request
            reply = client.command(commands.auth(password))
            assert reply.reply_text == "+OK accepted", reply
        return client

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read_frame(self) -> Frame | None:
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                return frame
            data = self.sock.recv(65536)
            if not data:
                return None
            self.raw += data
            self.decoder.feed(data)

    def next_frame(self) -> Frame:
        if self.backlog:
            return self.backlog.pop(0)
        frame = self._read_frame()
        assert frame is not None, "connection closed"
        return frame

    def expect(self, predicate: Callable[[Frame], bool]) -> Any:
        """The first frame (backlog included) matching ``predicate``; others are kept."""
        for index, frame in enumerate(self.backlog):
            if predicate(frame):
                return self.backlog.pop(index)
        while True:
            frame = self._read_frame()
            assert frame is not None, "connection closed while waiting"
            if predicate(frame):
                return frame
            self.backlog.append(frame)

    def command(self, data: bytes) -> CommandReply:
        self.send(data)
        return self.expect(lambda f: isinstance(f, CommandReply))

    def api(self, text: str) -> str:
        self.send(commands.api(text))
        return self.expect(lambda f: isinstance(f, ApiResponse)).body

    def event(self, name: str, **headers: str) -> Event:
        def match(frame: Frame) -> bool:
            if not isinstance(frame, Event):
                return False
            key = frame.action if frame.name == "CUSTOM" else frame.name
            return key == name and all(frame.get(k) == v for k, v in headers.items())

        return self.expect(match)

    def events(self) -> list[Event]:
        return [f for f in self.backlog if isinstance(f, Event)]

    def drain_until(self, name: str, **headers: str) -> list[Event]:
        """Every event up to and including the first ``name`` match, in order."""
        seen: list[Event] = []
        while True:
            frame = self.backlog.pop(0) if self.backlog else self._read_frame()
            assert frame is not None, "connection closed while draining"
            if isinstance(frame, Event):
                seen.append(frame)
                key = frame.action if frame.name == "CUSTOM" else frame.name
                if key == name and all(frame.get(k) == v for k, v in headers.items()):
                    return seen

    def read_closed(self) -> bool:
        """True when the peer closed (after any remaining frames)."""
        while True:
            frame = self._read_frame()
            if frame is None:
                return True
            self.backlog.append(frame)


def keys(events: list[Event]) -> list[str]:
    return [e.action if e.name == "CUSTOM" else e.name for e in events]  # type: ignore[misc]


class SessionListener:
    """The client's outbound-socket listener (what fsconf's call server is)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(TIMEOUT)

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def accept(self) -> Client:
        sock, _ = self.sock.accept()
        return Client(sock)

    def close(self) -> None:
        self.sock.close()
