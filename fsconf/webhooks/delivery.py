"""Delivery workers: send the outbox, in order, with retries, signed.

Theory of operation
-------------------
* **Streams and head-of-line order.**  A pending callback is *due* when its
  ``next_attempt_at`` has passed, nobody holds a live claim on it, and no
  older row of its stream (same ``ordering_key``; a ConferenceSid for
  conference callbacks) is still ``pending``.  So SequenceNumber *n* of a
  conference is never sent before *n-1* is delivered or dead (``failed``),
  while different conferences proceed in parallel.
* **Claims.**  A worker claims due rows in one short transaction
  (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's
  ``BEGIN IMMEDIATE`` serialises claimers), stamping ``claimed_by`` and a lease
  ``claimed_until``.  The HTTP request runs with no transaction open; the
  outcome is written in a second short transaction, only if the claim is still
  ours.  A worker that dies leaves rows whose lease simply expires.  Several
  workers and processes can therefore share one database.
* **Attempts.**  Every request has a connect/read timeout and an overall
  deadline.  2xx means delivered.  Anything else (other status, connection
  error, timeout) schedules a retry after
  ``min(max_delay, base_delay * 2**(attempts-1)) * uniform(0.5, 1)`` seconds,
  measured on the injected clock.  After ``max_attempts`` the row becomes
  ``failed``: a dead letter that stays visible and can be retried by hand
  (:func:`retry`, :func:`retry_all_failed`).
* **Concurrency.**  Requests run in a bounded :class:`gevent.pool.Pool`; the
  claim size follows the pool's free slots, so the database is never asked for
  more work than can start.  The HTTP session gets a connection pool as large
  as the request pool (requests' default keeps 10 connections per host and
  reconnects for every request beyond them).
* **One transaction per turn.**  Each turn of :meth:`DeliveryWorker.run_once`
  records the outcome of every request that has finished *and* claims the
  next due rows in a single short transaction.  A commit is the expensive part
  of a turn (an fsync on SQLite), so a busy worker pays one per batch of
  callbacks instead of two per callback.  Order is unchanged: the claim runs
  after the outcomes are written, in the same transaction, so it sees the
  delivered head of each stream.
* **Secrets.**  The auth token is read from the Account row at claim time,
  used to sign, and never logged or stored elsewhere.  Logs name the callback
  id, kind, ConferenceSid, CallSid, SequenceNumber and the status code.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

import gevent
import gevent.event
import gevent.pool
import requests
from requests.adapters import HTTPAdapter
from requests.utils import requote_uri
from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from fsconf.errors import StoreError, WebhookError
from fsconf.store.db import SessionFactory, describe_error, transaction
from fsconf.store.models import Account, Callback
from fsconf.store.repositories import NotFoundError
from fsconf.store.times import utc_now
from fsconf.webhooks.signing import build_request

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


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False


def _describe_url(url: str) -> str:
    """scheme://host/path: enough to debug, without credentials or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 3] + "..."


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
        poll_interval: float = 1.0,
        lease: float | None = None,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        on_delivered: Callable[[float], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise WebhookError(f"max_attempts must be >= 1, got {max_attempts}")
        if pool_size < 1:
            raise WebhookError(f"pool_size must be >= 1, got {pool_size}")
        self._session_factory = session_factory
        self._http = http
        self._clock = clock
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.deadline = timeout[0] + timeout[1]
        # A claim must outlive the longest request it covers, with room to spare.
        self.lease = lease if lease is not None else 2 * self.deadline + 30.0
        self.poll_interval = poll_interval
        self.pool_size = pool_size
        self.worker_id = (
            worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        )[:64]
        self._rng = rng or random.Random()  # jitter only: not a security use
        # Called with the seconds from enqueue to delivery (the /metrics histogram).
        self._on_delivered = on_delivered
        self._pool = gevent.pool.Pool(pool_size)
        _widen_connection_pool(http, pool_size)
        self._wakeup = gevent.event.Event()
        self._stopping = False
        self._loop_greenlet: gevent.Greenlet | None = None

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
        """Stop the loop; requests in flight get ``timeout`` seconds to finish."""
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

        As soon as a request finishes, its slot is refilled, and the next
        callback of its stream (now unblocked) is eligible in the same pass.
        Outcomes and the next claim share one transaction per turn.
        """
        attempts = 0
        in_flight: dict[gevent.Greenlet, _Job] = {}
        finished: list[tuple[_Job, _Outcome]] = []
        while True:
            free = self._pool.free_count() if not self._stopping else 0
            jobs: list[_Job] = []
            if finished or free > 0:
                jobs = self._settle(finished, claim=free)
                attempts += len(finished)
                finished = []
            for job in jobs:
                in_flight[self._pool.spawn(self._send, job)] = job
            if not in_flight:
                break
            gevent.wait(list(in_flight), count=1)
            for greenlet in [g for g in in_flight if g.ready()]:
                job = in_flight.pop(greenlet)
                if greenlet.successful():
                    finished.append((job, greenlet.value))
                else:
                    # A bug, not a delivery outcome: the claim simply expires.
                    log.error("callback %s: attempt crashed: %r", job.id, greenlet.exception)
                    attempts += 1
        return attempts

    def _settle(self, finished: list[tuple[_Job, _Outcome]], *, claim: int) -> list[_Job]:
        """Record ``finished`` outcomes, then claim up to ``claim`` rows: one transaction."""
        try:
            with transaction(self._session_factory) as session:
                for job, outcome in finished:
                    self._record(session, job, outcome)
                jobs = self._claim(session, limit=claim) if claim > 0 else []
        except (StoreError, SQLAlchemyError):
            if not finished:
                raise
            # The claims expire and another pass retries; the requests may be
            # repeated, which webhooks must tolerate anyway.
            log.exception(
                "callbacks %s: could not record the outcomes", [job.id for job, _ in finished]
            )
            return []
        if self._on_delivered is not None:
            now = self._clock()
            for job, outcome in finished:
                if outcome.delivered and job.created is not None:
                    self._on_delivered(max(0.0, (now - job.created).total_seconds()))
        return jobs

    def _claim(self, session: Session, *, limit: int) -> list[_Job]:
        now = self._clock()
        earlier = aliased(Callback)
        blocked = (
            exists()
            .where(earlier.ordering_key == Callback.ordering_key)
            .where(earlier.id < Callback.id)
            .where(earlier.status == "pending")
        )
        query = (
            select(Callback)
            .where(Callback.status == "pending")
            .where(Callback.next_attempt_at <= now)
            .where(or_(Callback.claimed_until.is_(None), Callback.claimed_until <= now))
            .where(~blocked)
            .order_by(Callback.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Callback)
        )
        rows = list(session.scalars(query))
        if not rows:
            return []
        accounts = session.execute(
            select(Account.sid, Account.auth_token).where(
                Account.sid.in_({row.account_sid for row in rows})
            )
        )
        tokens = {account.sid: account.auth_token for account in accounts}
        lease_until = now + timedelta(seconds=self.lease)
        jobs: list[_Job] = []
        for row in rows:
            row.claimed_by = self.worker_id
            row.claimed_until = lease_until
            jobs.append(
                _Job(
                    id=row.id,
                    kind=row.kind,
                    account_sid=row.account_sid,
                    conference_sid=row.conference_sid,
                    call_sid=row.call_sid,
                    sequence_number=row.sequence_number,
                    url=row.url,
                    method=row.method,
                    params=tuple(row.param_pairs),
                    attempts=row.attempts,
                    auth_token=tokens.get(row.account_sid),
                    created=row.created,
                )
            )
        return jobs

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
                response = self._http.request(
                    job.method,
                    url,
                    data=body,
                    headers=headers,
                    timeout=self.timeout,
                    stream=True,
                    allow_redirects=True,
                )
                try:
                    received = 0
                    for chunk in response.iter_content(8192):
                        received += len(chunk)
                        if received > _MAX_RESPONSE_BYTES:
                            break
                finally:
                    response.close()
        except gevent.Timeout:
            return _Outcome(False, error=f"no complete response within {self.deadline:g}s")
        except requests.RequestException as error:
            return _Outcome(False, error=_short(f"{type(error).__name__}: {error}"))
        if 200 <= response.status_code < 300:
            return _Outcome(True, status_code=response.status_code)
        return _Outcome(
            False, status_code=response.status_code, error=f"HTTP {response.status_code}"
        )

    def _record(self, session: Session, job: _Job, outcome: _Outcome) -> None:
        now = self._clock()
        attempts = job.attempts + 1
        values: dict[str, object] = {
            "attempts": attempts,
            "last_status_code": outcome.status_code,
            "claimed_by": None,
            "claimed_until": None,
        }
        if outcome.delivered:
            values.update(status="delivered", delivered_at=now, last_error=None)
            verdict = "delivered"
        elif outcome.permanent or attempts >= self.max_attempts:
            values.update(status="failed", last_error=outcome.error)
            verdict = "failed (dead letter)"
        else:
            delay = backoff_delay(
                attempts, base_delay=self.base_delay, max_delay=self.max_delay, rng=self._rng
            )
            values.update(next_attempt_at=now + timedelta(seconds=delay), last_error=outcome.error)
            verdict = f"retry in {delay:.1f}s"
        result = session.execute(
            update(Callback)
            .where(Callback.id == job.id, Callback.claimed_by == self.worker_id)
            .values(**values),
            execution_options={"synchronize_session": False},
        )
        mine = getattr(result, "rowcount", 1) == 1
        log_level = logging.INFO if outcome.delivered else logging.WARNING
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
            _describe_url(job.url),
            outcome.status_code,
            outcome.error or "ok",
            attempts,
            verdict,
            "" if mine else " (claim lost; result discarded)",
        )


def _widen_connection_pool(http: requests.Session, size: int) -> None:
    """Keep up to ``size`` connections per host on requests' default adapters."""
    for prefix in ("http://", "https://"):
        adapter = http.adapters.get(prefix)
        if type(adapter) is HTTPAdapter and adapter._pool_maxsize < size:
            http.mount(
                prefix,
                HTTPAdapter(
                    pool_connections=adapter._pool_connections,
                    pool_maxsize=size,
                    max_retries=adapter.max_retries,
                    pool_block=adapter._pool_block,
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
    """Outbox rows, oldest first; ``failed_only`` shows the dead letters."""
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
