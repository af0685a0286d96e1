"""Typed ESL frames: the closed set of things FreeSWITCH sends us.

Theory of operation
-------------------
The codec (:mod:`fsconf.esl.codec`) turns bytes into exactly one of the frame
classes below; nothing else ever leaves it. Every frame is a frozen dataclass,
so a frame can be handed to several greenlets (the dispatcher, a pending
request, a test) without anyone changing it under the others.

Invariants:

* Header values are already URL-decoded; bodies are never URL-decoded.
* Text is decoded from UTF-8 with ``surrogateescape``: bytes that are not
  UTF-8 survive as lone surrogates and can be re-encoded byte for byte. Nothing
  is silently dropped.
* Header mappings are plain dicts for speed; treat them as read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Headers = Mapping[str, str]

EventFormat = Literal["plain", "json"]


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """``Content-Type: auth/request``: the switch waits for ``auth <password>``."""


@dataclass(frozen=True, slots=True)
class CommandReply:
    """``Content-Type: command/reply``: the answer to a non-api command.

    On the outbound socket the reply to ``connect`` carries the whole channel
    data (``Event-Name: CHANNEL_DATA``, ``variable_*``) in these headers.
    """

    headers: Headers

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")

    @property
    def ok(self) -> bool:
        return self.reply_text.startswith("+OK")

    @property
    def job_uuid(self) -> str | None:
        return self.headers.get("Job-UUID")


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """``Content-Type: api/response``: the output of an ``api`` command."""

    body: str
    headers: Headers

    @property
    def is_error(self) -> bool:
        # FreeSWITCH reports empty output as "-ERR no reply" (captures,
        # surprise 3): callers that expect an empty answer must look for it.
        return self.body.startswith("-ERR")


@dataclass(frozen=True, slots=True)
class Event:
    """An event (``text/event-plain`` or ``text/event-json``).

    ``headers`` are the event's own headers (Event-Name, Unique-ID, ...), not
    the outer frame's. ``body`` is the event's body, cut by its own
    Content-Length (the api output of a BACKGROUND_JOB), or None.
    """

    headers: Headers
    body: str | None
    format: EventFormat = "plain"

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    @property
    def subclass(self) -> str | None:
        return self.headers.get("Event-Subclass")

    @property
    def action(self) -> str | None:
        """The ``Action`` of a CUSTOM conference::maintenance event."""
        return self.headers.get("Action")

    @property
    def unique_id(self) -> str | None:
        return self.headers.get("Unique-ID")

    @property
    def job_uuid(self) -> str | None:
        return self.headers.get("Job-UUID")

    @property
    def core_uuid(self) -> str | None:
        return self.headers.get("Core-UUID")

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


@dataclass(frozen=True, slots=True)
class DisconnectNotice:
    """``Content-Type: text/disconnect-notice``.

    With ``linger`` the channel has hung up but the switch keeps the socket
    (and the channel) until we send ``exit``; without it the socket is closing.
    """

    headers: Headers
    body: str

    @property
    def linger(self) -> bool:
        return self.headers.get("Content-Disposition") == "linger"

    @property
    def linger_time(self) -> int | None:
        value = self.headers.get("Linger-Time")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class RudeRejection:
    """``Content-Type: text/rude-rejection``: our address is not allowed (ACL)."""

    body: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class LogData:
    """``Content-Type: log/data``: a log line, after ``log <level>``."""

    body: str
    headers: Headers


Frame = (
    AuthRequest | CommandReply | ApiResponse | Event | DisconnectNotice | RudeRejection | LogData
)


@dataclass(frozen=True, slots=True)
class ClientCommand:
    """A command as the switch receives it (used by the FakeSwitch).

    ``line`` is the first line (``api conference X list``, ``sendmsg``);
    ``headers`` are the following header lines (not URL-decoded: FreeSWITCH
    takes ``execute-app-arg`` literally); ``body`` is cut by the
    ``content-length`` header when there is one.
    """

    line: str
    headers: Headers
    body: str | None = None

    @property
    def verb(self) -> str:
        return self.line.split(" ", 1)[0]

    @property
    def argument(self) -> str:
        parts = self.line.split(" ", 1)
        return parts[1] if len(parts) > 1 else ""
