"""Helpers for the conference engine tests: ids, a clock, and a driver that
applies inputs one by one and keeps every effect."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from fsconf.conference import events as ev
from fsconf.conference.effects import Callback, Effect, JoinRoom, SendApi
from fsconf.conference.engine import apply
from fsconf.conference.model import (
    ConferenceState,
    EngineConfig,
    ParticipantSettings,
    StatusCallbackToken,
    new_conference,
)

SID = "CFe08c870b500f6e44a9ad184defd1f391"
ACCOUNT = "AC25e16e9a716a4a8617a7c83f58e30482"
NAME = "MyConf"
T0 = datetime(2017, 6, 1, 20, 48, 32, tzinfo=UTC)
STAMP0 = "Thu, 01 Jun 2017 20:48:32 +0000"
HOOK = "https://myapp.com/events"
ALL_EVENTS = frozenset(StatusCallbackToken)
CONFIG = EngineConfig(
    enter_sound="/sounds/enter.wav",
    exit_sound="/sounds/exit.wav",
    hold_media="/sounds/hold.wav",
    recordings_dir="/rec",
    public_url="https://fsconf.example.com",
)


def uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def call_sid(n: int) -> str:
    return "CA" + uuid(n).replace("-", "")


def settings(**overrides: Any) -> ParticipantSettings:
    return dataclasses.replace(ParticipantSettings(), **overrides)


def evented(**overrides: Any) -> ParticipantSettings:
    """Settings asking for every status callback."""
    return settings(**{"status_callback": HOOK, "status_callback_event": ALL_EVENTS, **overrides})


class Driver:
    """Applies inputs to one conference; a tick of one second per input."""

    def __init__(self, state: ConferenceState | None = None) -> None:
        self.state = state or new_conference(SID, ACCOUNT, NAME, CONFIG)
        self.now = T0
        self.log: list[Effect] = []

    def __call__(self, event: Any, *, tick: int = 0) -> list[Effect]:
        self.now += timedelta(seconds=tick)
        self.state, effects = apply(self.state, event, self.now)
        self.log.extend(effects)
        return list(effects)

    def arrive(self, n: int, config: ParticipantSettings | None = None) -> list[Effect]:
        return self(
            ev.ParticipantArrived(call_sid(n), uuid(n), ACCOUNT, NAME, config or settings())
        )

    def added(self, n: int, member_id: int) -> list[Effect]:
        return self(ev.MemberAdded(call_sid(n), member_id))

    def deleted(self, n: int, member_id: int, cause: str | None = None) -> list[Effect]:
        return self(ev.MemberDeleted(call_sid(n), member_id, cause))


def of_type(effects: Iterable[Effect], kind: type) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def api(effects: Iterable[Effect]) -> list[str]:
    return [e.command for e in of_type(effects, SendApi)]


def hooks(effects: Iterable[Effect]) -> list[Callback]:
    return of_type(effects, Callback)


def names(effects: Iterable[Effect]) -> list[str]:
    """StatusCallbackEvent of every status callback, in order."""
    return [c.get("StatusCallbackEvent") or "" for c in hooks(effects) if c.kind == "status"]


def joins(effects: Iterable[Effect]) -> list[JoinRoom]:
    return of_type(effects, JoinRoom)


def without_rows(effects: Iterable[Effect]) -> list[Effect]:
    from fsconf.conference.effects import StoreConference, StoreParticipant

    return [e for e in effects if not isinstance(e, StoreConference | StoreParticipant)]
