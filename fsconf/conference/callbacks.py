"""Twilio's callback parameter sets, exactly, per StatusCallbackEvent.

Theory of operation
-------------------
:data:`PARAMETER_SETS` is the spec's "Request Parameters" table turned
around: for each StatusCallbackEvent value, every name it may carry, in the
order fsconf sends them (the table's order). The signature sorts names anyway;
a fixed order makes the tests and the logs exact.

Additions the spec's table does not list, but Twilio sends:

* ``ParticipantLabel`` on participant events when the participant has a label;
* ``CallSidToCoach`` on participant events while the participant is coaching.

Conditional names: ``CallSidEndingConference`` and
``ParticipantLabelEndingConference`` only "if applicable" (a participant ended
it, and has a label); the participant names of an announcement only when it was
played to a participant who is still present.

A status callback is sent only when ``statusCallback`` is set and the event's
token is in ``statusCallbackEvent``. Only a sent callback takes a
SequenceNumber, so the numbers the application sees are 1, 2, 3... with no gap.
Recording callbacks (recordingStatusCallback) carry no SequenceNumber; the
deprecated eventCallbackUrl request (conference-record-end) is "Sent on: All",
so it takes one.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from fsconf.conference.effects import Callback
from fsconf.conference.memo import IdentityMemo
from fsconf.conference.model import (
    ConferenceState,
    HttpMethod,
    Participant,
    ReasonConferenceEnded,
    Recording,
    RecordingEvent,
    StatusCallbackToken,
)

# StatusCallbackEvent value -> the statusCallbackEvent word that enables it.
EVENT_TOKENS: Mapping[str, StatusCallbackToken] = MappingProxyType(
    {
        "conference-start": StatusCallbackToken.START,
        "conference-end": StatusCallbackToken.END,
        "participant-join": StatusCallbackToken.JOIN,
        "participant-leave": StatusCallbackToken.LEAVE,
        "participant-mute": StatusCallbackToken.MUTE,
        "participant-unmute": StatusCallbackToken.MUTE,
        "participant-hold": StatusCallbackToken.HOLD,
        "participant-unhold": StatusCallbackToken.HOLD,
        "participant-modify": StatusCallbackToken.MODIFY,
        "participant-speech-start": StatusCallbackToken.SPEAKER,
        "participant-speech-stop": StatusCallbackToken.SPEAKER,
        "announcement-end": StatusCallbackToken.ANNOUNCEMENT,
        "announcement-fail": StatusCallbackToken.ANNOUNCEMENT,
    }
)

COMMON = (
    "ConferenceSid",
    "FriendlyName",
    "AccountSid",
    "SequenceNumber",
    "Timestamp",
    "StatusCallbackEvent",
)
PARTICIPANT = (
    "CallSid",
    "Muted",
    "Hold",
    "Coaching",
    "EndConferenceOnExit",
    "StartConferenceOnEnter",
    "ParticipantLabel",
    "CallSidToCoach",
)
END = (
    "CallSidEndingConference",
    "ParticipantLabelEndingConference",
    "ReasonConferenceEnded",
    "Reason",
)
LEAVE = ("ParticipantCallStatus", "ReasonParticipantLeft")

PARAMETER_SETS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "conference-start": COMMON,
        "conference-end": COMMON + END,
        "participant-join": COMMON + PARTICIPANT,
        "participant-leave": COMMON + PARTICIPANT + LEAVE,
        "participant-mute": COMMON + PARTICIPANT,
        "participant-unmute": COMMON + PARTICIPANT,
        "participant-hold": COMMON + PARTICIPANT,
        "participant-unhold": COMMON + PARTICIPANT,
        "participant-modify": COMMON + PARTICIPANT,
        "participant-speech-start": COMMON + PARTICIPANT,
        "participant-speech-stop": COMMON + PARTICIPANT,
        "announcement-end": COMMON + PARTICIPANT + ("AnnounceUrl",),
        "announcement-fail": COMMON + PARTICIPANT + ("ReasonAnnouncementFailed", "AnnounceUrl"),
    }
)

RECORDING_PARAMETERS = (
    "AccountSid",
    "ConferenceSid",
    "RecordingSid",
    "RecordingUrl",
    "RecordingStatus",
    "RecordingDuration",
    "RecordingChannels",
    "RecordingStartTime",
    "RecordingSource",
)

RECORD_END_PARAMETERS = (
    "ConferenceSid",
    "FriendlyName",
    "AccountSid",
    "SequenceNumber",
    "Timestamp",
    "EventName",
    "RecordingUrl",
    "Duration",
    "RecordingFileSize",
)

# The human text of `Reason` on conference-end (the spec gives no wording).
END_REASON_TEXT: Mapping[ReasonConferenceEnded, str] = MappingProxyType(
    {
        ReasonConferenceEnded.VIA_API: "Conference ended via API",
        ReasonConferenceEnded.LAST_PARTICIPANT_KICKED: "Last participant was kicked",
        ReasonConferenceEnded.LAST_PARTICIPANT_LEFT: "Last participant left the conference",
        ReasonConferenceEnded.END_ON_EXIT_KICKED: (
            "Participant with endConferenceOnExit was kicked"
        ),
        ReasonConferenceEnded.END_ON_EXIT_LEFT: (
            "Participant with endConferenceOnExit left the conference"
        ),
    }
)

Params = tuple[tuple[str, str], ...]


_STAMPS: dict[int, str] = {}
"""Second since the epoch -> its RFC 2822 text: a storm's callbacks share a
handful of seconds, and formatting one costs more than the rest of the callback."""


def timestamp(now: datetime) -> str:
    """RFC 2822 as Twilio writes it: ``Thu, 01 Jun 2017 20:48:32 +0000``."""
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: the engine needs aware UTC times")
    second = math.floor(now.timestamp())
    text = _STAMPS.get(second)
    if text is None:
        text = email.utils.format_datetime(now.astimezone(UTC).replace(microsecond=0))
        if len(_STAMPS) >= 64:
            _STAMPS.clear()
        _STAMPS[second] = text
    return text


def text(value: bool) -> str:
    return "true" if value else "false"


def participant_params(participant: Participant) -> Params:
    return _participant_params(participant)


def _compute_participant_params(participant: Participant) -> Params:
    params: list[tuple[str, str]] = [
        ("CallSid", participant.call_sid),
        ("Muted", text(participant.muted)),
        ("Hold", text(participant.hold)),
        ("Coaching", text(participant.coaching)),
        ("EndConferenceOnExit", text(participant.end_conference_on_exit)),
        ("StartConferenceOnEnter", text(participant.start_conference_on_enter)),
    ]
    if participant.label is not None:
        params.append(("ParticipantLabel", participant.label))
    if participant.coaching and participant.call_sid_to_coach is not None:
        params.append(("CallSidToCoach", participant.call_sid_to_coach))
    return tuple(params)


# A participant object stays the same between talking events (see memo).
_participant_params: IdentityMemo[Participant, Params] = IdentityMemo(
    _compute_participant_params
)


def _wanted(tokens: frozenset[StatusCallbackToken]) -> frozenset[str]:
    """The StatusCallbackEvent values that ``tokens`` subscribe to."""
    return frozenset(name for name, token in EVENT_TOKENS.items() if token in tokens)


_wanted_events: IdentityMemo[frozenset[StatusCallbackToken], frozenset[str]] = IdentityMemo(
    _wanted
)


def wants(state: ConferenceState, event_name: str) -> bool:
    room = state.room
    if room is None or room.status_callback is None:
        return False
    if event_name not in EVENT_TOKENS:
        raise KeyError(event_name)
    return event_name in _wanted_events(room.status_callback_event)


def status_callback(
    state: ConferenceState,
    event_name: str,
    now: datetime,
    participant: Participant | None = None,
    extra: Params = (),
) -> tuple[ConferenceState, Callback | None]:
    """The callback for ``event_name`` if the application asked for it, with
    the next SequenceNumber taken from the state."""
    room = state.room
    if room is None or room.status_callback is None or not wants(state, event_name):
        return state, None
    state = state.with_sequence_number(state.sequence_number + 1)
    params: Params = (
        ("ConferenceSid", state.sid),
        ("FriendlyName", state.friendly_name),
        ("AccountSid", state.account_sid),
        ("SequenceNumber", str(state.sequence_number)),
        ("Timestamp", timestamp(now)),
        ("StatusCallbackEvent", event_name),
    )
    if participant is not None:
        params += participant_params(participant)
    params += extra
    return state, Callback("status", room.status_callback, room.status_callback_method, params)


def recording_url(state: ConferenceState, recording_sid: str) -> str:
    base = state.config.public_url.rstrip("/")
    return f"{base}/2010-04-01/Accounts/{state.account_sid}/Recordings/{recording_sid}"


def recording_callback(
    state: ConferenceState, recording: Recording, status: RecordingEvent, duration: int
) -> Callback | None:
    """recordingStatusCallback for ``status`` if it is in the asked events.

    An in-progress recording has no length yet: Twilio sends -1 there.
    """
    room = state.room
    if (
        room is None
        or room.recording_status_callback is None
        or status not in room.recording_status_callback_event
    ):
        return None
    params = (
        ("AccountSid", state.account_sid),
        ("ConferenceSid", state.sid),
        ("RecordingSid", recording.sid),
        ("RecordingUrl", recording_url(state, recording.sid)),
        ("RecordingStatus", status.value),
        ("RecordingDuration", str(duration)),
        ("RecordingChannels", "1"),
        ("RecordingStartTime", timestamp(recording.start_time)),
        ("RecordingSource", "Conference"),
    )
    return Callback(
        "recording", room.recording_status_callback, room.recording_status_callback_method, params
    )


def record_end_callback(
    state: ConferenceState, recording: Recording, duration: int, file_size: int, now: datetime
) -> tuple[ConferenceState, Callback | None]:
    """The deprecated eventCallbackUrl request: only without recordingStatusCallback."""
    room = state.room
    if room is None or room.event_callback_url is None or room.recording_status_callback:
        return state, None
    state = state.with_sequence_number(state.sequence_number + 1)
    params = (
        ("ConferenceSid", state.sid),
        ("FriendlyName", state.friendly_name),
        ("AccountSid", state.account_sid),
        ("SequenceNumber", str(state.sequence_number)),
        ("Timestamp", timestamp(now)),
        ("EventName", "conference-record-end"),
        ("RecordingUrl", recording_url(state, recording.sid)),
        ("Duration", str(duration)),
        ("RecordingFileSize", str(file_size)),
    )
    # The spec: "Twilio will make a POST request to this URL".
    return state, Callback("event", room.event_callback_url, HttpMethod.POST, params)
