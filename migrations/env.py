"""Alembic environment for fsconf.

The target metadata is the application's own (``fsconf.store.models``), so
``alembic check`` compares the migrations with the models the code uses.

The connection comes from ``config.attributes["connection"]`` when
:mod:`fsconf.store.migrate` drives Alembic; otherwise the URL is the config's
``sqlalchemy.url``, else ``FSCONF_DATABASE_URL``, else ``sqlite:///fsconf.db``,
and the engine is built by :func:`fsconf.store.db.make_engine` (same pragmas
as the application).  SQLite gets ``render_as_batch`` because it cannot ALTER
most things in place.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from fsconf.store.db import database_url_from_env, make_engine
from fsconf.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or database_url_from_env()


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as new_connection:
            _configure(new_connection)
            new_connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
