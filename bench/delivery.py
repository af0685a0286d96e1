"""Webhook delivery alone: the outbox drained by one ``DeliveryWorker``.

Run from the repository root::

    python -m bench.delivery [--callbacks 10000] [--conferences 100] [--rounds 2]
                             [--paced-rate 1000] [--paced-seconds 3]
                             [--database-url URL]

Theory of operation
-------------------
* **The database** is a migrated SQLite file in a temporary directory, or a
  fresh schema on the PostgreSQL server ``--database-url`` names (dropped after).
* **The rows** are real: ``--conferences`` conferences with a statusCallback on
  the receiver, and callbacks queued through the outbox
  (:func:`fsconf.webhooks.outbox.enqueue_conference_callback`:
  SequenceNumber, Timestamp, the JSON params), ``participant-speech-start``
  events spread round-robin over the conferences.
* **The worker** is built by :func:`fsconf.service.app.delivery_worker`, exactly
  as ``fsconf serve`` builds it (``requests.Session``, production retry and
  pool settings), and started as ``fsconf serve`` starts it.
* **The receiver** is :class:`bench.pipeline.Receiver`: the customer
  application in its own process (its CPU is not fsconf's); it checks every
  ``X-Twilio-Signature`` and records each callback's arrival time
  (``CLOCK_MONOTONIC``, system-wide), ConferenceSid and SequenceNumber.
* **Backlog** (``callbacks/s``): ``--callbacks`` pending rows are committed
  first; the clock starts at ``notify()`` and stops at the last arrival.  The
  CPU this process used meanwhile (``time.process_time``), divided by the
  callbacks, is fsconf's CPU per callback, everything included (claim,
  signing, encoding, HTTP, outcome write).
* **Paced** (``commit -> POST``): a feeder greenlet in the same process
  commits one callback per transaction at ``--paced-rate`` (round-robin over
  the conferences), then calls ``notify()``, as the conference service does;
  latency = arrival at the receiver - the commit's return.
* Every round checks that each conference's SequenceNumbers arrived 1, 2, 3...
  with no gap, duplicate or reordering, and that no signature was bad.

The last line is exactly ``ratio delivery/target: <callbacks per second / 2000>``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.lock  # noqa: E402
import gevent.pool  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from bench.pipeline import (  # noqa: E402
    Receiver,
    check_order,
    database_for,
    load_note,
    percentile,
)
from fsconf.service.app import Tuning, delivery_worker  # noqa: E402
from fsconf.store import repositories  # noqa: E402
from fsconf.store.db import make_engine, make_session_factory, transaction  # noqa: E402
from fsconf.store.migrate import upgrade  # noqa: E402
from fsconf.store.models import Callback, Conference  # noqa: E402
from fsconf.store.times import format_rfc2822, utc_now  # noqa: E402
from fsconf.webhooks.delivery import DeliveryWorker  # noqa: E402
from fsconf.webhooks.outbox import enqueue_conference_callback  # noqa: E402

TARGET = 2000.0
TIMEOUT = 300.0
_FILL_BATCH = 500
_WRITERS = 4


@dataclass
class Bench:
    sessions: Any
    receiver: Receiver
    conference_sids: list[str]
    worker: DeliveryWorker
    delivered: int = 0


class Counter:
    """``on_delivered``: counts outcomes committed as delivered; wakes a waiter."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.reached = gevent.event.Event()

    def __call__(self, _seconds: float) -> None:
        self.count += 1
        if self.target and self.count >= self.target:
            self.reached.set()

    def wait(self, target: int, timeout: float = TIMEOUT) -> None:
        self.target = target
        if self.count < target:
            self.reached.clear()
            if not self.reached.wait(timeout):
                raise RuntimeError(f"delivered {self.count}/{target} after {timeout}s")


def make_conferences(sessions: Any, auth_token: str, url: str, count: int) -> list[str]:
    with transaction(sessions) as session:
        account = repositories.create_account(session, auth_token=auth_token, friendly_name="b")
        return [
            repositories.create_conference(
                session,
                account_sid=account.sid,
                friendly_name=f"room-{n}",
                status_callback=url,
                status_callback_events="speaker",
            ).sid
            for n in range(count)
        ]


def enqueue_one(session: Any, conference_sid: str, number: int) -> None:
    conference = session.get(Conference, conference_sid)
    enqueue_conference_callback(
        session,
        conference=conference,
        event="participant-speech-start",
        params=[("CallSid", f"CA{number:032x}"), ("Muted", "false"), ("Hold", "false")],
    )


class LeanFeeder:
    """One callback per transaction, as a lean ingest path would write it.

    The outbox's ORM path (``enqueue_conference_callback``: the conference
    row, its SequenceNumber, a flush) costs about 0.9 ms of CPU per row on
    SQLite, so at 1 000 rows/s it alone would fill the process; the ingest
    path is being rewritten separately.  This feeder writes the same row (the
    columns, params and JSON the outbox writes) with one prepared Core
    ``INSERT``, so the paced figure measures delivery, not the writer.
    """

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.statement = insert(Callback.__table__)
        with bench.sessions() as session:
            rows = session.execute(
                select(
                    Conference.sid,
                    Conference.account_sid,
                    Conference.friendly_name,
                    Conference.status_callback,
                    Conference.sequence_number,
                )
            ).all()
        self.conferences = {row.sid: row for row in rows}
        # The numbers go on from where the outbox left them (the order is checked).
        self.sequence = {row.sid: row.sequence_number for row in rows}

    def commit_one(self, conference_sid: str, number: int) -> None:
        conference = self.conferences[conference_sid]
        self.sequence[conference_sid] += 1
        sequence = self.sequence[conference_sid]
        moment = utc_now()
        pairs = [
            ("ConferenceSid", conference_sid),
            ("FriendlyName", conference.friendly_name),
            ("AccountSid", conference.account_sid),
            ("SequenceNumber", str(sequence)),
            ("Timestamp", format_rfc2822(moment)),
            ("StatusCallbackEvent", "participant-speech-start"),
            ("CallSid", f"CA{number:032x}"),
            ("Muted", "false"),
            ("Hold", "false"),
        ]
        with self.bench.sessions() as session, session.begin():
            session.execute(
                self.statement,
                {
                    "account_sid": conference.account_sid,
                    "conference_sid": conference_sid,
                    "call_sid": f"CA{number:032x}",
                    "kind": "conference-status",
                    "sequence_number": sequence,
                    "ordering_key": conference_sid,
                    "url": conference.status_callback,
                    "method": "POST",
                    "params": json.dumps(pairs, ensure_ascii=False),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": moment,
                    "created": moment,
                },
            )


def fill(bench: Bench, count: int, offset: int) -> None:
    """``count`` pending callbacks, round-robin over the conferences (not timed)."""
    sids = bench.conference_sids
    for start in range(0, count, _FILL_BATCH):
        with transaction(bench.sessions) as session:
            for n in range(start, min(count, start + _FILL_BATCH)):
                enqueue_one(session, sids[n % len(sids)], offset + n)


def verify(bench: Bench, total: int) -> tuple[int, int, int]:
    """(out of order, duplicates, bad signatures) over everything received so far."""
    bench.receiver.fetch()
    if len(bench.receiver.records) < total:
        raise RuntimeError(f"receiver has {len(bench.receiver.records)}/{total} callbacks")
    disorder, duplicates = check_order(bench.receiver.records)
    return disorder, duplicates, bench.receiver.bad_signatures


def run_backlog(bench: Bench, counter: Counter, count: int) -> tuple[float, float]:
    """Drain ``count`` pending callbacks; (callbacks/s, µs of CPU per callback)."""
    # The worker is stopped while the backlog is written (its poll would drain it).
    bench.worker.stop()
    fill(bench, count, bench.delivered)
    before = len(bench.receiver.records)
    cpu = time.process_time()
    start = time.monotonic()
    bench.worker.start()
    bench.worker.notify()
    counter.wait(bench.delivered + count)
    cpu = time.process_time() - cpu
    bench.delivered += count
    bench.receiver.wait_count(bench.delivered)
    last = max(record[0] for record in bench.receiver.records[before:])
    return count / (last - start), cpu / count * 1e6


def run_paced(
    bench: Bench, counter: Counter, rate: float, seconds: float, *, lean: bool
) -> dict[str, float]:
    """One callback committed per transaction at ``rate``; commit -> arrival percentiles."""
    total = int(rate * seconds)
    feeder = LeanFeeder(bench) if lean else None
    cpu = time.process_time()
    committed: dict[str, list[float]] = defaultdict(list)
    sids = bench.conference_sids
    # One writer at a time per conference, as the conference service's room
    # queues are; a few conferences commit concurrently (a PostgreSQL commit
    # waits for its WAL flush), bounded so the writers do not take every
    # pooled connection from the worker.
    rooms = {sid: gevent.lock.Semaphore() for sid in sids}

    def commit(sid: str, number: int) -> None:
        with rooms[sid]:
            if feeder is None:
                with transaction(bench.sessions) as session:
                    enqueue_one(session, sid, number)
            else:
                feeder.commit_one(sid, number)
            committed[sid].append(time.monotonic())
        bench.worker.notify()

    before = len(bench.receiver.records)
    writers = gevent.pool.Pool(_WRITERS)
    start = time.monotonic()
    for n in range(total):
        pause = start + n / rate - time.monotonic()
        if pause > 0:
            gevent.sleep(pause)
        writers.spawn(commit, sids[n % len(sids)], bench.delivered + n)
    writers.join()
    fed = time.monotonic() - start
    cpu = time.process_time() - cpu
    counter.wait(bench.delivered + total)
    bench.delivered += total
    bench.receiver.wait_count(bench.delivered)
    arrived: dict[str, list[float]] = defaultdict(list)
    for record in sorted(bench.receiver.records[before:], key=lambda r: (r[1], r[2])):
        arrived[record[1]].append(record[0])
    latencies = [
        got - put
        for sid, times in committed.items()
        for got, put in zip(arrived[sid], times, strict=True)
    ]
    return {
        "rate": total / fed,
        "cpu": cpu / fed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=10_000, help="backlog per round")
    parser.add_argument("--conferences", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paced-rate", type=float, default=1000.0)
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--log-level", default="INFO", help="as fsconf serve --log-level")
    parser.add_argument(
        "--paced-feeder",
        choices=("lean", "outbox"),
        default="lean",
        help="lean: one Core INSERT per commit; outbox: the ORM enqueue_conference_callback",
    )
    args = parser.parse_args(argv)
    # What ``fsconf serve`` configures (its default level is INFO): log lines cost CPU too.
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    auth_token = secrets.token_hex(16)
    print(f"before: {load_note()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fsconf-delivery-") as workdir:
        url, drop = database_for(args.database_url, workdir)
        receiver = Receiver(auth_token)
        engine = None
        worker = None
        try:
            upgrade(url)
            engine = make_engine(url)
            sessions = make_session_factory(engine)
            sids = make_conferences(
                sessions, auth_token, receiver.base + "/events", args.conferences
            )
            counter = Counter()
            worker = delivery_worker(sessions, Tuning(), on_delivered=counter)
            bench = Bench(sessions, receiver, sids, worker)
            worker.start()
            best = 0.0
            for round_number in range(1, args.rounds + 1):
                rate, cpu_us = run_backlog(bench, counter, args.callbacks)
                best = max(best, rate)
                print(
                    f"round {round_number}: backlog of {args.callbacks} over "
                    f"{args.conferences} conferences: {rate:,.0f} callbacks/s, "
                    f"{cpu_us:,.0f} µs of fsconf CPU per callback",
                    flush=True,
                )
            if args.paced_seconds > 0:
                lean = args.paced_feeder == "lean"
                paced = run_paced(bench, counter, args.paced_rate, args.paced_seconds, lean=lean)
                print(
                    f"paced {paced['rate']:,.0f} callbacks/s ({args.paced_feeder} feeder, "
                    f"process CPU {paced['cpu']:.0%} while feeding): commit -> POST "
                    f"p50 {paced['p50_ms']:.1f} ms, p99 {paced['p99_ms']:.1f} ms, "
                    f"max {paced['max_ms']:.1f} ms",
                    flush=True,
                )
            disorder, duplicates, bad = verify(bench, bench.delivered)
            print(
                f"checked {bench.delivered} callbacks: {disorder} out of order, "
                f"{duplicates} duplicates, {bad} bad signatures"
            )
            print(f"after: {load_note()}")
            print(f"callbacks delivered/s (best round): {best:,.0f}")
            print(f"ratio delivery/target: {best / TARGET:.2f}")
            failed = disorder or duplicates or bad
            return 1 if failed else 0
        finally:
            if worker is not None:
                worker.stop(timeout=2)
            receiver.stop()
            if engine is not None:
                engine.dispose()
            drop()


if __name__ == "__main__":
    sys.exit(main())
