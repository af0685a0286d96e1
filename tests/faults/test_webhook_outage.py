"""The application's webhook server is down for minutes; nothing is lost, nothing reordered.

Everything is real except time: the outbox is a migrated SQLite file or a
PostgreSQL schema, the receiver is a real HTTP server on loopback, and the
operator's commands run through the ``fsconf`` CLI (click's runner, with
``FSCONF_DATABASE_URL``).  Only the clock the :class:`DeliveryWorker` reads is
ours, so ten minutes of outage take a few hundred ``run_once()`` passes and
no waiting.

The receiver goes through the states a real outage has:

* **refusing**: the port is bound but not listening, so every connection is
  refused (the process is down);
* **503**: the server is back but its application is not (a proxy answers 503);
* **up**: 200 for everything.

``run_once()`` returns only when every request it started has finished, and the
server records a request before it answers, so after a pass the receiver's
list is complete: the tests need no other synchronisation.
"""

from __future__ import annotations

import json
import random
import socket
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from click.testing import CliRunner, Result
from gevent.pywsgi import WSGIServer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fsconf.cli import cli
from fsconf.store import repositories as repo
from fsconf.store.db import transaction
from fsconf.store.models import Callback
from fsconf.webhooks.delivery import DeliveryWorker
from fsconf.webhooks.outbox import enqueue_conference_callback

Factory = sessionmaker[Session]

TOKEN = "5e3b" * 8
REFUSING, UNAVAILABLE, UP = "refusing", "503", "up"


class FakeClock:
    """The only fake: the worker's idea of now.

    It starts at the real time, so that ``fsconf callbacks retry`` (which
    stamps rows with the real time) makes them due on this clock too.
    """

    def __init__(self) -> None:
        self.start = datetime.now(UTC).replace(microsecond=0)
        self.now = self.start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @property
    def elapsed(self) -> float:
        return (self.now - self.start).total_seconds()


@dataclass(frozen=True)
class Hit:
    """One request that reached the application's server."""

    at: float  # seconds of fake time since the outage began
    status: int
    conference_sid: str
    sequence_number: int


class OutageReceiver:
    """An HTTP server on loopback whose outage the test controls."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.hits: list[Hit] = []
        self.state = REFUSING
        # Bound but not listening: the kernel refuses connections to it.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/status"
        self._server: WSGIServer | None = None

    def answer(self, state: str) -> None:
        """Go from refusing to answering ``503`` or ``up``."""
        if self._server is None:
            self._socket.listen(128)
            self._server = WSGIServer(self._socket, self._app, log=None, error_log=None)
            self._server.start()
        self.state = state

    def close(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)
        self._socket.close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = dict(parse_qsl(environ["wsgi.input"].read(length).decode(), keep_blank_values=True))
        status = 200 if self.state == UP else 503
        self.hits.append(
            Hit(
                self._clock.elapsed,
                status,
                form["ConferenceSid"],
                int(form["SequenceNumber"]),
            )
        )
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return [b"ok" if status == 200 else b"Service Unavailable"]

    def delivered(self) -> list[Hit]:
        return [hit for hit in self.hits if hit.status == 200]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver(clock: FakeClock) -> Iterator[OutageReceiver]:
    server = OutageReceiver(clock)
    yield server
    server.close()


def make_worker(
    factory: Factory, http: requests.Session, clock: FakeClock, **options: Any
) -> DeliveryWorker:
    return DeliveryWorker(
        factory,
        http,
        clock=clock,
        timeout=(1.0, 2.0),
        pool_size=8,
        rng=random.Random(11),
        **options,
    )


def open_conferences(factory: Factory, url: str, count: int) -> tuple[str, list[str]]:
    with transaction(factory) as session:
        account = repo.create_account(session, auth_token=TOKEN, friendly_name="outage")
        sids = [
            repo.create_conference(
                session,
                account_sid=account.sid,
                friendly_name=f"call-center-{n}",
                status_callback=url,
                status_callback_method="POST",
                status_callback_events="join leave",
            ).sid
            for n in range(count)
        ]
    return account.sid, sids


def queue_joins(factory: Factory, conference_sids: list[str], count: int, now: datetime) -> None:
    """``count`` participant-join callbacks per conference (SequenceNumbers follow on)."""
    for n in range(count):
        for sid in conference_sids:
            with transaction(factory) as session:
                conference = repo.get_conference(session, sid=sid)
                assert conference is not None
                callback = enqueue_conference_callback(
                    session,
                    conference=conference,
                    event="participant-join",
                    params=[("CallSid", f"CA{n:08x}{sid[-24:]}"), ("Muted", "false")],
                    now=now,
                )
                assert callback is not None


def drive(worker: DeliveryWorker, clock: FakeClock, until: float, step: float) -> int:
    """The worker's loop on the fake clock: a pass every ``step`` seconds."""
    attempts = 0
    while clock.elapsed < until:
        attempts += worker.run_once()
        clock.advance(step)
    return attempts


def drain(
    worker: DeliveryWorker, factory: Factory, clock: FakeClock, step: float, limit: float
) -> float:
    """Run passes until no row is pending; return how long (fake seconds) it took."""
    started = clock.elapsed
    while pending(factory):
        assert clock.elapsed - started <= limit, "the outbox did not drain"
        worker.run_once()
        clock.advance(step)
    return clock.elapsed - started


def pending(factory: Factory) -> int:
    with factory() as session:
        return len(list(session.scalars(select(Callback.id).where(Callback.status == "pending"))))


def rows(factory: Factory) -> list[Callback]:
    with factory() as session:
        found = list(session.scalars(select(Callback).order_by(Callback.id)))
        session.expunge_all()
        return found


def sequence_by_conference(hits: list[Hit]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for hit in hits:
        grouped[hit.conference_sid].append(hit.sequence_number)
    return dict(grouped)


def fsconf(db_url: str, *args: str) -> Result:
    env = {
        "FSCONF_DATABASE_URL": db_url,
        "FSCONF_CONFIG": "",
        "FSCONF_ACCOUNT_SID": "",
        "FSCONF_AUTH_TOKEN": "",
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def failed_listing(db_url: str) -> list[dict[str, Any]]:
    result = fsconf(db_url, "callbacks", "list", "--failed", "--json")
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    listing: list[dict[str, Any]] = json.loads(result.output)["callbacks"]
    return listing


# --- 1. a long outage, then recovery: everything arrives, in order ----------------------


def test_ten_minute_outage_then_every_callback_arrives_in_order(
    session_factory: Factory, http: requests.Session, receiver: OutageReceiver, clock: FakeClock
) -> None:
    max_delay = 60.0
    step = 2.0
    _, sids = open_conferences(session_factory, receiver.url, 6)
    queue_joins(session_factory, sids, 4, clock())
    worker = make_worker(
        session_factory, http, clock, max_attempts=100, base_delay=2.0, max_delay=max_delay
    )

    # Five minutes of refused connections; the conferences go on meanwhile.
    attempts = drive(worker, clock, until=150, step=step)
    queue_joins(session_factory, sids, 2, clock())
    attempts += drive(worker, clock, until=300, step=step)
    assert receiver.hits == []
    # Five minutes of 503.
    receiver.answer(UNAVAILABLE)
    attempts += drive(worker, clock, until=600, step=step)
    during = list(receiver.hits)
    assert during and all(hit.status == 503 for hit in during)
    # Head of line: only SequenceNumber 1 of each conference is ever tried.
    assert {hit.sequence_number for hit in during} == {1}
    assert {hit.conference_sid for hit in during} == set(sids)
    # Retrying never stops and never waits longer than max_delay.
    for sid in sids:
        times = [hit.at for hit in during if hit.conference_sid == sid]
        gaps = [later - earlier for earlier, later in pairwise(times)]
        assert len(times) >= 300 / max_delay - 1
        assert max(gaps) <= max_delay + step
    assert all(row.status == "pending" for row in rows(session_factory))

    receiver.answer(UP)
    recovery = drain(worker, session_factory, clock, step=step, limit=max_delay * 8)

    delivered = receiver.delivered()
    assert sequence_by_conference(delivered) == {sid: [1, 2, 3, 4, 5, 6] for sid in sids}
    assert len(delivered) == 36  # exactly once each
    stored = rows(session_factory)
    assert [row.status for row in stored] == ["delivered"] * 36
    # Once the application is back, the whole backlog goes out within the
    # backoff of the heads (at most max_delay) plus one pass per callback.
    assert recovery <= max_delay + step * 7
    print(
        f"\nwebhook outage: 600 s down (300 refused + 300 x 503), {len(during)} attempts "
        f"reached the server, {attempts} attempts in all; after recovery {len(delivered)} "
        f"delivered in {recovery:.0f} s (fake), retried 0, dead-lettered 0"
    )


# --- 2. small max_attempts: dead letters, listed and re-sent by the operator ------------


def test_dead_letters_are_listed_and_resent_by_the_cli(
    db_url: str,
    session_factory: Factory,
    http: requests.Session,
    receiver: OutageReceiver,
    clock: FakeClock,
) -> None:
    step = 1.0
    _, sids = open_conferences(session_factory, receiver.url, 6)
    refused_rooms, unavailable_rooms, late_rooms = sids[:2], sids[2:4], sids[4:]
    # With three attempts 10 s apart (then 20 s), one callback dies within
    # 30 s of its first try, so a stream of three is dead well before the
    # application is back; the late rooms start 10 s before it is.
    worker = make_worker(
        session_factory, http, clock, max_attempts=3, base_delay=10.0, max_delay=60.0
    )
    queue_joins(session_factory, refused_rooms, 3, clock())
    attempts = drive(worker, clock, until=300, step=step)
    receiver.answer(UNAVAILABLE)
    queue_joins(session_factory, unavailable_rooms, 3, clock())
    attempts += drive(worker, clock, until=590, step=step)
    queue_joins(session_factory, late_rooms, 3, clock())
    attempts += drive(worker, clock, until=600, step=step)
    receiver.answer(UP)
    drain(worker, session_factory, clock, step=step, limit=120)

    # The late rooms were delivered, in order; the others are dead letters.
    first_pass = receiver.delivered()
    assert sequence_by_conference(first_pass) == {sid: [1, 2, 3] for sid in late_rooms}
    dead = failed_listing(db_url)
    assert len(dead) == 12
    assert {item["conference_sid"] for item in dead} == set(refused_rooms + unavailable_rooms)
    for item in dead:
        assert item["status"] == "failed" and item["attempts"] == 3
        if item["conference_sid"] in refused_rooms:
            assert item["last_status_code"] is None
            assert "ConnectionError" in item["last_error"]
        else:
            assert item["last_status_code"] == 503 and item["last_error"] == "HTTP 503"
    # No dead letter was ever sent out of its turn: every 503 attempt of a
    # room came after the previous callback of that room had died.
    attempted = sequence_by_conference([hit for hit in receiver.hits if hit.status == 503])
    for sid in unavailable_rooms:
        assert attempted[sid] == sorted(attempted[sid])

    # The operator re-sends one dead letter (the head of a room) by its id...
    head = min(
        (item for item in dead if item["conference_sid"] == refused_rooms[0]),
        key=lambda item: item["sequence_number"],
    )
    result = fsconf(db_url, "callbacks", "retry", str(head["id"]))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"callback {head['id']} queued again"
    before = len(receiver.hits)
    drain(worker, session_factory, clock, step=step, limit=60)
    (again,) = receiver.hits[before:]
    assert (again.status, again.conference_sid, again.sequence_number) == (200, refused_rooms[0], 1)
    assert len(failed_listing(db_url)) == 11

    # ...then all the others at once.
    result = fsconf(db_url, "callbacks", "retry", "--all-failed")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "11 failed callbacks queued again"
    before = len(receiver.hits)
    drain(worker, session_factory, clock, step=step, limit=120)
    resent = receiver.hits[before:]
    assert all(hit.status == 200 for hit in resent) and len(resent) == 11
    # Order per conference holds for the re-sent ones, and overall.
    expected = {sid: [1, 2, 3] for sid in refused_rooms + unavailable_rooms}
    expected[refused_rooms[0]] = [2, 3]
    assert sequence_by_conference(resent) == expected
    assert sequence_by_conference(receiver.delivered()) == {sid: [1, 2, 3] for sid in sids}
    counts = Counter((hit.conference_sid, hit.sequence_number) for hit in receiver.delivered())
    assert set(counts.values()) == {1} and len(counts) == 18  # each exactly once
    assert failed_listing(db_url) == []
    assert [row.status for row in rows(session_factory)] == ["delivered"] * 18

    print(
        f"\nwebhook dead letters: {attempts} attempts during a 600 s outage; "
        f"delivered {len(first_pass)} on recovery, dead-lettered {len(dead)}, "
        f"retried 1 by id + 11 with --all-failed, delivered {len(receiver.delivered())} in all"
    )
