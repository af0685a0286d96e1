"""One Event Socket connection under gevent: the socket, its reader, its requests.

Theory of operation
-------------------
An :class:`EslConnection` owns one TCP socket (inbound to FreeSWITCH's :8021,
or one that FreeSWITCH opened to our outbound server).

* **One greenlet reads.** It ``recv``s big chunks into our sans-IO
  :class:`~fsconf.esl.codec.FrameDecoder` and routes every complete frame. It
  never calls anything that can block: events go to ``on_frame``, whose owner
  only queues them.
* **Replies are matched FIFO.** FreeSWITCH answers every command in order with
  exactly one ``command/reply`` or ``api/response``; each send appends its
  pending result to a deque *under the send lock*, so the order of the deque
  is the order of the bytes on the wire.
* **Sends** take a lock, use ``sendall`` and a timeout.
* **Every failure ends the connection**, and ending it fails every pending
  request with :class:`EslDisconnected`: end of file (also in the middle of a
  frame), a reset, a protocol error, a send that times out, a command whose
  reply does not come in time (the caller gets :class:`EslTimeout`). Once
  ``connected`` is False it stays False; the owner makes a new connection.
  A protocol error is logged with byte counts only, never the bytes.

Why not greenswitch's ``ESLProtocol``: greenswitch 0.0.19 is our declared
dependency, but every part of its connection class is on the defect list in
STYLE.md (its reader URL-decodes whole frames and dies on event-json, invalid
UTF-8 and EOF inside a body; ``send`` has no lock, no ``sendall`` and no
timeout; the auth wait and pending commands can block forever). Subclassing it
would mean overriding all of it, so this module keeps only its roles and
vocabulary (inbound vs outbound session, ``connected``) and
``tests/esl/test_greenswitch_contract.py`` pins each defect against the
installed greenswitch, proving none of them reaches fsconf.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable

import gevent
import gevent.event
import gevent.lock

from fsconf.errors import (
    EslAuthError,
    EslDisconnected,
    EslError,
    EslProtocolError,
    EslTimeout,
)
from fsconf.esl import commands
from fsconf.esl.codec import DEFAULT_MAX_FRAME_BYTES, FrameDecoder
from fsconf.esl.frames import (
    ApiResponse,
    AuthRequest,
    CommandReply,
    Frame,
    RudeRejection,
)

logger = logging.getLogger(__name__)

RECV_SIZE = 256 * 1024
DEFAULT_SEND_TIMEOUT = 5.0
REPLY_GRACE = 0.5
"""Seconds a reply still gets once its timeout fired (see :func:`wait_reply`)."""

Reply = CommandReply | ApiResponse
FrameCallback = Callable[[Frame], None]
CloseCallback = Callable[[EslError], None]


def wait_reply(result: gevent.event.AsyncResult, timeout: float | None) -> Reply:
    """``result.get(timeout)``, but a reply already received is never timed out.

    When the whole hub stalls (a blocking C call elsewhere in the process:
    SQLite's busy handler waits up to its busy timeout without yielding), the
    reply's bytes and the expired timer become ready in the same loop turn,
    and libev runs pending watchers last-in first-out: the timer wins, though
    the reply sits in the socket. One short grace wait lets the reader run
    first; only a reply still missing after it is a real timeout
    (:class:`gevent.Timeout`, as from ``get``).
    """
    try:
        reply: Reply = result.get(timeout=timeout)
    except gevent.Timeout:
        reply = result.get(timeout=REPLY_GRACE)
    return reply


class EslAuthTimeout(EslTimeout, EslAuthError):
    """No ``auth/request`` (or no reply to ``auth``) in time.

    Both a timeout and an authentication failure, so either ``except`` works.
    """


def command_label(data: bytes) -> str:
    """The first line of a command, for logs and errors (password masked)."""
    line = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    if line.startswith("auth "):
        return "auth ***"
    return line[:200]


class EslConnection:
    """One ESL socket: a reader greenlet, FIFO-matched requests, one close."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        label: str,
        on_frame: FrameCallback,
        on_close: CloseCallback | None = None,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self._sock = sock
        self._on_frame = on_frame
        self._on_close = on_close
        self._send_timeout = send_timeout
        self._clock = clock
        self._decoder = FrameDecoder(max_frame_bytes=max_frame_bytes)
        self._pending: deque[tuple[str, gevent.event.AsyncResult]] = deque()
        self._send_lock = gevent.lock.Semaphore()
        self._auth_request = gevent.event.Event()
        self._closed = gevent.event.Event()
        self._reader: gevent.Greenlet | None = None
        self.rejection: str | None = None
        self.close_reason: EslError | None = None
        self.last_received = clock()

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        label: str | None = None,
        **kwargs: object,
    ) -> EslConnection:
        """Connect to ``host:port`` and start reading."""
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except TimeoutError:
            raise EslTimeout(f"connect {host}:{port}", connect_timeout) from None
        except OSError as error:
            raise EslDisconnected(f"cannot connect to {host}:{port}: {error}") from None
        connection = cls.accept(sock, label=label or f"esl {host}:{port}", **kwargs)
        return connection

    @classmethod
    def accept(cls, sock: socket.socket, *, label: str, **kwargs: object) -> EslConnection:
        """Wrap an already connected socket and start reading."""
        # The reader must block in recv until data or close; silence is the
        # owner's business (the heartbeat watchdog), not a socket timeout.
        sock.settimeout(None)
        with contextlib.suppress(OSError):  # not every socket is TCP
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = cls(sock, label=label, **kwargs)  # type: ignore[arg-type]
        connection.start()
        return connection

    def start(self) -> None:
        if self._reader is None:
            self._reader = gevent.spawn(self._read_loop)

    # --- state ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return not self._closed.is_set()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def wait_closed(self, timeout: float | None = None) -> bool:
        return bool(self._closed.wait(timeout))

    # --- requests ------------------------------------------------------------

    def authenticate(self, password: str, *, timeout: float) -> CommandReply:
        """Wait for ``auth/request``, send ``auth``; raise on any refusal."""
        if not self._auth_request.wait(timeout):
            error = EslAuthTimeout("auth/request", timeout)
            logger.error("%s: FreeSWITCH sent no auth/request within %gs", self.label, timeout)
            self.close(error)
            raise error
        if self.rejection is not None:
            raise EslAuthError(f"{self.label}: rude rejection (ACL?): {self.rejection.strip()!r}")
        if not self.connected:
            raise EslDisconnected(f"{self.label}: closed before auth/request")
        try:
            reply = self.request(commands.auth(password), timeout=timeout)
        except EslTimeout:
            raise EslAuthTimeout("auth", timeout) from None
        if not isinstance(reply, CommandReply) or not reply.ok:
            text = reply.reply_text if isinstance(reply, CommandReply) else reply.body
            refused = EslAuthError(
                f"{self.label}: FreeSWITCH refused the password: {text.strip()!r}"
            )
            self.close(refused)
            raise refused
        return reply

    def request(self, data: bytes, *, timeout: float | None) -> Reply:
        """Send one command and wait for its reply.

        A missing reply tears the connection down: a late reply would be
        matched to the next command and shift every reply after it.
        """
        label = command_label(data)
        result = self.request_async(data)
        try:
            reply = wait_reply(result, timeout)
        except gevent.Timeout:
            error = EslTimeout(label, timeout if timeout is not None else 0.0)
            logger.error(
                "%s: no reply to %r within %ss; dropping the connection", self.label, label, timeout
            )
            self.close(error)
            raise error from None
        return reply

    def request_async(self, data: bytes) -> gevent.event.AsyncResult:
        """Send one command; the result receives its reply (or the failure)."""
        label = command_label(data)
        result = gevent.event.AsyncResult()
        with self._send_lock:
            if not self.connected:
                raise EslDisconnected(f"{self.label}: not connected ({label})")
            self._pending.append((label, result))
            self._sendall(data, label)
        return result

    def _sendall(self, data: bytes, label: str) -> None:
        timer = gevent.Timeout(self._send_timeout)
        timer.start()
        try:
            self._sock.sendall(data)
        except gevent.Timeout as expired:
            if expired is not timer:
                raise
            error: EslError = EslTimeout(f"send {label}", self._send_timeout)
            logger.error(
                "%s: send of %r blocked for %gs; dropping the connection",
                self.label,
                label,
                self._send_timeout,
            )
            self.close(error)
            raise error from None
        except OSError as failure:
            error = EslDisconnected(f"{self.label}: send failed ({label}): {failure}")
            self.close(error)
            raise error from None
        finally:
            timer.close()

    # --- the reader ----------------------------------------------------------

    def _read_loop(self) -> None:
        reason: EslError | None = None
        try:
            while self.connected:
                data = self._sock.recv(RECV_SIZE)
                if not data:
                    reason = self._eof_reason()
                    break
                self.last_received = self._clock()
                self._decoder.feed(data)
                size = len(data)
                # Not referenced while the next recv blocks: an idle call
                # would keep its last chunk (a few KB) alive until then.
                del data
                self._route_frames(size)
        except EslProtocolError:
            # Its message may quote the offending bytes: keep it out of logs
            # and out of the errors every pending request receives.
            reason = EslDisconnected(f"{self.label}: protocol error (not ESL)")
        except OSError as error:
            reason = EslDisconnected(f"{self.label}: socket error: {error.__class__.__name__}")
        finally:
            self.close(reason or EslDisconnected(f"{self.label}: reader ended"))

    def _eof_reason(self) -> EslDisconnected:
        buffered = self._decoder.buffered
        if buffered:
            logger.warning(
                "%s: connection closed by FreeSWITCH inside a frame (%d bytes unread)",
                self.label,
                buffered,
            )
            return EslDisconnected(f"{self.label}: end of file inside a frame ({buffered} bytes)")
        logger.info("%s: connection closed by FreeSWITCH", self.label)
        return EslDisconnected(f"{self.label}: end of file")

    def _route_frames(self, chunk_size: int) -> None:
        while self.connected:
            try:
                frame = self._decoder.next_frame()
            except EslProtocolError:
                # Never log the bytes: they may carry anything (caller names,
                # passwords in variables); their size is enough to debug.
                logger.error(
                    "%s: not ESL: protocol error in the last %d bytes received "
                    "(%d bytes buffered); dropping the connection",
                    self.label,
                    chunk_size,
                    self._decoder.buffered,
                )
                raise
            if frame is None:
                return
            self._route(frame)

    def _route(self, frame: Frame) -> None:
        if isinstance(frame, CommandReply | ApiResponse):
            self._resolve(frame)
        elif isinstance(frame, AuthRequest):
            self._auth_request.set()
        elif isinstance(frame, RudeRejection):
            self.rejection = frame.body
            logger.error(
                "%s: rude rejection from FreeSWITCH: %r", self.label, frame.body.strip()[:200]
            )
            self.close(EslAuthError(f"{self.label}: rude rejection"))
        else:
            try:
                self._on_frame(frame)
            except Exception:  # the owner's bug must not kill the reader
                logger.exception("%s: on_frame failed", self.label)

    def _resolve(self, reply: Reply) -> None:
        if not self._pending:
            logger.warning("%s: a reply nobody asked for; ignored", self.label)
            return
        _, result = self._pending.popleft()
        result.set(reply)

    # --- closing -------------------------------------------------------------

    def close(self, reason: EslError | None = None) -> None:
        """End the connection once; fail every pending request."""
        if self._closed.is_set():
            return
        self.close_reason = reason or EslDisconnected(f"{self.label}: closed")
        self._closed.set()
        self._auth_request.set()  # wake an authenticate() that waits
        with contextlib.suppress(OSError):  # already closed by the peer
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        pending = list(self._pending)
        self._pending.clear()
        for label, result in pending:
            result.set_exception(
                EslDisconnected(
                    f"{self.label}: disconnected before the reply to {label!r} "
                    f"({self.close_reason})"
                )
            )
        if pending:
            logger.warning(
                "%s: closed with %d requests pending: %s",
                self.label,
                len(pending),
                self.close_reason,
            )
        if self._on_close is not None:
            try:
                self._on_close(self.close_reason)
            except Exception:
                logger.exception("%s: on_close failed", self.label)
