"""Twilio's ``trim="trim-silence"``: drop leading and trailing silence from a recording.

Theory of operation
-------------------
The spec: trim-silence "removes any silence at the beginning or end of your
recording. This may cause the duration of the recording to be slightly less
than the duration of the call." fsconf does it after FreeSWITCH has closed the
file (``stop-recording``), before the recording is published (the row and the
recordingStatusCallback carry the trimmed length).

:func:`trim_silence` is a pure function of the file: it reads a RIFF/WAVE file
itself (no ``wave``/``audioop``: ``audioop`` is gone from Python 3.13), finds
the first and the last frame with any channel's amplitude above
``threshold``, and rewrites the file with only the frames in between. A frame
is one sample per channel. Only 16-bit PCM is trimmed, which is what
mod_conference records; any other file is left alone and reported as such
(``None``). The rewrite goes through a temporary file in the same directory and
``os.replace``, so a reader never sees half a file. A file that is silence from
end to end becomes a valid WAV with no frames.

Deployment: FreeSWITCH writes the recording (``recordings_dir``) and fsconf
trims it, so both must see the same directory (the same host, or a shared
mount). When fsconf cannot read the file, the recording is published untrimmed.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path

#: Amplitude at or below which a 16-bit sample counts as silence: 1% of full
#: scale (-40 dBFS), above a line's hiss, far below speech.
DEFAULT_THRESHOLD = 328

_PCM = 1
_EXTENSIBLE = 0xFFFE


@dataclass(frozen=True, slots=True)
class Trimmed:
    """What :func:`trim_silence` did: frame counts before and after, and the new size."""

    frames_before: int
    frames_after: int
    sample_rate: int
    file_size: int

    @property
    def duration_ms(self) -> int:
        return self.frames_after * 1000 // self.sample_rate if self.sample_rate else 0

    @property
    def duration_seconds(self) -> int:
        """Rounded like the engine rounds FreeSWITCH's milliseconds."""
        return (self.duration_ms + 500) // 1000


@dataclass(frozen=True, slots=True)
class _Wave:
    channels: int
    sample_rate: int
    bits: int
    format_chunk: bytes
    data_offset: int
    data_size: int


def _parse(blob: bytes) -> _Wave | None:
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        return None
    offset = 12
    format_chunk: bytes | None = None
    while offset + 8 <= len(blob):
        name = blob[offset : offset + 4]
        (size,) = struct.unpack_from("<I", blob, offset + 4)
        body = offset + 8
        if name == b"fmt ":
            format_chunk = blob[body : body + size]
        elif name == b"data":
            if format_chunk is None or len(format_chunk) < 16:
                return None
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from(
                "<HHIIHH", format_chunk
            )
            if tag not in (_PCM, _EXTENSIBLE) or bits != 16 or channels < 1:
                return None
            # A writer that never patched the size (killed mid-file) wrote 0 or
            # 0xFFFFFFFF: the data runs to the end of the file.
            available = len(blob) - body
            data_size = available if size in (0, 0xFFFFFFFF) else min(size, available)
            return _Wave(channels, rate, bits, format_chunk, body, data_size)
        offset = body + size + (size & 1)
    return None


def _loud(samples: array[int], index: int, channels: int, threshold: int) -> bool:
    frame = index * channels
    return any(abs(samples[frame + c]) > threshold for c in range(channels))


def trim_silence(
    path: str | os.PathLike[str], *, threshold: int = DEFAULT_THRESHOLD
) -> Trimmed | None:
    """Trim ``path`` in place; None when it is not a 16-bit PCM WAV fsconf can read."""
    target = Path(path)
    try:
        blob = target.read_bytes()
    except OSError:
        return None
    wave = _parse(blob)
    if wave is None:
        return None
    frame_bytes = wave.channels * 2
    frames = wave.data_size // frame_bytes
    samples = array("h")
    samples.frombytes(blob[wave.data_offset : wave.data_offset + frames * frame_bytes])
    if sys.byteorder == "big":
        samples.byteswap()
    start = 0
    while start < frames and not _loud(samples, start, wave.channels, threshold):
        start += 1
    end = frames
    while end > start and not _loud(samples, end - 1, wave.channels, threshold):
        end -= 1
    kept = end - start
    if kept == frames:
        return Trimmed(frames, frames, wave.sample_rate, len(blob))  # nothing to trim: untouched
    data = blob[wave.data_offset + start * frame_bytes : wave.data_offset + end * frame_bytes]
    header = (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(wave.format_chunk) + 8 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(wave.format_chunk))
        + wave.format_chunk
        + b"data"
        + struct.pack("<I", len(data))
    )
    _replace(target, header + data)
    return Trimmed(frames, kept, wave.sample_rate, len(header) + len(data))


def _replace(target: Path, content: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=".trim-", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.chmod(temporary, target.stat().st_mode & 0o777)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = ["DEFAULT_THRESHOLD", "Trimmed", "trim_silence"]
