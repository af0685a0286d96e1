"""Helpers for the fault tests: a TCP proxy that can cut a link, a log watcher.

Both are real parts on loopback, synchronised with events, never with sleeps.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import gevent
import gevent.event
from gevent.server import StreamServer

from fsconf.demo import Received


class TcpProxy:
    """A loopback TCP proxy to ``target``; :meth:`cut` makes it a dead link.

    While cut, open connections are shut down and new ones are accepted and
    closed at once (a server going away, then refusing), like a database
    restart or a network cut seen from the client.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.down = False
        self.accepted = 0
        self.refused = 0
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._server = StreamServer(("127.0.0.1", 0), self._handle)

    def start(self) -> TcpProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self.cut()
        self._server.stop(timeout=1)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.address[:2]
        return host, port

    def cut(self) -> None:
        self.down = True
        for pair in list(self._pairs):
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.down = False

    def _handle(self, client: socket.socket, _address: object) -> None:
        if self.down:
            self.refused += 1
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self.accepted += 1
        pair = (client, upstream)
        self._pairs.add(pair)
        pumps = [gevent.spawn(_pump, client, upstream), gevent.spawn(_pump, upstream, client)]
        gevent.joinall(pumps, count=1)
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        gevent.joinall(pumps)
        for sock in pair:
            sock.close()
        self._pairs.discard(pair)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                return
            sink.sendall(data)
    except OSError:
        return


class LogWatcher(logging.Handler):
    """Collects log records of the ``fsconf`` loggers; wait for one by predicate."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self._new = gevent.event.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(record.getMessage())
        self._new.set()
        self._new.clear()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
        with gevent.Timeout(timeout, False):
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                self._new.wait()
        seen: list[str] = []
        for line in self.lines:  # one of each, in order: a retry loop repeats itself
            if line not in seen:
                seen.append(line)
        raise AssertionError("no such log line; got:\n" + "\n".join(seen[-40:]))


@contextlib.contextmanager
def watching_logs(name: str = "fsconf") -> Iterator[LogWatcher]:
    watcher = LogWatcher()
    logger = logging.getLogger(name)
    previous = logger.level
    logger.addHandler(watcher)
    logger.setLevel(logging.INFO)
    try:
        yield watcher
    finally:
        logger.removeHandler(watcher)
        logger.setLevel(previous)


def events_named(received: list[Received], name: str) -> list[Received]:
    return [r for r in received if r.get("StatusCallbackEvent") == name]


def has(name: str, count: int = 1, **params: str) -> Callable[[list[Received]], bool]:
    def check(received: list[Received]) -> bool:
        matching = [
            r for r in events_named(received, name) if all(r.get(k) == v for k, v in params.items())
        ]
        return len(matching) >= count

    return check


def uuid_of(call_sid: str) -> str:
    hexed = call_sid[2:]
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def conference_twiml(room: str, events_url: str, **attributes: str) -> str:
    extra = " ".join(f'{name}="{value}"' for name, value in attributes.items())
    return (
        f'<Response><Dial><Conference statusCallback="{events_url}" '
        f'statusCallbackEvent="start end join leave mute hold speaker" {extra}>{room}'
        "</Conference></Dial></Response>"
    )


LOCK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
connection.execute(sys.argv[2])
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
connection.execute("ROLLBACK")
print("released", flush=True)
"""


class SqliteLockHolder:
    """Another process (a plain ``sqlite3`` client, like an operator's
    ``sqlite3`` shell or a backup script) that opens the database file and
    holds its write lock until :meth:`release`."""

    def __init__(self, path: str, begin: str = "BEGIN EXCLUSIVE") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, path, begin],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "locked":
            self.process.kill()
            raise AssertionError(f"the lock holder did not take the lock: {line!r}")

    def release(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        assert self.process.stdout.readline().strip() == "released"
        assert self.process.wait(timeout=10) == 0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
