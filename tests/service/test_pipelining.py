"""Pipelining: a room applies its next batch while the last one commits.

Everything is real (the migrated database, the engine, the service's writer
and its native-thread commits) except FreeSWITCH's ``api`` (a recorder that
answers ``+OK``). The writer's offload is wrapped so a test can hold a
commit on its way to the thread (a gate) or make it fail there once, as
SQLite would with an I/O error.

What must hold (``fsconf.service.conferences``, "Pipelining"):

* while a batch commits, the room applies the inputs queued behind it and
  hands their rows to the writer, to be written after it; ``room.state``
  stays where the database is until each batch is stored;
* if the batch being committed fails, the batch ahead is never written: its
  inputs go back to the queue behind the failed batch's, and everything is
  stored once, in order, with SequenceNumbers that have no gap;
* a batch whose last input has effects outside the database (a caller
  waiting, a command) is not built on: nothing is applied ahead of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import pytest

from fsconf.errors import StoreError, WebhookError
from fsconf.service.conferences import Room
from fsconf.store.db import transient_cause
from fsconf.store.native import in_native_thread
from tests.service.support import WAIT, talking
from tests.service.test_group_commit import Rooms


class Offload:
    """The writer's offload, with a gate and a one-time failure."""

    def __init__(self) -> None:
        self.gate = gevent.event.Event()
        self.gate.set()
        self.waiting = gevent.event.Event()
        self.fail_next = False
        self.calls = 0

    def __call__(self, work: Any) -> Any:
        self.calls += 1
        self.waiting.set()
        self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise sqlite3.OperationalError("disk I/O error")
        return in_native_thread(work)


@pytest.fixture
def pipeline(sqlite_sessions) -> Iterator[tuple[Rooms, Room, Offload, list[Any]]]:
    rooms = Rooms(sqlite_sessions, ["piped"])
    offload = Offload()
    writer = rooms.service.writer
    writer.offload = offload
    writer.offload_rows = 1  # every group with a callback goes to the thread
    tickets: list[Any] = []
    submit = writer.submit

    def recorded(room: Room, rows: list[Any], after: Any = None) -> Any:
        ticket = submit(room, rows, after)
        tickets.append(ticket)
        return ticket

    writer.submit = recorded  # type: ignore[method-assign]
    try:
        yield rooms, rooms.rooms[0], offload, tickets
    finally:
        offload.gate.set()
        rooms.close()


def _drained(room: Room) -> None:
    with gevent.Timeout(WAIT):
        while room.queue.qsize() or room.taken:
            gevent.sleep(0.005)


def _stored_once_in_order(rooms: Rooms, room: Room, *, talks: int) -> None:
    """Every talking input's callback, once, in order; SequenceNumbers with no
    gap; the room's state and its conference row agree with the outbox."""
    pairs = talks // 2
    assert _events(rooms, room) == ["participant-speech-start", "participant-speech-stop"] * pairs
    stored = rooms.callbacks(room)
    assert [row[0] for row in stored] == list(range(1, len(stored) + 1))
    assert room.state.sequence_number == len(stored)
    assert rooms.conference_row(room).sequence_number == len(stored)


def _events(rooms: Rooms, room: Room) -> list[str]:
    start = rooms.setup_callbacks[0]
    return [dict(row[2])["StatusCallbackEvent"] for row in rooms.callbacks(room)[start:]]


def test_the_next_batch_is_applied_while_the_last_commits(pipeline):
    rooms, room, offload, tickets = pipeline
    first, second = talking(10, rooms.first_call[0]), talking(6, rooms.first_call[0])
    stored_before = room.state
    offload.gate.clear()
    offload.waiting.clear()
    for input_ in first:
        room.put(input_)
    offload.waiting.wait(WAIT)  # the first batch is in a transaction, held
    for input_ in second:
        room.put(input_)
    with gevent.Timeout(WAIT):
        while len(tickets) < 2:
            gevent.sleep(0.005)
    held, ahead = tickets
    assert ahead.after is held and not held.done.ready()
    assert room.queue.qsize() == 0 and room.taken == len(first) + len(second)
    # Applied, not stored: the room's state is still the database's.
    assert room.state is stored_before
    offload.gate.set()
    _drained(room)
    assert held.done.successful() and ahead.done.successful()
    _stored_once_in_order(rooms, room, talks=16)


def test_a_failed_commit_drops_the_batch_ahead_and_loses_nothing(pipeline):
    rooms, room, offload, tickets = pipeline
    inputs = talking(10, rooms.first_call[0])
    more = talking(6, rooms.first_call[0])
    offload.gate.clear()
    offload.waiting.clear()
    offload.fail_next = True
    for input_ in inputs:
        room.put(input_)
    offload.waiting.wait(WAIT)
    for input_ in more:
        room.put(input_)
    with gevent.Timeout(WAIT):
        while len(tickets) < 2:
            gevent.sleep(0.005)
    failed, ahead = tickets[:2]
    offload.gate.set()
    _drained(room)
    with pytest.raises((StoreError, WebhookError)) as caught:
        failed.done.get(block=False)
    assert transient_cause(caught.value) is not None  # the I/O error: an outage
    # Never written: the batch it was applied on was not stored.
    with pytest.raises(StoreError, match="not written"):
        ahead.done.get(block=False)
    _stored_once_in_order(rooms, room, talks=16)


def test_nothing_is_applied_ahead_of_a_waiting_caller(pipeline):
    rooms, room, offload, tickets = pipeline
    inputs = talking(4, rooms.first_call[0])
    offload.gate.clear()
    offload.waiting.clear()
    for input_ in inputs[:-1]:
        room.put(input_)
    answered = room.submit(inputs[-1])  # its caller waits: it ends the batch
    offload.waiting.wait(WAIT)
    for input_ in talking(2, rooms.first_call[0]):
        room.put(input_)
    gevent.sleep(0.05)
    assert len(tickets) == 1 and room.queue.qsize() == 2
    offload.gate.set()
    answered.get(timeout=WAIT)
    _drained(room)
    assert _events(rooms, room) == ["participant-speech-start", "participant-speech-stop"] * 3
