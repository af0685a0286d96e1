"""Engines, sessions and the one transaction helper.

Theory of operation
-------------------
* :func:`make_engine` builds an engine from a URL.  For SQLite it turns on WAL,
  foreign keys and a busy timeout, and takes over ``BEGIN`` from the ``sqlite3``
  module (whose legacy mode breaks SAVEPOINT and transactional DDL): every
  transaction starts with ``BEGIN IMMEDIATE``, so a writer never fails half way
  with ``SQLITE_BUSY`` when it upgrades a read lock.
* **SQLite durability: ``synchronous=NORMAL`` by default.**  In WAL mode,
  NORMAL writes every commit to the WAL file before ``COMMIT`` returns but
  fsyncs the WAL only at checkpoints, where FULL fsyncs on every commit.
  What it trades, exactly: a commit survives a crash of the *process* (a bug,
  an OOM kill, ``SIGKILL``: the operating system still holds the written
  pages, and the next open replays the WAL), but a *power cut or kernel
  crash* may lose the last transactions committed since the previous
  checkpoint, never more, and never corrupts the database.  For fsconf that
  means an outbox row (a callback) can only be lost together with the
  machine.  In exchange a commit costs no fsync: about 1.9 ms less on the
  reference VM, and under gevent an fsync stalls *every* greenlet of the
  process.  ``FSCONF_DATABASE_URL=sqlite:///fsconf.db?synchronous=full``
  restores an fsync per commit (``extra`` is accepted too); the parameter is
  consumed here and never reaches the driver.  PostgreSQL is untouched
  (``synchronous_commit`` is the server's business).
* **WAL checkpoints off the hub.**  SQLite checkpoints the WAL inside the
  commit that takes it past 1,000 pages (a copy into the database file and,
  at NORMAL, two fsyncs), and under gevent that stalls every greenlet.
  ``fsconf serve`` builds its engine with ``background_checkpoints=True``
  (``PRAGMA wal_autocheckpoint=0``) and runs a
  :class:`~fsconf.store.checkpoint.Checkpointer` that checkpoints from a
  native thread instead; other processes keep SQLite's default.
* Under gevent, SQLite's busy handler blocks the whole hub: it sleeps inside
  the C library, and no other greenlet runs meanwhile.  So SQLite never waits
  inside the library here (``PRAGMA busy_timeout=0``):
  - two greenlets of one process never meet inside SQLite: a file database
    gets a pool of exactly one connection, so they queue on the pool (a
    gevent-friendly wait);
  - another *process* holding the write lock (a second fsconf, the ``sqlite3``
    shell, a backup) makes ``BEGIN IMMEDIATE`` fail at once with "database is
    locked"; :func:`_begin_immediate` retries it with ``gevent.sleep`` (1 ms
    doubling to 50 ms) until ``sqlite_busy_timeout`` has passed, then lets the
    error out.  The calls, the ESL readers and the REST API keep running while
    one transaction waits.  In WAL mode a transaction that holds the write
    lock needs no other lock to commit, so BEGIN is the only place to wait.
  PostgreSQL gets an ordinary pool; psycopg cooperates with gevent when
  ``select`` is monkey-patched.
* Repository functions never commit.  :func:`transaction` is the unit of work
  of the service layer: it commits on success, rolls back on any exception,
  and turns driver errors into :class:`~fsconf.errors.StoreError`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import gevent
from gevent import GreenletExit
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from fsconf.errors import FsconfError, StoreError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_SQLITE_SYNCHRONOUS",
    "SQLITE_SYNCHRONOUS_LEVELS",
    "TRANSIENT_DB_ERRORS",
    "causes",
    "database_url_from_env",
    "describe_error",
    "make_engine",
    "make_session_factory",
    "transaction",
    "transient_cause",
]

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///fsconf.db"

#: ``?synchronous=`` values accepted on a SQLite URL -> the PRAGMA level.
SQLITE_SYNCHRONOUS_LEVELS = {"normal": "NORMAL", "full": "FULL", "extra": "EXTRA"}
DEFAULT_SQLITE_SYNCHRONOUS = "NORMAL"

SessionFactory = Callable[[], Session]


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``FSCONF_DATABASE_URL``, or the embedded default ``sqlite:///fsconf.db``."""
    env = os.environ if environ is None else environ
    return env.get("FSCONF_DATABASE_URL") or DEFAULT_DATABASE_URL


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or bool(url.query.get("mode") == "memory")


def _take_synchronous(url: URL) -> tuple[URL, str]:
    """Remove ``?synchronous=`` from a SQLite URL; return the URL and the PRAGMA level."""
    raw = url.query.get("synchronous")
    if raw is None:
        return url, DEFAULT_SQLITE_SYNCHRONOUS
    value = raw[-1] if isinstance(raw, tuple) else raw
    level = SQLITE_SYNCHRONOUS_LEVELS.get(value.strip().lower())
    if level is None:
        allowed = ", ".join(SQLITE_SYNCHRONOUS_LEVELS)
        raise StoreError(f"synchronous must be one of {allowed}; got {value!r}")
    return url.difference_update_query(["synchronous"]), level


def make_engine(
    url: str | URL,
    *,
    sqlite_busy_timeout: float = 5.0,
    echo: bool = False,
    background_checkpoints: bool = False,
    **engine_options: Any,
) -> Engine:
    """An engine for ``url`` with fsconf's settings (see the module docstring).

    ``background_checkpoints``: SQLite never checkpoints its WAL inside one of
    this engine's commits; a :class:`fsconf.store.checkpoint.Checkpointer` must
    (``fsconf serve`` runs one). ``engine_options`` go to
    :func:`sqlalchemy.create_engine` and override ours.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" and "synchronous" in parsed.query:
        raise StoreError("synchronous= is a SQLite setting; PostgreSQL has synchronous_commit")
    # hide_parameters: an INSERT into accounts carries an auth token, and a
    # failed statement's parameters would otherwise end up in the exception text.
    options: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if parsed.get_backend_name() != "sqlite":
        options.update(pool_pre_ping=True)
        options.update(engine_options)
        return create_engine(parsed, **options)

    parsed, synchronous = _take_synchronous(parsed)
    connect_args: dict[str, Any] = {
        "timeout": sqlite_busy_timeout,
        "check_same_thread": False,
    }
    if _is_memory_sqlite(parsed):
        options.update(poolclass=StaticPool)
    else:
        options.update(pool_size=1, max_overflow=0, pool_timeout=30)
    options["connect_args"] = {**connect_args, **engine_options.pop("connect_args", {})}
    options.update(engine_options)
    engine = create_engine(parsed, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Never wait inside the library (it would stall every greenlet); see _begin_immediate.
            cursor.execute("PRAGMA busy_timeout=0")
            # Per connection (not stored in the file); see the module docstring.
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            if background_checkpoints:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if not _begin_immediate(connection.connection.dbapi_connection, sqlite_busy_timeout):
            # The last try goes through SQLAlchemy, so a lock that outlasted the
            # patience leaves as sqlalchemy.exc.OperationalError, like any driver error.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _begin_immediate(dbapi_connection: Any, patience: float) -> bool:
    """``BEGIN IMMEDIATE``, retried cooperatively while another process holds the lock.

    True once begun; False when the lock outlasted ``patience`` seconds or the
    error was not a lock (the caller's last try then raises it properly).
    """
    deadline = time.monotonic() + patience
    delay = 0.001
    while True:
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as error:
            if not _is_locked(error) or time.monotonic() + delay > deadline:
                return False
        gevent.sleep(delay)
        delay = min(delay * 2, 0.05)


def _is_locked(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error) or "busy" in str(error)


def make_session_factory(bind: Engine | str | URL) -> sessionmaker[Session]:
    """A session factory; objects stay readable after commit (``expire_on_commit=False``)."""
    engine = bind if isinstance(bind, Engine) else make_engine(bind)
    return sessionmaker(bind=engine, expire_on_commit=False)


def describe_error(error: SQLAlchemyError) -> str:
    """A one-line description of a database error: the driver's message, no SQL."""
    original = getattr(error, "orig", None)
    detail = str(original) if original is not None else str(error)
    return f"database error: {type(error).__name__}: {detail.splitlines()[0] if detail else ''}"


@contextmanager
def transaction(session_factory: SessionFactory) -> Iterator[Session]:
    """One unit of work: commit if the block succeeds, roll back if it raises.

    A kill or a gevent.Timeout on PostgreSQL closes the connection instead (it
    may be inside a statement), and a kill stays a kill (see :func:`_kill_in`).

    Driver errors (``sqlalchemy.exc.SQLAlchemyError``) leave as
    :class:`StoreError` with the original as ``__cause__``; fsconf's own errors
    and everything else pass through unchanged.
    """
    session = session_factory()
    try:
        try:
            yield session
            session.commit()
        except BaseException as error:
            killed = _kill_in(error)
            if killed is None and isinstance(error, Exception):
                _abandon(session)
                raise
            _abandon_interrupted(session)
            if killed is not None and killed is not error:
                # The kill itself, not a cause pointing back at it (a cycle).
                raise killed from None
            raise
    except FsconfError:
        raise
    except SQLAlchemyError as error:
        raise StoreError(describe_error(error)) from error
    finally:
        session.close()


def _abandon(session: Session) -> None:
    """Roll back; a connection that cannot is closed instead, so the server
    rolls back and the pool drops it."""
    try:
        session.rollback()
    except SQLAlchemyError:
        session.invalidate()


def _abandon_interrupted(session: Session) -> None:
    """A transaction a kill or a gevent.Timeout interrupted. PostgreSQL's driver
    waits cooperatively, so it may be inside a statement, where no rollback is
    possible: the connection is closed (the server rolls back). SQLite's calls
    never yield inside a statement (and an in-memory database lives in its one
    connection): rolled back as usual."""
    if session.get_bind().dialect.name == "sqlite":
        _abandon(session)
    else:
        session.invalidate()


def _kill_in(error: BaseException) -> BaseException | None:
    """The greenlet kill that ``error`` comes from, if any.

    A greenlet killed while the driver waits for PostgreSQL (``fsconf serve``
    stopping) leaves its connection inside a statement: psycopg refuses any
    other command there ("cannot exit pipeline mode while busy"), so a
    rollback failed and SQLAlchemy's pool logged "Exception during reset".
    The connection is closed instead (the server rolls back). And psycopg
    turns a kill inside an executemany into an OperationalError: a kill must
    stay one, or a service loop would take it for a failed write and go on.
    """
    return next((cause for cause in causes(error) if isinstance(cause, GreenletExit)), None)


TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
"""Driver errors that a retry can outlive: connection refused or lost, server
restarting, SQLite locked or read-only. Integrity and programming errors are not."""


def causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it was raised from or during, outermost first (at most 8)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def transient_cause(error: BaseException) -> BaseException | None:
    """The transient driver error behind ``error`` (a :class:`StoreError`, or an
    error wrapped around a failed flush), or None."""
    for cause in causes(error):
        if isinstance(cause, TRANSIENT_DB_ERRORS):
            return cause
    return None
