"""fsconf.conference.model: the state's hand-written copy."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from fsconf.conference.model import (
    Announcement,
    ConferenceState,
    ConferenceStatus,
    Ending,
    ReasonConferenceEnded,
)
from tests.conference.support import CONFIG


def test_with_sequence_number_copies_every_field_and_changes_only_the_number():
    """Every field set to something other than its default, so a field the
    copy forgot (one added to ConferenceState later) shows up here."""
    values: dict[str, object] = {
        "sid": "CF" + "1" * 32,
        "account_sid": "AC" + "2" * 32,
        "friendly_name": "room",
        "config": CONFIG,
        "status": ConferenceStatus.IN_PROGRESS,
        "room": object(),
        "participants": (object(),),
        "departed": (object(), object()),
        "sequence_number": 7,
        "start_time": datetime(2026, 11, 26, 6, 0, tzinfo=UTC),
        "end_time": datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
        "ending": Ending(ReasonConferenceEnded.LAST_PARTICIPANT_LEFT),
        "record_requested": True,
        "recording": object(),
        "announcements": (Announcement("A1", "https://app.example/a.mp3", None),),
        "relations": frozenset({(1, 2)}),
    }
    names = [f.name for f in dataclasses.fields(ConferenceState)]
    assert sorted(values) == sorted(names)  # a new field must be added above too
    state = ConferenceState(**values)  # type: ignore[arg-type]
    defaults = ConferenceState("CF" + "1" * 32, "AC" + "2" * 32, "room")
    keys = ("sid", "account_sid", "friendly_name")
    assert all(getattr(state, n) != getattr(defaults, n) for n in names if n not in keys)

    copied = state.with_sequence_number(8)

    assert copied == dataclasses.replace(state, sequence_number=8)
    assert copied.sequence_number == 8 and state.sequence_number == 7
    assert all(getattr(copied, n) is getattr(state, n) for n in names if n != "sequence_number")
    assert type(copied) is ConferenceState
