"""A real HTTP receiver on loopback that records every request it gets.

It runs a :class:`gevent.pywsgi.WSGIServer` on an ephemeral port in the test's
hub.  ``behaviour(request)`` decides each answer: an HTTP status code, or
``HANG`` to never answer (until the receiver is closed).  Tests wait on
:meth:`Receiver.wait_for` (a queue with a timeout), never on ``sleep``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import gevent
import gevent.event
import gevent.queue
from gevent.pywsgi import WSGIServer

HANG = -1


@dataclass(frozen=True)
class Received:
    method: str
    url: str  # as the application would reconstruct it
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("ascii"), keep_blank_values=True))

    @property
    def query_params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))

    @property
    def params(self) -> dict[str, str]:
        return self.form if self.method == "POST" else self.query_params


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.queue: gevent.queue.Queue[Received] = gevent.queue.Queue()
        self.behaviour: Callable[[Received], int] = lambda _request: 200
        self.delay: Callable[[Received], float] = lambda _request: 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self._release = gevent.event.Event()
        self._server = WSGIServer(("127.0.0.1", 0), self._app, log=None, error_log=None)
        self._server.start()
        self.port: int = self._server.server_port
        self.base = f"http://127.0.0.1:{self.port}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        query = environ.get("QUERY_STRING", "")
        path = environ["PATH_INFO"]
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        request = Received(
            method=environ["REQUEST_METHOD"],
            url=f"{self.base}{path}" + (f"?{query}" if query else ""),
            path=path,
            query=query,
            headers=headers,
            body=body,
        )
        self.requests.append(request)
        self.queue.put(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status = self.behaviour(request)
            if status == HANG:
                self._release.wait()
                status = 503
            delay = self.delay(request)
            if delay:
                gevent.sleep(delay)  # simulated latency, not synchronisation
        finally:
            self.in_flight -= 1
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return iter([] if status in (204, 304) else [b"ok"])

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The next ``count`` requests, in arrival order (fails after ``timeout``)."""
        return [self.queue.get(timeout=timeout) for _ in range(count)]

    def close(self) -> None:
        self._release.set()
        self._server.stop(timeout=1)


def closed_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port
