"""Fixtures of the conference-service tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from fsconf.store.db import make_engine, make_session_factory
from fsconf.store.migrate import upgrade


@pytest.fixture
def sqlite_sessions(tmp_path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path}/outage.db"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()
