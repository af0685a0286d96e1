"""``fsconf serve``: everything in one gevent process.

Theory of operation
-------------------
:class:`Fsconf` builds the parts from :class:`~fsconf.config.Settings` and
starts them in dependency order: the database (migrated to head on start — a
fresh install needs no extra step, and a failed migration stops the start with
its reason), the default account, the webhook delivery worker, the conference
service, one supervised inbound ESL connection per FreeSWITCH node, the
outbound call server, and the HTTP server (REST API, ``/metrics``,
``/healthz``). :meth:`Fsconf.stop` goes the other way: it stops taking calls,
then flushes the outbox for a grace period, lets the conference service's write
in flight finish (within the grace), then closes the rest.

Surviving faults:

* each inbound client runs :class:`~fsconf.service.reconcile.Reconciler` on
  every connection before events flow (a dropped event socket, a FreeSWITCH
  restart, or this process's first connection after a restart, which adopts
  the database's active conferences);
* at start, outbox claims left by a killed fsconf on this host are released,
  so its queued callbacks go out at once instead of after the claim's lease
  (the request that was in flight is sent again: at-least-once);
* a conference's writes wait for the database (see
  :mod:`fsconf.service.conferences`).

One log line per lifecycle step, with SIDs; secrets are never logged.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import requests
from gevent.pywsgi import WSGIServer
from sqlalchemy import func, select

from fsconf.api import create_app
from fsconf.calls import CallService, CallSettings
from fsconf.conference.model import EngineConfig
from fsconf.config import Settings
from fsconf.errors import ConfigError
from fsconf.esl.frames import ApiResponse, Event
from fsconf.esl.inbound import InboundClient
from fsconf.esl.outbound import OutboundServer
from fsconf.service.conferences import ConferenceService
from fsconf.service.dialout import DialOut
from fsconf.service.live import LiveControl
from fsconf.service.metrics import Metrics
from fsconf.service.reconcile import Reconciler
from fsconf.store import models, repositories
from fsconf.store.checkpoint import Checkpointer
from fsconf.store.db import SessionFactory, make_engine, make_session_factory, transaction
from fsconf.store.migrate import upgrade
from fsconf.store.times import utc_now
from fsconf.webhooks.delivery import DeliveryWorker

logger = logging.getLogger(__name__)

SUBSCRIPTIONS = (
    "CHANNEL_HANGUP_COMPLETE",
    "BACKGROUND_JOB",
    "HEARTBEAT",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CUSTOM conference::maintenance",
)
"""What each node's inbound connection follows (CUSTOM last: captures B1).
The two progress events say when a dialled participant rings."""

PROGRESS_EVENTS = frozenset({"CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA"})


@dataclass(frozen=True)
class Tuning:
    """Knobs tests and the demo turn; production keeps the defaults."""

    delivery_base_delay: float = 2.0
    delivery_max_attempts: int = 8
    delivery_poll_interval: float = 1.0
    engine: EngineConfig | None = None
    call_settings: dict[str, Any] = field(default_factory=dict)
    heartbeat_timeout: float = 60.0


def delivery_worker(
    sessions: SessionFactory,
    tuning: Tuning,
    *,
    on_delivered: Callable[[float], None] | None = None,
    give_way: Callable[[], bool] | None = None,
) -> DeliveryWorker:
    """The outbox's delivery worker exactly as ``fsconf serve`` runs it (benchmarks too)."""
    return DeliveryWorker(
        sessions,
        requests.Session(),
        base_delay=tuning.delivery_base_delay,
        max_attempts=tuning.delivery_max_attempts,
        poll_interval=tuning.delivery_poll_interval,
        on_delivered=on_delivered,
        give_way=give_way,
    )


class Fsconf:
    """The whole process: build with settings, then :meth:`start`."""

    def __init__(self, settings: Settings, *, tuning: Tuning | None = None) -> None:
        self.settings = settings
        self.tuning = tuning or Tuning()
        try:
            self.db = make_engine(settings.database_url, background_checkpoints=True)
        except Exception as error:
            # One line, and never the URL itself (it may hold a password).
            raise ConfigError(f"bad FSCONF_DATABASE_URL ({error.__class__.__name__})") from error
        # SQLite: WAL checkpoints off the hub (fsconf.store.checkpoint).
        self.checkpointer = Checkpointer.for_engine(self.db)
        self.sessions = make_session_factory(self.db)
        self.metrics = Metrics()
        self.delivery = delivery_worker(
            self.sessions,
            self.tuning,
            on_delivered=self._delivered,
            # Events not yet applied before callbacks already safe in the outbox.
            give_way=self._engine_behind,
        )
        self.delivered = gevent.event.Event()
        engine_config = self.tuning.engine or EngineConfig(public_url=settings.public_url)
        self.conferences = ConferenceService(
            sessions=self.sessions,
            api=self._api,
            config=engine_config,
            notify_callbacks=self.delivery.notify,
        )
        self.reconciler = Reconciler(
            conferences=self.conferences, sessions=self.sessions, config=engine_config
        )
        self.nodes = [
            InboundClient(
                node.host,
                node.port,
                node.password,
                subscriptions=SUBSCRIPTIONS,
                on_event=self._on_event,
                on_event_inline=self._on_event_inline,
                reconcile=self.reconciler,
                on_restart=self._on_switch_restart,
                heartbeat_timeout=self.tuning.heartbeat_timeout,
            )
            for node in settings.esl_nodes
        ]
        self.dialout = DialOut(
            sessions=self.sessions,
            conferences=self.conferences,
            nodes=self.nodes,
            socket_address=self._dialout_socket,
            dial_string=settings.dial_string,
            notify_callbacks=self.delivery.notify,
        )
        self.calls = CallService(
            dialout=self.dialout,
            sessions=self.sessions,
            settings=CallSettings(
                account_sid=settings.account_sid,
                voice_url=settings.voice_url,
                voice_method=settings.voice_method,
                **self.tuning.call_settings,
            ),
            gateway=self.conferences,
        )
        self.outbound = OutboundServer(
            settings.outbound_listen, self.calls.handle, allowed_peers=outbound_peers(settings)
        )
        self.control = LiveControl(self.conferences, self.dialout)
        self.api = create_app(
            session_factory=self.sessions,
            control=self.control,
            public_url=settings.public_url,
            # Recording media and deletes are confined to the recordings directory.
            recordings_dir=engine_config.recordings_dir,
        )
        self.http = WSGIServer(
            settings.http_listen, self.metrics.wrap(self.api, self._gauges), log=None
        )

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self._migrate()
        self._ensure_default_account()
        self._release_dead_claims()
        if self.checkpointer is not None:
            self.checkpointer.start()
        self.delivery.start()
        for node in self.nodes:
            node.start()
        self.outbound.start()
        self.http.start()
        logger.info(
            "fsconf started: outbound ESL on %s:%d, HTTP on %s:%d, %d FreeSWITCH node(s)",
            *self.outbound.address,
            *self.http_address,
            len(self.nodes),
        )

    def stop(self, grace: float = 5.0) -> None:
        logger.info("fsconf stopping: no new calls, flushing the outbox")
        self.outbound.stop(timeout=grace)
        self.http.stop(timeout=grace)
        self.dialout.stop()
        logger.info("fsconf: no longer taking calls or API requests; flushing the outbox")
        self._flush_outbox(grace)
        self.delivery.stop(timeout=grace)
        self.conferences.stop(grace)
        for node in self.nodes:
            node.stop(timeout=grace)
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.db.dispose()
        logger.info("fsconf stopped")

    @property
    def http_address(self) -> tuple[str, int]:
        host, port = self.http.address[:2]
        return host, port

    def _migrate(self) -> None:
        try:
            upgrade(self.settings.database_url)
        except Exception as error:
            # Say exactly what we were doing; never the URL (it may hold a password).
            raise ConfigError(f"cannot migrate the database: {error.__class__.__name__}") from error

    def _release_dead_claims(self) -> None:
        """Hand back the outbox rows a killed fsconf on this host had claimed.

        A delivery worker claims a row for a lease (about a minute) while its
        request is in flight; if the process was killed, the row and every
        later callback of its conference would wait for the lease to expire.
        A claim names ``host:pid:...``: when that host is ours and that pid no
        longer runs, nobody can still be sending it, so it is due now. That
        request may have reached the application before the kill: it is sent
        again (at-least-once delivery). Claims of other hosts wait for their
        lease, since their process may be alive.
        """
        host = socket.gethostname()
        released = 0
        with transaction(self.sessions) as session:
            rows = session.scalars(
                select(models.Callback)
                .where(models.Callback.status == "pending")
                .where(models.Callback.claimed_by.is_not(None))
            ).all()
            for row in rows:
                if not _dead_claim(row.claimed_by or "", host):
                    continue
                row.claimed_by = None
                row.claimed_until = None
                released += 1
        if released:
            logger.warning(
                "outbox: %d callback(s) claimed by a process that is gone are due again "
                "(a request in flight at its end is sent again)",
                released,
            )

    def _on_switch_restart(self, previous: str, current: str) -> None:
        # Reconciliation (run by the client on this same connection) ends what
        # was lost; this line is for the operator.
        logger.warning("FreeSWITCH core %s replaced by %s: its calls are gone", previous, current)

    def _ensure_default_account(self) -> None:
        sid, token = self.settings.account_sid, self.settings.auth_token
        if not sid:
            logger.warning("FSCONF_ACCOUNT_SID is not set: calls need fsconf_account_sid")
            return
        if not token:
            raise ConfigError("FSCONF_ACCOUNT_SID is set but FSCONF_AUTH_TOKEN is not")
        with transaction(self.sessions) as session:
            repositories.ensure_account(
                session,
                sid=sid,
                auth_token=token,
                voice_url=self.settings.voice_url or None,
                voice_method=self.settings.voice_method,
            )
        logger.info("default account %s ready", sid)

    # --- plumbing -------------------------------------------------------------------

    def _api(self, text: str) -> ApiResponse:
        # One node hosts every room for now (DESIGN "Scale out" routes rooms by
        # node later); the first connected node answers.
        for node in self.nodes:
            if node.connected:
                return node.api(text, check=False)
        return self.nodes[0].api(text, check=False)

    def _flush_outbox(self, grace: float) -> None:
        """Deliver what is due before exiting, for at most ``grace`` seconds.

        A callback may wait behind its stream's request in flight (the worker
        holds it): wait for that delivery, then go on.
        """
        deadline = time.monotonic() + grace
        while self._due_callbacks() and time.monotonic() < deadline:
            if not self.delivery.run_once():
                self.delivered.wait(timeout=max(0.0, deadline - time.monotonic()))
        left = self._due_callbacks()
        if left:
            logger.warning("fsconf: %d callback(s) left in the outbox for the next start", left)

    def _due_callbacks(self) -> int:
        with transaction(self.sessions) as session:
            count = session.scalar(
                select(func.count())
                .select_from(models.Callback)
                .where(models.Callback.status == "pending")
                .where(models.Callback.next_attempt_at <= utc_now())
            )
        return int(count or 0)

    def _dialout_socket(self) -> tuple[str, int]:
        """Where FreeSWITCH reaches our outbound server for an answered dial-out."""
        return self.settings.dialout_socket or self.outbound.address

    def _delivered(self, seconds: float) -> None:
        self.metrics.delivered(seconds)
        # Wakes whoever waits for the outbox to drain (shutdown, tests).
        self.delivered.set()
        self.delivered.clear()

    def wait_delivered(self, count: int, timeout: float = 10.0) -> bool:
        """Block until the outbox holds ``count`` delivered callbacks."""
        with gevent.Timeout(timeout, False):
            while self._delivered_count() < count:
                self.delivered.wait(timeout=1.0)
            return True
        return self._delivered_count() >= count

    def _delivered_count(self) -> int:
        with transaction(self.sessions) as session:
            return repositories.count_callbacks_by_status(session).get("delivered", 0)

    def _on_event(self, event: Event) -> None:
        self.metrics.event()
        if event.name in PROGRESS_EVENTS:
            self.dialout.on_progress(event)  # on the channel's own serial queue
            return
        self.conferences.on_event(event)

    def _engine_behind(self) -> bool:
        return self.conferences.behind()

    def _on_event_inline(self, event: Event) -> bool:
        """On the socket reader, when the event's key has nothing queued: most
        events only go onto their room's queue (or nowhere), which never
        blocks. A dial-out's progress takes its leg's lock and a recording
        pause writes its row: those go to their key's worker (False)."""
        if event.name in PROGRESS_EVENTS:
            return False
        if not self.conferences.take_event(event):
            return False
        self.metrics.event()
        return True

    def _gauges(self) -> Iterable[tuple[str, float, dict[str, str]]]:
        yield from self.conferences.gauges()
        for node, settings in zip(self.nodes, self.settings.esl_nodes, strict=True):
            yield ("fsconf_esl_connected", 1.0 if node.connected else 0.0, {"node": settings.name})
        yield from self._outbox_gauges()

    def _outbox_gauges(self) -> Iterable[tuple[str, float, dict[str, str]]]:
        with transaction(self.sessions) as session:
            counts = repositories.count_callbacks_by_status(session)
        for status in ("pending", "failed"):
            yield ("fsconf_outbox_callbacks", float(counts.get(status, 0)), {"status": status})


def _dead_claim(claimed_by: str, host: str) -> bool:
    """``host:pid:token`` of this host whose process no longer exists."""
    parts = claimed_by.split(":")
    if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists (another user's process)
    return False


ServeHook = Callable[[Fsconf], None]


def outbound_peers(settings: Settings) -> frozenset[str] | None:
    """Who may connect to the outbound server: the FreeSWITCH nodes (resolved
    now), or ``FSCONF_OUTBOUND_ALLOW``; ``*`` means anyone (None)."""
    names = settings.outbound_allow or tuple(node.host for node in settings.esl_nodes)
    if "*" in names:
        return None
    addresses: set[str] = set()
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except OSError:
            logger.warning("FSCONF_OUTBOUND_ALLOW: cannot resolve %s; skipped", name)
            continue
        addresses.update(str(info[4][0]) for info in infos)
    return frozenset(addresses)
