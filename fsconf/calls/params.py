"""Twilio's request parameters for one call (pure).

Theory of operation
-------------------
Every request Twilio makes while running a call's TwiML (the voice URL, a
Redirect, a Dial action, the fallback URL, a waitUrl) carries the same
*standard* parameters; some requests add their own (``DialCallStatus``,
``ErrorCode``/``ErrorUrl``). :class:`CallParams` holds the call's fixed facts
and renders them, with the status of the moment, as an ordered tuple of
``(name, value)`` pairs, which is what :func:`fsconf.webhooks.signing.build_request`
signs. Pairs, not a dict, so that what we sign is exactly what we send.

The standard set fsconf sends: AccountSid, ApiVersion, CallSid, CallStatus,
Called, Caller, Direction, From, To. Twilio's geographic parameters
(FromCity, ...) and CallerName need carrier lookups and are not sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

API_VERSION: Final = "2010-04-01"

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CallParams:
    """The facts of one call that every request repeats."""

    account_sid: str
    call_sid: str
    from_: str
    to: str
    direction: str = "inbound"

    def standard(self, call_status: str) -> Pairs:
        """The standard parameters with ``CallStatus`` = ``call_status``."""
        return (
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", self.call_sid),
            ("CallStatus", call_status),
            ("Called", self.to),
            ("Caller", self.from_),
            ("Direction", self.direction),
            ("From", self.from_),
            ("To", self.to),
        )


def with_extra(base: Pairs, extra: Pairs) -> Pairs:
    """``base`` + ``extra``; a name in ``extra`` replaces the same name in ``base``."""
    names = {name for name, _ in extra}
    return tuple(pair for pair in base if pair[0] not in names) + tuple(extra)


def error_params(code: int, url: str) -> Pairs:
    """What Twilio adds to a fallback request: the error and the URL that failed."""
    return (("ErrorCode", str(code)), ("ErrorUrl", url))
