from __future__ import annotations

from collections.abc import Iterator

import pytest

from fsconf.esl import commands
from fsconf.testing import FakeSwitch
from tests.fakeswitch.client import Client, SessionListener


@pytest.fixture
def fs() -> Iterator[FakeSwitch]:
    switch = FakeSwitch(time_scale=0.05, profiles="captured").start()
    yield switch
    switch.stop()


@pytest.fixture
def esl(fs: FakeSwitch) -> Iterator[Client]:
    client = Client.connect(fs.address)
    reply = client.command(commands.event(["ALL"]))
    assert reply.reply_text == "+OK event listener enabled plain"
    yield client
    client.close()


@pytest.fixture
def listener() -> Iterator[SessionListener]:
    server = SessionListener()
    yield server
    server.close()


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """Print the capture conformance count in every run's output (CI's too)."""
    import sys

    module = sys.modules.get("tests.fakeswitch.test_conformance")
    results = getattr(module, "_results", None)
    if not results:
        return
    matched = sum(results.values())
    total = len(module.CAPTURES)  # type: ignore[union-attr]
    diverging = sorted(name for name, ok in results.items() if not ok)
    terminalreporter.write_line(f"conformance: {matched}/{total} captures match")
    if diverging:
        terminalreporter.write_line("diverging (KNOWN_DIVERGENT): " + ", ".join(diverging))
