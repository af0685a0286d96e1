"""The one exception tree of fsconf.

Every error fsconf raises on purpose derives from :class:`FsconfError` and
carries its context as attributes (the command, the reply, the element and
line, the state and event), so a log line or a test can say exactly what went
wrong without parsing a message.

Control flow that is *expected* (a TwiML Redirect, a hangup, the end of a
document) is returned as a value, never raised.
"""

from __future__ import annotations


class FsconfError(Exception):
    """Base of every error fsconf raises on purpose."""


class ConfigError(FsconfError):
    """A setting is missing or malformed."""


# --- Event Socket -----------------------------------------------------------


class EslError(FsconfError):
    """Base of every Event Socket error."""


class EslProtocolError(EslError):
    """The peer sent bytes that are not ESL (or a frame over the size cap).

    The connection that produced it cannot be trusted any more: the owner tears
    it down and reconnects.
    """


class EslAuthError(EslError):
    """FreeSWITCH refused our password (or never asked for one in time)."""


class EslDisconnected(EslError):
    """The connection closed while a request was pending."""


class EslTimeout(EslError):
    """A command got no reply in time; the connection is torn down."""

    def __init__(self, command: str, seconds: float) -> None:
        super().__init__(f"no reply to {command!r} within {seconds:g}s")
        self.command = command
        self.seconds = seconds


class EslCommandError(EslError):
    """FreeSWITCH answered a command with ``-ERR`` (or a usage text)."""

    def __init__(self, command: str, reply: str) -> None:
        super().__init__(f"{command!r} failed: {reply.strip()!r}")
        self.command = command
        self.reply = reply


class EslArgumentError(EslError, ValueError):
    """A command builder refused an argument before anything was sent.

    Raised for CR/LF, room names outside our SID alphabet, and every other
    value that could change the meaning of a FreeSWITCH command line.
    """

    def __init__(self, name: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {name}={value!r}: {reason}")
        self.name = name
        self.value = value
        self.reason = reason


# --- TwiML --------------------------------------------------------------------


class TwimlError(FsconfError):
    """A TwiML document (or its retrieval) failed, with Twilio's error code."""

    def __init__(
        self,
        code: int,
        reason: str,
        *,
        element: str | None = None,
        line: int | None = None,
        url: str | None = None,
    ) -> None:
        where = ""
        if element is not None:
            where = f" <{element}>"
        if line is not None:
            where += f" line {line}"
        super().__init__(f"{code}{where}: {reason}")
        self.code = code
        self.reason = reason
        self.element = element
        self.line = line
        self.url = url


# --- Conference engine ------------------------------------------------------


class ConferenceError(FsconfError):
    """Base of the conference engine's errors."""


class TransitionError(ConferenceError):
    """An event arrived that the state cannot accept."""

    def __init__(self, state: object, event: object, reason: str = "") -> None:
        # The event's kind only: its fields may hold URLs with credentials, and
        # this text is logged. The objects stay available as attributes.
        text = f"cannot apply {type(event).__name__} in state {state!r}"
        if reason:
            text += f": {reason}"
        super().__init__(text)
        self.state = state
        self.event = event
        self.reason = reason


class TwilioApiError(FsconfError):
    """An error to report the Twilio way (REST body, alert, callback).

    ``code`` is Twilio's numeric error code (e.g. 16025, 13240, 20404) and
    ``status`` the HTTP status the REST API answers with.
    """

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


# --- Storage and webhooks ---------------------------------------------------


class StoreError(FsconfError):
    """The database refused or lost a write."""


class WebhookError(FsconfError):
    """A callback could not be delivered (kept in the outbox for retry)."""
