"""Small row builders shared by the store and webhook tests."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from fsconf.store import repositories as repo
from fsconf.store.ids import call_sid_from_uuid
from fsconf.store.models import Account, Call

TOKEN = "0123456789abcdef0123456789abcdef"


def make_account(session: Session, *, auth_token: str = TOKEN) -> Account:
    return repo.create_account(session, auth_token=auth_token, friendly_name="test")


def make_call(session: Session, *, account_sid: str, status: str = "in-progress") -> Call:
    return repo.create_call(
        session,
        sid=call_sid_from_uuid(uuid.uuid4()),
        account_sid=account_sid,
        from_="+15551230001",
        to="+15551230002",
        status=status,
    )
