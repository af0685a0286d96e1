"""Fixtures of the CLI tests: a migrated database per test, seeded through the
repositories, and a runner whose environment names only that database.

Every ``FSCONF_*`` key is set explicitly, so nothing from the developer's own
environment (a real FSCONF_ESL, an FSCONF_CONFIG file) reaches a test.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.orm import Session, sessionmaker

from fsconf.cli import cli
from fsconf.store import repositories as repo
from fsconf.store.db import transaction
from fsconf.store.ids import call_sid_from_uuid
from fsconf.store.models import Callback
from fsconf.webhooks.outbox import enqueue

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TOKEN = "f" * 32
OTHER_TOKEN = "e" * 32

ACCOUNT = "AC" + "1" * 32
OTHER_ACCOUNT = "AC" + "2" * 32
ROOM = "CF" + "a" * 32  # "Room 1234", in progress (ACCOUNT)
OLD_ROOM = "CF" + "b" * 32  # "Room 1234", completed earlier (ACCOUNT)
OTHER_ROOM = "CF" + "c" * 32  # "Room 1234", in progress (OTHER_ACCOUNT)
LONELY_ROOM = "CF" + "d" * 32  # "Standup", completed (ACCOUNT)
ALICE = call_sid_from_uuid("11111111-1111-4111-8111-111111111111")
BOB = call_sid_from_uuid("22222222-2222-4222-8222-222222222222")
CAROL = call_sid_from_uuid("33333333-3333-4333-8333-333333333333")


@dataclass
class Invoke:
    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:  # noqa: A002
        runner = CliRunner()
        return runner.invoke(cli, list(args), env={**self.env, **env}, input=input)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def env(db_url: str) -> dict[str, str]:
    return {
        "FSCONF_DATABASE_URL": db_url,
        "FSCONF_CONFIG": "",
        "FSCONF_ESL": f"127.0.0.1:{closed_port()}:NotTheRealPassword",
        "FSCONF_HTTP_LISTEN": f"127.0.0.1:{closed_port()}",
        "FSCONF_PUBLIC_URL": "",
        "FSCONF_ACCOUNT_SID": "",
        "FSCONF_AUTH_TOKEN": "",
    }


@pytest.fixture
def invoke(env: dict[str, str], session_factory: sessionmaker[Session]) -> Invoke:
    """A runner on a migrated, empty database."""
    return Invoke(env)


def seed(session: Session) -> None:
    """Two accounts; "Room 1234" three times (one active per account, one old)."""
    repo.create_account(session, sid=ACCOUNT, auth_token=TOKEN, friendly_name="Acme", now=T0)
    repo.create_account(session, sid=OTHER_ACCOUNT, auth_token=OTHER_TOKEN, now=T0)
    for sid, account in ((ALICE, ACCOUNT), (BOB, ACCOUNT), (CAROL, OTHER_ACCOUNT)):
        repo.create_call(session, sid=sid, account_sid=account, status="in-progress", now=T0)

    repo.create_conference(
        session, sid=OLD_ROOM, account_sid=ACCOUNT, friendly_name="Room 1234", now=T0
    )
    repo.end_conference(session, sid=OLD_ROOM, reason="last-participant-left", now=T0)
    repo.create_conference(
        session, sid=LONELY_ROOM, account_sid=ACCOUNT, friendly_name="Standup", now=T0
    )
    repo.end_conference(session, sid=LONELY_ROOM, reason="last-participant-left", now=T0)

    later = T0 + timedelta(minutes=5)
    repo.create_conference(
        session,
        sid=ROOM,
        account_sid=ACCOUNT,
        friendly_name="Room 1234",
        status_callback="https://user:s3cret@hooks.example.com/status",
        status_callback_events="start end join",
        now=later,
    )
    repo.start_conference(session, sid=ROOM, now=later)
    repo.add_participant(
        session, conference_sid=ROOM, call_sid=ALICE, label="alice", placement="MIXED", now=later
    )
    repo.add_participant(
        session, conference_sid=ROOM, call_sid=BOB, muted=True, now=later + timedelta(seconds=1)
    )
    repo.create_conference(
        session, sid=OTHER_ROOM, account_sid=OTHER_ACCOUNT, friendly_name="Room 1234", now=later
    )
    repo.add_participant(session, conference_sid=OTHER_ROOM, call_sid=CAROL, label="carol")


def add_callbacks(session: Session) -> tuple[int, int, int]:
    """(failed, delivered, pending) callback ids of ROOM."""
    ids = []
    for status in ("failed", "delivered", "pending"):
        row = enqueue(
            session,
            account_sid=ACCOUNT,
            url="https://user:s3cret@hooks.example.com/status",
            method="POST",
            params=[("StatusCallbackEvent", "conference-start")],
            kind="conference-status",
            conference_sid=ROOM,
            now=T0,
        )
        row.status = status
        if status == "failed":
            row.attempts = 8
            row.last_error = "HTTP 500"
            row.last_status_code = 500
        ids.append(row.id)
    session.flush()
    return ids[0], ids[1], ids[2]


@pytest.fixture
def seeded(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(session_factory) as session:
        seed(session)
    return session_factory


@pytest.fixture
def callback_ids(seeded: sessionmaker[Session]) -> tuple[int, int, int]:
    with transaction(seeded) as session:
        return add_callbacks(session)


@pytest.fixture
def read(session_factory: sessionmaker[Session]) -> Callable[[int], Callback]:
    def get(callback_id: int) -> Callback:
        with transaction(session_factory) as session:
            row = session.get(Callback, callback_id)
            assert row is not None
            return row

    return get


@pytest.fixture
def account_env(env: dict[str, str]) -> Iterator[dict[str, str]]:
    yield {**env, "FSCONF_ACCOUNT_SID": ACCOUNT}
