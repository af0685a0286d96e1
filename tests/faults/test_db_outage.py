"""The database goes away for a few seconds in the middle of a conference.

PostgreSQL: fsconf reaches the real server through a loopback TCP proxy of
ours (:class:`~tests.faults.support.TcpProxy`), which the test cuts (open
connections shut down, new ones closed at once) and restores. Everything else
is real: the FakeSwitch, the whole ``fsconf serve`` pipeline, the customer
application. (SQLite is not covered here: a lock held by another process
makes SQLite's busy handler block the whole gevent hub for the busy timeout,
5 s per attempt, see ``fsconf.store.db``; the retry code is the same.)

What must hold:

* the calls stay up and in their room while the database is away;
* the room's queue waits, in order: the step whose store failed is retried
  (not dropped), and later inputs wait behind it;
* fsconf says what it is waiting for, once per batch (then every 10 s):
  ``CF…: waiting for the database to store N rows and M callbacks: <class>``,
  never the URL or the password;
* after recovery every row and callback is there, in SequenceNumber order,
  and delivered.
"""

from __future__ import annotations

import re
import time
from itertools import pairwise

import gevent
import pytest
from sqlalchemy.engine import make_url

from fsconf.demo import running_stack
from fsconf.store import models
from tests.dbfixtures import private_postgres_schema
from tests.faults.support import (
    TcpProxy,
    conference_twiml,
    events_named,
    has,
    uuid_of,
    watching_logs,
)

OUTAGE_SECONDS = 3.0

WAITING = re.compile(
    r"^(CF[0-9a-f]{32}): waiting for the database to store (\d+) rows and (\d+) callbacks: "
    r"(OperationalError|InterfaceError)$"
)


@pytest.fixture
def postgres_behind_proxy():
    with private_postgres_schema("fsconf_outage") as url:
        parsed = make_url(url)
        proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432)).start()
        host, port = proxy.address
        try:
            yield parsed.set(host=host, port=port).render_as_string(hide_password=False), proxy
        finally:
            proxy.stop()


def confirmed(stack, conference_sid: str, count: int) -> bool:
    room = stack.app.conferences.rooms.get(conference_sid)
    return (
        room is not None
        and room.queue.empty()
        and sum(1 for p in room.state.participants if p.member_id is not None) == count
    )


def run_outage(stack, cut, restore, hold_until) -> tuple[str, list[str]]:
    """Two callers; cut; talk + a hangup; check; restore; the rest of the call."""
    customer, switch = stack.customer, stack.switch
    customer.documents["/voice"] = conference_twiml("Outage Room", customer.url("/events"))
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    assert customer.wait_for(has("conference-start"))
    sid = events_named(customer.received, "conference-start")[0].get("ConferenceSid")
    switch.wait_until(lambda: confirmed(stack, sid, 2), timeout=5)
    before = len(customer.callbacks())
    # Nothing in flight when the database goes: a delivery whose outcome cannot
    # be recorded keeps its claim for the worker's lease (about a minute; see
    # the report), which is the delivery worker's business, not this test's.
    assert stack.app.wait_delivered(before)

    with watching_logs() as logs:
        cut()
        switch.start_talking(uuid_of(alice))
        switch.stop_talking(uuid_of(alice))
        stack.hangup(bob)
        line = logs.wait_for(lambda text: "waiting for the database" in text, timeout=15)
        hold_until(logs)
        # the calls are still up, alice still in her room; nothing was delivered meanwhile
        assert not switch.channels[uuid_of(alice)].hungup
        assert [m.channel.uuid for m in switch.rooms[sid].members] == [uuid_of(alice)]
        assert len(customer.callbacks()) == before
        # the room's queue waits, in order: bob's leave is queued behind the
        # step whose rows could not be stored
        room = stack.app.conferences.rooms[sid]
        assert room.state.find(bob) is not None and not room.queue.empty()
        restore()
        assert customer.wait_for(has("participant-leave", 1, CallSid=bob), timeout=15)
        lines = list(logs.lines)

    match = WAITING.match(line)
    assert match, line
    assert match.group(1) == sid
    # the first step that could not be stored: speech-start (its callback and the
    # conference row's SequenceNumber)
    assert (match.group(2), match.group(3)) == ("1", "1")
    assert any(text.startswith(f"{sid}: database back; stored after") for text in lines)

    stack.hangup(alice)
    assert customer.wait_for(has("conference-end"))
    callbacks = customer.callbacks()
    assert [r.get("StatusCallbackEvent") for r in callbacks[before:]] == [
        "participant-speech-start",
        "participant-speech-stop",
        "participant-leave",
        "participant-leave",
        "conference-end",
    ]
    numbers = [int(r.get("SequenceNumber")) for r in callbacks]
    assert numbers == list(range(1, len(callbacks) + 1))
    assert all(a < b for a, b in pairwise(numbers))
    assert stack.app.wait_delivered(len(callbacks))
    with stack.app.sessions() as session:
        rows = session.query(models.Callback).order_by(models.Callback.id).all()
        assert [row.sequence_number for row in rows] == numbers
        assert {row.status for row in rows} == {"delivered"}
        conference = session.get(models.Conference, sid)
        assert conference.status == "completed"
        assert conference.sequence_number == len(callbacks)
        statuses = {p.call_sid: p.status for p in session.query(models.Participant)}
        assert statuses == {alice: "complete", bob: "complete"}
    return sid, lines


@pytest.mark.postgres
def test_postgres_cut_for_seconds_mid_conference(postgres_behind_proxy):
    url, proxy = postgres_behind_proxy
    password = make_url(url).password or ""

    def hold_until(logs) -> None:
        # keep the database away while fsconf (and the delivery worker) retry
        # several times: a few seconds of backoff, the calls up all along
        refused = proxy.refused
        stack.switch.wait_until(lambda: proxy.refused >= refused + 8, timeout=15)
        # The outage itself lasts a few seconds: this is the scenario's
        # duration, not a synchronisation (nothing is waited for here).
        gevent.sleep(OUTAGE_SECONDS)

    with running_stack(url) as stack:
        started = time.monotonic()
        _sid, lines = run_outage(stack, proxy.cut, proxy.restore, hold_until)
    assert time.monotonic() - started > OUTAGE_SECONDS
    assert proxy.refused >= 8
    # the room logged once for its batch (then every 10 s), not per retry
    assert sum("waiting for the database" in text for text in lines) == 1
    assert not any(url in text or f":{password}@" in text for text in lines)
