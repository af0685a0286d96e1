"""CONFERENCE and PARTICIPANT arguments -> rows (DESIGN.md, "Operator interface").

Theory of operation
-------------------
CONFERENCE is a ConferenceSid or a friendly name.

* A value shaped like a ConferenceSid (``CF`` + 32 hex digits) is a SID and
  nothing else: an unknown SID is an error, never a friendly-name lookup.
* A friendly name is looked up in the default account (``FSCONF_ACCOUNT_SID``)
  first: its *active* conference of that name (the database guarantees there
  is at most one), else its most recent one.
* When there is no default account, or it has no conference of that name, all
  accounts are searched.  One active conference wins; otherwise the most
  recent one, if every conference of that name belongs to one account.
  Anything else is ambiguous: the error lists the candidates' SIDs, so the
  operator can retry with one.

PARTICIPANT is a CallSid or a label, within the resolved conference: a CallSid
names the call's present participant row (else its latest one); a label names
the *present* participant carrying it (labels are reused once a participant
has left, so a label of someone gone means nothing any more).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fsconf.errors import FsconfError
from fsconf.store import repositories as repo
from fsconf.store.ids import is_sid
from fsconf.store.models import Conference, Participant

__all__ = ["ResolveError", "resolve_conference", "resolve_participant"]


class ResolveError(FsconfError):
    """A CONFERENCE or PARTICIPANT argument names nothing, or more than one thing."""


def _listing(conferences: list[Conference]) -> str:
    return ", ".join(f"{row.sid} ({row.status}, account {row.account_sid})" for row in conferences)


def resolve_conference(
    session: Session, value: str, *, default_account_sid: str = ""
) -> Conference:
    if is_sid(value, "CF"):
        row = repo.get_conference(session, sid=value)
        if row is None:
            raise ResolveError(f"no conference {value}")
        return row
    if default_account_sid:
        active = repo.find_active_conference(
            session, account_sid=default_account_sid, friendly_name=value
        )
        if active is not None:
            return active
        latest = repo.list_conferences(
            session, account_sid=default_account_sid, friendly_name=value, limit=1
        )
        if latest:
            return latest[0]
    # Every account: newest first.
    candidates = repo.list_conferences(session, friendly_name=value)
    if not candidates:
        raise ResolveError(
            f"no conference named {value!r} (give a ConferenceSid or a friendly name)"
        )
    active = [row for row in candidates if row.status != "completed"]
    if len(active) == 1:
        return active[0]
    if len(active) > 1:
        raise ResolveError(
            f"conference name {value!r} is ambiguous: {len(active)} active conferences in "
            f"different accounts: {_listing(active)}; give a ConferenceSid"
        )
    accounts = {row.account_sid for row in candidates}
    if len(accounts) > 1:
        raise ResolveError(
            f"conference name {value!r} is ambiguous: used in {len(accounts)} accounts: "
            f"{_listing(candidates[:10])}; give a ConferenceSid"
        )
    return candidates[0]


def resolve_participant(session: Session, conference: Conference, value: str) -> Participant:
    if is_sid(value, "CA"):
        row = repo.get_participant(session, conference_sid=conference.sid, call_sid=value)
        if row is None:
            raise ResolveError(f"call {value} is not a participant of conference {conference.sid}")
        return row
    row = repo.get_participant_by_label(session, conference_sid=conference.sid, label=value)
    if row is not None:
        return row
    gone = session.scalars(
        select(Participant.call_sid)
        .where(Participant.conference_sid == conference.sid, Participant.label == value)
        .limit(1)
    ).first()
    if gone is not None:
        raise ResolveError(
            f"participant {value!r} has left conference {conference.sid} (call {gone})"
        )
    raise ResolveError(
        f"no participant {value!r} in conference {conference.sid} (give a CallSid or a label)"
    )
