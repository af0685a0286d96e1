"""Fixtures for the REST API tests: a real database, the app served on
loopback by gevent's WSGI server, a recording fake control, two accounts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from gevent.pywsgi import WSGIServer
from sqlalchemy.orm import Session, sessionmaker
from twilio.rest import Client

from fsconf.api import create_app
from fsconf.store import repositories as repo
from fsconf.store.db import transaction
from tests.api.fakes import FakeControl
from tests.api.support import Api, Credentials, World

PUBLIC_URL = "https://fsconf.example.test"


@pytest.fixture
def world(session_factory: sessionmaker[Session], tmp_path: Path) -> World:
    recordings_dir = tmp_path / "recordings"
    recordings_dir.mkdir()
    accounts = []
    with transaction(session_factory) as session:
        for name in ("alice", "bob"):
            token = uuid.uuid4().hex
            row = repo.create_account(session, auth_token=token, friendly_name=name)
            accounts.append(Credentials(row.sid, token))
    return World(session_factory, recordings_dir, *accounts)


@pytest.fixture
def control(session_factory: sessionmaker[Session]) -> FakeControl:
    return FakeControl(session_factory)


@pytest.fixture
def app(session_factory: sessionmaker[Session], control: FakeControl, world: World) -> Flask:
    return create_app(
        session_factory=session_factory,
        control=control,
        public_url=PUBLIC_URL,
        recordings_dir=str(world.recordings_dir),
    )


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.stop(timeout=5)


@pytest.fixture
def api(base_url: str, world: World) -> Iterator[Api]:
    client = Api(base_url, world.alice)
    yield client
    client.session.close()


@pytest.fixture
def twilio(base_url: str, world: World) -> Client:
    """The official helper library, pointed at the test server."""
    client = Client(world.alice.sid, world.alice.token)
    client.api.base_url = base_url
    return client
