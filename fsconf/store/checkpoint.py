"""SQLite WAL checkpoints on a native thread, for ``fsconf serve``.

Why: SQLite checkpoints the WAL itself when a commit takes it past
``wal_autocheckpoint`` pages (1,000 pages, 4 MB): that commit copies the WAL
into the database file and, at ``synchronous=NORMAL``, fsyncs both, inside
the committing call. Under gevent that call holds the whole hub: no event is
read and no call is served meanwhile. A talking storm's group commits
(thousands of outbox rows, several MB each) each paid one, 15-20 ms every
time, where the rest of the commit took 2-6 ms (``bench/README.md``).

What: ``fsconf serve``'s connections turn automatic checkpoints off
(:func:`fsconf.store.db.make_engine` with ``background_checkpoints=True``) and
a :class:`Checkpointer` runs ``PRAGMA wal_checkpoint(PASSIVE)`` every
``interval`` seconds in gevent's native thread pool, on a connection of its
own. SQLite copies and fsyncs there without the GIL, on another core; a
PASSIVE checkpoint never waits for a writer or a reader and never blocks one.
Durability is unchanged: a commit is in the WAL when it returns, and the WAL
is replayed at the next open whatever was checkpointed. Other processes on
the same file (the CLI, a backup) keep SQLite's automatic checkpoints.

If checkpoints stop keeping up (another process holding a read transaction
for a long time keeps a PASSIVE checkpoint from finishing), the WAL grows;
past ``warn_frames`` frames left unchecked the log says so, once a minute.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.lock
from sqlalchemy import Engine

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 1.0
WARN_FRAMES = 65_536  # 256 MB of 4 KB pages not yet in the database file
WARN_EVERY = 60.0


@dataclass(frozen=True)
class CheckpointResult:
    """What ``PRAGMA wal_checkpoint(PASSIVE)`` answered."""

    busy: bool
    log_frames: int
    checkpointed_frames: int

    @property
    def behind(self) -> int:
        """Frames of the WAL not yet copied into the database file."""
        return max(0, self.log_frames - self.checkpointed_frames)


class Checkpointer:
    """Checkpoints one SQLite database file from a native thread (see the module)."""

    def __init__(
        self,
        database: str,
        *,
        interval: float = CHECKPOINT_INTERVAL,
        warn_frames: int = WARN_FRAMES,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self.database = database
        self.interval = interval
        self.warn_frames = warn_frames
        self._connection: sqlite3.Connection | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = gevent.event.Event()
        # One checkpoint at a time: the sqlite3 connection is not for two threads at once.
        self._one_at_a_time = gevent.lock.Semaphore()
        self._last_warning = float("-inf")

    @classmethod
    def for_engine(cls, engine: Engine, **options: Any) -> Checkpointer | None:
        """A checkpointer for a SQLite file engine; None for anything else."""
        if engine.dialect.name != "sqlite":
            return None
        database = engine.url.database or ""
        if not database or database == ":memory:" or "mode=memory" in database:
            return None
        return cls(database, **options)

    def start(self) -> None:
        if self._greenlet is None or self._greenlet.dead:
            self._stopping.clear()
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        """End the loop between checkpoints, then close the connection.

        Never by killing the loop: a checkpoint in flight goes on in its
        thread, and closing its connection under it would crash the process.
        """
        self._stopping.set()
        if self._greenlet is not None:
            self._greenlet.join()
            self._greenlet = None
        with self._one_at_a_time:  # a direct checkpoint() may still be running
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def checkpoint(self) -> CheckpointResult:
        """One PASSIVE checkpoint in the thread pool; this greenlet waits cooperatively."""
        with self._one_at_a_time:
            result: CheckpointResult = gevent.get_hub().threadpool.apply(self._checkpoint)
        return result

    def _checkpoint(self) -> CheckpointResult:
        # Runs in a pool thread, one call at a time (see checkpoint()).
        if self._connection is None:
            self._connection = sqlite3.connect(
                self.database, timeout=0, isolation_level=None, check_same_thread=False
            )
        busy, log_frames, checkpointed = self._connection.execute(
            "PRAGMA wal_checkpoint(PASSIVE)"
        ).fetchone()
        return CheckpointResult(bool(busy), log_frames, checkpointed)

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                result = self.checkpoint()
            except sqlite3.Error as error:
                # The class only: the text may carry the file's path.
                self._warn("SQLite checkpoint failed (%s); retrying", type(error).__name__)
                continue
            if result.behind > self.warn_frames:
                self._warn(
                    "SQLite WAL: %d frames not yet checkpointed (a long read "
                    "transaction elsewhere?); the WAL file grows meanwhile",
                    result.behind,
                )

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            logger.warning(message, *args)
