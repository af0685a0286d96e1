from __future__ import annotations

from collections.abc import Iterator

import pytest

from fsconf.esl import commands
from fsconf.testing import FakeSwitch
from tests.fakeswitch.client import Client, SessionListener


@pytest.fixture
def fs() -> Iterator[FakeSwitch]:
    switch = FakeSwitch(time_scale=0.05).start()
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
