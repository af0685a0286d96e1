"""Delivery against a real HTTP receiver on loopback, with a fake clock.

Time only moves when a test advances the clock: retries and backoff are
checked without sleeping.  Real (short) timeouts are only used for the
receiver that never answers.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import gevent
import pytest
import requests
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from fsconf.store import repositories as repo
from fsconf.store.db import transaction
from fsconf.store.models import Callback
from fsconf.webhooks.delivery import (
    CallbackStateError,
    DeliveryWorker,
    backoff_delay,
    list_callbacks,
    retry,
    retry_all_failed,
)
from fsconf.webhooks.outbox import enqueue, enqueue_conference_callback
from fsconf.webhooks.signing import SIGNATURE_HEADER
from tests.store.factories import TOKEN, make_account
from tests.webhooks.receiver import HANG, Received, Receiver, closed_port

Factory = sessionmaker[Session]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _worker(
    factory: Factory, http: requests.Session, clock: FakeClock, **kwargs: object
) -> DeliveryWorker:
    options: dict[str, object] = {
        "max_attempts": 3,
        "base_delay": 10.0,
        "max_delay": 60.0,
        "timeout": (1.0, 2.0),
        "pool_size": 8,
        "rng": random.Random(7),
        **kwargs,
    }
    return DeliveryWorker(factory, http, clock=clock, **options)  # type: ignore[arg-type]


def _conferences(factory: Factory, url: str, count: int, method: str = "POST") -> list[str]:
    with transaction(factory) as session:
        account_sid = make_account(session).sid
        return [
            repo.create_conference(
                session,
                account_sid=account_sid,
                friendly_name=f"room-{n}",
                status_callback=url,
                status_callback_method=method,
                status_callback_events="join leave",
            ).sid
            for n in range(count)
        ]


def _join(factory: Factory, conference_sid: str, call_number: int, now: datetime) -> int:
    with transaction(factory) as session:
        conference = repo.get_conference(session, sid=conference_sid)
        assert conference is not None
        callback = enqueue_conference_callback(
            session,
            conference=conference,
            event="participant-join",
            params=[("CallSid", f"CA{call_number:032x}"), ("Muted", "false")],
            now=now,
        )
        assert callback is not None
        return callback.id


def _row(factory: Factory, callback_id: int) -> Callback:
    with factory() as session:
        row = session.get(Callback, callback_id)
        assert row is not None
        return row


def _valid(request: Received) -> bool:
    params = request.form if request.method == "POST" else {}
    signature = request.headers[SIGNATURE_HEADER]
    return bool(RequestValidator(TOKEN).validate(request.url, params, signature))


def test_post_delivery_is_signed_like_twilio(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    (sid,) = _conferences(session_factory, receiver.base + "/status?tenant=7", 1)
    callback_id = _join(session_factory, sid, 1, clock())
    worker = _worker(session_factory, http, clock)
    assert worker.run_once() == 1
    (request,) = receiver.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/status" and request.query == "tenant=7"
    assert request.headers["User-Agent"] == "TwilioProxy/1.1"
    assert request.headers["Accept"] == "*/*"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded; charset=utf-8"
    assert request.form["ConferenceSid"] == sid
    assert request.form["SequenceNumber"] == "1"
    assert request.form["StatusCallbackEvent"] == "participant-join"
    assert _valid(request)
    row = _row(session_factory, callback_id)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 200)
    assert row.delivered_at == clock() and row.claimed_by is None
    assert worker.run_once() == 0  # nothing left


def test_get_delivery_puts_params_in_the_query(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    (sid,) = _conferences(session_factory, receiver.base + "/cb?a=1", 1, method="GET")
    _join(session_factory, sid, 1, clock())
    _worker(session_factory, http, clock).run_once()
    (request,) = receiver.wait_for(1)
    assert request.method == "GET"
    assert request.body == b""
    assert "Content-Type" not in request.headers
    assert request.query.startswith("a=1&ConferenceSid=" + sid)
    assert request.query_params["Timestamp"] == "Sat, 01 Mar 2025 12:00:00 +0000"
    assert _valid(request)


def test_order_per_conference_under_concurrency(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    sids = _conferences(session_factory, receiver.base + "/status", 4)
    expected: dict[str, list[str]] = {sid: [] for sid in sids}
    for n in range(6):
        for sid in sids:
            _join(session_factory, sid, n, clock())
            expected[sid].append(str(n + 1))
    jitter = random.Random(3)
    receiver.delay = lambda _request: jitter.uniform(0.0, 0.02)
    worker = _worker(session_factory, http, clock, pool_size=4)
    assert worker.run_once() == 24
    requests_seen = receiver.wait_for(24)
    got: dict[str, list[str]] = {sid: [] for sid in sids}
    for request in requests_seen:
        got[request.form["ConferenceSid"]].append(request.form["SequenceNumber"])
    assert got == expected
    # Different conferences really were in flight at the same time...
    assert receiver.max_in_flight > 1
    # ...but never more than the pool allows.
    assert receiver.max_in_flight <= 4


def test_head_of_line_retry_backoff_dead_letter_and_manual_retry(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    blocked_sid, free_sid = _conferences(session_factory, receiver.base + "/status", 2)
    first = _join(session_factory, blocked_sid, 1, clock())
    second = _join(session_factory, blocked_sid, 2, clock())
    other = _join(session_factory, free_sid, 3, clock())
    failing = {first}
    receiver.behaviour = lambda request: (
        500
        if request.form["SequenceNumber"] == "1" and request.form["ConferenceSid"] == blocked_sid
        else 200
    )
    worker = _worker(session_factory, http, clock)

    # Attempt 1: seq 1 of the blocked conference fails, seq 2 waits behind it;
    # the other conference is unaffected.
    assert worker.run_once() == 2
    assert {(r.form["ConferenceSid"], r.form["SequenceNumber"]) for r in receiver.wait_for(2)} == {
        (blocked_sid, "1"),
        (free_sid, "1"),
    }
    row = _row(session_factory, first)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
        "pending",
        1,
        500,
        "HTTP 500",
    )
    delay = (row.next_attempt_at - clock()).total_seconds()
    assert 5.0 <= delay <= 10.0  # base 10 s * uniform(0.5, 1)
    assert _row(session_factory, second).attempts == 0
    assert _row(session_factory, other).status == "delivered"

    # Not due yet: nothing is sent, however often we look.
    clock.advance(delay - 0.5)
    assert worker.run_once() == 0
    assert receiver.queue.empty()

    clock.advance(1.0)
    assert worker.run_once() == 1  # attempt 2, second still held back
    row = _row(session_factory, first)
    delay = (row.next_attempt_at - clock()).total_seconds()
    assert 10.0 <= delay <= 20.0  # base * 2
    clock.advance(60)
    assert worker.run_once() == 2  # attempt 3 fails -> dead letter, then seq 2 goes
    received = receiver.wait_for(3)  # attempt 2, attempt 3, then seq 2
    assert [r.form["SequenceNumber"] for r in received[-2:]] == ["1", "2"]
    row = _row(session_factory, first)
    assert (row.status, row.attempts) == ("failed", 3)
    assert _row(session_factory, second).status == "delivered"

    with session_factory() as session:
        assert [c.id for c in list_callbacks(session, failed_only=True)] == [first]
        assert len(list_callbacks(session)) == 3

    # The operator retries the dead letter; the application is fixed meanwhile.
    failing.clear()
    receiver.behaviour = lambda _request: 204
    with transaction(session_factory) as session:
        retried = retry(session, callback_id=first, now=clock())
        assert (retried.status, retried.attempts) == ("pending", 0)
    assert worker.run_once() == 1
    (again,) = receiver.wait_for(1)
    assert again.form["SequenceNumber"] == "1" and _valid(again)
    row = _row(session_factory, first)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 204)
    with transaction(session_factory) as session:
        with pytest.raises(CallbackStateError):
            retry(session, callback_id=first)
        with pytest.raises(repo.NotFoundError):
            retry(session, callback_id=10**6)


def test_receiver_down_then_dead_letter_then_retry_all(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    down = f"http://127.0.0.1:{closed_port()}/status"
    (sid,) = _conferences(session_factory, down, 1)
    ids = [_join(session_factory, sid, n, clock()) for n in range(2)]
    worker = _worker(session_factory, http, clock, max_attempts=2)
    assert worker.run_once() == 1
    row = _row(session_factory, ids[0])
    assert row.status == "pending" and row.attempts == 1
    assert row.last_status_code is None
    assert row.last_error is not None and "ConnectionError" in row.last_error
    assert TOKEN not in row.last_error
    clock.advance(3600)
    assert worker.run_once() == 2  # first dies at attempt 2; second gets its first try
    assert _row(session_factory, ids[0]).status == "failed"
    clock.advance(3600)
    assert worker.run_once() == 1
    assert [_row(session_factory, i).status for i in ids] == ["failed", "failed"]

    # The application comes back (at a new address) and the operator retries all.
    with transaction(session_factory) as session:
        session.execute(update(Callback).values(url=receiver.base + "/status"))
        assert retry_all_failed(session, now=clock()) == 2
    assert worker.run_once() == 2
    assert [r.form["SequenceNumber"] for r in receiver.wait_for(2)] == ["1", "2"]
    assert [_row(session_factory, i).status for i in ids] == ["delivered", "delivered"]


def test_timeout_against_a_receiver_that_never_answers(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    (sid,) = _conferences(session_factory, receiver.base + "/slow", 1)
    callback_id = _join(session_factory, sid, 1, clock())
    receiver.behaviour = lambda _request: HANG
    worker = _worker(session_factory, http, clock, timeout=(0.5, 0.3))
    started = time.monotonic()
    assert worker.run_once() == 1
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    receiver.wait_for(1)
    row = _row(session_factory, callback_id)
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error is not None
    assert "Timeout" in row.last_error or "no complete response" in row.last_error


def test_bad_url_is_a_dead_letter_at_once(
    session_factory: Factory, http: requests.Session, clock: FakeClock
) -> None:
    with transaction(session_factory) as session:
        account_sid = make_account(session).sid
        callback_id = enqueue(
            session,
            account_sid=account_sid,
            url="relative/path",
            method="POST",
            params=[],
            kind="dial-action",
            now=clock(),
        ).id
    assert _worker(session_factory, http, clock).run_once() == 1
    row = _row(session_factory, callback_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error is not None and "absolute" in row.last_error


def test_live_claims_are_respected_and_expire(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    """Another worker's claim hides a row until its lease runs out."""
    (sid,) = _conferences(session_factory, receiver.base + "/status", 1)
    callback_id = _join(session_factory, sid, 1, clock())
    with transaction(session_factory) as session:
        session.execute(
            update(Callback)
            .where(Callback.id == callback_id)
            .values(claimed_by="someone-else", claimed_until=clock() + timedelta(seconds=30))
        )
    worker = _worker(session_factory, http, clock)
    assert worker.run_once() == 0
    clock.advance(31)  # that worker died
    assert worker.run_once() == 1
    assert _row(session_factory, callback_id).status == "delivered"


def test_two_workers_share_the_outbox(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    sids = _conferences(session_factory, receiver.base + "/status", 3)
    for n in range(5):
        for sid in sids:
            _join(session_factory, sid, n, clock())
    receiver.delay = lambda _request: 0.005
    workers = [_worker(session_factory, http, clock, pool_size=2) for _ in range(2)]
    jobs = [gevent.spawn(worker.run_once) for worker in workers]
    gevent.joinall(jobs, timeout=20, raise_error=True)
    assert sum(job.value for job in jobs) == 15
    requests_seen = receiver.wait_for(15)
    assert receiver.queue.empty()  # each callback exactly once
    for sid in sids:
        numbers = [
            r.form["SequenceNumber"] for r in requests_seen if r.form["ConferenceSid"] == sid
        ]
        assert numbers == ["1", "2", "3", "4", "5"]


def test_start_notify_stop(
    session_factory: Factory, http: requests.Session, receiver: Receiver
) -> None:
    # The real clock, and a long poll: only notify() can explain a quick delivery.
    worker = DeliveryWorker(session_factory, http, poll_interval=30.0, timeout=(1.0, 2.0))
    worker.start()
    try:
        (sid,) = _conferences(session_factory, receiver.base + "/status", 1)
        _join(session_factory, sid, 1, datetime.now(UTC))
        worker.notify()
        (request,) = receiver.wait_for(1, timeout=5)
        assert request.form["ConferenceSid"] == sid
    finally:
        worker.stop(timeout=5)


def test_backoff_delay_bounds() -> None:
    rng = random.Random(1)
    for attempts in range(1, 12):
        delay = backoff_delay(attempts, base_delay=2.0, max_delay=300.0, rng=rng)
        cap = min(300.0, 2.0 * 2 ** (attempts - 1))
        assert cap * 0.5 <= delay <= cap
    assert backoff_delay(10**6, base_delay=2.0, max_delay=300.0, rng=rng) <= 300.0


def test_settles_are_spaced_by_their_cost_and_a_new_callback_waits_at_most_15_ms() -> None:
    """The gap after a settle: four times its cost (settles take a fifth of
    the time), at least 1 ms, and at most 15 ms, which bounds how long a
    callback committed just after a claim waits for the next one."""
    gap = DeliveryWorker._settle_gap
    assert gap(0.0) == pytest.approx(0.001)
    assert gap(0.002) == pytest.approx(0.008)
    assert gap(0.003) == pytest.approx(0.012)
    assert gap(0.007) == pytest.approx(0.015)  # a PostgreSQL settle at 1 000 callbacks/s
    assert gap(5.0) == pytest.approx(0.015)


def test_delivery_gives_way_while_the_engine_is_behind_then_takes_a_turn(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    """While ``give_way`` says the engine is behind, nothing is claimed or sent,
    for at most the limit; then delivery goes on although it still says so
    (an endless burst must not starve the outbox); once it no longer says so,
    callbacks go out at once."""
    (sid,) = _conferences(session_factory, receiver.base + "/status", 1)
    _join(session_factory, sid, 1, clock())
    behind = [True]
    worker = _worker(session_factory, http, clock, give_way=lambda: behind[0], give_way_limit=0.3)
    started = time.monotonic()
    runner = gevent.spawn(worker.run_once)
    gevent.sleep(0.2)
    assert receiver.requests == []  # giving way
    assert runner.get(timeout=5) == 1  # still "behind": its turn came after the limit
    waited = time.monotonic() - started
    assert 0.3 <= waited < 1.5, waited
    assert len(receiver.wait_for(1)) == 1
    # During its turn (another limit long) delivery does not wait again.
    _join(session_factory, sid, 2, clock())
    began = time.monotonic()
    assert worker.run_once() == 1
    assert time.monotonic() - began < 0.2
    # No longer behind: at once.
    behind[0] = False
    gevent.sleep(0.35)  # the turn is over; nothing to give way to anyway
    _join(session_factory, sid, 3, clock())
    began = time.monotonic()
    assert worker.run_once() == 1
    assert time.monotonic() - began < 0.2
    assert [r.form["SequenceNumber"] for r in receiver.wait_for(2)] == ["2", "3"]


def test_delivery_waits_for_the_engine_to_catch_up_when_it_does(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    (sid,) = _conferences(session_factory, receiver.base + "/status", 1)
    _join(session_factory, sid, 1, clock())
    behind = [True]
    worker = _worker(session_factory, http, clock, give_way=lambda: behind[0], give_way_limit=5)
    runner = gevent.spawn(worker.run_once)
    gevent.sleep(0.15)
    assert receiver.requests == []
    behind[0] = False  # caught up, long before the limit
    caught_up = time.monotonic()
    assert runner.get(timeout=5) == 1
    assert time.monotonic() - caught_up < 0.5
    assert len(receiver.wait_for(1)) == 1


def test_a_delivery_round_leaves_little_cyclic_garbage(
    session_factory: Factory, http: requests.Session, receiver: Receiver, clock: FakeClock
) -> None:
    """Claims and settles build no statement that the cyclic collector must
    find afterwards: such garbage is what set off its young collections (each
    walks every live young object, 100 ms and more) inside speaker storms.
    Measured on a round that sends 40 callbacks of 20 conferences."""
    import gc

    sids = _conferences(session_factory, receiver.base + "/status", 20)
    worker = _worker(session_factory, http, clock)
    for round_ in range(2):  # the first round warms SQLAlchemy's caches
        for number, sid in enumerate(sids * 2):
            _join(session_factory, sid, 100 * round_ + number, clock())
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            sent = worker.run_once()
            gc.collect()
            garbage = len(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        assert sent == 40
    # 335 while the claim's scan was built per claim; 50 since it is built once.
    assert garbage < 120, garbage
