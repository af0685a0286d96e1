"""The statements a delivery settle runs, per database.

* The claim's probe (each candidate stream's first ``depth`` pending rows,
  with ``ready`` decided in SQL) reads the same rows in both of its forms: the
  window function every database runs, and PostgreSQL's per-stream LIMITed
  index scan (``JOIN LATERAL``), which does not read every dead index entry a
  stream has left since the last vacuum. Checked against the rule written
  out in Python, on rows in every state a claim meets.
* On PostgreSQL the lists of ids, keys and account SIDs are bound as one
  array each, so a settle's statements are the same texts whatever the counts
  (psycopg prepares a text on the server after a few runs; an expanded IN was
  a new text for every count).

A migrated SQLite file and PostgreSQL schema (``session_factory``), real HTTP
on loopback for the settles, a fake clock.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from fsconf.store.db import transaction
from fsconf.store.models import Callback
from fsconf.webhooks import delivery
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import FakeClock, _conferences, _join, _worker

Factory = sessionmaker[Session]


def _outbox(factory: Factory, url: str, clock: FakeClock) -> list[str]:
    """Five streams whose rows are in every state a claim meets.

    A: nine pending, due and unclaimed (longer than the depth asked for).
    B: delivered, failed, then pending rows: due; due but held by a live
       claim; due with an expired claim; not due yet.
    C: its head not due yet (backoff), a due row behind it.
    D: nothing pending (all delivered).
    E: no rows at all.
    """
    sids = _conferences(factory, url, 5)
    a, b, c, d, e = sids
    now = clock()
    ids = {sid: [_join(factory, sid, n, now) for n in range(9 if sid == a else 6)] for sid in sids}
    later = now + timedelta(seconds=30)
    rows = {
        ids[b][0]: {"status": "delivered"},
        ids[b][1]: {"status": "failed"},
        ids[b][3]: {"claimed_by": "another", "claimed_until": later},
        ids[b][4]: {"claimed_by": "gone", "claimed_until": now - timedelta(seconds=1)},
        ids[b][5]: {"next_attempt_at": later},
        ids[c][0]: {"next_attempt_at": later},
        **{row: {"status": "delivered"} for row in ids[d]},
    }
    callbacks = Callback.__table__
    with transaction(factory) as session:
        for row_id, values in rows.items():
            session.execute(update(callbacks).where(callbacks.c.id == row_id).values(**values))
        session.execute(delete(callbacks).where(callbacks.c.conference_sid == e))
    return sids


def _expected(factory: Factory, keys: list[str], depth: int, now: object) -> set[tuple]:
    """The probe's rule in Python: per stream, its first ``depth`` pending
    rows in id order, each ready if due and not held by a live claim."""
    with factory() as session:
        rows = list(session.scalars(select(Callback).where(Callback.status == "pending")))
    chosen: set[tuple] = set()
    for key in keys:
        stream = sorted((row for row in rows if row.ordering_key == key), key=lambda r: r.id)
        for row in stream[:depth]:
            free = row.claimed_until is None or row.claimed_until <= now
            chosen.add((row.id, key, int(row.next_attempt_at <= now and free)))
    return chosen


def _probed(factory: Factory, statement: object, keys: list[str], depth: int, now: object):
    with factory() as session:
        found = session.connection().execute(
            statement, {"keys": keys, "now": now, "depth": depth}
        )
        return {(row.id, row.ordering_key, row.ready) for row in found}


def test_each_probe_reads_each_streams_first_pending_rows_with_their_readiness(
    session_factory: Factory, db_backend: str, receiver: Receiver
) -> None:
    clock = FakeClock()
    keys = _outbox(session_factory, receiver.base + "/status", clock)
    probes = [delivery._IN_LISTS.probe]
    if db_backend == "postgres":
        probes.append(delivery._SETTLES["postgresql"].probe)
    for depth in (1, 4, 64):
        expected = _expected(session_factory, keys, depth, clock())
        assert len(expected) == {1: 3, 4: 12, 64: 19}[depth]
        for probe in probes:
            assert _probed(session_factory, probe, keys, depth, clock()) == expected
    # A key list of one, and of none.
    for probe in probes:
        assert _probed(session_factory, probe, keys[:1], 2, clock()) == _expected(
            session_factory, keys[:1], 2, clock()
        )
        assert _probed(session_factory, probe, [], 2, clock()) == set()


def test_postgresql_settles_run_the_same_texts_whatever_the_counts(
    session_factory: Factory, db_backend: str, receiver: Receiver, http: requests.Session
) -> None:
    if db_backend != "postgres":
        pytest.skip("SQLite expands its IN lists (it prepares nothing across calls anyway)")
    clock = FakeClock()
    sids = _conferences(session_factory, receiver.base + "/status", 9)
    worker = _worker(session_factory, http, clock)
    engine = session_factory.kw["bind"]
    texts: list[set[str]] = []

    def record(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        if "callbacks" in statement or "accounts" in statement:
            texts[-1].add(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        sent = 0
        for count in (2, 9, 5):  # conferences, one callback each, then a pass
            texts.append(set())
            for number, sid in enumerate(sids[:count]):
                _join(session_factory, sid, 10 * count + number, clock())
            assert worker.run_once() == count
            sent += count
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(receiver.wait_for(sent)) == sent
    assert texts[0] == texts[1] == texts[2]
    # The ids' UPDATEs (claim, delivered) and the accounts' SELECT; the probe
    # takes its keys as an array too.
    assert sum("= ANY (CAST(" in text for text in texts[0]) == 3, texts[0]
    assert sum("unnest(CAST(" in text for text in texts[0]) == 1, texts[0]
    expanded = ("%(ids_1)s", "%(keys_1)s", "%(sids_1)s")
    assert not any(name in text for text in texts[0] for name in expanded), texts[0]
