"""Test support for the REST API tests: accounts, row builders, an HTTP helper."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy.orm import Session, sessionmaker

from fsconf.store import repositories as repo
from fsconf.store.db import transaction
from fsconf.store.ids import call_sid_from_uuid
from fsconf.store.models import Conference, Participant, Recording


@dataclass(frozen=True)
class Credentials:
    sid: str
    token: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.sid, self.token)


@dataclass
class World:
    """Rows for the tests, inserted with the store's repositories."""

    session_factory: sessionmaker[Session]
    recordings_dir: Path
    alice: Credentials
    bob: Credentials

    def conference(
        self,
        account: Credentials,
        name: str = "Room 1234",
        *,
        now: datetime | None = None,
        status: str = "in-progress",
    ) -> Conference:
        with transaction(self.session_factory) as session:
            row = repo.create_conference(
                session, account_sid=account.sid, friendly_name=name, now=now
            )
            if status in ("in-progress", "completed"):
                repo.start_conference(session, sid=row.sid, now=now)
            if status == "completed":
                repo.end_conference(session, sid=row.sid, reason="last-participant-left", now=now)
            return row

    def participant(
        self,
        account: Credentials,
        conference: Conference,
        *,
        label: str | None = None,
        now: datetime | None = None,
        **fields: Any,
    ) -> Participant:
        call_sid = call_sid_from_uuid(uuid.uuid4())
        with transaction(self.session_factory) as session:
            repo.create_call(
                session,
                sid=call_sid,
                account_sid=account.sid,
                from_="+15551230001",
                to="+15551230002",
                status="in-progress",
                now=now,
            )
            return repo.add_participant(
                session,
                conference_sid=conference.sid,
                call_sid=call_sid,
                label=label,
                now=now,
                **fields,
            )

    def leave(self, participant: Participant) -> None:
        with transaction(self.session_factory) as session:
            repo.mark_participant_left(
                session,
                conference_sid=participant.conference_sid,
                call_sid=participant.call_sid,
            )

    def recording(
        self,
        account: Credentials,
        conference: Conference,
        *,
        status: str = "completed",
        content: bytes | None = b"RIFF....WAVEfmt ",
        path: str | None = None,
        now: datetime | None = None,
    ) -> Recording:
        with transaction(self.session_factory) as session:
            row = repo.create_recording(
                session,
                account_sid=account.sid,
                conference_sid=conference.sid,
                status="in-progress",
                now=now,
            )
            if path is None and content is not None:
                target = self.recordings_dir / f"{row.sid}.wav"
                target.write_bytes(content)
                path = str(target)
            return repo.update_recording(
                session,
                sid=row.sid,
                status=status,
                path=path,
                duration=7 if status == "completed" else None,
                now=now,
            )

    def get(self, model: type, key: Any) -> Any:
        with transaction(self.session_factory) as session:
            return session.get(model, key)


class Api:
    """``requests`` against the served app, with paths relative to an account."""

    def __init__(self, base_url: str, credentials: Credentials) -> None:
        self.base_url = base_url
        self.credentials = credentials
        self.session = requests.Session()

    def url(self, path: str, *, account_sid: str | None = None) -> str:
        if path.startswith("/"):
            return self.base_url + path
        sid = account_sid or self.credentials.sid
        return f"{self.base_url}/2010-04-01/Accounts/{sid}/{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        auth: Any = "default",
        account_sid: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        return self.session.request(
            method,
            self.url(path, account_sid=account_sid),
            auth=self.credentials.auth if auth == "default" else auth,
            timeout=10,
            **kwargs,
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, data: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, data=data, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


def assert_twilio_error(response: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert body["message"]
    return body
