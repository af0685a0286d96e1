"""SQLite's ``synchronous`` setting: NORMAL by default, FULL on request, and
a committed row survives the writer being killed (``SIGKILL``).

NORMAL (in WAL mode) skips the fsync of each commit; only a power cut can
take the last commits with it.  A process crash cannot: the WAL pages are
written before ``COMMIT`` returns, the kernel keeps them, and the next open
replays the WAL.  The subprocess below commits, says so, and is killed with
no chance to checkpoint or close anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from fsconf.errors import StoreError
from fsconf.store.db import make_engine

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import text
    from fsconf.store.db import make_engine

    engine = make_engine(sys.argv[1])
    with engine.connect() as connection:
        level = connection.exec_driver_sql("PRAGMA synchronous").scalar()
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
        connection.commit()
        for n in range(int(sys.argv[2])):
            connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"row {n}"})
            connection.commit()
        # Hold the connection (and the WAL) open: no checkpoint, no close.
        print(f"committed {level}", flush=True)
        time.sleep(60)
    """
)


def _synchronous(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql("PRAGMA synchronous").scalar_one())
    finally:
        engine.dispose()


def test_file_database_defaults_to_normal(tmp_path: Path) -> None:
    assert _synchronous(f"sqlite:///{tmp_path}/a.db") == 1  # NORMAL


@pytest.mark.parametrize(
    ("query", "level"), [("full", 2), ("FULL", 2), ("normal", 1), ("extra", 3)]
)
def test_url_parameter_chooses_the_level(tmp_path: Path, query: str, level: int) -> None:
    url = f"sqlite:///{tmp_path}/b.db?synchronous={query}"
    assert _synchronous(url) == level
    # The parameter is ours: it never reaches the driver or the file name.
    assert sorted(path.name for path in tmp_path.iterdir() if path.suffix == ".db") == ["b.db"]


def test_bad_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="synchronous must be one of normal, full, extra"):
        make_engine(f"sqlite:///{tmp_path}/c.db?synchronous=off")


def test_synchronous_is_refused_on_postgresql() -> None:
    with pytest.raises(StoreError, match="SQLite setting"):
        make_engine("postgresql+psycopg://u:p@127.0.0.1/db?synchronous=full")


@pytest.mark.parametrize("query", ["", "?synchronous=full"])
def test_committed_rows_survive_sigkill_of_the_writer(tmp_path: Path, query: str) -> None:
    url = f"sqlite:///{tmp_path}/kill.db{query}"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, "50"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert writer.stdout is not None
        line = writer.stdout.readline().decode().strip()
        assert line == f"committed {2 if query else 1}"
        # The WAL is still there, un-checkpointed: the rows live only in it.
        assert (tmp_path / "kill.db-wal").stat().st_size > 0
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(10) == -signal.SIGKILL
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(10)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT v FROM t ORDER BY id")).scalars().all()
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
    finally:
        engine.dispose()
    assert rows == [f"row {n}" for n in range(50)]
