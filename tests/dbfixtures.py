"""Database fixtures, as a pytest plugin (``pytest_plugins = ["tests.dbfixtures"]``).

``db_url`` runs a test once per backend:

* ``sqlite``: a real file in the test's ``tmp_path`` (WAL needs a file);
* ``postgres``: the server named by ``FSCONF_TEST_POSTGRES_URL`` (e.g.
  ``postgresql+psycopg://fsconf:fsconf@127.0.0.1:5432/fsconf_test``).  Each test
  gets its own freshly created schema, selected with ``search_path`` in the
  URL, and the schema is dropped afterwards.  Without the variable the param is
  skipped on a developer machine and *fails* when ``CI`` is set: CI must run
  PostgreSQL.

``session_factory`` migrates that database with Alembic (``upgrade head``, the
path production takes, never ``create_all``) and yields a session factory.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from fsconf.store.db import make_engine, make_session_factory
from fsconf.store.migrate import upgrade

POSTGRES_URL_ENV = "FSCONF_TEST_POSTGRES_URL"

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def postgres_base_url() -> str:
    """The configured server, or skip (fail under CI) when there is none."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {POSTGRES_URL_ENV} is not: CI must test PostgreSQL")
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    return url


@contextmanager
def private_postgres_schema(prefix: str) -> Iterator[str]:
    """A URL on the test server whose search_path is a fresh schema, dropped after."""
    base = postgres_base_url()
    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(base, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql("SET lock_timeout = '10s'")
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(db_backend: str, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """An empty database of the given backend, private to this test."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path}/t.db"
        return
    with private_postgres_schema("fsconf_test") as url:
        yield url


@pytest.fixture
def session_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on ``db_url`` after ``alembic upgrade head``."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()
