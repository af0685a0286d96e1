"""Time helpers: the database holds UTC, callbacks and the API speak RFC 2822.

Every datetime fsconf stores is timezone-aware UTC (the ``UTCDateTime`` column
type in :mod:`fsconf.store.models` enforces it).  Twilio formats dates as
``Thu, 01 Jun 2017 20:48:32 +0000``; :func:`format_rfc2822` produces exactly that.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

__all__ = ["format_rfc2822", "parse_rfc2822", "utc_now"]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, truncated to whole microseconds."""
    return datetime.now(UTC)


def format_rfc2822(moment: datetime) -> str:
    """``Thu, 01 Jun 2017 20:48:32 +0000`` (Twilio's format), from an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: fsconf only handles aware UTC times")
    return email.utils.format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def parse_rfc2822(text: str) -> datetime:
    """The inverse of :func:`format_rfc2822` (aware UTC)."""
    parsed = email.utils.parsedate_to_datetime(text)
    if parsed.tzinfo is None:
        raise ValueError(f"RFC 2822 date without a zone: {text!r}")
    return parsed.astimezone(UTC)
