"""A burst of calls fetching their TwiML at once keeps its keep-alive connections."""

from __future__ import annotations

import contextlib
import logging

import gevent
import pytest

from fsconf.calls.fetch import POOL_MAXSIZE, Fetcher
from fsconf.errors import FsconfError
from tests.webhooks.receiver import Receiver

TWIML = "<Response><Hangup/></Response>"


def test_a_burst_of_fetches_reuses_its_connections(caplog: pytest.LogCaptureFixture) -> None:
    receiver = Receiver()
    receiver.delay = lambda _request: 0.05  # all 40 are in flight together
    fetcher = Fetcher()
    burst = 40
    assert burst <= POOL_MAXSIZE

    def fetch(i: int) -> None:
        # the receiver answers text/plain "ok": not TwiML, and not what this tests
        with contextlib.suppress(FsconfError):
            fetcher.fetch(f"{receiver.base}/voice/{i}", "POST", [("CallSid", f"CA{i}")], "tok")

    caplog.set_level(logging.WARNING, logger="urllib3")
    try:
        gevent.joinall([gevent.spawn(fetch, i) for i in range(burst)], timeout=10, raise_error=True)
        assert len(receiver.requests) == burst
        assert receiver.max_in_flight > 10  # more than requests' default pool at once
        assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    finally:
        receiver.close()
