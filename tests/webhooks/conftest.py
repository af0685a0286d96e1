"""Fixtures of the webhook tests: a real HTTP receiver on loopback, and the
``requests.Session`` a delivery worker sends with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    yield session
    session.close()
