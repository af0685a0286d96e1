"""Conference recording: trim-silence (the default) and do-not-trim.

The spec: trim-silence "removes any silence at the beginning or end of your
recording", so the recording may be shorter than the call. fsconf trims the
file FreeSWITCH wrote (``fsconf.service.trim``) when it can read it: the
recordings directory must be shared between FreeSWITCH and fsconf. The
FakeSwitch fires start-/stop-recording but writes no audio, so these tests play
FreeSWITCH's part on the shared directory: they write the WAV at the path fsconf
asked FreeSWITCH to record to, before the room ends.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from pathlib import Path

import gevent
import pytest

from fsconf.service.trim import trim_silence
from tests.e2e import support
from tests.e2e.support import api_lines, has, requested, twiml, wait, wait_command

RATE = 8000


def tone(seconds: float, amplitude: int = 8000, channels: int = 1) -> list[int]:
    count = int(seconds * RATE)
    samples = []
    for n in range(count):
        value = int(amplitude * math.sin(2 * math.pi * 440 * n / RATE))
        samples.extend([value] * channels)
    return samples


def silence(seconds: float, channels: int = 1, hiss: int = 0) -> list[int]:
    return [(n % 3 - 1) * hiss for n in range(int(seconds * RATE) * channels)]


def wav(samples: list[int], channels: int = 1, bits: int = 16) -> bytes:
    width = bits // 8
    if bits == 16:
        data = struct.pack(f"<{len(samples)}h", *samples)
    else:
        data = bytes((s >> 8) + 128 for s in samples)
    fmt = struct.pack("<HHIIHH", 1, channels, RATE, RATE * channels * width, channels * width, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def frames_of(blob: bytes, channels: int = 1) -> list[int]:
    assert blob[:4] == b"RIFF" and blob[8:12] == b"WAVE"
    (size,) = struct.unpack_from("<I", blob, 40)
    assert blob[36:40] == b"data" and len(blob) == 44 + size
    assert struct.unpack_from("<I", blob, 4)[0] == len(blob) - 8
    return list(struct.unpack_from(f"<{size // 2}h", blob, 44))


# --- the pure function ---------------------------------------------------------------


def test_trim_drops_leading_and_trailing_silence(tmp_path):
    path = tmp_path / "r.wav"
    path.write_bytes(wav(silence(1.0, hiss=40) + tone(2.0) + silence(0.5, hiss=40)))
    result = trim_silence(path)
    assert result is not None
    assert result.frames_before == int(3.5 * RATE)
    samples = frames_of(path.read_bytes())
    assert len(samples) == result.frames_after
    assert 2 * RATE - 40 <= len(samples) <= 2 * RATE
    assert abs(samples[0]) > 328 and abs(samples[-1]) > 328
    assert result.duration_seconds == 2 and result.file_size == path.stat().st_size


def test_trim_keeps_a_recording_without_silence_byte_for_byte(tmp_path):
    path = tmp_path / "r.wav"
    original = wav([9000, -9000] * 4000)
    path.write_bytes(original)
    result = trim_silence(path)
    assert result is not None and result.frames_after == result.frames_before == 8000
    assert path.read_bytes() == original


def test_trim_of_pure_silence_leaves_an_empty_valid_wav(tmp_path):
    path = tmp_path / "r.wav"
    path.write_bytes(wav(silence(1.0, hiss=100)))
    result = trim_silence(path)
    assert result is not None and result.frames_after == 0 and result.duration_seconds == 0
    assert frames_of(path.read_bytes()) == []


def test_trim_stereo_keeps_frames_where_either_channel_sounds(tmp_path):
    path = tmp_path / "r.wav"
    left_only = [s if i % 2 == 0 else 0 for i, s in enumerate(tone(0.5, channels=2))]
    path.write_bytes(wav(silence(0.5, channels=2) + left_only + silence(0.5, channels=2), 2))
    result = trim_silence(path)
    assert result is not None
    assert RATE // 2 - 40 <= result.frames_after <= RATE // 2
    blob = path.read_bytes()
    assert struct.unpack_from("<H", blob, 22)[0] == 2, "still stereo"


@pytest.mark.parametrize(
    "content",
    [b"", b"not a wav at all", wav(silence(0.2) + tone(0.2), bits=8)],
    ids=["empty", "garbage", "8-bit"],
)
def test_trim_leaves_files_it_cannot_read_alone(tmp_path, content):
    path = tmp_path / "r.wav"
    path.write_bytes(content)
    assert trim_silence(path) is None
    assert path.read_bytes() == content
    assert trim_silence(tmp_path / "absent.wav") is None


# --- end to end -------------------------------------------------------------------------------

stack = support.stack


@pytest.fixture
def shared(stack, tmp_path):
    """fsconf configured with a recordings directory it shares with FreeSWITCH."""
    directory = tmp_path / "recordings"
    directory.mkdir()
    service = stack.app.conferences
    service.config = dataclasses.replace(service.config, recordings_dir=str(directory))
    return directory


def _record(stack, trim: str) -> tuple[Path, bytes, object]:
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "Recorded Room",
        events_url=customer.url("/events"),
        record="record-from-start",
        trim=trim,
        recording_status_callback=customer.url("/recording"),
        event_callback_url=customer.url("/record-end"),
    )
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = support.conference_sid(customer)
    wait_command(stack, lambda line: line.startswith(f"conference {sid} record "))
    record = next(line for line in api_lines(stack) if line.startswith(f"conference {sid} record "))
    path = Path(record.split(" ", 3)[3])
    # FreeSWITCH's part: the mixed audio, with silence before and after the talk.
    content = wav(silence(1.5, hiss=50) + tone(3.0) + silence(1.0, hiss=50))
    path.write_bytes(content)
    stack.hangup(alice)
    stack.hangup(bob)
    wait(customer, requested("/recording"), "the recording callback")
    return path, content, customer.callbacks("/recording")[0]


def test_trim_silence_trims_the_file_before_publishing(stack, shared):
    path, _content, callback = _record(stack, "trim-silence")
    assert path.parent == shared
    samples = frames_of(path.read_bytes())
    assert 3 * RATE - 40 <= len(samples) <= 3 * RATE
    assert abs(samples[0]) > 328 and abs(samples[-1]) > 328
    # The published length is the trimmed one (the spec: may be less than the call's).
    assert callback.get("RecordingStatus") == "completed"
    assert callback.get("RecordingDuration") == "3"
    recording = support.rest(stack).conferences(callback.get("ConferenceSid")).recordings(
        callback.get("RecordingSid")
    ).fetch()
    assert recording.duration == "3"
    # No conference-record-end: a recordingStatusCallback is given.
    assert not stack.customer.callbacks("/record-end")


def test_do_not_trim_leaves_the_file_alone(stack, shared):
    path, content, callback = _record(stack, "do-not-trim")
    assert path.read_bytes() == content
    assert callback.get("RecordingStatus") == "completed"
    # FreeSWITCH's own length (Milliseconds-Elapsed), not the file's 5.5 s.
    assert callback.get("RecordingDuration") != "6"


def test_pause_and_resume_follow_freeswitch_events(stack):
    """REST Status=paused/in-progress: fsconf sends ``conference ... recording
    pause|resume`` and answers once FreeSWITCH's pause-recording /
    resume-recording event has moved the row. Those events are the ones the
    inbound reader does not take inline (their row is a transaction): they go
    through the conference's worker, and must still arrive."""
    customer = stack.customer
    customer.documents["/voice"] = twiml(
        "Paused Room", events_url=customer.url("/events"), record="record-from-start"
    )
    stack.call("/voice", caller="+15551230001", name="Alice")
    stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = support.conference_sid(customer)
    wait_command(stack, lambda line: line.startswith(f"conference {sid} record "))
    conference = support.rest(stack).conferences(sid)
    with gevent.Timeout(5):
        while not (listed := conference.recordings.list()):
            gevent.sleep(0.05)
    recording = conference.recordings(listed[0].sid)
    assert recording.update(status="paused").status == "paused"
    assert any(line.startswith(f"conference {sid} recording pause ") for line in api_lines(stack))
    assert recording.fetch().status == "paused"
    assert recording.update(status="in-progress").status == "in-progress"
    assert any(line.startswith(f"conference {sid} recording resume ") for line in api_lines(stack))
