"""Another process's SQLite write lock is waited for cooperatively: the hub keeps running.

The lock holder is a second ``sqlite3`` connection (what another process, or the ``sqlite3``
shell, would hold); its ``BEGIN IMMEDIATE`` is the write lock fsconf's transactions need.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import gevent
import pytest
from sqlalchemy import text

from fsconf.errors import StoreError
from fsconf.store.db import make_engine, make_session_factory, transaction


def _ticker(ticks: list[int]) -> gevent.Greenlet:
    def tick() -> None:
        while True:
            ticks.append(1)
            gevent.sleep(0.005)

    return gevent.spawn(tick)


def _holder(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_transaction_waits_for_the_lock_without_stalling_the_hub(tmp_path: Path) -> None:
    db = tmp_path / "lock.db"
    engine = make_engine(f"sqlite:///{db}", sqlite_busy_timeout=5.0)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        session.execute(text("CREATE TABLE t (v INTEGER)"))
    other = _holder(db)
    other.execute("INSERT INTO t VALUES (1)")
    ticks: list[int] = []
    ticker = _ticker(ticks)

    def release() -> None:
        other.execute("COMMIT")

    gevent.spawn_later(0.3, release)
    try:
        with transaction(sessions) as session:
            # the holder's row is there: we began after its commit, not around it
            assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1
            session.execute(text("INSERT INTO t VALUES (2)"))
    finally:
        ticker.kill()
        other.close()
    # other greenlets ran while the transaction waited (the library's busy
    # handler would have blocked them all for the whole 0.3 s)
    assert len(ticks) >= 10
    with transaction(sessions) as session:
        assert session.execute(text("SELECT sum(v) FROM t")).scalar() == 3
    engine.dispose()


def test_a_lock_that_outlasts_the_patience_is_a_store_error(tmp_path: Path) -> None:
    db = tmp_path / "lock.db"
    engine = make_engine(f"sqlite:///{db}", sqlite_busy_timeout=0.2)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        session.execute(text("CREATE TABLE t (v INTEGER)"))
    other = _holder(db)
    try:
        with pytest.raises(StoreError, match="locked"), transaction(sessions) as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with transaction(sessions) as session:  # usable again once the lock is gone
        session.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()
