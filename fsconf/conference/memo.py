"""Memos for the engine's hot path (a speaker storm: thousands of inputs a second).

The engine's state is immutable and a talking event replaces only the
SequenceNumber, so the same RoomSettings, Participant and frozenset objects
come back input after input. What is derived from them (the conference row's
columns, a participant's callback parameters) is therefore computed once per
*object* and reused. The key is the object's identity, not its value: hashing
a settings dataclass (enums, frozensets) costs more than what is saved. Each
entry keeps its object alive, so an id cannot be reused while it is cached;
the table is emptied when full. The engine stays pure: a memo only returns
what the function would compute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MEMO_ENTRIES = 4096
"""Entries per memo before it is emptied (a few rooms' worth of objects each)."""


class IdentityMemo(Generic[K, V]):
    """``memo(obj)`` is ``compute(obj)``, computed once per object."""

    __slots__ = ("_compute", "_entries", "_limit")

    def __init__(self, compute: Callable[[K], V], limit: int = MEMO_ENTRIES) -> None:
        self._compute = compute
        self._entries: dict[int, tuple[K, V]] = {}
        self._limit = limit

    def __call__(self, key: K) -> V:
        entry = self._entries.get(id(key))
        if entry is not None and entry[0] is key:
            return entry[1]
        value = self._compute(key)
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[id(key)] = (key, value)
        return value
