"""Fixtures of the webhook tests: a real HTTP receiver on loopback (``http``,
the worker's session, is the whole suite's: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()
