"""``fsconf serve`` as its own process, for tests that need the real entry point.

Shared by the end-to-end serve tests and the fault tests (a database lock held by
another process, a hub stall): started with an environment, output collected line
by line and waited on by predicate, stopped with SIGTERM (SIGKILL if it hangs).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import gevent.event
import pytest

from fsconf.demo import CustomerApp
from fsconf.testing import FakeSwitch

SERVE = [sys.executable, "-c", "from fsconf.entry import main; main()", "serve"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_environment(
    database: Path, switch: FakeSwitch, customer: CustomerApp, **extra: str
) -> dict[str, str]:
    """The environment of an ``fsconf serve`` on ``database`` (SQLite), ``switch``
    and ``customer``, on free loopback ports; ``extra`` overrides any key."""
    host, port = switch.address
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FSCONF_") and not key.startswith("PYTEST")
    }
    env.update(
        {
            "FSCONF_DATABASE_URL": f"sqlite:///{database}",
            "FSCONF_ESL": f"{host}:{port}:{switch.password}",
            "FSCONF_OUTBOUND_LISTEN": f"127.0.0.1:{free_port()}",
            "FSCONF_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
            "FSCONF_ACCOUNT_SID": "AC" + secrets.token_hex(16),
            # The customer's token: serve's default account gets it.
            "FSCONF_AUTH_TOKEN": customer.auth_token,
            "FSCONF_VOICE_URL": customer.url("/voice"),
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def switch() -> Iterator[FakeSwitch]:
    """A FakeSwitch with its own password, for a serve process to connect to."""
    fake = FakeSwitch(password=secrets.token_hex(8), time_scale=0.05).start()
    yield fake
    fake.stop()


@pytest.fixture
def customer() -> Iterator[CustomerApp]:
    """The customer application: TwiML at /voice, callbacks recorded."""
    app = CustomerApp(secrets.token_hex(16)).start()
    yield app
    app.stop()


class ServeProcess:
    """``fsconf serve`` in its own process, as a supervisor starts it; its
    output is collected line by line and waited on by predicate."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._new_line = gevent.event.Event()
        self.process = subprocess.Popen(
            SERVE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = gevent.spawn(self._read)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new_line.set()
            self._new_line.clear()
        self._new_line.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str:
        with gevent.Timeout(timeout, False):
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                if self._reader.dead:
                    break
                self._new_line.wait()
        raise AssertionError(f"no such log line; output so far:\n{self.output[-6000:]}")

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=5)
        self._reader.join(timeout)
        return code
