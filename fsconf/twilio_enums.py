"""Twilio's enumerations that both the TwiML parser and the conference engine use.

One definition each, values spelled as Twilio spells them: a ``<Conference
beep="onEnter">`` parsed by :mod:`fsconf.twiml` is the very ``Beep`` the
engine (:mod:`fsconf.conference`) acts on, with nothing to convert between
them. The TwiML-only ones (``Region``, ``DialRecord``, ...) stay in
:mod:`fsconf.twiml.verbs`, the engine-only ones (statuses, reasons) in
:mod:`fsconf.conference.model`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Beep",
    "HttpMethod",
    "JitterBufferSize",
    "Record",
    "RecordingEvent",
    "StatusCallbackToken",
    "Trim",
]


class HttpMethod(StrEnum):
    GET = "GET"
    POST = "POST"


class Beep(StrEnum):
    TRUE = "true"
    FALSE = "false"
    ON_ENTER = "onEnter"
    ON_EXIT = "onExit"

    @property
    def on_enter(self) -> bool:
        return self in (Beep.TRUE, Beep.ON_ENTER)

    @property
    def on_exit(self) -> bool:
        return self in (Beep.TRUE, Beep.ON_EXIT)

    @staticmethod
    def of(on_enter: bool, on_exit: bool) -> Beep:
        return _BEEPS[(on_enter, on_exit)]


_BEEPS = {
    (True, True): Beep.TRUE,
    (True, False): Beep.ON_ENTER,
    (False, True): Beep.ON_EXIT,
    (False, False): Beep.FALSE,
}


class JitterBufferSize(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    OFF = "off"


class Record(StrEnum):
    """``<Conference record>``."""

    DO_NOT_RECORD = "do-not-record"
    RECORD_FROM_START = "record-from-start"


class Trim(StrEnum):
    TRIM_SILENCE = "trim-silence"
    DO_NOT_TRIM = "do-not-trim"


class StatusCallbackToken(StrEnum):
    """The words of ``statusCallbackEvent``."""

    START = "start"
    END = "end"
    JOIN = "join"
    LEAVE = "leave"
    MUTE = "mute"
    HOLD = "hold"
    MODIFY = "modify"
    SPEAKER = "speaker"
    ANNOUNCEMENT = "announcement"


class RecordingEvent(StrEnum):
    """The words of ``recordingStatusCallbackEvent`` (and RecordingStatus)."""

    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    ABSENT = "absent"
