"""Twilio-style identifiers.

Theory of operation: every SID is a two-letter prefix and 32 lowercase hex
digits.  Random SIDs (conferences, recordings, alerts, accounts) come from
:func:`secrets.token_hex`.  A CallSid is *derived* from the FreeSWITCH channel
UUID (``CA`` + the UUID without dashes), so it maps back to a channel without
a lookup.

:func:`uuid_from_call_sid` validates strictly before it returns anything: its
result is what ends up in an ESL command line (``uuid_kill <uuid>``), so a
CallSid taken from an HTTP request must never smuggle a space, a CR/LF or any
other character into that line.  The output is always the canonical
``8-4-4-4-12`` lowercase form.
"""

from __future__ import annotations

import re
import secrets
import uuid as uuid_module

from fsconf.errors import FsconfError

__all__ = [
    "SID_PREFIXES",
    "InvalidSidError",
    "call_sid_from_uuid",
    "is_sid",
    "new_sid",
    "uuid_from_call_sid",
]

#: The prefixes fsconf issues.  Anything else is a programming error.
SID_PREFIXES = frozenset({"AC", "CA", "CF", "RE", "NO", "PA"})

_HEX32 = re.compile(r"[0-9a-f]{32}")
_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


class InvalidSidError(FsconfError, ValueError):
    """A value is not a well-formed SID (or channel UUID)."""

    def __init__(self, value: object, expected: str) -> None:
        super().__init__(f"invalid {expected}: {value!r}")
        self.value = value
        self.expected = expected


def new_sid(prefix: str) -> str:
    """A fresh random SID: ``prefix`` + 32 lowercase hex digits."""
    if prefix not in SID_PREFIXES:
        raise InvalidSidError(prefix, "SID prefix")
    return prefix + secrets.token_hex(16)


def is_sid(value: object, prefix: str) -> bool:
    """True if ``value`` is ``prefix`` followed by exactly 32 lowercase hex digits."""
    return (
        isinstance(value, str)
        and len(value) == 34
        and value.startswith(prefix)
        and _HEX32.fullmatch(value, 2) is not None
    )


def call_sid_from_uuid(channel_uuid: str | uuid_module.UUID) -> str:
    """``CA`` + the channel UUID without dashes, lowercase.

    Only the canonical dashed form (any case) or a :class:`uuid.UUID` is
    accepted; braces, ``urn:uuid:`` prefixes and bare hex are refused so that
    one channel has exactly one spelling.
    """
    if isinstance(channel_uuid, uuid_module.UUID):
        return "CA" + channel_uuid.hex
    if not isinstance(channel_uuid, str) or _CANONICAL_UUID.fullmatch(channel_uuid) is None:
        raise InvalidSidError(channel_uuid, "channel UUID")
    return "CA" + channel_uuid.replace("-", "").lower()


def uuid_from_call_sid(call_sid: str) -> str:
    """The canonical channel UUID (``8-4-4-4-12``, lowercase) of a CallSid.

    Raises :class:`InvalidSidError` unless ``call_sid`` is exactly ``CA`` and 32
    lowercase hex digits, so the result is safe inside an ESL command line.
    """
    if not is_sid(call_sid, "CA"):
        raise InvalidSidError(call_sid, "CallSid")
    digits = call_sid[2:]
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
