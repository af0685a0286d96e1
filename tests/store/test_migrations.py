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
    assert migrate.head() == "0001"


def test_upgrade_head_then_check(db_url: str) -> None:
    assert migrate.current(db_url) is None
    assert migrate.pending(db_url) is True
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == "0001"
    assert migrate.pending(db_url) is False
    migrate.check(db_url)  # raises if models and migrations differ
    migrate.upgrade(db_url)  # idempotent
    assert migrate.current(db_url) == "0001"


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
