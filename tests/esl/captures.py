"""Load the real Event Socket transcripts in ``tests/data/*.jsonl``.

Each line is ``{"t", "dir": "in"|"out", "raw", "conn"}`` (``conn`` is missing in
the batch-1 files that had a single connection). Every ``in`` line is one whole
frame as FreeSWITCH sent it; every ``out`` line is exactly what the recorder
wrote. ``raw`` is text in the JSON; it is turned back into the bytes on the wire
with UTF-8 + ``surrogateescape`` (the inverse of how a byte string is stored as
text without loss), so Content-Length can be checked against it.

Everything is cached: the files are read once per test process.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_CONN = "main"


@dataclass(frozen=True, slots=True)
class Record:
    t: float
    direction: str
    raw: bytes
    conn: str


def capture_names() -> list[str]:
    """The transcript file names, sorted (``basic_two_party.jsonl``, ...)."""
    return sorted(path.name for path in DATA_DIR.glob("*.jsonl"))


@functools.cache
def records(name: str) -> tuple[Record, ...]:
    out = []
    with (DATA_DIR / name).open(encoding="utf-8") as handle:
        for line in handle:
            item = json.loads(line)
            out.append(
                Record(
                    t=float(item["t"]),
                    direction=item["dir"],
                    raw=item["raw"].encode("utf-8", "surrogateescape"),
                    conn=item.get("conn", DEFAULT_CONN),
                )
            )
    return tuple(out)


def _by_connection(name: str, direction: str) -> dict[str, tuple[bytes, ...]]:
    grouped: dict[str, list[bytes]] = {}
    for record in records(name):
        if record.direction == direction:
            grouped.setdefault(record.conn, []).append(record.raw)
    return {conn: tuple(items) for conn, items in grouped.items()}


@functools.cache
def in_frames(name: str) -> dict[str, tuple[bytes, ...]]:
    """``{connection: (frame bytes, ...)}`` in arrival order."""
    return _by_connection(name, "in")


@functools.cache
def out_commands(name: str) -> dict[str, tuple[bytes, ...]]:
    """``{connection: (command bytes, ...)}`` in the order they were written."""
    return _by_connection(name, "out")


def in_streams() -> list[tuple[str, str, tuple[bytes, ...]]]:
    """Every (file, connection, frames) of every capture."""
    return [
        (name, conn, frames)
        for name in capture_names()
        for conn, frames in sorted(in_frames(name).items())
    ]


def out_streams() -> list[tuple[str, str, tuple[bytes, ...]]]:
    return [
        (name, conn, commands)
        for name in capture_names()
        for conn, commands in sorted(out_commands(name).items())
    ]


def outer_headers(frame: bytes) -> dict[str, str]:
    """The outer header block of a raw frame, undecoded (for test oracles only)."""
    head = frame.split(b"\n\n", 1)[0].decode("utf-8", "surrogateescape")
    return dict(line.split(": ", 1) for line in head.split("\n") if ": " in line)


def content_type(frame: bytes) -> str:
    return outer_headers(frame).get("Content-Type", "")


@functools.cache
def event_plain_frames() -> tuple[bytes, ...]:
    """Every ``text/event-plain`` frame of every capture, in file order."""
    return tuple(
        frame
        for name, _conn, frames in in_streams()
        for frame in frames
        if content_type(frame) == "text/event-plain"
    )


def find_frame(name: str, needle: bytes, conn: str | None = None) -> bytes:
    """The first ``in`` frame of ``name`` that contains ``needle``."""
    for frame_conn, frames in in_frames(name).items():
        if conn is not None and frame_conn != conn:
            continue
        for frame in frames:
            if needle in frame:
                return frame
    raise LookupError(f"no frame with {needle!r} in {name}")
