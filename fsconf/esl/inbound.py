"""The inbound Event Socket client: one supervised connection per FreeSWITCH.

Theory of operation
-------------------
A supervisor greenlet loops for the client's whole life:

1. connect, wait for ``auth/request``, authenticate (timeouts on each);
2. learn the switch's Core-UUID (``global_getvar core_uuid``): a new value
   means FreeSWITCH restarted (every channel and room is gone), the same value
   means only the socket dropped;
3. subscribe with one ``event`` command (``CUSTOM <subclass...>`` last,
   captures B1; HEARTBEAT and BACKGROUND_JOB always included). We never use
   ``filter Unique-ID``: it also hides BACKGROUND_JOB (captures B2.12);
4. run ``reconcile(client)`` while dispatch is *held*: events that arrive
   meanwhile are parked in order and handed out only after the hook returns,
   so handlers never see the new connection's events before the owner has
   rebuilt its state from FreeSWITCH;
5. watch the connection: if no byte arrives for ``heartbeat_timeout`` (the
   switch sends HEARTBEAT every 20 s) the connection is presumed dead and torn
   down;
6. on any failure, reconnect after a jittered exponential backoff capped at
   ``backoff_cap`` (5 s), so a restarted switch is followed within seconds.

Invariants: a disconnect fails every pending ``api`` and every pending
``bgapi`` job with :class:`EslDisconnected`; events reach ``on_event`` through
a :class:`~fsconf.esl.dispatch.KeyedDispatcher` (serial per key, never
blocking the reader), or reach ``on_event_inline`` on the reader itself when
the owner says it can take them without blocking; the BACKGROUND_JOB of one
of our jobs resolves that job and is not dispatched.
"""

from __future__ import annotations

import logging
import random as random_module
import time
import uuid
from collections.abc import Callable, Hashable, Iterable

import gevent
import gevent.event

from fsconf.errors import EslCommandError, EslDisconnected, EslError, EslTimeout
from fsconf.esl import commands
from fsconf.esl.dispatch import DEFAULT_WARN_AT, KeyedDispatcher, default_key
from fsconf.esl.frames import ApiResponse, CommandReply, DisconnectNotice, Event, Frame
from fsconf.esl.transport import EslConnection

logger = logging.getLogger(__name__)

ALWAYS_SUBSCRIBED = ("HEARTBEAT", "BACKGROUND_JOB")
DEFAULT_COMMAND_TIMEOUT = 10.0
DEFAULT_HEARTBEAT_TIMEOUT = 60.0


class EslHeartbeatTimeout(EslTimeout):
    """Nothing at all arrived for the heartbeat timeout: the link is dead."""

    def __init__(self, seconds: float) -> None:
        super().__init__("HEARTBEAT", seconds)
        self.args = (f"nothing received for {seconds:g}s (no HEARTBEAT)",)


def backoff_delay(attempt: int, *, base: float, cap: float, random: Callable[[], float]) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling: float = min(cap, base * 2.0 ** min(attempt, 30))
    return ceiling * random()


def split_subscriptions(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Event names and CUSTOM subclasses (``a::b``), HEARTBEAT etc. added."""
    plain: list[str] = []
    subclasses: list[str] = []
    for name in names:
        for word in name.split():
            if word == "CUSTOM":
                continue
            target = subclasses if "::" in word else plain
            if word not in target:
                target.append(word)
    for name in ALWAYS_SUBSCRIBED:
        if name not in plain and "ALL" not in plain:
            plain.append(name)
    return plain, subclasses


class InboundClient:
    """A supervised, self-healing ESL connection to one FreeSWITCH."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        subscriptions: Iterable[str],
        on_event: Callable[[Event], None],
        on_event_inline: Callable[[Event], bool] | None = None,
        reconcile: Callable[[InboundClient], None] | None = None,
        key_for: Callable[[Event], Hashable] = default_key,
        heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
        event_format: commands.EventFormat = "plain",
        connect_timeout: float = 5.0,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        on_restart: Callable[[str, str], None] | None = None,
        queue_warn_at: int = DEFAULT_WARN_AT,
        random: Callable[[], float] = random_module.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.label = f"esl {host}:{port}"
        self._password = password
        self._plain, self._subclasses = split_subscriptions(subscriptions)
        self._event_format = event_format
        self._reconcile = reconcile
        self._on_restart = on_restart
        self._heartbeat_timeout = heartbeat_timeout
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._random = random
        self._clock = clock
        self._dispatcher = KeyedDispatcher(
            on_event,
            key_for=key_for,
            warn_at=queue_warn_at,
            label=self.label,
            inline=on_event_inline,
        )
        self._jobs: dict[str, gevent.event.AsyncResult] = {}
        self._connection: EslConnection | None = None
        self._ready = gevent.event.Event()
        self._stopping = gevent.event.Event()
        self._supervisor: gevent.Greenlet | None = None
        self.core_uuid: str | None = None
        self.restarted = False
        self._check_core = True
        """True when the current connection found a new Core-UUID."""
        self.connections_made = 0

    # --- life cycle ----------------------------------------------------------

    def start(self) -> None:
        if self._supervisor is None:
            self._supervisor = gevent.spawn(self._supervise)

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection, end the supervisor and every worker."""
        self._stopping.set()
        self._ready.clear()
        connection = self._connection
        if connection is not None:
            connection.close(EslDisconnected(f"{self.label}: client stopped"))
        if self._supervisor is not None:
            self._supervisor.join(timeout)
            self._supervisor.kill(block=False)
        self._dispatcher.stop()

    @property
    def connected(self) -> bool:
        """Authenticated, subscribed and reconciled."""
        return bool(self._ready.is_set())

    def wait_connected(self, timeout: float | None = None) -> bool:
        return bool(self._ready.wait(timeout))

    @property
    def dispatcher(self) -> KeyedDispatcher:
        return self._dispatcher

    # --- requests ------------------------------------------------------------

    def api(self, text: str, *, timeout: float | None = None, check: bool = True) -> ApiResponse:
        """``api <text>``; raise :class:`EslCommandError` on ``-ERR`` unless not ``check``.

        FreeSWITCH reports an empty output as ``-ERR no reply`` (captures,
        surprise 3): pass ``check=False`` where empty is a valid answer.
        """
        reply = self._live().request(commands.api(text), timeout=timeout or self._command_timeout)
        if isinstance(reply, CommandReply):
            # "api" with a bad command line gets a command/reply -ERR.
            raise EslCommandError(text, reply.reply_text)
        if check and reply.is_error:
            raise EslCommandError(text, reply.body)
        return reply

    def command(self, data: bytes, *, timeout: float | None = None) -> CommandReply:
        """Send a non-api command (``filter``, ``nixevent`` ...); ``-ERR`` raises."""
        reply = self._live().request(data, timeout=timeout or self._command_timeout)
        label = data.split(b"\n", 1)[0].decode("utf-8", "replace")
        if not isinstance(reply, CommandReply):
            raise EslCommandError(label, reply.body)
        if not reply.ok:
            raise EslCommandError(label, reply.reply_text)
        return reply

    def forget_job(self, job_uuid: str) -> None:
        """Stop waiting for a job's BACKGROUND_JOB (its caller gave up on it)."""
        self._jobs.pop(job_uuid, None)

    def bgapi(
        self, text: str, *, job_uuid: str | None = None, timeout: float | None = None
    ) -> gevent.event.AsyncResult:
        """``bgapi <text>`` with our Job-UUID.

        Returns an AsyncResult that receives the BACKGROUND_JOB :class:`Event`
        carrying our Job-UUID (its body is the command's output, which may be
        ``-ERR ...``), or :class:`EslDisconnected` if the connection drops first.
        """
        job_uuid = job_uuid or str(uuid.uuid4())
        data = commands.bgapi(text, job_uuid)
        connection = self._live()
        result = gevent.event.AsyncResult()
        # Registered before sending: the job's event may race its reply.
        self._jobs[job_uuid] = result
        try:
            reply = connection.request(data, timeout=timeout or self._command_timeout)
        except EslError:
            self._jobs.pop(job_uuid, None)
            raise
        if not isinstance(reply, CommandReply) or not reply.ok:
            self._jobs.pop(job_uuid, None)
            text_reply = reply.reply_text if isinstance(reply, CommandReply) else reply.body
            raise EslCommandError(f"bgapi {text}", text_reply)
        return result

    def _live(self) -> EslConnection:
        connection = self._connection
        if connection is None or not connection.connected:
            raise EslDisconnected(f"{self.label}: not connected")
        return connection

    # --- supervisor ----------------------------------------------------------

    def _supervise(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                self._run_connection()
                attempt = 0
            except EslError as error:
                logger.warning("%s: connection failed: %s", self.label, error)
            except Exception:  # keep supervising whatever the hook did
                logger.exception("%s: connection failed", self.label)
            finally:
                self._end_connection()
            if self._stopping.is_set():
                break
            delay = backoff_delay(
                attempt, base=self._backoff_base, cap=self._backoff_cap, random=self._random
            )
            attempt += 1
            logger.info("%s: reconnecting in %.2fs (attempt %d)", self.label, delay, attempt)
            self._stopping.wait(delay)

    def _run_connection(self) -> None:
        """One connection's life; returns when it closed after being ready."""
        connection = EslConnection.open(
            self.host,
            self.port,
            connect_timeout=self._connect_timeout,
            label=self.label,
            on_frame=self._on_frame,
            on_close=self._on_close,
            clock=self._clock,
        )
        self._connection = connection
        self._check_core = True
        if self._stopping.is_set():
            return
        connection.authenticate(self._password, timeout=self._connect_timeout)
        self._dispatcher.hold()
        self._learn_core_uuid()
        self.command(commands.event(self._plain, self._event_format, self._subclasses))
        if self._reconcile is not None:
            self._reconcile(self)
        if not connection.connected:
            raise EslDisconnected(f"{self.label}: closed during reconcile")
        self.connections_made += 1
        self._ready.set()
        self._dispatcher.release()
        logger.info("%s: connected (core %s)", self.label, self.core_uuid)
        self._watch(connection)

    def _learn_core_uuid(self) -> None:
        reply = self.api("global_getvar core_uuid", check=False)
        value = reply.body.strip()
        self.restarted = False
        if value and not reply.is_error:
            self._note_core_uuid(value)

    def _watch(self, connection: EslConnection) -> None:
        """Return when the connection closes; close it if it goes silent."""
        while connection.connected and not self._stopping.is_set():
            silent_for = self._clock() - connection.last_received
            remaining = self._heartbeat_timeout - silent_for
            if remaining <= 0:
                logger.error(
                    "%s: nothing received for %.1fs (no HEARTBEAT); reconnecting",
                    self.label,
                    silent_for,
                )
                connection.close(EslHeartbeatTimeout(self._heartbeat_timeout))
                return
            connection.wait_closed(remaining)

    def _end_connection(self) -> None:
        self._ready.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close(EslDisconnected(f"{self.label}: connection ended"))
        self._dispatcher.discard_held()

    # --- reader callbacks (never block) -----------------------------------

    def _on_frame(self, frame: Frame) -> None:
        if isinstance(frame, Event):
            self._on_event(frame)
        elif isinstance(frame, DisconnectNotice):
            logger.info("%s: disconnect notice: %s", self.label, frame.body.strip()[:120])

    def _on_event(self, event: Event) -> None:
        name = event.name
        # A restart always comes with a new connection, whose Core-UUID is read
        # at connect (and on its first event); after that HEARTBEAT re-checks
        # it, and the other events skip a header lookup on the hot path.
        if self._check_core or name == "HEARTBEAT":
            core = event.core_uuid
            if core:
                self._check_core = False
                self._note_core_uuid(core)
        if name == "BACKGROUND_JOB":
            job = self._jobs.pop(event.job_uuid or "", None)
            if job is not None:
                job.set(event)
                return
        self._dispatcher.submit(event)

    def _note_core_uuid(self, value: str) -> None:
        previous = self.core_uuid
        if previous == value:
            return
        self.core_uuid = value
        if previous is None:
            return
        self.restarted = True
        logger.warning("%s: FreeSWITCH restarted (core %s -> %s)", self.label, previous, value)
        if self._on_restart is not None:
            gevent.spawn(self._on_restart, previous, value)

    def _on_close(self, reason: EslError) -> None:
        self._ready.clear()
        jobs = list(self._jobs.items())
        self._jobs.clear()
        for job_uuid, result in jobs:
            result.set_exception(
                EslDisconnected(
                    f"{self.label}: disconnected before job {job_uuid} finished ({reason})"
                )
            )
        logger.warning("%s: disconnected (%s); %d jobs failed", self.label, reason, len(jobs))
