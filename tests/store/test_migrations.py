"""Alembic: ``upgrade head`` on an empty database, then ``check`` (both backends)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from fsconf.store import migrate
from fsconf.store.db import make_engine
from fsconf.store.migrate import MigrationDriftError


def test_script_location_finds_the_migrations() -> None:
    location = Path(migrate.script_location())
    assert (location / "env.py").is_file()
    assert (location / "versions" / "0001_initial.py").is_file()
    assert migrate.head() == "0002"


def test_upgrade_head_then_check(db_url: str) -> None:
    assert migrate.current(db_url) is None
    assert migrate.pending(db_url) is True
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == "0002"
    assert migrate.pending(db_url) is False
    migrate.check(db_url)  # raises if models and migrations differ
    migrate.upgrade(db_url)  # idempotent
    assert migrate.current(db_url) == "0002"


def _callback_indexes(db_url: str) -> set[str]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            return {index["name"] for index in inspect(connection).get_indexes("callbacks")}
    finally:
        engine.dispose()


def test_0002_drops_the_unused_callbacks_index_and_keeps_the_rows(db_url: str) -> None:
    """A database made at 0001, with an outbox row, moves to head: the row
    stays, the index goes, and ``check`` agrees with the models."""
    migrate.upgrade(db_url, "0001")
    assert "ix_callbacks_conference_sid_sequence_number" in _callback_indexes(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO accounts (sid, auth_token, friendly_name, voice_method,"
                    " fallback_method, status, date_created, date_updated) VALUES"
                    " ('AC1', 't', 'a', 'POST', 'POST', 'active', :now, :now)"
                ),
                {"now": "2026-11-26 00:00:00"},
            )
            connection.execute(
                text(
                    "INSERT INTO callbacks (account_sid, kind, url, method, params, status,"
                    " attempts, next_attempt_at, created) VALUES ('AC1', 'conference-status',"
                    " 'http://app/status', 'POST', '[]', 'pending', 0, :now, :now)"
                ),
                {"now": "2026-11-26 00:00:00"},
            )
    finally:
        engine.dispose()
    assert migrate.pending(db_url) is True
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == "0002"
    indexes = _callback_indexes(db_url)
    assert "ix_callbacks_conference_sid_sequence_number" not in indexes
    assert {"ix_callbacks_status_next_attempt_at", "ix_callbacks_ordering_key_status_id"} <= indexes
    migrate.check(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM callbacks")).scalar() == 1
    finally:
        engine.dispose()


def test_check_refuses_a_database_that_is_not_migrated(db_url: str) -> None:
    with pytest.raises(MigrationDriftError):
        migrate.check(db_url)


def test_check_detects_drift(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE alerts ADD COLUMN stray INTEGER"))
    finally:
        engine.dispose()
    with pytest.raises(MigrationDriftError, match="differ"):
        migrate.check(db_url)


def test_partial_unique_indexes_exist_with_their_predicates(db_url: str) -> None:
    # alembic check compares index columns, not WHERE clauses: verify them here.
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                rows = connection.execute(
                    text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
                ).all()
            else:
                rows = connection.execute(
                    text(
                        "SELECT indexname, indexdef FROM pg_indexes"
                        " WHERE schemaname = current_schema()"
                    )
                ).all()
            definitions = {name: (sql or "") for name, sql in rows}
            unique = {
                index["name"]
                for table in ("conferences", "participants")
                for index in inspect(connection).get_indexes(table)
                if index["unique"]
            }
    finally:
        engine.dispose()
    assert "completed" in definitions["uq_conferences_active_friendly_name"]
    assert "WHERE" in definitions["uq_conferences_active_friendly_name"].upper()
    assert "complete" in definitions["uq_participants_present_call"]
    assert "label IS NOT NULL" in definitions["uq_participants_present_label"]
    assert {
        "uq_conferences_active_friendly_name",
        "uq_participants_present_call",
        "uq_participants_present_label",
    } <= unique


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/s.db", sqlite_busy_timeout=2.5)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            # never wait inside SQLite (it stalls the hub): BEGIN retries cooperatively
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 0
    finally:
        engine.dispose()
