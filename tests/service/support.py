"""What the conference-service tests share: a room's settings, call ids, talking
bursts, a commit counter, and SQLite made read-only on fsconf's pooled connection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event

from fsconf.conference import events as ev
from fsconf.conference.model import EngineConfig, ParticipantSettings, StatusCallbackToken

HOOK = "https://app.example/events"
T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
CONFIG = EngineConfig(recordings_dir="/rec", public_url="https://fsconf.example")
MEMBERS = 3
SETTINGS = ParticipantSettings(
    status_callback=HOOK,
    status_callback_event=frozenset(StatusCallbackToken),
    start_conference_on_enter=True,
)
WAIT = 10.0


def call_sid(n: int) -> str:
    return f"CA{n:032x}"


def call_uuid(n: int) -> str:
    hexed = f"{n:032x}"
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def talking(count: int, first_call: int = 1) -> list[ev.ConferenceInput]:
    """``count`` talking events, start/stop in turn, round the members (calls
    ``first_call`` .. ``first_call + MEMBERS - 1``)."""
    inputs: list[ev.ConferenceInput] = []
    for index in range(count):
        sid = call_sid(first_call + (index // 2) % MEMBERS)
        inputs.append(ev.StartTalking(sid) if index % 2 == 0 else ev.StopTalking(sid))
    return inputs


class Commits:
    """Counts the commits of a real engine (SQLAlchemy's ``commit`` event)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0
        self.probes: list[Any] = []
        event.listen(engine, "commit", self._on_commit)

    def _on_commit(self, _connection: Any) -> None:
        self.count += 1
        for probe in self.probes:
            probe()

    def close(self) -> None:
        event.remove(self.engine, "commit", self._on_commit)


def set_read_only(engine: Engine, read_only: bool) -> None:
    """SQLite read-only on fsconf's one pooled connection: every write fails
    with OperationalError, as when the file is read-only or locked."""
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute(f"PRAGMA query_only={int(read_only)}")
    finally:
        raw.close()
