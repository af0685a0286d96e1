"""SQLite WAL checkpoints off the hub (fsconf.store.checkpoint).

What must hold: with ``background_checkpoints`` a commit never copies the WAL
into the database file (SQLite's automatic checkpoint would, past 1,000
pages, inside the commit); the :class:`Checkpointer` does, from a native
thread, on its own schedule; nothing committed is lost either way. Real files
in a temporary directory, real ``sqlite3`` connections.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

import gevent
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from fsconf.store.checkpoint import Checkpointer
from fsconf.store.db import make_engine, make_session_factory, transaction

WAIT = 10.0
# ~8 MB of rows: past SQLite's automatic checkpoint (1,000 pages of 4 KB).
ROWS = 2_000
BLOB = "x" * 4_000


def _fill(sessions: sessionmaker[Session], db: Path) -> int:
    """Create the table, then write ~8 MB in one transaction; the file's size before it."""
    with transaction(sessions) as session:
        session.execute(text("CREATE TABLE t (v TEXT)"))
    before = _db_size(db)
    with transaction(sessions) as session:
        session.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": BLOB}] * ROWS)
    return before


def _count(url: str) -> int:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as reader:
        count: int = reader.execute("SELECT count(*) FROM t").fetchone()[0]
    return count


def _db_size(path: Path) -> int:
    return os.path.getsize(path)


def test_by_default_sqlite_checkpoints_inside_the_commit(tmp_path: Path) -> None:
    """The behaviour fsconf serve avoids: the database file grows in the commit."""
    db = tmp_path / "auto.db"
    engine = make_engine(f"sqlite:///{db}")
    sessions = make_session_factory(engine)
    try:
        before = _fill(sessions, db)
        assert _db_size(db) > before + ROWS * 3_000
    finally:
        engine.dispose()


def test_background_checkpoints_leave_the_commit_to_the_checkpointer(tmp_path: Path) -> None:
    db = tmp_path / "background.db"
    engine = make_engine(f"sqlite:///{db}", background_checkpoints=True)
    sessions = make_session_factory(engine)
    checkpointer = Checkpointer.for_engine(engine)
    assert checkpointer is not None
    try:
        before = _fill(sessions, db)
        # Committed (a new connection reads every row from the WAL) but not copied.
        assert _count(f"sqlite:///{db}") == ROWS
        assert _db_size(db) < before + 100_000

        result = checkpointer.checkpoint()
        assert not result.busy
        assert result.log_frames > 1_000  # the whole transaction was still in the WAL
        assert result.checkpointed_frames == result.log_frames
        assert result.behind == 0
        assert _db_size(db) > before + ROWS * 3_000
    finally:
        checkpointer.stop()
        engine.dispose()


def test_the_loop_checkpoints_while_the_hub_keeps_running(tmp_path: Path) -> None:
    db = tmp_path / "loop.db"
    engine = make_engine(f"sqlite:///{db}", background_checkpoints=True)
    sessions = make_session_factory(engine)
    checkpointer = Checkpointer(str(db), interval=0.05)
    ticks: list[int] = []

    def tick() -> None:
        while True:
            ticks.append(1)
            gevent.sleep(0.001)

    ticker = gevent.spawn(tick)
    try:
        before = _fill(sessions, db)
        checkpointer.start()
        deadline = time.monotonic() + WAIT
        while _db_size(db) < before + ROWS * 3_000:
            assert time.monotonic() < deadline, "the loop never checkpointed"
            gevent.sleep(0.01)
        assert ticks  # other greenlets ran meanwhile
    finally:
        ticker.kill()
        checkpointer.stop()
        engine.dispose()
    assert _count(f"sqlite:///{db}") == ROWS


def test_a_failed_checkpoint_is_logged_by_class_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_dir = tmp_path / "secret-name"
    secret_dir.mkdir()
    db = secret_dir / "not-a-db.db"
    db.write_bytes(b"this is not a SQLite database file" * 200)
    checkpointer = Checkpointer(str(db), interval=0.02)
    with caplog.at_level(logging.WARNING, logger="fsconf.store.checkpoint"):
        checkpointer.start()
        deadline = time.monotonic() + WAIT
        while not caplog.records:
            assert time.monotonic() < deadline, "no warning"
            gevent.sleep(0.01)
        gevent.sleep(0.1)  # more attempts: still one line (once a minute)
        assert checkpointer._greenlet is not None and not checkpointer._greenlet.dead
        checkpointer.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["SQLite checkpoint failed (DatabaseError); retrying"]
    assert "secret-name" not in messages[0]


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "postgresql+psycopg://u:p@127.0.0.1:1/db"],
)
def test_only_a_sqlite_file_gets_a_checkpointer(url: str) -> None:
    engine = make_engine(url)
    try:
        assert Checkpointer.for_engine(engine) is None
    finally:
        engine.dispose()


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        Checkpointer("x.db", interval=0)
