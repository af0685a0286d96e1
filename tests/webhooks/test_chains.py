"""Chains: one claim covers several callbacks of a conference, sent in order by
one greenlet; a failure blocks the rest of its chain and its conference only;
a worker that dies mid-chain loses nothing (at-least-once, still in order).

Real HTTP on loopback, a migrated SQLite file or PostgreSQL schema, and a fake
clock (time only moves when a test says so).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta

import gevent
import pytest
import requests
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from fsconf.store.db import transaction
from fsconf.store.models import Callback
from fsconf.webhooks.delivery import DeliveryWorker, retry
from tests.webhooks.receiver import HANG, Received, Receiver
from tests.webhooks.test_delivery import FakeClock, _conferences, _join, _row

Factory = sessionmaker[Session]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class CountingFactory:
    """A session factory that counts the transactions (sessions) it opens."""

    def __init__(self, inner: Factory) -> None:
        self.inner = inner
        self.opened = 0

    def __call__(self) -> Session:
        self.opened += 1
        return self.inner()


def worker(
    factory: object, http: requests.Session, clock: FakeClock, **options: object
) -> DeliveryWorker:
    settings: dict[str, object] = {
        "max_attempts": 5,
        "base_delay": 10.0,
        "max_delay": 60.0,
        "timeout": (1.0, 2.0),
        "pool_size": 4,
        "chain_length": 8,
        "rng": random.Random(5),
        **options,
    }
    return DeliveryWorker(factory, http, clock=clock, **settings)  # type: ignore[arg-type]


def key(request: Received) -> tuple[str, int]:
    return request.form["ConferenceSid"], int(request.form["SequenceNumber"])


def by_conference(requests_seen: list[Received]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for request in requests_seen:
        sid, sequence = key(request)
        grouped[sid].append(sequence)
    return dict(grouped)


def test_one_claim_covers_a_chain(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    (sid,) = _conferences(session_factory, receiver.base + "/status", 1)
    for n in range(24):
        _join(session_factory, sid, n, clock())
    counting = CountingFactory(session_factory)
    assert worker(counting, http, clock, chain_length=8).run_once() == 24
    assert by_conference(receiver.wait_for(24)) == {sid: list(range(1, 25))}
    # Three chains of 8: a claim, two "record + claim", a last record (+ empty claim).
    assert counting.opened == 4
    with session_factory() as session:
        statuses = session.execute(select(Callback.status, func.count()).group_by(Callback.status))
        assert dict(statuses.all()) == {"delivered": 24}


def test_failure_mid_chain_blocks_the_rest_of_its_conference_only(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    broken, healthy = _conferences(session_factory, receiver.base + "/status", 2)
    ids = {
        sid: [_join(session_factory, sid, n, clock()) for n in range(6)]
        for sid in (broken, healthy)
    }
    receiver.behaviour = lambda request: 500 if key(request) == (broken, 3) else 200
    subject = worker(session_factory, http, clock, chain_length=10)

    assert subject.run_once() == 3 + 6
    seen = by_conference(receiver.wait_for(9))
    assert seen == {broken: [1, 2, 3], healthy: [1, 2, 3, 4, 5, 6]}
    assert receiver.queue.empty()
    failed = _row(session_factory, ids[broken][2])
    assert (failed.status, failed.attempts, failed.last_status_code) == ("pending", 1, 500)
    for callback_id in ids[broken][3:]:
        row = _row(session_factory, callback_id)
        # Released unsent, and parked behind the failed head.
        assert (row.status, row.attempts, row.claimed_by) == ("pending", 0, None)
        assert row.next_attempt_at == failed.next_attempt_at
    assert [_row(session_factory, i).status for i in ids[broken][:2]] == ["delivered"] * 2

    # Before the backoff ends nothing of that conference moves; after it, all of it, in order.
    clock.advance((failed.next_attempt_at - clock()).total_seconds() - 1)
    assert subject.run_once() == 0
    receiver.behaviour = lambda _request: 200
    clock.advance(1)
    assert subject.run_once() == 4
    assert by_conference(receiver.wait_for(4)) == {broken: [3, 4, 5, 6]}
    assert {_row(session_factory, i).status for i in ids[broken]} == {"delivered"}


def test_manual_retry_brings_the_parked_rows_along(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    (sid,) = _conferences(session_factory, receiver.base + "/status", 1)
    ids = [_join(session_factory, sid, n, clock()) for n in range(3)]
    receiver.behaviour = lambda request: 500 if key(request) == (sid, 1) else 200
    subject = worker(session_factory, http, clock, base_delay=60.0)
    assert subject.run_once() == 1
    receiver.wait_for(1)
    receiver.behaviour = lambda _request: 200
    with transaction(session_factory) as session:
        retry(session, callback_id=ids[0], now=clock())
    assert subject.run_once() == 3  # not 1: the parked rows are due with their head
    assert by_conference(receiver.wait_for(3)) == {sid: [1, 2, 3]}


def test_two_workers_with_failures_mid_chain_keep_order_and_deliver_everything(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    sids = _conferences(session_factory, receiver.base + "/status", 5)
    for n in range(12):
        for sid in sids:
            _join(session_factory, sid, n, clock())
    chance = random.Random(11)
    receiver.behaviour = lambda _request: 503 if chance.random() < 0.2 else 200
    receiver.delay = lambda _request: chance.uniform(0.0, 0.003)
    workers = [
        worker(
            session_factory,
            http,
            clock,
            chain_length=3,
            pool_size=2,
            max_attempts=50,
            base_delay=1.0,
            max_delay=4.0,
            rng=random.Random(n),
        )
        for n in range(2)
    ]
    for _turn in range(200):
        passes = [gevent.spawn(w.run_once) for w in workers]
        gevent.joinall(passes, timeout=30, raise_error=True)
        with session_factory() as session:
            if not session.scalar(select(func.count()).where(Callback.status != "delivered")):
                break
        clock.advance(4.0)
    else:
        pytest.fail("the outbox did not drain")

    attempts = by_conference(receiver.requests)
    assert len(receiver.requests) > 60 + 10  # failures happened, and were retried
    for sid in sids:
        numbers = attempts[sid]
        # Never a later callback before an earlier one (a retry repeats the head only).
        assert numbers == sorted(numbers), (sid, numbers)
        assert set(numbers) == set(range(1, 13))
    with session_factory() as session:
        rows = session.execute(select(Callback.status, Callback.claimed_by)).all()
        assert {tuple(row) for row in rows} == {("delivered", None)}


def test_a_worker_dying_mid_chain_loses_nothing(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    (sid,) = _conferences(session_factory, receiver.base + "/status", 1)
    for n in range(6):
        _join(session_factory, sid, n, clock())
    receiver.behaviour = lambda request: HANG if key(request) == (sid, 3) else 200
    doomed = worker(session_factory, http, clock, chain_length=6, lease=30.0)
    run = gevent.spawn(doomed.run_once)
    assert [key(r)[1] for r in receiver.wait_for(3)] == [1, 2, 3]
    # The process dies: nothing after the claim was committed (1 and 2 were sent).
    run.kill()
    doomed._pool.kill()
    with session_factory() as session:
        claimed = session.scalars(select(Callback.claimed_by).where(Callback.status == "pending"))
        assert set(claimed) == {doomed.worker_id}

    receiver.behaviour = lambda _request: 200
    survivor = worker(session_factory, http, clock, chain_length=6)
    assert survivor.run_once() == 0  # the lease still holds
    clock.advance(31)
    assert survivor.run_once() == 6
    # At-least-once: 1 and 2 again, then everything, in order.
    assert [key(r)[1] for r in receiver.wait_for(6)] == [1, 2, 3, 4, 5, 6]
    with session_factory() as session:
        assert set(session.scalars(select(Callback.status))) == {"delivered"}


def test_a_long_outage_of_one_conference_does_not_starve_the_others(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    """The claim reads a bounded number of due rows: the failing conference's
    backlog must not sit in front of the others' rows (it is parked)."""
    down, up = _conferences(session_factory, receiver.base + "/status", 2)
    head = _join(session_factory, down, 0, clock())
    template = _row(session_factory, head)
    backlog = 3000  # more than one claim reads
    with transaction(session_factory) as session:
        session.execute(
            insert(Callback),
            [
                {
                    "account_sid": template.account_sid,
                    "conference_sid": down,
                    "kind": template.kind,
                    "sequence_number": 2 + n,
                    "ordering_key": down,
                    "url": template.url,
                    "method": "POST",
                    "params": template.params.replace('"1"', f'"{2 + n}"', 1),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": clock(),
                    "created": clock(),
                }
                for n in range(backlog)
            ],
        )
    receiver.behaviour = lambda request: 503 if key(request)[0] == down else 200
    subject = worker(session_factory, http, clock, base_delay=60.0, max_delay=60.0)
    assert subject.run_once() == 1  # the head of `down` fails; its backlog is parked
    receiver.wait_for(1)
    for round_number in range(3):
        clock.advance(5)
        _join(session_factory, up, round_number, clock())
        assert subject.run_once() == 1
        (request,) = receiver.wait_for(1)
        assert key(request) == (up, round_number + 1)
    with session_factory() as session:
        attempts = session.scalar(
            select(func.sum(Callback.attempts)).where(Callback.conference_sid == down)
        )
    assert attempts == 1
    assert _row(session_factory, head).next_attempt_at > clock() + timedelta(seconds=10)


def test_one_claim_covers_more_conferences_than_slots(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    """A slot sends several conferences' chains in turn: one claim covers them all."""
    sids = _conferences(session_factory, receiver.base + "/status", 10)
    for n in range(3):
        for sid in sids:
            _join(session_factory, sid, n, clock())
    counting = CountingFactory(session_factory)
    assert worker(counting, http, clock, pool_size=2).run_once() == 30
    assert by_conference(receiver.wait_for(30)) == {sid: [1, 2, 3] for sid in sids}
    # The claim, then "record + (empty) claim" as each of the two slots finishes.
    assert counting.opened <= 3
    assert receiver.max_in_flight <= 2


def test_a_failure_stops_its_own_chain_not_the_next_one_in_the_same_slot(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    broken, healthy = _conferences(session_factory, receiver.base + "/status", 2)
    ids = {
        sid: [_join(session_factory, sid, n, clock()) for n in range(4)]
        for sid in (broken, healthy)
    }
    receiver.behaviour = lambda request: 500 if key(request) == (broken, 2) else 200
    assert worker(session_factory, http, clock, pool_size=1).run_once() == 2 + 4
    assert by_conference(receiver.wait_for(6)) == {broken: [1, 2], healthy: [1, 2, 3, 4]}
    assert receiver.queue.empty()
    assert [_row(session_factory, i).status for i in ids[broken]] == ["delivered"] + ["pending"] * 3
    assert {_row(session_factory, i).claimed_by for i in ids[broken]} == {None}
    assert {_row(session_factory, i).status for i in ids[healthy]} == {"delivered"}
