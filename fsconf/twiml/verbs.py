"""The immutable TwiML verb tree, its enumerations and its defaults tables.

Theory of operation
-------------------
A parsed document is a :class:`Response` holding a tuple of verbs; a
:class:`Dial` holds exactly one :class:`Conference`. Every node is a frozen,
slotted dataclass and keeps the ``line`` it came from, so the interpreter can
report an error against the customer's document long after parsing. Nothing
here refers to lxml: once parsed, a document is plain data that can be shared
between greenlets, compared in tests and logged.

Defaults live in **one table per element**, keyed by the attribute name as
Twilio spells it, holding the *raw* default text (``"false"``, ``"250"``) or
``None`` where the absence of the attribute is itself the value (no label, the
default hold music). The schema layer parses a missing attribute's default
with the same parser as a present one, so a default can never have a type or
range different from what a document could say, and the tables read like the
spec's tables (a test compares them).

Field values follow three rules: a boolean attribute becomes ``bool``; an
enumeration becomes a ``StrEnum`` member whose value is Twilio's spelling; a
URL is already resolved against the document URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

# Shared with the engine (one definition each); the TwiML names of two of them.
from fsconf.twilio_enums import Beep as Beep
from fsconf.twilio_enums import HttpMethod as HttpMethod
from fsconf.twilio_enums import JitterBufferSize as JitterBufferSize
from fsconf.twilio_enums import Record, StatusCallbackToken
from fsconf.twilio_enums import RecordingEvent as RecordingEvent
from fsconf.twilio_enums import Trim as Trim

# --- Enumerations (values are Twilio's spellings) ------------------------------

ConferenceRecord = Record
ConferenceEvent = StatusCallbackToken


class Region(StrEnum):
    US1 = "us1"
    IE1 = "ie1"
    DE1 = "de1"
    SG1 = "sg1"
    BR1 = "br1"
    AU1 = "au1"
    JP1 = "jp1"


class RejectReason(StrEnum):
    REJECTED = "rejected"
    BUSY = "busy"


class DialRecord(StrEnum):
    """<Dial record>: Twilio's current values plus the legacy true/false."""

    DO_NOT_RECORD = "do-not-record"
    RECORD_FROM_ANSWER = "record-from-answer"
    RECORD_FROM_RINGING = "record-from-ringing"
    RECORD_FROM_ANSWER_DUAL = "record-from-answer-dual"
    RECORD_FROM_RINGING_DUAL = "record-from-ringing-dual"
    TRUE = "true"
    FALSE = "false"


class RecordingTrack(StrEnum):
    BOTH = "both"
    INBOUND = "inbound"
    OUTBOUND = "outbound"


# --- Defaults tables ---------------------------------------------------------
# Raw spec text; None = "absent is the value". The keys are also the complete
# list of attributes each element accepts: anything else is refused.


def _table(entries: dict[str, str | None]) -> Mapping[str, str | None]:
    return MappingProxyType(entries)


RESPONSE_DEFAULTS: Final = _table({})

SAY_DEFAULTS: Final = _table({"voice": None, "language": None, "loop": "1"})

PLAY_DEFAULTS: Final = _table({"loop": "1", "digits": None})

PAUSE_DEFAULTS: Final = _table({"length": "1"})

REDIRECT_DEFAULTS: Final = _table({"method": "POST"})

HANGUP_DEFAULTS: Final = _table({})

REJECT_DEFAULTS: Final = _table({"reason": "rejected"})

DIAL_DEFAULTS: Final = _table(
    {
        "action": None,
        "method": "POST",
        "hangupOnStar": "false",
        "timeLimit": "14400",
        "record": "do-not-record",
        # callerId and timeout have no effect on a conference (spec example 7);
        # they are validated and kept so a Twilio app parses unchanged.
        "callerId": None,
        "timeout": "30",
        "answerOnBridge": "false",
        "ringTone": None,
        "recordingStatusCallback": None,
        "recordingStatusCallbackMethod": "POST",
        "recordingStatusCallbackEvent": "completed",
        "recordingTrack": "both",
        "recordingConfigurationId": None,
        "trim": "do-not-trim",
        "sequential": "false",
        "referUrl": None,
        "referMethod": "POST",
        "events": None,
        "passports": None,
    }
)

#: Equal to the attribute table of spec/twiml-conference.txt, plus
#: recordingConfigurationId, which the twilio helper library emits.
CONFERENCE_DEFAULTS: Final = _table(
    {
        "muted": "false",
        "beep": "true",
        "startConferenceOnEnter": "true",
        "endConferenceOnExit": "false",
        "participantLabel": None,
        "jitterBufferSize": "large",
        "waitUrl": None,
        "waitMethod": "POST",
        "maxParticipants": "250",
        "record": "do-not-record",
        "region": None,
        "trim": "trim-silence",
        "coach": None,
        "statusCallbackEvent": None,
        "statusCallback": None,
        "statusCallbackMethod": "POST",
        "recordingStatusCallback": None,
        "recordingStatusCallbackMethod": "POST",
        "recordingStatusCallbackEvent": "completed",
        "eventCallbackUrl": None,
        "recordingConfigurationId": None,
    }
)


# --- The tree ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    """Speak ``text``; SSML markup inside <Say> is reduced to its text."""

    text: str
    voice: str | None
    language: str | None
    loop: int  # 0 = until the call ends
    line: int


@dataclass(frozen=True, slots=True)
class Play:
    """Play ``url`` (audio), or send ``digits`` as DTMF, ``loop`` times."""

    url: str | None
    loop: int  # 0 = until the call ends
    digits: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Pause:
    length: int  # seconds
    line: int


@dataclass(frozen=True, slots=True)
class Redirect:
    url: str
    method: HttpMethod
    line: int


@dataclass(frozen=True, slots=True)
class Hangup:
    line: int


@dataclass(frozen=True, slots=True)
class Reject:
    reason: RejectReason
    line: int


@dataclass(frozen=True, slots=True)
class Conference:
    """The <Conference> noun: every attribute of the spec, typed."""

    room: str
    muted: bool
    beep: Beep
    start_conference_on_enter: bool
    end_conference_on_exit: bool
    participant_label: str | None
    jitter_buffer_size: JitterBufferSize
    wait_url: str | None  # None = default hold music, "" = silence
    wait_method: HttpMethod
    max_participants: int
    record: ConferenceRecord
    region: Region | None
    trim: Trim
    coach: str | None  # a Call SID
    status_callback_event: frozenset[ConferenceEvent] | None  # None = attribute absent
    status_callback: str | None
    status_callback_method: HttpMethod
    recording_status_callback: str | None
    recording_status_callback_method: HttpMethod
    recording_status_callback_event: frozenset[RecordingEvent]
    event_callback_url: str | None
    recording_configuration_id: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Dial:
    """<Dial> around exactly one <Conference> (the only noun fsconf runs)."""

    conference: Conference
    action: str | None
    method: HttpMethod
    hangup_on_star: bool
    time_limit: int  # seconds
    record: DialRecord
    caller_id: str | None  # no effect on a conference
    timeout: int  # no effect on a conference
    answer_on_bridge: bool
    ring_tone: str | None
    recording_status_callback: str | None
    recording_status_callback_method: HttpMethod
    recording_status_callback_event: frozenset[RecordingEvent]
    recording_track: RecordingTrack
    recording_configuration_id: str | None
    trim: Trim
    sequential: bool
    refer_url: str | None
    refer_method: HttpMethod
    events: str | None
    passports: str | None
    line: int


Verb = Say | Play | Pause | Redirect | Hangup | Reject | Dial


@dataclass(frozen=True, slots=True)
class Response:
    """A whole document: its verbs in order, and the URL it was fetched from."""

    verbs: tuple[Verb, ...]
    url: str
    line: int


@dataclass(frozen=True, slots=True)
class Audio:
    """A waitUrl/Play/voice URL that answered with audio instead of TwiML.

    The shell plays ``url`` directly (through FreeSWITCH's HTTP cache), so the
    body is not kept.
    """

    url: str
    media_type: str
