"""The outbound Event Socket server: FreeSWITCH connects once per call.

Theory of operation
-------------------
The dialplan runs ``socket <fsconf>:8084 async full``. :class:`OutboundServer`
accepts each connection, wraps it in an :class:`OutboundSession` and runs
``handler(session)`` in that connection's own greenlet; when the handler
returns (or raises) the session says ``exit`` and closes.

A session's life, as the captures show it (``outbound_socket.jsonl``,
``b2_outbound_conference_flow.jsonl``):

* ``connect``: the reply is a command/reply whose headers are the whole
  channel data (``Event-Name: CHANNEL_DATA``, ``Unique-ID``, ``variable_*``),
  with ``Reply-Text: +OK`` URL-encoded (surprise 17);
* ``myevents`` (only this channel), ``linger`` (keep the socket after hangup
  until we say ``exit``). The captures' sessions also said ``event plain
  CUSTOM conference::maintenance``; fsconf does not: the inbound connection
  follows every room, nothing on a call's socket reads them, and myevents'
  own list has no CUSTOM (mod_event_socket), so without it FreeSWITCH queues
  no second copy of each member's conference events (a talking storm on
  1,000 members doubled both the switch's queueing and our parsing);
* ``execute``: ``sendmsg`` with a fresh ``Event-UUID`` and ``event-lock:
  true`` (B12). Completion is the CHANNEL_EXECUTE_COMPLETE whose
  ``Application-UUID`` equals that Event-UUID (B2.1), never one matched by
  application name: several of the same app may be queued, and FreeSWITCH
  also completes apps we did not send (``socket`` itself);
* hangup: CHANNEL_HANGUP, the remaining EXECUTE_COMPLETEs (still delivered),
  CHANNEL_HANGUP_COMPLETE, then ``text/disconnect-notice`` with
  ``Content-Disposition: linger``. After that notice FreeSWITCH sends nothing
  more until our ``exit``, so executes still pending then fail with
  :class:`SessionHungUp`; ``exit`` is answered ``+OK bye`` and a
  ``disconnect`` notice, and the socket closes.

Invariants: every pending request fails with :class:`EslDisconnected` (or its
subclass :class:`SessionHungUp`) when it can no longer complete; other events
reach ``on_event`` in order from a worker greenlet, never from the reader.
Logs carry the CallSid (``CA`` + channel uuid without dashes).
"""

from __future__ import annotations

import logging
import socket
import uuid as uuid_module
from collections.abc import Callable, Iterable, Mapping

import gevent
import gevent.event
import gevent.pool
import gevent.server

from fsconf.errors import EslCommandError, EslDisconnected, EslError, EslTimeout
from fsconf.esl import commands
from fsconf.esl.dispatch import KeyedDispatcher
from fsconf.esl.frames import ApiResponse, CommandReply, DisconnectNotice, Event, Frame
from fsconf.esl.transport import EslConnection, wait_reply

logger = logging.getLogger(__name__)

HANGUP_EVENTS = frozenset({"CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"})
DEFAULT_COMMAND_TIMEOUT = 10.0
EXIT_TIMEOUT = 2.0


class SessionHungUp(EslDisconnected):
    """The channel hung up: this execute can never complete."""


#: What :attr:`OutboundSession.uuid` reads: never dropped from the channel data.
_IDENTITY_HEADERS = ("Unique-ID", "variable_uuid")


def call_sid(channel_uuid: str) -> str:
    """``CA`` + the FreeSWITCH channel uuid without dashes (reversible)."""
    return "CA" + channel_uuid.replace("-", "")


class OutboundSession:
    """One call's outbound socket."""

    def __init__(
        self,
        sock: socket.socket,
        address: tuple[str, int] | None = None,
        *,
        on_event: Callable[[Event], None] | None = None,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
    ) -> None:
        self.address = address
        self.on_event = on_event
        self._command_timeout = command_timeout
        self.channel_data: Mapping[str, str] = {}
        self.hungup = False
        self.hangup_cause: str | None = None
        self.lingering = False
        self._hangup = gevent.event.Event()
        self._executes: dict[str, gevent.event.AsyncResult] = {}
        # Made on first use: only a session with an on_event needs one, and
        # fsconf's own calls have none (memory per participant).
        self._events: KeyedDispatcher | None = None
        peer = f"{address[0]}:{address[1]}" if address else "?"
        self._connection = EslConnection.accept(
            sock,
            label=f"outbound {peer}",
            on_frame=self._on_frame,
            on_close=self._on_close,
        )

    # --- identity ------------------------------------------------------------

    @property
    def uuid(self) -> str | None:
        return self.channel_data.get("Unique-ID") or self.channel_data.get("variable_uuid")

    @property
    def call_sid(self) -> str | None:
        return call_sid(self.uuid) if self.uuid else None

    @property
    def log_name(self) -> str:
        sid = self.call_sid if self.channel_data else None
        return sid or "outbound (before connect)"

    def variable(self, name: str) -> str | None:
        """A channel variable from the connect data (``variable_<name>``)."""
        return self.channel_data.get(f"variable_{name}")

    @property
    def connected(self) -> bool:
        return self._connection.connected

    # --- setup ---------------------------------------------------------------

    def connect(self) -> Mapping[str, str]:
        """``connect``: learn the channel data (the reply's headers)."""
        reply = self._command(commands.connect())
        uuid = reply.headers.get("Unique-ID") or reply.headers.get("variable_uuid") or ""
        # The channel uuid becomes our CallSid and goes into later commands:
        # a peer that is not a FreeSWITCH (or is lying) is refused here.
        commands.check_uuid(uuid, "Unique-ID")
        self.channel_data = reply.headers
        logger.info("%s: outbound session connected", self.log_name)
        return self.channel_data

    def keep_channel_data(self, names: Iterable[str] = ()) -> None:
        """Keep only ``names`` (and the channel's identity) of the connect data.

        A caller that has read what it needs frees the rest: ~130 headers,
        about 6 KB for the whole life of the call (memory per participant).
        """
        keep = {*names, *_IDENTITY_HEADERS}
        self.channel_data = {
            name: value for name, value in self.channel_data.items() if name in keep
        }

    def myevents(self) -> CommandReply:
        return self._command(commands.myevents())

    def linger(self, seconds: int | None = None) -> CommandReply:
        return self._command(commands.linger(seconds))

    def setup(self) -> Mapping[str, str]:
        """connect, then myevents + linger.

        The two are pipelined: FreeSWITCH answers in order and each reply
        is matched FIFO, so the hot path pays one round trip, not two.
        """
        data = self.connect()
        results = [
            (label, self._connection.request_async(wire))
            for label, wire in (
                ("myevents", commands.myevents()),
                ("linger", commands.linger()),
            )
        ]
        for label, result in results:
            self._check(label, self._wait(result, label))
        return data

    # --- applications ---------------------------------------------------------

    def execute_async(
        self, app: str, arg: str | None = None, *, timeout: float | None = None
    ) -> gevent.event.AsyncResult:
        """Send the app; the result gets its CHANNEL_EXECUTE_COMPLETE event."""
        if self.hungup:
            raise SessionHungUp(f"{self.log_name}: hung up, cannot execute {app}")
        event_uuid = str(uuid_module.uuid4())
        wire = commands.sendmsg_execute(app, arg, event_uuid=event_uuid, event_lock=True)
        result = gevent.event.AsyncResult()
        # Registered before the send: the completion may beat the reply.
        self._executes[event_uuid] = result
        try:
            self._command(wire, label=f"execute {app}", timeout=timeout)
        except EslError:
            self._executes.pop(event_uuid, None)
            raise
        logger.debug("%s: executing %s (Event-UUID %s)", self.log_name, app, event_uuid)
        return result

    def execute(self, app: str, arg: str | None = None, *, timeout: float | None = None) -> Event:
        """Run ``app`` and return its CHANNEL_EXECUTE_COMPLETE event.

        ``timeout`` bounds the wait for completion (None: until the app ends or
        the call goes away); a timeout abandons the wait, the app keeps running.
        """
        result = self.execute_async(app, arg)
        try:
            event: Event = result.get(timeout=timeout)
        except gevent.Timeout:
            self._forget(result)
            raise EslTimeout(f"execute {app}", timeout or 0.0) from None
        return event

    def api(self, text: str, *, check: bool = True, timeout: float | None = None) -> ApiResponse:
        """``api <text>`` over this socket (allowed by ``full``)."""
        reply = self._connection.request(
            commands.api(text), timeout=timeout or self._command_timeout
        )
        if isinstance(reply, CommandReply):
            raise EslCommandError(text, reply.reply_text)
        if check and reply.is_error:
            raise EslCommandError(text, reply.body)
        return reply

    def hangup(self, cause: str = "NORMAL_CLEARING") -> CommandReply:
        """``sendmsg`` ``call-command: hangup``."""
        return self._command(commands.sendmsg_hangup(cause), label="hangup")

    def wait_hangup(self, timeout: float | None = None) -> bool:
        return bool(self._hangup.wait(timeout))

    @property
    def hangup_event(self) -> gevent.event.Event:
        """Set once the channel hung up or the socket closed (never set it).

        For ``gevent.wait([..., session.hangup_event], count=1)``: waiting on
        it needs no greenlet of its own, where each live greenlet costs a call
        about 5 KB (its frame stack chunk, its saved C stack, the object).
        """
        return self._hangup

    def exit(self) -> None:
        """``exit``, then close: the end of every session."""
        if self._connection.connected:
            try:
                self._connection.request(commands.exit_(), timeout=EXIT_TIMEOUT)
            except EslError as error:
                logger.debug("%s: exit: %s", self.log_name, error)
        self.close()

    def close(self) -> None:
        self._connection.close(EslDisconnected(f"{self.log_name}: session closed"))
        self._connection.wait_closed(EXIT_TIMEOUT)

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._connection.wait_closed(timeout)

    def wait_events_idle(self, timeout: float | None = None) -> bool:
        """Wait until ``on_event`` has seen every event received so far."""
        return self._dispatcher().wait_idle(timeout)

    # --- helpers -------------------------------------------------------------

    def _command(
        self, wire: bytes, *, label: str | None = None, timeout: float | None = None
    ) -> CommandReply:
        name = label or wire.split(b"\n", 1)[0].decode()
        reply = self._connection.request(wire, timeout=timeout or self._command_timeout)
        return self._check(name, reply)

    def _wait(self, result: gevent.event.AsyncResult, label: str) -> CommandReply | ApiResponse:
        try:
            reply = wait_reply(result, self._command_timeout)
        except gevent.Timeout:
            error = EslTimeout(label, self._command_timeout)
            self._connection.close(error)
            raise error from None
        return reply

    def _check(self, label: str, reply: CommandReply | ApiResponse) -> CommandReply:
        if not isinstance(reply, CommandReply):
            raise EslCommandError(label, reply.body)
        if not reply.ok:
            raise EslCommandError(label, reply.reply_text)
        return reply

    def _forget(self, result: gevent.event.AsyncResult) -> None:
        for event_uuid, pending in list(self._executes.items()):
            if pending is result:
                del self._executes[event_uuid]

    # --- reader callbacks (never block) -----------------------------------

    def _on_frame(self, frame: Frame) -> None:
        if isinstance(frame, Event):
            self._on_event(frame)
        elif isinstance(frame, DisconnectNotice):
            self._on_disconnect_notice(frame)

    def _on_event(self, event: Event) -> None:
        if event.name == "CHANNEL_EXECUTE_COMPLETE":
            pending = self._executes.pop(event.get("Application-UUID") or "", None)
            if pending is not None:
                pending.set(event)
        elif event.name in HANGUP_EVENTS:
            self._mark_hungup(event.get("Hangup-Cause"))
        if self.on_event is not None:
            self._dispatcher().submit(event)

    def _on_disconnect_notice(self, notice: DisconnectNotice) -> None:
        if notice.linger:
            # FreeSWITCH sends nothing more until our exit: what is pending
            # now can never complete.
            self.lingering = True
            self._mark_hungup(self.hangup_cause)
            self._fail_executes(SessionHungUp, "hung up (linger)")
            logger.info("%s: channel gone, socket lingering until exit", self.log_name)
        else:
            logger.info("%s: disconnect notice from FreeSWITCH", self.log_name)

    def _mark_hungup(self, cause: str | None) -> None:
        if cause and not self.hangup_cause:
            self.hangup_cause = cause
        if not self.hungup:
            self.hungup = True
            logger.info("%s: hangup (%s)", self.log_name, cause or "unknown cause")
        self._hangup.set()

    def _on_close(self, reason: EslError) -> None:
        self._fail_executes(EslDisconnected, f"socket closed ({reason})")
        self.hungup = True
        self._hangup.set()

    def _fail_executes(self, error_class: type[EslDisconnected], why: str) -> None:
        pending = list(self._executes.items())
        self._executes.clear()
        for event_uuid, result in pending:
            result.set_exception(
                error_class(f"{self.log_name}: execute {event_uuid} failed: {why}")
            )

    def _deliver(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _dispatcher(self) -> KeyedDispatcher:
        if self._events is None:
            self._events = KeyedDispatcher(
                self._deliver, key_for=lambda event: "session", label=self.log_name
            )
        return self._events

    def _stop_events(self) -> None:
        # Made here if need be, stopped: an event after the end is still ignored.
        self._dispatcher().stop()


SessionHandler = Callable[[OutboundSession], None]


class OutboundServer:
    """Accept FreeSWITCH's per-call connections; run ``handler(session)`` for each."""

    def __init__(
        self,
        listener: tuple[str, int],
        handler: SessionHandler,
        *,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        allowed_peers: frozenset[str] | None = None,
    ) -> None:
        self._handler = handler
        self._allowed_peers = allowed_peers
        self._command_timeout = command_timeout
        # A pool, so stop() can wait for the calls in progress (and then end
        # them) instead of leaving their greenlets running after shutdown.
        self._server = gevent.server.StreamServer(listener, self._serve, spawn=gevent.pool.Pool())
        self.sessions: set[OutboundSession] = set()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.address[:2]
        return host, port

    def start(self) -> None:
        self._server.start()
        logger.info("outbound ESL server listening on %s:%d", *self.address)

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting calls; give the calls in progress ``timeout`` seconds
        to finish, then end them (their handlers' cleanup still runs)."""
        self._server.stop(timeout=timeout)

    def _serve(self, sock: socket.socket, address: tuple[str, int]) -> None:
        if self._allowed_peers is not None and address[0] not in self._allowed_peers:
            # Whoever reaches this port could pose as FreeSWITCH and make fsconf
            # fetch URLs signed with an account's token: only the switches.
            logger.warning("outbound ESL: refused a connection from %s", address[0])
            sock.close()
            return
        session = OutboundSession(sock, address, command_timeout=self._command_timeout)
        self.sessions.add(session)
        try:
            self._handler(session)
        except EslDisconnected as error:
            logger.info("%s: call went away: %s", session.log_name, error)
        except Exception:  # one call's bug must not take the server down
            logger.exception("%s: session handler failed", session.log_name)
        finally:
            session.exit()
            session._stop_events()
            self.sessions.discard(session)
