"""Rows -> Twilio's JSON resources (field names as twilio-python reads them).

Theory of operation: one pure function per resource, row in, ``dict`` out.
Field names and types follow twilio-python 9's ``ConferenceInstance``,
``ParticipantInstance`` and (conference) ``RecordingInstance``; dates are
RFC 2822 (:func:`fsconf.store.times.format_rfc2822`); ``uri`` fields are
relative to the API root like Twilio's (``/2010-04-01/...``), which is what
the helper library joins to its ``base_url`` when it follows a page link.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fsconf.store.models import Conference, Participant, Recording
from fsconf.store.times import format_rfc2822

API_VERSION = "2010-04-01"
#: Twilio's default region; fsconf reports it when no participant asked for one.
DEFAULT_REGION = "us1"


def account_path(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}"


def conference_path(account_sid: str, conference_sid: str) -> str:
    return f"{account_path(account_sid)}/Conferences/{conference_sid}"


def _date(moment: datetime | None) -> str | None:
    return format_rfc2822(moment) if moment is not None else None


def conference(row: Conference) -> dict[str, Any]:
    base = conference_path(row.account_sid, row.sid)
    return {
        "account_sid": row.account_sid,
        "api_version": API_VERSION,
        "call_sid_ending_conference": row.call_sid_ending_conference,
        "date_created": _date(row.date_created),
        "date_updated": _date(row.date_updated),
        "friendly_name": row.friendly_name,
        "reason_conference_ended": row.reason_ended,
        "region": row.region or DEFAULT_REGION,
        "sid": row.sid,
        "status": row.status,
        "subresource_uris": {
            "participants": f"{base}/Participants.json",
            "recordings": f"{base}/Recordings.json",
        },
        "uri": f"{base}.json",
    }


def participant(
    row: Participant, *, account_sid: str, queue_time: str | None = None
) -> dict[str, Any]:
    """``queue_time`` is only known in the answer to a create (Twilio: null elsewhere)."""
    base = conference_path(account_sid, row.conference_sid)
    return {
        "account_sid": account_sid,
        "call_sid": row.call_sid,
        "call_sid_to_coach": row.call_sid_to_coach,
        "coaching": row.coaching,
        "conference_sid": row.conference_sid,
        "date_created": _date(row.date_created),
        "date_updated": _date(row.date_updated),
        "end_conference_on_exit": row.end_conference_on_exit,
        "hold": row.hold,
        "label": row.label,
        "muted": row.muted,
        "queue_time": queue_time,
        "start_conference_on_enter": row.start_conference_on_enter,
        "status": row.status,
        "uri": f"{base}/Participants/{row.call_sid}.json",
    }


def recording(row: Recording) -> dict[str, Any]:
    """``duration`` is a string of seconds, ``"-1"`` while it is not known yet
    (in progress), as Twilio reports unfinished recordings."""
    base = conference_path(row.account_sid, row.conference_sid)
    return {
        "account_sid": row.account_sid,
        "api_version": API_VERSION,
        "call_sid": row.call_sid,
        "channels": row.channels,
        "conference_sid": row.conference_sid,
        "date_created": _date(row.date_created),
        "date_updated": _date(row.date_updated),
        "duration": str(row.duration) if row.duration is not None else "-1",
        "encryption_details": None,
        "error_code": row.error_code,
        "price": None,
        "price_unit": "USD",
        "sid": row.sid,
        "source": row.source,
        "start_time": _date(row.start_time),
        "status": row.status,
        "uri": f"{base}/Recordings/{row.sid}.json",
    }
