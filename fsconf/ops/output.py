"""What the CLI prints: aligned text tables, and ``--json`` documents.

Theory of operation
-------------------
``--json`` output is a contract with operators' scripts, so it is built here,
in one place, by pure functions (row in, ``dict`` out):

* keys are Twilio-style snake_case (``sid``, ``friendly_name``,
  ``date_created``, ``call_sid``, ``error_code`` ...); a list is one object
  with a single records key (``{"conferences": [...]}``), like Twilio's list
  answers, so keys can be added later without breaking a reader;
* **every date is ISO 8601 in UTC with a ``Z``** (``2024-05-01T12:00:00Z``,
  whole seconds) or ``null``.  Unlike the REST API's RFC 2822, it sorts as
  text and every tool (``jq``, ``date -d``, Python) parses it;
* keys are sorted and the output is indented, so diffs of two runs read well;
* no secret ever appears: auth tokens only in :func:`new_account` (the answer
  to ``accounts create``), and the user-info part of callback URLs
  (``https://user:pass@host``) is masked.

Text output is for humans: a header row and columns padded to the widest
cell; ``-`` stands for an empty value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fsconf.store.models import Account, Alert, Callback, Conference, Participant

__all__ = [
    "account",
    "alert",
    "callback",
    "cell",
    "conference",
    "iso8601",
    "mask_url",
    "new_account",
    "participant",
    "table",
    "to_json",
]


def iso8601(moment: datetime | None) -> str | None:
    """``2024-05-01T12:00:00Z`` (UTC, whole seconds), or None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: fsconf only handles aware UTC times")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def mask_url(url: str | None) -> str | None:
    """The URL with any ``user:password@`` replaced by ``***@`` (nothing else changes)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def to_json(document: object) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)


# --- documents ------------------------------------------------------------------------


def account(row: Account) -> dict[str, Any]:
    """An account, *without* its auth token."""
    return {
        "sid": row.sid,
        "friendly_name": row.friendly_name,
        "status": row.status,
        "date_created": iso8601(row.date_created),
        "date_updated": iso8601(row.date_updated),
    }


def new_account(row: Account) -> dict[str, Any]:
    """The answer to ``accounts create``: the only document with a token."""
    return {**account(row), "auth_token": row.auth_token}


def conference(row: Conference, *, participant_count: int | None = None) -> dict[str, Any]:
    document = {
        "sid": row.sid,
        "account_sid": row.account_sid,
        "friendly_name": row.friendly_name,
        "status": row.status,
        "region": row.region,
        "reason_conference_ended": row.reason_ended,
        "call_sid_ending_conference": row.call_sid_ending_conference,
        "date_created": iso8601(row.date_created),
        "date_updated": iso8601(row.date_updated),
        "start_time": iso8601(row.start_time),
        "end_time": iso8601(row.end_time),
    }
    if participant_count is not None:
        document["participant_count"] = participant_count
    return document


def participant(row: Participant) -> dict[str, Any]:
    return {
        "call_sid": row.call_sid,
        "conference_sid": row.conference_sid,
        "label": row.label,
        "status": row.status,
        "muted": row.muted,
        "hold": row.hold,
        "coaching": row.coaching,
        "call_sid_to_coach": row.call_sid_to_coach,
        "start_conference_on_enter": row.start_conference_on_enter,
        "end_conference_on_exit": row.end_conference_on_exit,
        "date_created": iso8601(row.date_created),
        "date_updated": iso8601(row.date_updated),
    }


def callback(row: Callback) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_sid": row.account_sid,
        "conference_sid": row.conference_sid,
        "call_sid": row.call_sid,
        "kind": row.kind,
        "sequence_number": row.sequence_number,
        "method": row.method,
        "url": mask_url(row.url),
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso8601(row.next_attempt_at),
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "date_created": iso8601(row.created),
        "delivered_at": iso8601(row.delivered_at),
    }


def alert(row: Alert) -> dict[str, Any]:
    """Field names of Twilio's Monitor Alert resource (``alert_text``, ``error_code``...)."""
    return {
        "sid": row.sid,
        "account_sid": row.account_sid,
        "error_code": row.error_code,
        "log_level": row.log_level,
        "alert_text": row.message,
        "more_info": row.more_info,
        "request_url": mask_url(row.request_url),
        "call_sid": row.call_sid,
        "date_created": iso8601(row.date_created),
        "date_updated": iso8601(row.date_updated),
    }


# --- text -----------------------------------------------------------------------------


def cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    # One line per row, whatever the value holds.
    return " ".join(str(value).split())


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An aligned table: the header row, then one line per row (no trailing spaces)."""
    cells = [[cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], len(text))
    lines = []
    for row in [list(headers), *cells]:
        line = "  ".join(text.ljust(widths[index]) for index, text in enumerate(row))
        lines.append(line.rstrip())
    return "\n".join(lines)
