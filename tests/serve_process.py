"""``fsconf serve`` as its own process, for tests that need the real entry point.

Shared by the end-to-end serve tests and the fault tests (a database lock held by
another process, a hub stall): started with an environment, output collected line
by line and waited on by predicate, stopped with SIGTERM (SIGKILL if it hangs).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import gevent
import gevent.event

SERVE = [sys.executable, "-c", "from fsconf.entry import main; main()", "serve"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
