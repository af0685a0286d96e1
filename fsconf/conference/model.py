"""The conference engine's state: settings in, one immutable snapshot out.

Theory of operation
-------------------
Everything here is a frozen dataclass or a ``StrEnum`` whose values are
Twilio's (or FreeSWITCH's) spellings, so a snapshot can be compared in a test,
logged, and handed between greenlets without copying.

* :class:`ParticipantSettings` is what one ``<Dial><Conference>`` asked for:
  every ``<Conference>`` attribute already typed and defaulted as the spec's
  table says, plus the ``<Dial>`` attributes that matter to a conference. The
  engine does not import the TwiML parser; the call layer builds this.
* :class:`RoomSettings` holds the room-wide attributes. The *first* participant
  sets them and later values are ignored (the spec says so for region,
  statusCallback and statusCallbackEvent; Twilio does the same for the rest).
* :class:`ConferenceState` is the whole conference: room settings, present
  participants in arrival order, departed ones (their final rows, and the join
  sequence of a rejoin), the SequenceNumber counter, the recording, pending
  announcements and the coach relations FreeSWITCH cannot show us (B16).

Invariants (checked by the property test): a present call appears once; a
PARKED participant exists only before the start and a MIXED one only after;
only a MIXED participant has a member id; labels are unique among present
participants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from fsconf.twilio_enums import Beep as Beep
from fsconf.twilio_enums import HttpMethod as HttpMethod
from fsconf.twilio_enums import JitterBufferSize as JitterBufferSize
from fsconf.twilio_enums import Record as Record
from fsconf.twilio_enums import RecordingEvent as RecordingEvent
from fsconf.twilio_enums import StatusCallbackToken as StatusCallbackToken
from fsconf.twilio_enums import Trim as Trim

# --- Enumerations (values are Twilio's spellings) ---------------------------------


class ConferenceStatus(StrEnum):
    INIT = "init"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"


class Placement(StrEnum):
    """Where a participant's audio is (DESIGN, "The participant model")."""

    PARKED = "PARKED"
    MIXED = "MIXED"


class ParticipantStatus(StrEnum):
    QUEUED = "queued"
    CONNECTING = "connecting"
    RINGING = "ringing"
    CONNECTED = "connected"
    COMPLETE = "complete"
    FAILED = "failed"


class ReasonConferenceEnded(StrEnum):
    VIA_API = "conference-ended-via-api"
    LAST_PARTICIPANT_KICKED = "last-participant-kicked"
    LAST_PARTICIPANT_LEFT = "last-participant-left"
    END_ON_EXIT_KICKED = "participant-with-end-conference-on-exit-kicked"
    END_ON_EXIT_LEFT = "participant-with-end-conference-on-exit-left"


class ReasonParticipantLeft(StrEnum):
    CONFERENCE_ENDED_VIA_API = "conference_ended_via_api"
    MODERATOR_ENDED_CONFERENCE = "moderator_ended_conference"
    UPDATED_VIA_API = "participant_updated_via_api"
    HUNG_UP = "participant_hung_up"
    ADD_FAILED = "participant_add_failed"


class Departure(StrEnum):
    """Why a participant leaves; the engine's tables map it to Twilio's words."""

    HUNG_UP = "hung-up"  # the caller hung up
    LEFT = "left"  # left the room with the call up: hangupOnStar, timeLimit
    KICKED = "kicked"  # removed via the API (or a kick from the switch)
    ENDED_BY_MODERATOR = "ended-by-moderator"  # an endConferenceOnExit participant left
    ENDED_VIA_API = "ended-via-api"  # the conference was ended via the API
    ADD_FAILED = "add-failed"  # the room refused the join, or the wait audio failed


# --- Configuration ------------------------------------------------------------------

# Twilio's default waitUrl is its hold-music twimlet; fsconf plays local music
# instead, so "no waitUrl" is carried as None and the call layer picks the music.
DEFAULT_WAIT_URL: str | None = None

# Twilio's default Dial timeLimit: 4 hours.
DEFAULT_TIME_LIMIT = 14400


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Site settings the engine needs to write FreeSWITCH commands.

    ``enter_sound``/``exit_sound`` go through ``multiset``, whose value check
    refuses ``,`` and ``;`` today, so ``tone_stream://%(200,0,800)`` cannot be
    used until ``fsconf.esl.commands.check_var`` allows them (reported); a file
    is the default. ``hold_media`` must be playable: a native hold without
    playable audio lets the member keep hearing the room (B10).
    """

    profile: str = "fsconf"
    enter_sound: str = "/usr/share/freeswitch/sounds/fsconf/beep-enter.wav"
    exit_sound: str = "/usr/share/freeswitch/sounds/fsconf/beep-exit.wav"
    hold_media: str = "tone_stream://%(1000,500,440);loops=-1"
    recordings_dir: str = "/var/lib/fsconf/recordings"
    public_url: str = "http://127.0.0.1:8080"


# --- Inputs: what one <Dial><Conference> asked for --------------------------------


@dataclass(frozen=True, slots=True)
class ParticipantSettings:
    """Every ``<Conference>`` attribute, typed, with the spec's defaults, and the
    ``<Dial>`` attributes that act on a conference (callerId and timeout have no
    effect there, says the spec)."""

    muted: bool = False
    beep: Beep = Beep.TRUE
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    participant_label: str | None = None
    jitter_buffer_size: JitterBufferSize = JitterBufferSize.LARGE
    wait_url: str | None = DEFAULT_WAIT_URL
    wait_method: HttpMethod = HttpMethod.POST
    max_participants: int = 250
    record: Record = Record.DO_NOT_RECORD
    region: str | None = None
    trim: Trim = Trim.TRIM_SILENCE
    coach: str | None = None
    status_callback_event: frozenset[StatusCallbackToken] = frozenset()
    status_callback: str | None = None
    status_callback_method: HttpMethod = HttpMethod.POST
    recording_status_callback: str | None = None
    recording_status_callback_method: HttpMethod = HttpMethod.POST
    recording_status_callback_event: frozenset[RecordingEvent] = frozenset(
        {RecordingEvent.COMPLETED}
    )
    event_callback_url: str | None = None
    # <Dial> attributes
    action: str | None = None
    method: HttpMethod = HttpMethod.POST
    hangup_on_star: bool = False
    time_limit: int = DEFAULT_TIME_LIMIT


@dataclass(frozen=True, slots=True)
class RoomSettings:
    """Room-wide attributes: the first participant's values win."""

    max_participants: int
    region: str | None
    record: Record
    trim: Trim
    status_callback: str | None
    status_callback_method: HttpMethod
    status_callback_event: frozenset[StatusCallbackToken]
    recording_status_callback: str | None
    recording_status_callback_method: HttpMethod
    recording_status_callback_event: frozenset[RecordingEvent]
    event_callback_url: str | None

    @staticmethod
    def from_settings(settings: ParticipantSettings) -> RoomSettings:
        return RoomSettings(
            max_participants=settings.max_participants,
            region=settings.region,
            record=settings.record,
            trim=settings.trim,
            status_callback=settings.status_callback,
            status_callback_method=settings.status_callback_method,
            status_callback_event=settings.status_callback_event,
            recording_status_callback=settings.recording_status_callback,
            recording_status_callback_method=settings.recording_status_callback_method,
            recording_status_callback_event=settings.recording_status_callback_event,
            event_callback_url=settings.event_callback_url,
        )


# --- State --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Participant:
    """One join of one call. Keyed by (conference sid, call sid, join sequence);
    ``member_id`` is informational because FreeSWITCH reuses it on rejoin (B14)."""

    call_sid: str
    call_uuid: str
    join_sequence: int
    settings: ParticipantSettings
    placement: Placement
    status: ParticipantStatus = ParticipantStatus.CONNECTED
    member_id: int | None = None
    muted: bool = False
    hold: bool = False
    coaching: bool = False
    call_sid_to_coach: str | None = None
    end_conference_on_exit: bool = False
    beep: Beep = Beep.TRUE
    wait_url: str | None = None
    wait_method: HttpMethod = HttpMethod.POST
    hold_url: str | None = None
    hold_method: HttpMethod = HttpMethod.GET
    # The resolved hold media (ApiHold.media), re-sent if the hold waits for add-member.
    hold_media: str | None = None
    # A leave we asked for (kick, time limit): confirmed by del-member.
    pending_leave: Departure | None = None
    # CHANNEL_HANGUP came before del-member (B2.3: a hangup sent in the room).
    hung_up: bool = False
    # Whether its join carried +flags{mute}: a mute asked while it was parked or
    # joining is sent once add-member gives us a member id.
    joined_muted: bool = False

    @property
    def label(self) -> str | None:
        return self.settings.participant_label

    @property
    def start_conference_on_enter(self) -> bool:
        return self.settings.start_conference_on_enter

    @property
    def joining(self) -> bool:
        """In the room as far as we know, but add-member has not come yet."""
        return self.placement is Placement.MIXED and self.member_id is None

    @property
    def timer_id(self) -> str:
        return f"{self.call_sid}/{self.join_sequence}/time-limit"


@dataclass(frozen=True, slots=True)
class Recording:
    """The conference recording (record-from-start), once FreeSWITCH started it."""

    sid: str
    path: str
    start_time: datetime
    status: RecordingEvent = RecordingEvent.IN_PROGRESS


@dataclass(frozen=True, slots=True)
class Announcement:
    """A ``conference play`` with ``{fsconf_announce=<id>}``, until its done event."""

    announce_id: str
    url: str
    call_sid: str | None


@dataclass(frozen=True, slots=True)
class Ending:
    """How the conference ended (the conference-end parameters)."""

    reason: ReasonConferenceEnded
    call_sid: str | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class ConferenceState:
    sid: str
    account_sid: str
    friendly_name: str
    config: EngineConfig = field(default_factory=EngineConfig)
    status: ConferenceStatus = ConferenceStatus.INIT
    room: RoomSettings | None = None
    participants: tuple[Participant, ...] = ()
    departed: tuple[Participant, ...] = ()
    sequence_number: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    ending: Ending | None = None
    # `conference <sid> record` was sent (when the first two members are bridged).
    record_requested: bool = False
    recording: Recording | None = None
    announcements: tuple[Announcement, ...] = ()
    # (coach member id, other member id) pairs set with `relate ... nospeak`.
    relations: frozenset[tuple[int, int]] = frozenset()

    def with_sequence_number(self, sequence_number: int) -> ConferenceState:
        """This state with another SequenceNumber: what ``dataclasses.replace``
        makes (4.0 µs), in 1.4 µs (every status callback takes a number).

        Field by field, with the setter in a local: a frozen dataclass's own
        ``__init__`` looks ``object.__setattr__`` up for each of the sixteen
        (2.1 µs). tests/conference/test_model.py checks that every field is
        copied."""
        state = _new(ConferenceState)
        put = _set
        put(state, "sid", self.sid)
        put(state, "account_sid", self.account_sid)
        put(state, "friendly_name", self.friendly_name)
        put(state, "config", self.config)
        put(state, "status", self.status)
        put(state, "room", self.room)
        put(state, "participants", self.participants)
        put(state, "departed", self.departed)
        put(state, "sequence_number", sequence_number)
        put(state, "start_time", self.start_time)
        put(state, "end_time", self.end_time)
        put(state, "ending", self.ending)
        put(state, "record_requested", self.record_requested)
        put(state, "recording", self.recording)
        put(state, "announcements", self.announcements)
        put(state, "relations", self.relations)
        return state

    def find(self, call_sid: str) -> Participant | None:
        for participant in self.participants:
            if participant.call_sid == call_sid:
                return participant
        return None

    def has_departed(self, call_sid: str) -> bool:
        return any(p.call_sid == call_sid for p in self.departed)

    @property
    def room_confirmed(self) -> bool:
        """FreeSWITCH's room exists: some member's add-member has come (B9)."""
        return any(p.member_id is not None for p in self.participants)


_new = object.__new__
_set = object.__setattr__


def new_conference(
    sid: str, account_sid: str, friendly_name: str, config: EngineConfig | None = None
) -> ConferenceState:
    """A conference nobody has entered yet; the shell mints the sid."""
    return ConferenceState(
        sid=sid,
        account_sid=account_sid,
        friendly_name=friendly_name,
        config=config or EngineConfig(),
    )
