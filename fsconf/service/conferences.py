"""The conference service: the gevent shell around the pure engine.

Theory of operation
-------------------
One :class:`Room` per live conference owns the engine state and a serial
queue. Everything that concerns the conference becomes an engine input on that
queue: a call arriving at ``<Dial><Conference>`` (the calls layer's
``ConferenceGateway.join``), a ``conference::maintenance`` event from the
inbound ESL connection, a channel hangup, a timer, a REST/CLI request. The
room's worker applies inputs in queue order and runs the effects in order:

1. rows, callbacks (the outbox), alerts and recordings are written in **one
   transaction** (shared with other rooms, see Batches), so a crash loses
   nothing, then the delivery worker is notified;
2. FreeSWITCH commands go out on the node's inbound connection with ``api``,
   which keeps them in order (FreeSWITCH runs ``bgapi`` jobs in parallel
   threads); a ``-ERR`` to an announcement's play becomes ``PlayFailed``;
3. joins, wait audio and "go on with the call" go to the call's
   :class:`~fsconf.calls.gateway.CallHandle`.

Batches
-------
A transaction is the expensive part of an input (an fsync on SQLite with
``synchronous=FULL``, a round trip on PostgreSQL, and SQLAlchemy's own
per-transaction and per-statement work; under gevent a SQLite commit stalls
every greenlet), and a speaker storm queues hundreds of inputs per room,
across many rooms. So when the worker wakes it takes up to ``batch_limit``
(64) queued inputs, applies each to the pure engine in turn (each with its
own ``now``, each on the state the previous one left), hands the rows and
callbacks of all of them to the service's :class:`GroupWriter` and waits
until they are committed, then runs their other effects and sets their
results, in input order.

**Group commit.** The writer is one greenlet. It lets every ready greenlet run
first (so the rooms woken by the same burst, or by its previous commit, add
their batches), then writes every pending batch, room after room, in **one**
transaction (up to ``GROUP_ROW_LIMIT`` rows), commits, and wakes the rooms;
if that transaction fails, it writes each room's batch in its own
transaction, so only the rooms whose batch fails alone see the error.
A room's batch never waits for another room's *inputs*, only for the commit
it shares; the rooms of one transaction are independent (each conference's
rows are its own), so sharing changes nothing any conference can observe.
Inside the transaction a conference row is one Core ``UPDATE`` (``INSERT``
if there was none), participant, alert and recording rows go through the
ORM as before, and the callbacks of the whole transaction go last as one
executemany, a COPY on PostgreSQL (:func:`fsconf.webhooks.outbox.insert_callbacks`),
room after room and in input order, so within a conference their ids follow
the SequenceNumbers. On SQLite a group with at least ``OFFLOAD_ROWS``
callbacks writes its conference rows and callbacks, and commits, on a native thread
(:mod:`fsconf.store.native`): SQLite's own work runs on another core while
the hub reads and applies the next events.

Pipelining
----------
While its batch commits, a room applies the inputs queued behind it (up to
the next batch's end) on the batch's resulting state and hands their rows to
the writer, marked to be written *after* that batch, in a later transaction:
so the hub has work while the writer waits for SQLite's thread or
PostgreSQL's reply. Nothing of the batch ahead happens outside the engine
until it is stored itself: its effects, its callers' results and
``room.state`` wait, as for any batch. It is applied only once the writer has
taken the batch into a transaction, and only after a batch whose effects are
only rows (a batch that ends on a command, a join or a waiting caller is not
built on: later inputs must see those effects done). If the batch fails, the
writer never writes the batch ahead (it fails it unwritten) and the room puts
its inputs back behind the failed batch's own (see below); the engine being
pure, they are applied again as if they had never been taken.

What may share a room's batch:

* an input whose effects are only rows, callbacks, alerts and recordings
  (talking, mute and hold confirmations, most leaves): nothing outside the
  database happens for it, so nothing a later input could observe is missing
  when the later input is applied;
* an input that has *any* other effect (an ``api`` command, a join, wait
  audio, ``ContinueCall``, a timer) **ends** its batch: later inputs may
  depend on that effect being done (a command's ``-ERR`` queues
  ``PlayFailed``; a join or ``ContinueCall`` changes the room's calls; a
  timer may fire), so they wait for the next batch, as they would have
  waited unbatched;
* an API request (an input whose caller waits for a result) ends its batch
  too, so its caller is answered as soon as its rows are stored.

Hence only the last input of a batch can have effects outside the database,
and the order of effects is the unbatched order: every input's rows are
stored before any later input's commands, joins or results, and the
commands, joins and results keep input order. The engine's ``StoreConference``
and ``StoreParticipant`` are upserts of the row "as it is after this step", so
within one transaction only the last one per row is written (at the place of
the first: the other rows of the batch are written after it, as before); the
callbacks are inserted in input order, so their ids follow the engine's
SequenceNumbers. A result (or a refusal) is given to an API caller only after
its rows are stored; ``notify_callbacks`` is called once per stored input that
queued callbacks, right after the commit. ``room.state`` moves to the batch's
state once the batch is stored (never before: a step whose rows wait keeps
the room's state where the database is).

When the database is away (connection refused or lost, SQLite locked or
read-only), nothing is dropped or reordered: if a room's batch fails (alone,
see Group commit) for any reason, the room keeps its batch's first input and
puts the others back at the head of its queue, unapplied (the engine is pure:
they are applied again, later, exactly as if they had never been taken;
re-trimming a recording is a no-op). The first input's rows are then stored
alone, in the room's own transaction, as without batching (a batch of one
input does not try again at once: its failed attempt through the writer was
the first try, so a SQLite lock costs one busy wait before it is logged): the
worker retries the same transaction with backoff (50 ms doubling to 1 s)
and logs what it waits for, once per step and then every 10 s (``CF…:
waiting for the database to store 3 rows and 2 callbacks: OperationalError``;
the error's class, never its text, which may name the host or user). Later
inputs queue behind it in order, and the step's commands go out only once
its rows are stored; the rest of the batch follows through the writer again
once the database is back. The calls stay up meanwhile: FreeSWITCH needs
nothing from us to keep them. Other errors (integrity, programming) are bugs
and fail the input that causes them, alone, as without batching; the other
rooms of its group are stored as if it had not been there.

After a reconnect or a restart, :mod:`fsconf.service.reconcile` compares the
rooms with FreeSWITCH and queues what it finds (R15); a conference rebuilt
from its rows after fsconf restarted is taken over with :meth:`adopt`.

Invariants:

* the socket reader never blocks on a room: events are queued, and the room's
  worker may block (on ``api`` replies) without stalling other rooms;
* the database is written from FreeSWITCH's confirming event, never from an
  API reply (the engine only changes state on confirmation, R9);
* a call's ``join`` returns exactly once, with how it left the conference.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple, cast

import gevent
import gevent.event
import gevent.queue
from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from fsconf.calls.gateway import CallHandle
from fsconf.calls.program import DialOutcome
from fsconf.conference import events as engine_events
from fsconf.conference.effects import (
    Callback,
    CancelTimer,
    ConferenceRow,
    ContinueCall,
    Effect,
    JoinRoom,
    ParticipantRow,
    PlayWait,
    RecordingFinished,
    ReportError,
    SendApi,
    StartTimer,
    StoreConference,
    StoreParticipant,
)
from fsconf.conference.engine import apply
from fsconf.conference.model import (
    ConferenceState,
    ConferenceStatus,
    EngineConfig,
    ParticipantSettings,
    Placement,
    RecordingEvent,
    new_conference,
)
from fsconf.errors import (
    EslError,
    FsconfError,
    StoreError,
    TransitionError,
    TwilioApiError,
    WebhookError,
)
from fsconf.esl.frames import ApiResponse, Event
from fsconf.service.adapt import engine_input, participant_settings, room_of
from fsconf.service.trim import trim_silence
from fsconf.store import models, repositories
from fsconf.store.bulk import update_by_key
from fsconf.store.db import causes, transaction, transient_cause
from fsconf.store.ids import new_sid
from fsconf.store.native import (
    Offload,
    commit_natively,
    in_native_thread,
    update_natively,
    update_statements,
    write_natively,
)
from fsconf.store.times import utc_now
from fsconf.webhooks.outbox import (
    CallbackRow,
    callback_values,
    insert_callbacks,
    native_insert_statements,
)

logger = logging.getLogger(__name__)

_ANNOUNCE_ID = re.compile(r"\{fsconf_announce=([A-Za-z0-9]+)")

RECORDING_PAUSES = {"pause-recording": "paused", "resume-recording": "in-progress"}
"""conference::maintenance Actions that change a recording row's status."""

BATCH_LIMIT = 64
"""The most inputs a room applies and stores in one batch (see Batches).
At 64 a commit's cost is shared so widely that the engine and the statements
dominate; a bigger batch only delays the first input's effects."""

GROUP_ROW_LIMIT = 1024
"""The most rows (callbacks included) the writer puts in one transaction.

What is not offloaded holds the hub while it runs (the conference rows'
fallback, participants, the flush): this bounds it. And the last commit of a
burst has nothing left to overlap (every room waits for it): smaller groups
start sooner and end the burst sooner. Measured with a 10 000-event storm
(interleaved rounds, medians): 1 024 rows 21 200 events/s, 4 096 rows 19 400;
768 and 2 048 no better than 1 024 (bench/README.md)."""

OFFLOAD_ROWS = 64
"""The fewest callbacks for which a group commit runs SQLite on a native
thread (see GroupWriter): below, the hand-over (~0.1 ms) is not worth it."""

BEHIND_INPUTS = 256
"""Room inputs (queued or being stored) from which the engine counts as behind
(see behind()): a burst. At a steady 1 000 events/s the rooms hold what
arrives during one commit, a few dozen even when PostgreSQL takes 50 ms."""
BEHIND_RECHECK = 0.002
"""Seconds a behind() answer is reused."""
BEHIND_HANGOVER = 0.05
"""Seconds the service stays behind once fewer than BEHIND_INPUTS inputs wait,
unless none does (see behind()): a speaker storm's last few hundred inputs
took 5-15 ms to apply and store in bench.pipeline."""

ApiSender = Callable[[str], ApiResponse]
"""Send one api command text to the node that hosts the room."""


@dataclass
class _Item:
    event: engine_events.ConferenceInput
    result: gevent.event.AsyncResult | None = None


class _Step(NamedTuple):
    """One input as the engine took it: the states around it and its effects,
    or why it was refused (``error``: the engine's refusal, or a bug).

    A named tuple, not a frozen dataclass: one is made per input, and a
    frozen dataclass's ``__init__`` costs three times as much (0.7 µs)."""

    item: _Item
    before: ConferenceState
    after: ConferenceState
    now: datetime
    effects: tuple[Effect, ...] = ()
    error: Exception | None = None

    @property
    def ends_batch(self) -> bool:
        """Later inputs must not be applied before this one's effects are done."""
        return self.item.result is not None or not ACTORS.keys().isdisjoint(
            map(type, self.effects)
        )


StoredRow = tuple[Effect, datetime]
"""A storage effect and the ``now`` of its step."""


@dataclass(eq=False, slots=True)
class _Batch:
    """Steps a room applied together, their rows, and the writer's ticket for
    them (None: nothing to store)."""

    steps: list[_Step]
    rows: list[StoredRow]
    ticket: _Ticket | None
    stored: bool = False
    """Every row of the batch is committed (see Room._work)."""


class _RoomQueue(gevent.queue.Queue):  # type: ignore[misc]
    """The room's input queue. Its worker, the only consumer, can put inputs it
    took but could not store back at the head, in order."""

    def put_back(self, items: list[_Item]) -> None:
        # ``queue`` is the deque that Queue keeps (as in the standard library's
        # queue.Queue); no getter waits while the worker itself is running.
        self.queue.extendleft(reversed(items))


class Room:
    """One live conference: its engine state, its queue, its calls."""

    def __init__(self, service: ConferenceService, state: ConferenceState) -> None:
        self.service = service
        self.state = state
        self.sid = state.sid
        """The ConferenceSid (the state's, which never changes: read per input)."""
        # None only wakes the worker to check whether the room can go (call_left).
        self.queue: _RoomQueue = _RoomQueue()
        self.changed = gevent.event.Event()
        self.calls: dict[str, CallHandle] = {}
        self.outcomes: dict[str, gevent.event.AsyncResult] = {}
        self.audio: dict[str, Any] = {}
        self.timers: dict[str, Any] = {}  # timer_id -> a started loop timer
        self.taken = 0
        """Inputs of the batches being applied and stored (out of the queue, not done)."""
        # Set by put/submit while the worker waits for a commit (see _ahead).
        self._arrived = gevent.event.Event()
        self._watching = False
        self.worker = gevent.spawn(self._run)

    def submit(self, event: engine_events.ConferenceInput) -> gevent.event.AsyncResult:
        """Queue an input whose caller waits: it ends its batch (see Batches)."""
        result = gevent.event.AsyncResult()
        self.queue.put(_Item(event, result))
        if self._watching:
            self._arrived.set()
        return result

    def put(self, event: engine_events.ConferenceInput) -> None:
        """Queue an input that nobody waits for (an event, a timer)."""
        self.queue.put(_Item(event))
        if self._watching:
            self._arrived.set()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is not None:
                self._work(item)
            if self.state.status is ConferenceStatus.COMPLETED and self._idle():
                self.service._forget(self)
                return

    def _work(self, first: _Item) -> None:
        """Apply and settle batches from ``first`` on, each next one applied
        while the one before it commits (see Pipelining)."""
        batch: _Batch | None = self._batch(self.state, first)
        while batch is not None:
            ahead = self._ahead(batch)
            try:
                self._settle(batch, ahead)
            except Exception as error:  # one bad input must not kill the room
                logger.exception(
                    "%s: %s failed", self.sid, describe_input(batch.steps[-1].item.event)
                )
                for step in batch.steps:
                    result = step.item.result
                    if result is not None and not result.ready():
                        result.set_exception(error)
            self.taken -= len(batch.steps)
            # The batch ahead was applied on this one's state: it stands only
            # if this one was stored (if not, its inputs are back in the queue).
            batch = ahead if batch.stored else None
        self.taken = 0

    def _idle(self) -> bool:
        return (
            self.queue.empty()
            and not self.outcomes
            # A finished recording stays in the state; only a running one keeps
            # the room (its stop-recording still has to come).
            and (
                self.state.recording is None
                or self.state.recording.status is not RecordingEvent.IN_PROGRESS
            )
            and not self.timers
        )

    # --- a batch: apply, store once, act ---------------------------------------------

    def _batch(self, state: ConferenceState, first: _Item) -> _Batch:
        """Apply ``first`` and the inputs queued behind it (up to the batch's
        end) on ``state``, and hand their rows to the writer."""
        steps = self._take(state, first)
        self.taken += len(steps)
        rows = _rows(steps)
        return _Batch(steps, rows, self.service.writer.submit(self, rows) if rows else None)

    def _take(self, state: ConferenceState, first: _Item) -> list[_Step]:
        """Apply ``first`` and the inputs queued behind it, up to the batch's end."""
        steps = [self._step(state, first)]
        # The queue's own deque (see _RoomQueue): the worker is its only
        # consumer and it is unbounded, so popping is get_nowait without its cost.
        ready = self.queue.queue
        limit = self.service.batch_limit
        while ready and len(steps) < limit and not steps[-1].ends_batch:
            item = ready.popleft()
            if item is not None:  # a wake-up only: the worker checks after the batch
                steps.append(self._step(steps[-1].after, item))
        return steps

    def _ahead(self, batch: _Batch) -> _Batch | None:
        """The next batch, applied on ``batch``'s state while ``batch`` commits.

        Only once the writer has taken ``batch`` into a transaction (the next
        one can hold this), and only when ``batch`` has nothing but rows
        (``ends_batch``: a later input must see its effects done first).
        """
        ticket = batch.ticket
        if ticket is None or batch.steps[-1].ends_batch or not self.service.pipelining:
            return None
        ticket.started.wait()
        ready = self.queue.queue
        while True:
            while ready and ready[0] is None:  # wake-ups only (see _take)
                ready.popleft()
            if ticket.done.ready():
                return None
            if ready:
                break
            # Whatever arrives while the batch commits is applied at once.
            self._arrived.clear()
            self._watching = True
            try:
                gevent.wait([ticket.done, self._arrived], count=1)
            finally:
                self._watching = False
        steps = self._take(batch.steps[-1].after, ready.popleft())
        self.taken += len(steps)
        rows = _rows(steps)
        writer = self.service.writer
        return _Batch(steps, rows, writer.submit(self, rows, after=ticket) if rows else None)

    def _step(self, state: ConferenceState, item: _Item) -> _Step:
        now = self.service.clock()
        try:
            after, effects = apply(state, item.event, now)
        except (TwilioApiError, TransitionError) as error:
            return _Step(item, state, state, now, error=error)
        # A bug: this input fails, alone, and is logged when it is settled (an
        # input put back after a failed batch is applied again).
        except Exception as error:  # noqa: BLE001
            return _Step(item, state, state, now, error=error)
        return _Step(item, state, after, now, _trim_recordings(self.sid, effects))

    def _settle(self, batch: _Batch, ahead: _Batch | None) -> None:
        """Wait until the batch's rows are stored, then run its steps' effects
        and answer their callers.

        The rows went to the service's writer, which commits them with the
        batches other rooms have ready (group commit). If that transaction
        fails (whatever the reason), the first step is stored alone, exactly
        as without batching, and the others go back to the head of the queue
        unapplied, followed by the inputs of the batch ahead (the writer never
        stores that one: see GroupWriter).
        """
        steps = batch.steps
        if batch.ticket is not None:
            try:
                batch.ticket.done.get()
            # Whatever failed, the first step alone says why (its retry logs an
            # outage; a bug fails it): never the error's text, it may name the host.
            except Exception as error:  # noqa: BLE001
                logger.debug(
                    "%s: a batch of %d inputs was not stored (%s); storing the first alone",
                    self.sid,
                    len(steps),
                    type(error).__name__,
                )
                back = [step.item for step in steps[1:]]
                if ahead is not None:
                    back += [step.item for step in ahead.steps]
                if back:
                    self.queue.put_back(back)
                if len(steps) > 1:
                    steps = steps[:1]
                    rows = _rows(steps)
                    if rows:
                        self._store_until_stored(rows)
                else:
                    # The same rows just failed: that was the first attempt.
                    self._store_until_stored(batch.rows, failed=error)
            else:
                batch.stored = True
        else:
            batch.stored = True
        # Only now: a step whose rows cannot be stored must not stay in the
        # state (a participant the database refused would haunt the room).
        self.state = steps[-1].after
        self._finish(steps)

    def _finish(self, steps: list[_Step]) -> None:
        """After the steps' rows are stored: signals, effects, results, in order."""
        for step in steps:
            _log_lifecycle(step.before, step.after)
        for step in steps:
            # One call per stored input with callbacks (the benchmarks count them).
            if Callback in map(type, step.effects):
                self.service.notify_callbacks()
        if any(RecordingFinished in map(type, step.effects) for step in steps):
            self.service.recordings_changed.set()
            self.service.recordings_changed.clear()
        for step in steps:
            result = step.item.result
            if step.error is not None:
                if not isinstance(step.error, TwilioApiError | TransitionError):
                    logger.error(
                        "%s: %s failed",
                        self.sid,
                        describe_input(step.item.event),
                        exc_info=step.error,
                    )
                if result is not None:
                    result.set_exception(step.error)
                elif isinstance(step.error, TwilioApiError | TransitionError):
                    logger.warning("%s: %s", self.sid, step.error)
                continue
            for effect in step.effects:
                self._act(effect)
            if result is not None:
                result.set(step.after)
        self.changed.set()
        self.changed.clear()

    # --- effects: storage (one transaction) ---------------------------------------

    def _write(self, rows: list[StoredRow]) -> None:
        write_batches(self.service.sessions, [(self, rows)])

    def _store_until_stored(self, rows: list[StoredRow], failed: Exception | None = None) -> None:
        """Write one step's rows and callbacks; while the database is away, wait.

        The worker blocks here, so the room's later inputs wait behind this
        step in order, and its commands and joins go out only once its rows
        are stored (the calls themselves stay up: FreeSWITCH needs nothing
        from us to keep them). Only transient errors (connection lost or
        refused, SQLite locked or read-only) are retried; anything else is a
        bug and raises as before. ``failed``: these very rows just failed
        through the writer, which counts as the first attempt (a SQLite lock
        costs one busy timeout, not two, before the outage is logged).
        """
        delay = self.service.store_retry_initial
        started: float | None = None
        last_logged = 0.0
        while True:
            try:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                self._write(rows)
            except (StoreError, WebhookError) as error:
                cause = transient_cause(error)
                if cause is None:
                    raise
                clock = time.monotonic()
                if started is None or clock - last_logged >= self.service.store_retry_log_every:
                    callbacks = sum(1 for e, _now in rows if isinstance(e, Callback))
                    # The error's class only: its text may name the host or user.
                    logger.warning(
                        "%s: waiting for the database to store %d rows and %d callbacks: %s",
                        self.sid,
                        len(rows) - callbacks,
                        callbacks,
                        type(cause).__name__,
                    )
                    last_logged = clock
                    started = clock if started is None else started
                gevent.sleep(delay)
                delay = min(delay * 2, self.service.store_retry_cap)
                continue
            if started is not None:
                logger.warning(
                    "%s: database back; stored after %.1fs", self.sid, time.monotonic() - started
                )
            return

    # --- effects: the world ------------------------------------------------------------

    def _act(self, effect: Effect) -> None:
        actor = ACTORS.get(type(effect))
        if actor is not None:
            actor(self, effect)

    def send_api(self, effect: SendApi) -> None:
        try:
            reply = self.service.api_for(self.sid)(effect.command)
        except EslError as error:
            logger.error("%s: %s failed: %s", self.sid, effect.command.split(" ")[2:3], error)
            reply = ApiResponse(f"-ERR {error}", {})
        if not reply.is_error:
            return
        match = _ANNOUNCE_ID.search(effect.command)
        if match:
            self.put(engine_events.PlayFailed(match.group(1), reply.body.strip()))
        else:
            logger.warning("%s: FreeSWITCH refused: %s", self.sid, reply.body.strip()[:200])

    def join(self, effect: JoinRoom) -> None:
        handle = self.calls.get(effect.call_sid)
        if handle is None:
            logger.error("%s: no call %s to join", self.sid, effect.call_sid)
            return
        audio = self.audio.pop(effect.call_sid, None)
        gevent.spawn(self._join, handle, effect, audio)

    def _join(self, handle: CallHandle, effect: JoinRoom, audio: Any) -> None:
        # Wait audio runs with event-lock: stop it before the join is queued
        # behind it (B12), in a greenlet of its own so the room's worker never
        # waits for the call's commands.
        if audio is not None:
            audio.stop()
        try:
            pending = [handle.execute_async(app, arg) for app, arg in effect.plan.applications]
        except (EslError, gevent.Timeout) as error:
            self._join_failed(handle, effect.call_sid, error)
            return
        # The conference app completes only when the member leaves: a link, not a
        # greenlet parked for the whole stay (~5 KB per participant).
        pending[-1].rawlink(partial(self._joined, handle, effect.call_sid))

    def _joined(self, handle: CallHandle, call_sid: str, result: gevent.event.AsyncResult) -> None:
        if not result.successful():
            self._join_failed(handle, call_sid, result.exception)
        elif not result.value.get("variable_conference_member_id") and not handle.hungup:
            # A full room refuses silently: no event, the channel stays up (B11).
            self.put(engine_events.JoinRefused(call_sid))

    def _join_failed(self, handle: CallHandle, call_sid: str, error: BaseException | None) -> None:
        if not handle.hungup:
            logger.warning("%s: join of %s failed: %s", self.sid, call_sid, error)

    def play_wait(self, effect: PlayWait) -> None:
        handle = self.calls.get(effect.call_sid)
        if handle is None:
            return
        loop = handle.start_audio(effect.url, effect.method.value)
        self.audio[effect.call_sid] = loop
        gevent.spawn(self._watch_wait, effect.call_sid, loop)

    def _watch_wait(self, call_sid: str, loop: Any) -> None:
        error = loop.wait_ready()
        if error is not None and self.audio.get(call_sid) is loop:
            self.put(engine_events.WaitAudioFailed(call_sid, str(error)))

    def continue_call(self, effect: ContinueCall) -> None:
        audio = self.audio.pop(effect.call_sid, None)
        if audio is not None:
            audio.stop()
        outcome = self.outcomes.pop(effect.call_sid, None)
        handle = self.calls.pop(effect.call_sid, None)
        if outcome is not None:
            hung_up = bool(handle and handle.hungup)
            # No action on the effect means "the next verb", even if the Dial
            # has one (16025: a duplicate label continues with the next verb).
            outcome.set(
                DialOutcome(
                    status=effect.dial_call_status,
                    hung_up=hung_up,
                    request_action=effect.action is not None,
                )
            )

    def start_timer(self, effect: StartTimer) -> None:
        self.cancel_timer(CancelTimer(effect.timer_id))
        # A bare loop timer, not gevent.spawn_later: every participant has one
        # (its time limit) for its whole stay, and a greenlet per timer costs
        # about 1 KB more. Its callback runs in the hub, so it must not block:
        # the room's queue is unbounded, put() never waits.
        timer = gevent.get_hub().loop.timer(max(effect.seconds, 0.0))
        timer.start(self._fire, effect.timer_id, timer)
        self.timers[effect.timer_id] = timer

    def _fire(self, timer_id: str, timer: Any) -> None:
        # A restarted timer has replaced this one: only the current one fires.
        if self.timers.get(timer_id) is not timer:
            return
        self.timers.pop(timer_id).close()
        self.put(engine_events.TimerFired(timer_id))

    def cancel_timer(self, effect: CancelTimer) -> None:
        timer = self.timers.pop(effect.timer_id, None)
        if timer is not None:
            timer.close()  # stops it: its callback will not run

    def call_left(self, call_sid: str) -> None:
        """The call's join() returned without the engine's say (hangup, error)."""
        self.outcomes.pop(call_sid, None)
        self.calls.pop(call_sid, None)
        audio = self.audio.pop(call_sid, None)
        if audio is not None:
            audio.stop()
        if self.state.status is ConferenceStatus.COMPLETED:
            self.queue.put(None)  # the last call may have been all the room waited for


def _trim_recordings(conference_sid: str, effects: tuple[Effect, ...]) -> tuple[Effect, ...]:
    """trim-silence: trim a finished recording's file before it is published.

    Only when fsconf can read the file (FreeSWITCH's recordings directory is
    local or a shared mount); otherwise the recording is published as recorded.
    The trimmed length replaces FreeSWITCH's in the row and in the callbacks
    of this step (the spec: the duration may be less than the call's).
    """
    if RecordingFinished not in map(type, effects):
        return effects  # every step but a recording's end (C-level: the hot path)
    finished = [
        e
        for e in effects
        if isinstance(e, RecordingFinished) and e.trim and e.status == "completed"
    ]
    if not finished:
        return effects
    result = list(effects)
    for effect in finished:
        trimmed = trim_silence(effect.path)
        if trimmed is None:
            logger.info("%s: %s not trimmed (not a local 16-bit WAV)", conference_sid, effect.path)
            continue
        duration = str(trimmed.duration_seconds)
        size = str(trimmed.file_size)
        for index, other in enumerate(result):
            if other is effect:
                result[index] = dataclasses.replace(
                    effect, duration=trimmed.duration_seconds, file_size=trimmed.file_size
                )
            elif isinstance(other, Callback) and _about(other, effect.recording_sid):
                changes = {"RecordingDuration": duration, "Duration": duration}
                if other.get("RecordingFileSize") is not None:
                    changes["RecordingFileSize"] = size
                params = tuple((k, changes.get(k, v)) for k, v in other.params)
                result[index] = dataclasses.replace(other, params=params)
    return tuple(result)


def _about(callback: Callback, recording_sid: str) -> bool:
    url = callback.get("RecordingUrl") or ""
    return callback.get("RecordingSid") == recording_sid or url.endswith("/" + recording_sid)


def _log_lifecycle(before: ConferenceState, after: ConferenceState) -> None:
    """One log line per lifecycle step (start, join, leave, end), with the SIDs."""
    if after.status is not before.status:
        logger.info("%s: conference %s", after.sid, after.status.value)
    if after.participants is before.participants:
        return  # the hot path (talking, mute): nobody came or went
    earlier = {p.call_sid for p in before.participants}
    now_in = {p.call_sid for p in after.participants}
    for call_sid in sorted(now_in - earlier):
        logger.info("%s: participant %s joined", after.sid, call_sid)
    for call_sid in sorted(earlier - now_in):
        logger.info("%s: participant %s left", after.sid, call_sid)


# --- storers ---------------------------------------------------------------------


def _rows(steps: Iterable[_Step]) -> list[StoredRow]:
    """The storage effects of ``steps``, in order, for one transaction.

    Conference, participant and recording rows are upserts of the row as it is
    after its step, so only the last one per row is written, at the place of
    the first (callbacks, alerts: every one, in order).
    """
    rows: list[StoredRow] = []
    place: dict[tuple[Any, ...], int] = {}
    for step in steps:
        now = step.now
        for effect in step.effects:
            kind = type(effect)
            if kind not in _ROW_KEYS:
                continue  # not stored (a command, a join, a timer)
            row_key = _ROW_KEYS[kind]
            if row_key is None:
                rows.append((effect, now))
                continue
            key = row_key(effect)
            if key in place:
                rows[place[key]] = (effect, now)
            else:
                place[key] = len(rows)
                rows.append((effect, now))
    return rows


def _participant_key(effect: StoreParticipant) -> tuple[Any, ...]:
    row = effect.row
    return ("participant", row.conference_sid, row.call_sid, row.join_sequence)


_ROW_KEYS: dict[type, Callable[[Any], tuple[Any, ...]] | None] = {
    StoreConference: lambda effect: ("conference", effect.state.sid),
    StoreParticipant: _participant_key,
    RecordingFinished: lambda effect: ("recording", effect.recording_sid),
    Callback: None,
    ReportError: None,
}
"""Each stored effect's type -> the key of the row it upserts (only the last
of a transaction is written), or None: every one is a row of its own. By
exact type: every talking event's step looks its two effects up here."""


def _upsert(
    session: Session, model: type[Any], key: dict[str, Any], values: dict[str, Any]
) -> None:
    """UPDATE the row by its key; INSERT it only when there was none (no SELECT)."""
    statement = (
        update(model).filter_by(**key).values(**values).execution_options(synchronize_session=False)
    )
    result = cast("CursorResult[Any]", session.execute(statement))
    if result.rowcount == 0:
        session.add(model(**key, **values))


_CONFERENCES = cast(Table, models.Conference.__table__)
# Core statements, compiled once (SQLAlchemy caches them): the conference row
# is written once per batch, and an ORM bulk UPDATE costs several times more.
_UPDATE_CONFERENCE = update(_CONFERENCES).where(_CONFERENCES.c.sid == bindparam("row_sid"))
_INSERT_CONFERENCE = insert(_CONFERENCES)


def _store_conferences(
    session: Session,
    rows: list[tuple[StoreConference, datetime]],
    offload: Offload | None = None,
) -> None:
    """The conference rows of a transaction, as the engine has them.

    The engine owns the SequenceNumber: a row is written, never read first
    (UPDATE; INSERT only when there was none). A group commit holds one per
    room, so they go as one statement: ``UPDATE ... FROM unnest(...)`` on
    PostgreSQL (:func:`fsconf.store.bulk.update_by_key`), with ``offload`` on
    SQLite ``UPDATE ... FROM (VALUES ...)`` on a native thread
    (:func:`fsconf.store.native.update_natively`), else one executemany; only a
    group with a room's very first row falls back to one statement each.
    """
    if not rows:
        return
    connection = session.connection()
    keyed = _keyed(rows)
    changed = None
    if offload is not None:
        changed = update_natively(connection, _CONFERENCES, _UPDATED, keyed, offload)
    if changed is None:
        changed = update_by_key(connection, _CONFERENCES, _UPDATED, keyed)
    if changed is None:
        changed = connection.execute(_UPDATE_CONFERENCE, [_named(one) for one in keyed]).rowcount
    if changed == len(keyed):
        return
    for one in keyed:  # idempotent: the same values again
        if connection.execute(_UPDATE_CONFERENCE, _named(one)).rowcount == 0:
            connection.execute(_INSERT_CONFERENCE, dict(zip(("sid", *_UPDATED), one, strict=True)))


def _keyed(rows: list[tuple[StoreConference, datetime]]) -> list[list[Any]]:
    """Conference rows as the one-statement UPDATEs take them: the key, then
    the :data:`_UPDATED` columns (``date_updated`` is the step's ``now``)."""
    keyed = []
    for effect, now in rows:
        row = effect.row
        keyed.append([row.sid, *_ROW_COLUMNS(row), now])
    return keyed


def _named(one: list[Any]) -> dict[str, Any]:
    """One :func:`_keyed` row as :data:`_UPDATE_CONFERENCE`'s parameters."""
    return {"row_sid": one[0], **dict(zip(_UPDATED, one[1:], strict=True))}


def _store_participant(
    room: Room, session: Session, effect: StoreParticipant, now: datetime
) -> None:
    row: ParticipantRow = effect.row
    key = {
        "conference_sid": row.conference_sid,
        "call_sid": row.call_sid,
        "join_sequence": row.join_sequence,
    }
    values = {name: getattr(row, name) for name in _PARTICIPANT_FIELDS}
    _upsert(session, models.Participant, key, {**values, "date_updated": now})


def _callback_row(room: Room, effect: Callback, now: datetime) -> CallbackRow:
    """The outbox row of a Callback effect (inserted with the others of its
    transaction, see :func:`write_batches`)."""
    sequence = effect.get("SequenceNumber")
    return callback_values(
        account_sid=room.state.account_sid,
        url=effect.url,
        method=effect.method,  # a StrEnum: callback_values takes its text (.value is slower)
        params=effect.params,
        kind=f"conference-{effect.kind}",
        conference_sid=room.sid,
        call_sid=effect.get("CallSid"),
        sequence_number=int(sequence) if sequence else None,
        ordering_key=room.sid,
        now=now,
    )


def _store_alert(room: Room, session: Session, effect: ReportError, now: datetime) -> None:
    repositories.create_alert(
        session,
        account_sid=room.state.account_sid,
        error_code=effect.code,
        message=effect.message,
        call_sid=effect.call_sid,
    )


def _store_recording(
    room: Room, session: Session, effect: RecordingFinished, now: datetime
) -> None:
    recording = session.get(models.Recording, effect.recording_sid)
    if recording is None:
        recording = models.Recording(
            sid=effect.recording_sid, account_sid=room.state.account_sid, conference_sid=room.sid
        )
        session.add(recording)
    recording.path = effect.path
    recording.status = effect.status
    recording.duration = effect.duration
    recording.start_time = effect.start_time
    recording.date_updated = now


_CONFERENCE_FIELDS = tuple(f for f in ConferenceRow.__dataclass_fields__ if f != "sid")
_ROW_COLUMNS = operator.attrgetter(*_CONFERENCE_FIELDS)
_UPDATED = (*_CONFERENCE_FIELDS, "date_updated")
"""The columns a conference UPDATE sets (:func:`_keyed`)."""
_PARTICIPANT_FIELDS = tuple(
    f
    for f in ParticipantRow.__dataclass_fields__
    if f not in ("conference_sid", "call_sid", "join_sequence")
)

STORERS: dict[type, Callable[[Room, Session, Any, datetime], None]] = {
    StoreParticipant: _store_participant,
    ReportError: _store_alert,
    RecordingFinished: _store_recording,
}
"""How each row effect is written. Conference rows and callbacks are written
all at once per transaction (:func:`write_batches`)."""


def write_batches(
    sessions: sessionmaker[Session],
    batches: Iterable[tuple[Room, list[StoredRow]]],
    *,
    offload: Offload | None = None,
) -> None:
    """Write the rows of one or more rooms' batches in ONE transaction.

    The conference rows go first, all in one statement; then the other rows
    in order, room after room; the callbacks of them all go last, in the
    same order, as one executemany, so within a conference their ids follow
    the SequenceNumbers. The ORM rows (a new participant, an alert) are
    flushed before them. ``offload``: the conference rows' UPDATE, the
    callbacks' INSERT and the COMMIT go through it (SQLite; see
    :mod:`fsconf.store.native`), in one trip when the transaction holds
    nothing else (:func:`_in_one_trip`).
    """
    with transaction(sessions) as session:
        callbacks: list[CallbackRow] = []
        conferences: list[tuple[StoreConference, datetime]] = []
        others: list[tuple[Room, Effect, datetime]] = []
        for room, rows in batches:
            for effect, now in rows:
                if type(effect) is Callback:
                    callbacks.append(_callback_row(room, effect, now))
                elif type(effect) is StoreConference:
                    conferences.append((effect, now))
                else:
                    others.append((room, effect, now))
        # A storm's transaction (conference rows and callbacks only): one trip.
        if (
            offload is not None
            and not others
            and _in_one_trip(session, conferences, callbacks, offload)
        ):
            return
        # First: the other rows (a new participant, a recording) refer to them.
        _store_conferences(session, conferences, offload)
        for room, effect, now in others:
            STORERS[type(effect)](room, session, effect, now)
        session.flush()
        insert_callbacks(session.connection(), callbacks, offload=offload)
        if offload is not None:
            commit_natively(session, offload)


def _in_one_trip(
    session: Session,
    conferences: list[tuple[StoreConference, datetime]],
    callbacks: list[CallbackRow],
    offload: Offload,
) -> bool:
    """A transaction of conference rows and callbacks only (a storm's), written
    and committed in one trip to SQLite's native thread
    (:func:`fsconf.store.native.write_natively`). False when it could not be:
    not SQLite, or a conference row to INSERT (a room's first); then nothing
    is committed and :func:`write_batches` writes it its usual way (the
    UPDATE again, with the same values)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return False  # the native thread is SQLite's (and nothing built for nothing)
    updates = update_statements(connection, _CONFERENCES, _UPDATED, _keyed(conferences))
    inserts = native_insert_statements(connection, callbacks)
    if updates is None or inserts is None:
        return False
    return write_natively(
        session, offload, updates=updates, expected=len(conferences), inserts=inserts
    )


@dataclass(eq=False, slots=True)
class _Ticket:
    room: Room
    rows: list[StoredRow]
    after: _Ticket | None = None
    """The room's batch this one was applied on (see Pipelining): stored only
    if that one was."""
    done: gevent.event.AsyncResult = dataclasses.field(default_factory=gevent.event.AsyncResult)
    started: gevent.event.Event = dataclasses.field(default_factory=gevent.event.Event)
    """Set when the writer takes the ticket into a transaction."""


class GroupWriter:
    """Commits the batches of many rooms together (group commit).

    A room hands its batch's rows to :meth:`submit` and waits for the
    ticket. The writer's greenlet lets every ready greenlet run first (so the
    rooms woken by the same burst add their batches), then writes everything
    pending in one transaction (up to ``row_limit`` rows) and wakes the rooms:
    a commit and its transaction's overhead are shared by all the rooms of a
    storm. If the transaction fails, each batch is written alone; a room whose
    batch fails alone gets the error and stores its first input alone (see
    Batches). A ticket submitted ``after`` another is written only if that
    one was stored; otherwise it fails without being written.

    ``offload`` (SQLite; :mod:`fsconf.store.native`): a transaction with at
    least ``offload_rows`` callbacks writes its conference rows and callbacks,
    and commits, on a native thread, and the hub goes on meanwhile (the rooms
    apply their next batch).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        row_limit: int = GROUP_ROW_LIMIT,
        offload: Offload | None = None,
        offload_rows: int = OFFLOAD_ROWS,
    ):
        self.sessions = sessions
        self.row_limit = row_limit
        self.offload = offload
        self.offload_rows = offload_rows
        self._pending: list[_Ticket] = []
        self._wake = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False

    def submit(self, room: Room, rows: list[StoredRow], after: _Ticket | None = None) -> _Ticket:
        """Queue ``rows`` for a commit; the ticket's ``done`` says how it went
        (None, or what the transaction raised)."""
        ticket = _Ticket(room, rows, after)
        if self._stopping:
            ticket.done.set_exception(StoreError("not written: the service is stopping"))
            return ticket
        self._pending.append(ticket)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        self._wake.set()
        return ticket

    def stop(self, timeout: float = 0.0) -> None:
        """Take no more groups; a transaction in flight may finish within
        ``timeout`` seconds. Past that it is killed, and the database rolls it
        back (:func:`fsconf.store.db.transaction` closes its connection)."""
        self._stopping = True
        greenlet = self._greenlet
        if greenlet is None:
            return
        self._wake.set()
        greenlet.join(timeout)
        greenlet.kill(block=False)

    def _run(self) -> None:
        while not self._stopping:
            if not self._pending:
                self._wake.clear()
                self._wake.wait()
                continue  # stopping, or something to write
            # One turn of the hub first: the rooms woken by the same burst (or
            # by the previous commit) add their batches to this group.
            gevent.sleep(0)
            group = self._take()
            if group:
                self._commit(group)

    def _take(self) -> list[_Ticket]:
        group: list[_Ticket] = []
        waiting: list[_Ticket] = []
        rows = 0
        for index, ticket in enumerate(self._pending):
            if group and rows + len(ticket.rows) > self.row_limit:
                waiting += self._pending[index:]
                break
            after = ticket.after
            if after is not None and not after.done.ready():
                waiting.append(ticket)  # not reached: a ticket follows a taken one
            elif after is not None and not after.done.successful():
                ticket.done.set_exception(
                    StoreError("not written: the batch it was applied on was not stored")
                )
            else:
                group.append(ticket)
                rows += len(ticket.rows)
        self._pending = waiting
        return group

    def _commit(self, group: list[_Ticket]) -> None:
        for ticket in group:
            ticket.started.set()
        callbacks = sum(
            1 for ticket in group for effect, _now in ticket.rows if type(effect) is Callback
        )
        offload = self.offload if callbacks >= self.offload_rows else None
        try:
            write_batches(
                self.sessions, [(ticket.room, ticket.rows) for ticket in group], offload=offload
            )
        # The room decides what to do (retry its first input alone, or fail
        # it): the writer itself never stops on a failed write (only a kill,
        # which transaction() re-raises as one, ends it).
        except Exception as error:  # noqa: BLE001
            if len(group) == 1:
                group[0].done.set_exception(error)
                return
            # Whose rows were they? Each batch alone: one room's bad row must
            # not cost the other rooms anything (in an outage each attempt
            # fails at once, and every room falls back to its own retry).
            for ticket in group:
                self._commit([ticket])
        else:
            for ticket in group:
                ticket.done.set(None)


ACTORS: dict[type, Callable[[Room, Any], None]] = {
    SendApi: Room.send_api,
    JoinRoom: Room.join,
    PlayWait: Room.play_wait,
    ContinueCall: Room.continue_call,
    StartTimer: Room.start_timer,
    CancelTimer: Room.cancel_timer,
}


# --- the service ---------------------------------------------------------------------


class ConferenceService:
    """The ConferenceGateway of the calls layer, fed by FreeSWITCH events."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        api: ApiSender | Callable[[str], ApiSender],
        config: EngineConfig | None = None,
        notify_callbacks: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
        confirm_timeout: float = 10.0,
        store_retry_initial: float = 0.05,
        store_retry_cap: float = 1.0,
        store_retry_log_every: float = 10.0,
        batch_limit: int = BATCH_LIMIT,
        offload: Offload | None = in_native_thread,
        pipelining: bool = True,
    ) -> None:
        if batch_limit < 1:
            raise ValueError(f"batch_limit must be at least 1, got {batch_limit}")
        self.sessions = sessions
        self.batch_limit = batch_limit
        self.writer = GroupWriter(sessions, offload=offload)
        self.pipelining = pipelining
        """A room applies its next batch while the last one commits (Pipelining)."""
        self.store_retry_initial = store_retry_initial
        self.store_retry_cap = store_retry_cap
        self.store_retry_log_every = store_retry_log_every
        self._api = api
        self.config = config or EngineConfig()
        self.notify_callbacks = notify_callbacks
        self.clock = clock
        self.confirm_timeout = confirm_timeout
        self.rooms: dict[str, Room] = {}
        self.behind_recheck = BEHIND_RECHECK
        self.behind_hangover = BEHIND_HANGOVER
        self._behind = False
        self._behind_at = -BEHIND_RECHECK
        # Since when fewer than BEHIND_INPUTS inputs wait, while behind.
        self._calm_since: float | None = None
        # Set (then cleared) whenever a recording row changes on an event.
        self.recordings_changed = gevent.event.Event()

    def api_for(self, conference_sid: str) -> ApiSender:
        return self._api  # type: ignore[return-value]

    # --- the calls layer's gateway ---------------------------------------------

    def join(self, call: CallHandle, dial: Any, conference: Any) -> DialOutcome:
        settings = participant_settings(dial, conference)

        def arrival_for(room: Room) -> engine_events.ParticipantArrived:
            return engine_events.ParticipantArrived(
                call.call_sid, call.uuid, call.account_sid, conference.room, settings
            )

        try:
            room, outcome = self._arrive(call, conference.room, arrival_for)
        except EntryRefused as refused:
            return refused.outcome
        try:
            return self._wait_outcome(room, call, outcome)
        finally:
            room.call_left(call.call_sid)

    def join_settings(
        self, call: CallHandle, friendly_name: str, settings: ParticipantSettings
    ) -> DialOutcome:
        """Like :meth:`join`, with settings built elsewhere (a REST dial-out,
        :mod:`fsconf.service.dialout`, has no ``<Dial><Conference>``)."""

        def arrival_for(room: Room) -> engine_events.ParticipantArrived:
            return engine_events.ParticipantArrived(
                call.call_sid, call.uuid, call.account_sid, friendly_name, settings
            )

        try:
            room, outcome = self._arrive(call, friendly_name, arrival_for)
        except EntryRefused as refused:
            return refused.outcome
        try:
            return self._wait_outcome(room, call, outcome)
        finally:
            room.call_left(call.call_sid)

    def _arrive(
        self,
        call: CallHandle,
        friendly_name: str,
        arrival_for: Callable[[Room], engine_events.ParticipantArrived],
    ) -> tuple[Room, gevent.event.AsyncResult]:
        # A conference that has just ended cannot take a new call (R13): the
        # caller starts a new one under the same name, as on Twilio.
        for _attempt in range(3):
            room = self._room_for(call.account_sid, friendly_name)
            outcome = gevent.event.AsyncResult()
            room.calls[call.call_sid] = call
            room.outcomes[call.call_sid] = outcome
            try:
                room.submit(arrival_for(room)).get()
            except TransitionError:
                room.call_left(call.call_sid)
                self._close_conference(room)
                continue
            except StoreError as error:
                room.call_left(call.call_sid)
                raise EntryRefused(self._refusal(room, call, error)) from error
            return room, outcome
        raise FsconfError(f"{call.call_sid}: could not enter conference {friendly_name!r}")

    def _refusal(self, room: Room, call: CallHandle, error: StoreError) -> DialOutcome:
        """The database refused the participant's row: say it the Twilio way."""
        if _is_label_conflict(error):
            # Another participant took the label in the meantime (a dial-out
            # still ringing holds its row): 16025, the call goes on with its
            # next verb, as when the engine sees the duplicate itself.
            code, message = 16025, "participantLabel is already in use in this conference"
            outcome = DialOutcome(status="failed", request_action=False)
        else:
            code, message = 16020, f"could not add the participant ({type(error).__name__})"
            outcome = DialOutcome(status="failed")
        logger.warning("%s: %s refused: %s", room.sid, call.call_sid, message)
        try:
            with transaction(self.sessions) as session:
                repositories.create_alert(
                    session,
                    account_sid=call.account_sid,
                    error_code=code,
                    message=message,
                    call_sid=call.call_sid,
                )
        except StoreError:
            logger.warning("%s: alert %d for %s not stored", room.sid, code, call.call_sid)
        return outcome

    def _wait_outcome(
        self, room: Room, call: CallHandle, outcome: gevent.event.AsyncResult
    ) -> DialOutcome:
        # The call's own hangup Event, not a greenlet per waiting call (memory per participant).
        hangup = call.hangup_event
        try:
            while True:
                if outcome.ready():
                    done: DialOutcome = outcome.get()
                    return done
                if hangup.is_set():
                    room.submit(engine_events.CallHungUp(call.call_sid))
                    # A hung-up call gets no ContinueCall (R7): it is done once it
                    # has left the state (at once when parked, on del-member when
                    # in the room), not after the confirmation timeout.
                    with gevent.Timeout(self.confirm_timeout, False):
                        while not outcome.ready() and room.state.find(call.call_sid):
                            room.changed.wait()
                    result: DialOutcome | None = outcome.get() if outcome.ready() else None
                    return result or DialOutcome(status="completed", hung_up=True)
                gevent.wait([outcome, hangup], count=1)
        except gevent.Timeout:
            return DialOutcome(status="completed", hung_up=True)

    def _room_for(self, account_sid: str, friendly_name: str) -> Room:
        for room in self.rooms.values():
            state = room.state
            if (
                state.account_sid == account_sid
                and state.friendly_name == friendly_name
                and state.status is not ConferenceStatus.COMPLETED
            ):
                return room
        with transaction(self.sessions) as session:
            conference, _created = repositories.get_or_create_active_conference(
                session, account_sid=account_sid, friendly_name=friendly_name
            )
            sid = conference.sid
        existing = self.rooms.get(sid)
        if existing is not None:
            return existing
        room = Room(self, new_conference(sid, account_sid, friendly_name, self.config))
        self.rooms[sid] = room
        logger.info("%s: conference %r opened for %s", sid, friendly_name, account_sid)
        return room

    def adopt(self, state: ConferenceState) -> Room:
        """Take over a conference rebuilt from its rows (fsconf restarted).

        Its room has no calls of ours: they lost their outbound sockets with
        the old process. Events and reconciliation drive it to its end.
        """
        existing = self.rooms.get(state.sid)
        if existing is not None:
            return existing
        room = Room(self, state)
        self.rooms[state.sid] = room
        logger.info(
            "%s: conference %r adopted (%s, %d participants, SequenceNumber %d)",
            state.sid,
            state.friendly_name,
            state.status.value,
            len(state.participants),
            state.sequence_number,
        )
        return room

    def _close_conference(self, room: Room) -> None:
        """Mark an ended room's row completed so a new one can open (R13)."""
        self._forget(room)
        with transaction(self.sessions) as session:
            row = session.get(models.Conference, room.sid)
            if row is not None and row.status != "completed":
                row.status = "completed"

    def _forget(self, room: Room) -> None:
        if self.rooms.get(room.sid) is room:
            del self.rooms[room.sid]
            logger.info("%s: conference closed", room.sid)

    # --- FreeSWITCH events -----------------------------------------------------

    def on_event(self, event: Event) -> None:
        """An inbound ESL event (already on its conference's serial queue)."""
        if self.take_event(event):
            return
        # Pause/resume have no Twilio callback and no engine state: the row
        # follows FreeSWITCH's confirming event (take_event left only these).
        sid = room_of(event) or ""
        self._set_recording_status(sid, event.get("Path") or "", RECORDING_PAUSES[event.action])

    def take_event(self, event: Event) -> bool:
        """Handle ``event`` if that cannot block: put it on its room's queue, or
        ignore it (not a live room's). False: a recording pause or resume,
        whose row :meth:`on_event` writes (a transaction: it may wait)."""
        sid = room_of(event)
        if sid is None:
            return True
        room = self.rooms.get(sid)
        if room is None:
            return True
        if event.action in RECORDING_PAUSES:
            return False
        engine_event = engine_input(event, lambda: new_sid("RE"))
        if engine_event is not None:
            room.put(engine_event)
        return True

    def _set_recording_status(self, conference_sid: str, path: str, status: str) -> None:
        with transaction(self.sessions) as session:
            for recording in session.query(models.Recording).filter_by(
                conference_sid=conference_sid, path=path
            ):
                if recording.status in ("in-progress", "paused"):
                    recording.status = status
        self.recordings_changed.set()
        self.recordings_changed.clear()

    # --- REST / CLI requests -----------------------------------------------------

    def request(
        self, account_sid: str, conference_sid: str, event: engine_events.ConferenceInput
    ) -> Room:
        room = self.rooms.get(conference_sid)
        if room is None or room.state.account_sid != account_sid:
            raise TwilioApiError(20404, f"Conference {conference_sid} is not in progress", 404)
        try:
            room.submit(event).get(timeout=self.confirm_timeout)
        except gevent.Timeout:
            # gevent.Timeout is a BaseException: it would escape the REST
            # layer's Twilio error body.
            raise TwilioApiError(20500, "the conference did not answer in time", 500) from None
        return room

    def wait_until(
        self, room: Room, predicate: Callable[[ConferenceState], bool], what: str
    ) -> None:
        """Block until FreeSWITCH confirmed (the engine's state shows it)."""
        with gevent.Timeout(self.confirm_timeout, False):
            while not predicate(room.state):
                room.changed.wait()
            return
        raise TwilioApiError(20500, f"FreeSWITCH did not confirm {what} in time", 500)

    def behind(self) -> bool:
        """Whether a burst is being applied (the delivery worker gives way
        meanwhile): from when :data:`BEHIND_INPUTS` inputs wait in the rooms'
        queues or in their batches being stored, until none does, or fewer
        than that have for ``behind_hangover`` seconds (:data:`BEHIND_HANGOVER`).

        Why not until fewer than BEHIND_INPUTS: the end of a speaker storm is
        a few hundred inputs still to apply and store, 5-15 ms of work, and a
        delivery settle that started there held the hub 30-50 ms (SQLite's
        calls do not yield), so the storm's last commits waited for it
        (``bench.pipeline``: in about half the rounds, 8-12 % of a round's
        time). The hangover bounds the wait where inputs keep coming (a
        steady rate after a stall of the database): a few are always being
        stored there. At a steady rate alone the rooms never hold
        BEHIND_INPUTS, and this changes nothing. An answer is reused for
        ``behind_recheck`` seconds: a look walks the rooms."""
        now = time.monotonic()
        if now - self._behind_at >= self.behind_recheck:
            self._behind_at = now
            queued = 0
            for room in self.rooms.values():
                queued += len(room.queue.queue) + room.taken
                if queued >= BEHIND_INPUTS:
                    break
            if queued >= BEHIND_INPUTS:
                self._behind, self._calm_since = True, None
            elif self._behind:
                if self._calm_since is None:
                    self._calm_since = now
                if queued == 0 or now - self._calm_since >= self.behind_hangover:
                    self._behind = False
        return self._behind

    def gauges(self) -> Iterable[tuple[str, float, dict[str, str]]]:
        states = [room.state for room in self.rooms.values()]
        active = [state for state in states if state.status is not ConferenceStatus.COMPLETED]
        members = [p for state in active for p in state.participants]
        yield ("fsconf_conferences_active", float(len(active)), {})
        yield ("fsconf_participants", float(len(members)), {})
        parked = sum(1 for p in members if p.placement is Placement.PARKED)
        yield ("fsconf_participants_parked", float(parked), {})

    def stop(self, grace: float = 0.0) -> None:
        """Stop every room; the group commit in flight, if any, may finish
        within ``grace`` seconds (its rows are then stored, not half-written)."""
        for room in list(self.rooms.values()):
            for timer in room.timers.values():
                timer.close()
            room.worker.kill(block=False)
        self.writer.stop(grace)


def present(state: ConferenceState, call_sid: str) -> bool:
    return state.find(call_sid) is not None


def all_present(state: ConferenceState, call_sids: Iterable[str]) -> bool:
    return all(state.find(sid) is not None for sid in call_sids)


class EntryRefused(FsconfError):
    """A call could not enter its conference; ``outcome`` is how it goes on."""

    def __init__(self, outcome: DialOutcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


def _is_label_conflict(error: BaseException) -> bool:
    text = " ".join(str(e) for e in causes(error))
    return "uq_participants_present_label" in text or "participants.label" in text


def describe_input(event: object) -> str:
    """An engine input for a log line: its kind and call, never its contents
    (settings carry URLs, which may carry credentials)."""
    call_sid = getattr(event, "call_sid", None)
    name = type(event).__name__
    return f"{name}({call_sid})" if call_sid else name
