"""Delivery workers: send the outbox, in order, with retries, signed.

Theory of operation
-------------------
* **Streams and head-of-line order.**  Every row belongs to a stream (its
  ``ordering_key``: a ConferenceSid for conference callbacks, a RecordingSid
  for recording callbacks; a row without a key is a stream of its own).  The
  *head* of a stream is its oldest ``pending`` row.  Only a head may be sent,
  and only once its ``next_attempt_at`` has passed and nobody holds a live
  claim on it.  So SequenceNumber *n* of a conference is never sent before
  *n-1* is delivered or dead (``failed``), while different conferences
  proceed in parallel.
* **Chains.**  A worker claims *chains*: the head of a ready stream plus the
  stream's next pending rows, up to ``chain_length``, in ``id`` (=
  SequenceNumber) order.  One greenlet sends a chain in order, one request at
  a time, and stops at the first attempt that is not delivered: that row goes
  to its backoff (or dies), and the rest of the chain is released unsent, so a
  failure blocks its own stream and nothing else.  A chain also stops before
  a request that could outlive the claim's lease.  One claim transaction thus
  covers up to ``chain_length`` callbacks of a stream, and a stream never
  waits for a commit between two of its callbacks.
* **Claims.**  A claim is one short transaction, and its cost does not grow
  with the backlog: (1) the ``(status, next_attempt_at)`` index yields the
  oldest due, unclaimed rows, a page at a time and a bounded number of pages,
  and the distinct streams among them are the candidates; (2) the
  candidates' first pending rows (up to ``chain_length``, fewer when there
  are many candidates, so a claim reads at most ``_CLAIM_ROWS``) come from the
  ``(ordering_key, status, id)`` index, numbered per stream by
  ``row_number()`` in one statement whatever the number of streams; (3) a
  chain is kept only if its first row, the true head, is due and unclaimed,
  and it is cut at the first row that is not.  (A claim reads at most
  ``_SCAN_ROWS`` rows of the due index, grouped by stream in SQL.)  On
  PostgreSQL the chosen rows are then claimed by one ``UPDATE`` over a
  ``FOR UPDATE SKIP LOCKED`` subquery (which re-checks the filters on the
  latest row versions) and each chain is cut at the first row another worker
  holds; SQLite's ``BEGIN IMMEDIATE`` already serialises claimers.  The rows
  are stamped ``claimed_by`` and a lease ``claimed_until``.  A worker that
  dies leaves rows whose lease simply expires.  Several workers and processes
  can therefore share one database.
* **Parking.**  When a head fails and is rescheduled, the later pending rows
  of its stream get the same ``next_attempt_at`` (never an earlier one).
  They could not be sent before the head anyway; this keeps them out of the
  due index, so a long outage of one application cannot fill the claim scan's
  pages and starve the other streams.  For a row that is not a head,
  ``next_attempt_at`` therefore means "not before".
* **Attempts.**  Every request has a connect/read timeout and an overall
  deadline.  2xx means delivered.  Anything else (other status, connection
  error, timeout) schedules a retry after
  ``min(max_delay, base_delay * 2**(attempts-1)) * uniform(0.5, 1)`` seconds,
  measured on the injected clock.  After ``max_attempts`` the row becomes
  ``failed``: a dead letter that stays visible and can be retried by hand
  (:func:`retry`, :func:`retry_all_failed`).
* **Outcomes in batches (settles).**  A *settle* writes the outcomes of
  every chain that has finished (one ``UPDATE`` per distinct status code for
  the delivered rows, one per failure), releases unsent rows, and claims the
  next chains, in a single transaction.  Order is unchanged: the claim runs
  after the outcomes are written, in the same transaction.  A crash between a
  request and its outcome's commit means the request is sent again after the
  lease (at-least-once, in order); never lost.
* **Concurrency.**  Chains run in a bounded :class:`gevent.pool.Pool` of
  ``pool_size`` slots (at most that many requests in flight, so a storm of
  callbacks cannot crowd out the rest of the process).  A claim asks for up
  to ``_STREAMS_PER_SLOT`` streams per free slot and deals the chains out;
  a slot sends its chains one after the other, and a failure stops its own
  chain only.  So one claim covers every ready conference, however few the
  slots.
* **Pacing.**  A settle costs about the same for one row as for a hundred
  (it is statements, not rows), so settles are spaced by their own cost: the
  next one waits ``4 x`` what the last one took (1-15 ms), unless
  ``_EAGER_SETTLE_ROWS`` finished callbacks are waiting for it.  At a low
  rate the worker is idle and a :meth:`notify` starts a claim within a
  millisecond or two, so a lone callback goes out at once; under load each
  settle covers many callbacks and takes about a fifth of the time, or more
  when the cap binds: the cap bounds how long a new callback waits for the
  next claim.
* **Giving way.**  ``give_way`` (optional) says that work which must not
  wait behind deliveries is queued: in ``fsconf serve``, a burst of
  FreeSWITCH events the conference engine has not applied and stored yet,
  to its last few (``ConferenceService.behind``). Those live in memory only, and
  a switch whose Event Socket consumer falls far enough behind drops events
  and then the connection (mod_event_socket's ``MAX_QUEUE_LEN``), while a
  callback is already safe in the outbox. So while it says so, no request is
  sent and no claim is made, for at most ``give_way_limit`` seconds at a
  time; then delivery takes a turn as long (it still advances under an
  endless burst, at half its share). A burst of events therefore costs its
  callbacks a little latency instead of slowing the engine. The limit
  (:data:`GIVE_WAY_LIMIT`, 1 s) is twice what the engine takes to apply and
  store a 10 000-event speaker storm (100 rooms x 10 members) on the reference
  VM: at 0.5 s, a storm that took a little longer than usual got delivery's
  turn in its last part and took longer still (``bench/README.md``).
* **HTTP.**  :class:`~fsconf.webhooks.transport.Transport` speaks HTTP/1.1
  itself, with keep-alive, when that is exactly what the injected
  ``requests.Session`` would do, and goes through the session otherwise
  (proxies, custom adapters, redirects).  The session also gets a connection
  pool as large as the request pool.
* **Secrets.**  The auth token is read from the Account row at claim time,
  used to sign, and never logged or stored elsewhere.  Logs name the callback
  id, kind, ConferenceSid, CallSid, SequenceNumber and the status code.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import random
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import gevent
import gevent.event
import gevent.pool
import requests
from requests.adapters import HTTPAdapter
from requests.utils import requote_uri
from sqlalchemy import (
    Connection,
    Integer,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.types import TypeEngine

from fsconf.errors import StoreError, WebhookError
from fsconf.redact import log_url
from fsconf.store.db import SessionFactory, describe_error, transaction
from fsconf.store.models import Account, Callback
from fsconf.store.repositories import NotFoundError
from fsconf.store.times import utc_now
from fsconf.webhooks.signing import build_request
from fsconf.webhooks.transport import Transport

__all__ = [
    "CallbackStateError",
    "Clock",
    "DeliveryWorker",
    "backoff_delay",
    "list_callbacks",
    "retry",
    "retry_all_failed",
]

log = logging.getLogger(__name__)

#: Returns the current time, timezone-aware UTC.
Clock = Callable[[], datetime]

_MAX_ERROR_TEXT: Final = 500
_MAX_RESPONSE_BYTES: Final = 64 * 1024
#: Rows of the due index read by a claim: first window, and at most in all.
_SCAN_PAGE: Final = 256
_SCAN_ROWS: Final = 2048
#: Settle pacing (see DeliveryWorker._settle_gap): the share of the time spent
#: writing outcomes and claiming, and the bounds of the gap between two settles.
#: At 1 000 callbacks/s a PostgreSQL settle takes 6-8 ms: with the gap capped
#: at 25 ms, waiting for the next claim was most of a callback's latency
#: (bench.pipeline on PostgreSQL, event to POST p99: 44-53 ms at 25, mostly
#: 34-47 at 15; bench/README.md).
_SETTLE_SHARE: Final = 0.2
_MIN_SETTLE_GAP: Final = 0.001
_MAX_SETTLE_GAP: Final = 0.015
#: Streams claimed per free slot: a slot sends its chains one after the other,
#: so one claim covers every ready conference even with few slots.
_STREAMS_PER_SLOT: Final = 8
#: Finished callbacks that justify a settle before the gap is over: a settle
#: costs about as much as 10-20 sends, so 64 keep it under a fifth of the work.
_EAGER_SETTLE_ROWS: Final = 64
#: Rows a claim reads at most from its candidates' chains (about 15 ms of work).
_CLAIM_ROWS: Final = 1024
#: Seconds between two looks at ``give_way`` while giving way.
_GIVE_WAY_POLL: Final = 0.005
GIVE_WAY_LIMIT = 1.0
"""Seconds delivery gives way at a time, and then takes a turn as long."""

_CALLBACKS: Table = Callback.__table__  # type: ignore[assignment]
_ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
_CHAIN_COLUMNS = (
    _CALLBACKS.c.id,
    _CALLBACKS.c.ordering_key,
    _CALLBACKS.c.kind,
    _CALLBACKS.c.account_sid,
    _CALLBACKS.c.conference_sid,
    _CALLBACKS.c.call_sid,
    _CALLBACKS.c.sequence_number,
    _CALLBACKS.c.url,
    _CALLBACKS.c.method,
    _CALLBACKS.c.params,
    _CALLBACKS.c.attempts,
    _CALLBACKS.c.created,
)


class CallbackStateError(WebhookError):
    """The callback is not in a state that allows the requested operation."""

    def __init__(self, callback_id: int, status: str, operation: str) -> None:
        super().__init__(f"callback {callback_id} is {status}; cannot {operation}")
        self.callback_id = callback_id
        self.status = status
        self.operation = operation


def backoff_delay(
    attempts: int, *, base_delay: float, max_delay: float, rng: random.Random
) -> float:
    """Seconds to wait after the ``attempts``-th failure (1 for the first)."""
    exponent = max(0, attempts - 1)
    # Cap the exponent before the power, so a huge attempt count cannot overflow.
    raw = base_delay * 2.0 ** min(exponent, 62)
    return min(max_delay, raw) * rng.uniform(0.5, 1.0)


@dataclass(frozen=True)
class _Job:
    """One claimed callback, detached from any session."""

    id: int
    kind: str
    account_sid: str
    conference_sid: str | None
    call_sid: str | None
    sequence_number: int | None
    url: str
    method: str
    params: tuple[tuple[str, str], ...]
    attempts: int
    auth_token: str | None = field(repr=False)
    created: datetime | None = None
    ordering_key: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False


@dataclass(frozen=True)
class _ChainResult:
    """What a chain's greenlet did: attempts in order, and the rows it did not send."""

    attempted: tuple[tuple[_Job, _Outcome], ...]
    unsent: tuple[_Job, ...]


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 3] + "..."


def _claimable(now: Any) -> Any:
    """Not held by a live claim at ``now`` (a datetime, or the bound parameter of one)."""
    return or_(_CALLBACKS.c.claimed_until.is_(None), _CALLBACKS.c.claimed_until <= now)


_RELEASED = {"claimed_by": None, "claimed_until": None}
_WORKER: BindParameter[str] = bindparam("worker")

#: ``column IN (:name)``, one bound value per item (any database), or
#: ``column = ANY(:name)``, the list bound as one array (PostgreSQL).
_Member = Callable[[ColumnElement[Any], str, TypeEngine[Any]], ColumnElement[bool]]


def _in_list(column: ColumnElement[Any], name: str, item: TypeEngine[Any]) -> ColumnElement[bool]:
    return column.in_(bindparam(name, expanding=True))


def _in_array(
    column: ColumnElement[Any], name: str, item: TypeEngine[Any]
) -> ColumnElement[bool]:
    return column == any_(cast(bindparam(name), postgresql.ARRAY(item)))


@dataclass(frozen=True)
class _Statements:
    """The statements of every settle, built once per kind of database.

    Each settle used to construct them anew, and SQLAlchemy's construction
    and cache-key work showed in the settle's profile (it runs on the hub,
    several times a second under load). On PostgreSQL the lists of ids and
    keys are bound as arrays (``= ANY``), not expanded into one placeholder
    per item: the statement's text is then the same whatever the count, so
    SQLAlchemy renders nothing per call and psycopg prepares it on the
    server after a few runs (an expanded IN is a new text, parsed and
    planned again, for every count).
    """

    claim: Any
    lock: Any
    release: Any
    delivered: Any
    tokens: Any
    probe: Any


def _settle_statements(member: _Member, probe: Any) -> _Statements:
    ids = member(_CALLBACKS.c.id, "ids", Integer())
    mine = _CALLBACKS.c.claimed_by == _WORKER
    now = bindparam("now", type_=_CALLBACKS.c.next_attempt_at.type)
    chosen = (
        select(_CALLBACKS.c.id)
        .where(ids)
        .where(_CALLBACKS.c.status == "pending")
        .where(_CALLBACKS.c.next_attempt_at <= now)
        .where(_claimable(now))
        .with_for_update(skip_locked=True)
    )
    return _Statements(
        claim=update(_CALLBACKS)
        .where(ids)
        .values(claimed_by=_WORKER, claimed_until=bindparam("until")),
        lock=update(_CALLBACKS)
        .where(_CALLBACKS.c.id.in_(chosen.scalar_subquery()))
        .values(claimed_by=_WORKER, claimed_until=bindparam("until"))
        .returning(_CALLBACKS.c.id),
        release=update(_CALLBACKS).where(ids, mine).values(**_RELEASED),
        delivered=update(_CALLBACKS)
        .where(ids, mine)
        .values(
            status="delivered",
            delivered_at=now,
            attempts=_CALLBACKS.c.attempts + 1,
            last_status_code=bindparam("code", type_=Integer),
            last_error=None,
            **_RELEASED,
        )
        .returning(_CALLBACKS.c.id),
        tokens=select(_ACCOUNTS.c.sid, _ACCOUNTS.c.auth_token).where(
            member(_ACCOUNTS.c.sid, "sids", String())
        ),
        probe=probe,
    )


def _ready(row: Any, now: datetime) -> bool:
    """Due and not held by a live claim (the SQL filters, on a fetched row)."""
    return bool(
        row.next_attempt_at <= now and (row.claimed_until is None or row.claimed_until <= now)
    )


class DeliveryWorker:
    """Sends due callbacks from the outbox (see the module docstring).

    ``run_once()`` delivers everything that is due *now* (by ``clock``) and
    returns the number of attempts made; ``start()``/``stop()`` run it in a
    greenlet that wakes on :meth:`notify` or every ``poll_interval`` seconds.
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        http: requests.Session,
        *,
        clock: Clock = utc_now,
        max_attempts: int = 8,
        base_delay: float = 2.0,
        max_delay: float = 300.0,
        timeout: tuple[float, float] = (3.05, 10.0),
        pool_size: int = 16,
        chain_length: int = 64,
        poll_interval: float = 1.0,
        lease: float | None = None,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        on_delivered: Callable[[float], None] | None = None,
        give_way: Callable[[], bool] | None = None,
        give_way_limit: float = GIVE_WAY_LIMIT,
    ) -> None:
        if max_attempts < 1:
            raise WebhookError(f"max_attempts must be >= 1, got {max_attempts}")
        if pool_size < 1:
            raise WebhookError(f"pool_size must be >= 1, got {pool_size}")
        if chain_length < 1:
            raise WebhookError(f"chain_length must be >= 1, got {chain_length}")
        self._session_factory = session_factory
        self._http = http
        self._clock = clock
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.deadline = timeout[0] + timeout[1]
        # A claim must outlive the longest request it covers, with room to spare;
        # a chain stops before a request that could end after the lease.
        self.lease = lease if lease is not None else 2 * self.deadline + 30.0
        self.poll_interval = poll_interval
        self.pool_size = pool_size
        self.chain_length = chain_length
        self.worker_id = (
            worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        )[:64]
        self._rng = rng or random.Random()  # jitter only: not a security use
        # Called with the seconds from enqueue to delivery (the /metrics histogram).
        self._on_delivered = on_delivered
        self._pool = gevent.pool.Pool(pool_size)
        _widen_connection_pool(http, pool_size)
        self._transport = Transport(http, maxsize=pool_size, max_body=_MAX_RESPONSE_BYTES)
        self._wakeup = gevent.event.Event()
        self._stopping = False
        self._loop_greenlet: gevent.Greenlet | None = None
        # Streams this worker is sending now: no need to look at them in a claim.
        self._busy_streams: set[str] = set()
        # time.monotonic() before which the next settle waits (run_once paces them).
        self._next_settle = 0.0
        self._give_way = give_way
        self.give_way_limit = give_way_limit
        # Giving way: since when (monotonic), and until when delivery has its turn.
        self._giving_since: float | None = None
        self._turn_until = 0.0

    # --- the gevent loop -------------------------------------------------------

    def start(self) -> None:
        """Run the delivery loop in a greenlet (idempotent)."""
        if self._loop_greenlet is not None and not self._loop_greenlet.dead:
            return
        self._stopping = False
        self._loop_greenlet = gevent.spawn(self._loop)

    def notify(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wakeup.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop; chains in flight finish their current request (``timeout``)."""
        self._stopping = True
        self._wakeup.set()
        loop = self._loop_greenlet
        if loop is not None:
            loop.join(timeout)
            if not loop.dead:
                loop.kill(block=True, timeout=timeout)
        self._pool.join(timeout=timeout)
        self._pool.kill(block=True, timeout=timeout)
        self._loop_greenlet = None
        self._transport.close()  # idle keep-alive sockets; a restart reconnects

    def _loop(self) -> None:
        log.info("delivery worker %s started", self.worker_id)
        while not self._stopping:
            self._wakeup.clear()
            try:
                self.run_once()
            except (StoreError, WebhookError):
                log.exception("delivery worker %s: outbox unavailable", self.worker_id)
            except Exception:  # logged: a bug must not silently stop every webhook
                log.exception("delivery worker %s: unexpected error", self.worker_id)
            if self._stopping:
                break
            self._wakeup.wait(self.poll_interval)
        log.info("delivery worker %s stopped", self.worker_id)

    # --- one pass --------------------------------------------------------------

    def run_once(self) -> int:
        """Deliver every callback that is due now; return the number of attempts.

        When chains finish, their outcomes are written and free slots are
        refilled, in one transaction (a *settle*); the rest of a stream (now
        unblocked) is eligible in the same pass.  Settles are paced by their
        own cost (see :meth:`_settle_gap`): at most one every few times what
        the last one took, so at a low rate a new callback goes out within a
        few milliseconds, and under a storm each claim covers many chains.
        """
        attempts = 0
        in_flight: dict[gevent.Greenlet, list[tuple[_Job, ...]]] = {}
        results: list[_ChainResult] = []
        claim = True
        while True:
            # Our own count, not the pool's: a finished greenlet leaves the pool
            # only when the hub runs its links, possibly after we have woken up.
            free = self.pool_size - len(in_flight) if not self._stopping else 0
            wanted = claim and free > 0
            if results or wanted:
                pause = self._next_settle - time.monotonic()
                # Enough finished work pays for a settle at once (its streams wait for it).
                done = sum(len(result.attempted) for result in results)
                if pause <= 0 or self._stopping or done >= _EAGER_SETTLE_ROWS:
                    self._yield_to_engine()
                    # Finished chains free their streams: refill the slots either way.
                    chains = self._settle_turn(results, free * _STREAMS_PER_SLOT, bool(in_flight))
                    attempts += done
                    results = []
                    claim = False
                    for batch in _deal(chains, free):
                        self._busy_streams.update(_keys(batch))
                        in_flight[self._pool.spawn(self._send_batch, batch)] = batch
                    continue
            else:
                pause = None
            if not in_flight and pause is None:
                break
            waiting: list[Any] = list(in_flight)
            if len(in_flight) < self.pool_size and not self._stopping:
                waiting.append(self._wakeup)
            gevent.wait(waiting, count=1, timeout=pause)
            if self._wakeup.is_set() and not self._stopping:
                self._wakeup.clear()
                claim = True
            for greenlet in [g for g in in_flight if g.ready()]:
                batch = in_flight.pop(greenlet)
                self._busy_streams.difference_update(_keys(batch))
                if greenlet.successful():
                    results.append(greenlet.value)
                else:
                    # A bug, not a delivery outcome: the claims simply expire.
                    log.error(
                        "callbacks %s: chains crashed: %r",
                        [job.id for chain in batch for job in chain],
                        greenlet.exception,
                    )
                    attempts += 1
        return attempts

    def _settle_turn(
        self, results: list[_ChainResult], claim: int, running: bool
    ) -> list[tuple[_Job, ...]]:
        """One settle, timed for the pacing; a failed claim only fails if nothing runs."""
        began = time.monotonic()
        try:
            return self._settle(results, claim=claim)
        except (StoreError, SQLAlchemyError):
            if not running:
                raise
            # Only a claim failed (outcomes never raise): finish what runs.
            log.exception("delivery worker %s: claim failed", self.worker_id)
            return []
        finally:
            ended = time.monotonic()
            self._next_settle = ended + self._settle_gap(ended - began)

    @staticmethod
    def _settle_gap(cost: float) -> float:
        """Seconds to leave between two settles, given what the last one took.

        A settle costs about the same for one row as for a hundred (statements,
        not rows), so under load they are spaced to take at most
        ``_SETTLE_SHARE`` of the time and the chains in between cover many
        callbacks; at a low rate the gap is a millisecond or two, so a lone
        callback is sent almost at once. The gap never exceeds
        ``_MAX_SETTLE_GAP``: a callback committed just after a claim waits that
        long, plus the next settle, before it can be sent.
        """
        return min(_MAX_SETTLE_GAP, max(_MIN_SETTLE_GAP, cost * (1 / _SETTLE_SHARE - 1)))

    def _settle(self, results: list[_ChainResult], *, claim: int) -> list[tuple[_Job, ...]]:
        """Record ``results``, then claim up to ``claim`` chains: one transaction."""
        attempted = [pair for result in results for pair in result.attempted]
        unsent = [job for result in results for job in result.unsent]
        try:
            with transaction(self._session_factory) as session:
                connection = session.connection()
                if attempted or unsent:
                    self._record(connection, attempted, unsent)
                chains = self._claim(connection, streams=claim) if claim > 0 else []
        except (StoreError, SQLAlchemyError):
            if not results:
                raise
            # The claims expire and another pass retries; the requests may be
            # repeated, which webhooks must tolerate anyway.
            log.exception(
                "callbacks %s: could not record the outcomes", [job.id for job, _ in attempted]
            )
            return []
        if self._on_delivered is not None:
            now = self._clock()
            for job, outcome in attempted:
                if outcome.delivered and job.created is not None:
                    self._on_delivered(max(0.0, (now - job.created).total_seconds()))
        return chains

    # --- claims ------------------------------------------------------------------

    def _claim(self, connection: Connection, *, streams: int) -> list[tuple[_Job, ...]]:
        now = self._clock()
        keys, loose = self._candidates(connection, now, wanted=streams)
        chains = self._chains(connection, now, keys, loose, wanted=streams)
        if not chains:
            return []
        lease_until = now + timedelta(seconds=self.lease)
        if connection.dialect.name == "sqlite":
            # BEGIN IMMEDIATE serialises claimers: nobody took a row since we read it.
            ids = [row.id for chain in chains for row in chain]
            params = {"ids": ids, "worker": self.worker_id, "until": lease_until}
            connection.execute(_statements(connection).claim, params)
        else:
            chains = self._lock(connection, now, chains, lease_until)
            if not chains:
                return []
        account_sids = sorted({row.account_sid for chain in chains for row in chain})
        found = connection.execute(_statements(connection).tokens, {"sids": account_sids})
        tokens = dict(found.all())
        return [
            tuple(_job(row, tokens.get(row.account_sid), lease_until) for row in chain)
            for chain in chains
        ]

    def _candidates(
        self, connection: Connection, now: datetime, *, wanted: int
    ) -> tuple[list[str], list[int]]:
        """Streams with a due, unclaimed row, oldest first, from the due index.

        A window of the ``(status, next_attempt_at)`` index is grouped by
        stream in SQL (the rows never reach Python).  The first window holds
        ``_SCAN_PAGE`` rows; only if it is full and yields too few streams is
        the next, larger one read, and never more than ``_SCAN_ROWS`` rows in
        all: that is the bound on a claim.  Up to twice ``wanted`` streams are
        collected, because some turn out to have a head that is not ready.
        Streams this worker is sending now are left out.
        """
        keys: dict[str, None] = {}
        loose: list[int] = []
        limit = 2 * wanted
        for offset, size in ((0, _SCAN_PAGE), (_SCAN_PAGE, _SCAN_ROWS - _SCAN_PAGE)):
            groups = connection.execute(_GROUPS, {"now": now, "size": size, "offset": offset})
            scanned = 0
            for group in groups:
                scanned += group.rows
                if group.key is None:
                    loose.append(group.first)
                elif group.key not in self._busy_streams:
                    keys.setdefault(group.key)
            if len(keys) + len(loose) >= limit or scanned < size:
                break
        return list(keys), loose

    def _chains(
        self,
        connection: Connection,
        now: datetime,
        keys: list[str],
        loose: list[int],
        *,
        wanted: int,
    ) -> list[list[Any]]:
        """Each candidate's head and its next rows, cut at the first one not ready.

        One statement whatever the number of candidates (its cache key and
        compiled form do not depend on it): the first ``chain_length`` pending
        rows of each stream, numbered per stream by a window function over the
        ``(ordering_key, status, id)`` index, with readiness decided in SQL.
        """
        chosen: list[list[Any]] = []
        remaining = list(keys)
        while remaining and len(chosen) < wanted:
            batch, remaining = remaining[: wanted - len(chosen)], remaining[wanted - len(chosen) :]
            by_key: dict[str, list[Any]] = defaultdict(list)
            # Few streams: long chains (fewer settles per stream); many: shorter
            # ones, so a claim never holds the database (and, on SQLite, the
            # whole hub) for more than about _CLAIM_ROWS rows.
            depth = max(1, min(self.chain_length, _CLAIM_ROWS // len(batch)))
            params = {"keys": batch, "now": now, "depth": depth}
            for row in connection.execute(_statements(connection).probe, params):
                by_key[row.ordering_key].append(row)
            for key in batch:
                chain: list[Any] = []
                for row in sorted(by_key.get(key, ()), key=lambda row: row.id):
                    if not row.ready:
                        break  # the head itself, or the first row someone holds
                    chain.append(row)
                if chain:
                    chosen.append(chain)
        if loose and len(chosen) < wanted:
            found = connection.execute(
                select(*_CHAIN_COLUMNS)
                .where(_CALLBACKS.c.id.in_(loose[: wanted - len(chosen)]))
                .where(_CALLBACKS.c.status == "pending")
                .where(_CALLBACKS.c.next_attempt_at <= now)
                .where(_claimable(now))
                .order_by(_CALLBACKS.c.id)
            )
            chosen.extend([row] for row in found)
        return chosen

    def _lock(
        self, connection: Connection, now: datetime, chains: list[list[Any]], lease_until: datetime
    ) -> list[list[Any]]:
        """PostgreSQL: claim the chosen rows, skipping any another worker holds.

        One ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)
        RETURNING id``: the filters are evaluated again on the latest row
        versions, so a row claimed or sent meanwhile drops out.  Each chain
        keeps its prefix of claimed rows (a chain whose head was not claimed is
        dropped), and a row claimed behind such a gap is handed back at once.
        """
        ids = [row.id for chain in chains for row in chain]
        params = {"ids": ids, "now": now, "worker": self.worker_id, "until": lease_until}
        statements = _statements(connection)
        claimed = set(connection.execute(statements.lock, params).scalars())
        kept: list[list[Any]] = []
        stray: list[int] = []
        for chain in chains:
            prefix: list[Any] = []
            for row in chain:
                if row.id not in claimed:
                    break
                prefix.append(row)
            if prefix:
                kept.append(prefix)
            stray.extend(row.id for row in chain[len(prefix) :] if row.id in claimed)
        if stray:
            connection.execute(statements.release, {"ids": stray, "worker": self.worker_id})
        return kept

    def _yield_to_engine(self) -> None:
        """Wait while ``give_way`` says so, within the limits (module docstring).

        The slots and the claimer share one clock: the first to wait starts
        it, and once the limit has passed they all go on for as long again.
        """
        busy = self._give_way
        if busy is None:
            return
        while not self._stopping and busy():
            now = time.monotonic()
            if now < self._turn_until:
                return
            if self._giving_since is None:
                self._giving_since = now
            elif now - self._giving_since >= self.give_way_limit:
                self._giving_since = None
                self._turn_until = now + self.give_way_limit
                return
            gevent.sleep(_GIVE_WAY_POLL)
        self._giving_since = None

    # --- sending -------------------------------------------------------------------

    def _send_batch(self, batch: list[tuple[_Job, ...]]) -> _ChainResult:
        """One slot's chains, one after the other: a failure stops its own chain only."""
        attempted: list[tuple[_Job, _Outcome]] = []
        unsent: list[_Job] = []
        for chain in batch:
            if self._stopping and attempted:
                unsent.extend(chain)
                continue
            result = self._send_chain(chain)
            attempted.extend(result.attempted)
            unsent.extend(result.unsent)
        return _ChainResult(tuple(attempted), tuple(unsent))

    def _send_chain(self, chain: tuple[_Job, ...]) -> _ChainResult:
        """Send a chain in order; stop at the first failure (the rest is released)."""
        attempted: list[tuple[_Job, _Outcome]] = []
        for index, job in enumerate(chain):
            # Before the checks: waiting uses the lease up, and a stop may come.
            self._yield_to_engine()
            if index > 0 and self._stopping:
                break
            lease_until = job.lease_until
            # A request that could end after the claim is left to the next claim.
            if (
                index > 0
                and lease_until is not None
                and self._clock() + timedelta(seconds=self.deadline) > lease_until
            ):
                break
            outcome = self._send(job)
            attempted.append((job, outcome))
            if not outcome.delivered:
                break
        return _ChainResult(tuple(attempted), chain[len(attempted) :])

    def _send(self, job: _Job) -> _Outcome:
        if job.auth_token is None:
            return _Outcome(False, error=f"account {job.account_sid} not found", permanent=True)
        try:
            url, headers, body = build_request(
                requote_uri(job.url), job.method, job.params, job.auth_token
            )
        except ValueError as error:
            return _Outcome(False, error=_short(str(error)), permanent=True)
        try:
            with gevent.Timeout(self.deadline):
                reply = self._transport.send(job.method, url, headers, body, self.timeout)
        except gevent.Timeout:
            return _Outcome(False, error=f"no complete response within {self.deadline:g}s")
        if reply.status_code is None:
            return _Outcome(False, error=_short(reply.error or "no response"))
        if 200 <= reply.status_code < 300:
            return _Outcome(True, status_code=reply.status_code)
        return _Outcome(False, status_code=reply.status_code, error=f"HTTP {reply.status_code}")

    # --- outcomes ----------------------------------------------------------------------

    def _record(
        self,
        connection: Connection,
        attempted: Sequence[tuple[_Job, _Outcome]],
        unsent: Sequence[_Job],
    ) -> None:
        """Write attempts (batched), release unsent rows, park the streams behind failures."""
        now = self._clock()
        mine = (_CALLBACKS.c.claimed_by == self.worker_id,)
        statements = _statements(connection)
        delivered: dict[int | None, list[_Job]] = defaultdict(list)
        for job, outcome in attempted:
            if outcome.delivered:
                delivered[outcome.status_code].append(job)
        kept: set[int] = set()
        for status_code, jobs in delivered.items():
            params = {
                "ids": [job.id for job in jobs],
                "worker": self.worker_id,
                "now": now,
                "code": status_code,
            }
            kept.update(connection.execute(statements.delivered, params).scalars())
        if unsent:
            ids = [job.id for job in unsent]
            connection.execute(statements.release, {"ids": ids, "worker": self.worker_id})
        for job, outcome in attempted:
            if outcome.delivered:
                self._log(job, outcome, "delivered", job.id in kept)
                continue
            attempts = job.attempts + 1
            values: dict[str, object] = {
                "attempts": attempts,
                "last_status_code": outcome.status_code,
                "last_error": outcome.error,
                **_RELEASED,
            }
            if outcome.permanent or attempts >= self.max_attempts:
                values["status"] = "failed"
                verdict = "failed (dead letter)"
                retry_at = None
            else:
                delay = backoff_delay(
                    attempts, base_delay=self.base_delay, max_delay=self.max_delay, rng=self._rng
                )
                retry_at = now + timedelta(seconds=delay)
                values["next_attempt_at"] = retry_at
                verdict = f"retry in {delay:.1f}s"
            result = connection.execute(
                update(_CALLBACKS).where(_CALLBACKS.c.id == job.id, *mine).values(**values)
            )
            ours = getattr(result, "rowcount", 1) == 1
            if ours and retry_at is not None and job.ordering_key is not None:
                connection.execute(
                    update(_CALLBACKS)
                    .where(
                        _CALLBACKS.c.ordering_key == job.ordering_key,
                        _CALLBACKS.c.status == "pending",
                        _CALLBACKS.c.id > job.id,
                        _CALLBACKS.c.next_attempt_at < retry_at,
                    )
                    .values(next_attempt_at=retry_at)
                )
            self._log(job, outcome, verdict, ours)

    def _log(self, job: _Job, outcome: _Outcome, verdict: str, ours: bool) -> None:
        # A success is routine (thousands a second in a storm): DEBUG, not the
        # INFO that ``fsconf serve`` logs by default; failures stay WARNING.
        log_level = logging.DEBUG if outcome.delivered else logging.WARNING
        if not log.isEnabledFor(log_level):
            return
        log.log(
            log_level,
            "callback %s %s conference=%s call=%s seq=%s %s %s -> %s (%s) attempt %d: %s%s",
            job.id,
            job.kind,
            job.conference_sid,
            job.call_sid,
            job.sequence_number,
            job.method,
            log_url(job.url),
            outcome.status_code,
            outcome.error or "ok",
            job.attempts + 1,
            verdict,
            "" if ours else " (claim lost; result discarded)",
        )


def _deal(chains: list[tuple[_Job, ...]], slots: int) -> list[list[tuple[_Job, ...]]]:
    """Share ``chains`` among at most ``slots`` greenlets, the longest first, each to
    the slot with the fewest callbacks so far (so the slots finish together)."""
    batches: list[list[tuple[_Job, ...]]] = [[] for _ in range(min(slots, len(chains)))]
    if not batches:
        return []
    loads = [(0, index) for index in range(len(batches))]
    for chain in sorted(chains, key=len, reverse=True):
        load, index = heapq.heappop(loads)
        batches[index].append(chain)
        heapq.heappush(loads, (load + len(chain), index))
    # Each slot sends its oldest streams first (the claim's order).
    order = {id(chain): position for position, chain in enumerate(chains)}
    for batch in batches:
        batch.sort(key=lambda chain: order[id(chain)])
    return batches


def _keys(batch: list[tuple[_Job, ...]]) -> list[str]:
    return [chain[0].ordering_key for chain in batch if chain[0].ordering_key is not None]


def _ready_column() -> Any:
    """``ready``: 1 if the row is due and unclaimed at ``:now``, else 0."""
    now = bindparam("now", type_=_CALLBACKS.c.next_attempt_at.type)
    return case(
        (
            and_(
                _CALLBACKS.c.next_attempt_at <= now,
                or_(_CALLBACKS.c.claimed_until.is_(None), _CALLBACKS.c.claimed_until <= now),
            ),
            1,
        ),
        else_=0,
    ).label("ready")


def _numbered_probe() -> Any:
    """The first ``:depth`` pending rows of each of the streams ``:keys``
    (an expanding IN), with ``ready`` decided in SQL.

    ``row_number()`` per stream over the ``(ordering_key, status, id)`` index;
    the key list is one parameter, so the statement is built, and its cache
    key computed, once (a union of one probe per stream cost 10-30 ms per
    claim at 128 streams, most of it SQLAlchemy walking the statement).
    """
    position = (
        func.row_number()
        .over(partition_by=_CALLBACKS.c.ordering_key, order_by=_CALLBACKS.c.id)
        .label("position")
    )
    numbered = (
        select(*_CHAIN_COLUMNS, _ready_column(), position)
        .where(_CALLBACKS.c.status == "pending")
        .where(_CALLBACKS.c.ordering_key.in_(bindparam("keys", expanding=True)))
        .subquery()
    )
    return select(numbered).where(numbered.c.position <= bindparam("depth", type_=Integer))


def _lateral_probe() -> Any:
    """PostgreSQL: the same rows, stream by stream: for each key of the
    array ``:keys``, its first ``:depth`` pending rows by a LIMITed scan of
    the ``(ordering_key, status, id)`` index.

    Why not the window function: every row's ``pending`` version stays in
    that index, dead, until a vacuum, and it sorts before the stream's live
    pending rows (lower ids). The window's plan (a bitmap scan, all of each
    stream's pending entries) read them all in every claim: after five
    speaker storms, ~30 000 dead entries and 5 ms of the server's CPU for 35
    streams. A plain index scan stops after ``:depth`` live rows, and it
    marks the dead entries it passes, so later scans skip them.
    """
    array = cast(bindparam("keys"), postgresql.ARRAY(String()))
    keys = func.unnest(array).table_valued("key").render_derived(name="streams")
    head = (
        select(*_CHAIN_COLUMNS, _ready_column())
        .where(_CALLBACKS.c.ordering_key == keys.c.key, _CALLBACKS.c.status == "pending")
        .order_by(_CALLBACKS.c.id)
        .limit(bindparam("depth", type_=Integer))
        .lateral("head")
    )
    return select(head).select_from(keys).join(head, true())


def _groups_statement() -> Any:
    """The claim's scan (:meth:`DeliveryWorker._candidates`): a window of the
    due index, ``size`` rows from ``offset``, grouped by stream.

    Built once, with bound parameters: building it per claim cost SQLAlchemy
    ~100 objects that reference each other, garbage the cyclic collector
    then had to find (its young collections ran inside speaker storms).
    """
    now = bindparam("now", type_=_CALLBACKS.c.next_attempt_at.type)
    rows = (
        select(_CALLBACKS.c.id, _CALLBACKS.c.ordering_key, _CALLBACKS.c.next_attempt_at)
        .where(_CALLBACKS.c.status == "pending")
        .where(_CALLBACKS.c.next_attempt_at <= now)
        .where(or_(_CALLBACKS.c.claimed_until.is_(None), _CALLBACKS.c.claimed_until <= now))
        .order_by(_CALLBACKS.c.next_attempt_at, _CALLBACKS.c.id)
        .limit(bindparam("size", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery()
    )
    # A row without a key is a stream of its own: group it by its id.
    stream = func.coalesce(rows.c.ordering_key, cast(rows.c.id, String))
    first = func.min(rows.c.id)
    return (
        select(
            func.min(rows.c.ordering_key).label("key"),
            first.label("first"),
            func.count().label("rows"),
        )
        .group_by(stream)
        .order_by(func.min(rows.c.next_attempt_at), first)
    )


_GROUPS: Final = _groups_statement()
_IN_LISTS: Final = _settle_statements(_in_list, _numbered_probe())
_SETTLES: Final = {"postgresql": _settle_statements(_in_array, _lateral_probe())}
"""Each database's settle statements; :data:`_IN_LISTS` for any other."""


def _statements(connection: Connection) -> _Statements:
    return _SETTLES.get(connection.dialect.name, _IN_LISTS)


def _job(row: Any, auth_token: str | None, lease_until: datetime) -> _Job:
    pairs = tuple((str(name), str(value)) for name, value in json.loads(row.params))
    return _Job(
        id=row.id,
        kind=row.kind,
        account_sid=row.account_sid,
        conference_sid=row.conference_sid,
        call_sid=row.call_sid,
        sequence_number=row.sequence_number,
        url=row.url,
        method=row.method,
        params=pairs,
        attempts=row.attempts,
        auth_token=auth_token,
        created=row.created,
        ordering_key=row.ordering_key,
        lease_until=lease_until,
    )


def _widen_connection_pool(http: requests.Session, size: int) -> None:
    """Keep up to ``size`` connections per host on requests' default adapters."""
    for prefix in ("http://", "https://"):
        adapter = http.adapters.get(prefix)
        if type(adapter) is not HTTPAdapter:
            continue  # someone's own adapter: theirs to size
        # requests keeps its pool settings in private attributes (not typed).
        settings = vars(adapter)
        if int(settings.get("_pool_maxsize", 0)) < size:
            http.mount(
                prefix,
                HTTPAdapter(
                    pool_connections=int(settings.get("_pool_connections", 10)),
                    pool_maxsize=size,
                    max_retries=adapter.max_retries,
                    pool_block=bool(settings.get("_pool_block", False)),
                ),
            )


# --- operator functions (CLI) ----------------------------------------------------


def list_callbacks(
    session: Session,
    *,
    failed_only: bool = False,
    conference_sid: str | None = None,
    limit: int | None = None,
) -> list[Callback]:
    """Outbox rows, oldest first; ``failed_only`` shows the dead letters.

    ``conference_sid`` reads the whole outbox (no index serves it since
    migration 0002: every storm row paid for one that only this used)."""
    query = select(Callback)
    if failed_only:
        query = query.where(Callback.status == "failed")
    if conference_sid is not None:
        query = query.where(Callback.conference_sid == conference_sid)
    query = query.order_by(Callback.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def retry(session: Session, *, callback_id: int, now: datetime | None = None) -> Callback:
    """Send a dead (``failed``) callback again, with a fresh attempt budget.

    A ``pending`` one is just made due now; a ``delivered`` one raises
    :class:`CallbackStateError`.
    """
    moment = now or utc_now()
    callback = session.get(Callback, callback_id)
    if callback is None:
        raise NotFoundError("callback", callback_id)
    if callback.status == "delivered":
        raise CallbackStateError(callback_id, callback.status, "retry")
    if callback.status == "failed":
        callback.attempts = 0
    callback.status = "pending"
    callback.next_attempt_at = moment
    callback.claimed_by = None
    callback.claimed_until = None
    try:
        session.flush()
        if callback.ordering_key is not None:
            # Rows parked behind it (see "Parking") follow it now, not at its old backoff.
            session.execute(
                update(Callback)
                .where(
                    Callback.ordering_key == callback.ordering_key,
                    Callback.status == "pending",
                    Callback.id > callback_id,
                    Callback.next_attempt_at > moment,
                )
                .values(next_attempt_at=moment),
                execution_options={"synchronize_session": False},
            )
    except SQLAlchemyError as error:
        raise StoreError(describe_error(error)) from error
    log.info("callback %s reset to pending by an operator", callback_id)
    return callback


def retry_all_failed(session: Session, *, now: datetime | None = None) -> int:
    """Reset every dead letter to pending; return how many."""
    moment = now or utc_now()
    try:
        result = session.execute(
            update(Callback)
            .where(Callback.status == "failed")
            .values(
                status="pending",
                attempts=0,
                next_attempt_at=moment,
                claimed_by=None,
                claimed_until=None,
            ),
            execution_options={"synchronize_session": "fetch"},
        )
    except SQLAlchemyError as error:
        raise StoreError(describe_error(error)) from error
    count = int(getattr(result, "rowcount", 0))
    log.info("%d failed callbacks reset to pending by an operator", count)
    return count
