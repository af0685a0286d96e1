"""Inputs of the conference engine: FreeSWITCH facts, call facts, API requests.

Theory of operation
-------------------
Each input is a frozen dataclass. The shell turns what it saw into one of
them: a ``conference::maintenance`` event (mapped by its ``Unique-ID`` to our
CallSid, never by member id), a channel event, a timer, or a REST/CLI request.
The engine never sees ESL headers, so it cannot depend on their quirks; the
shell has already corrected what needs correcting (for instance the doubled
lengths of play-file-done, B6, are simply not passed on).

API requests say what the user asked for. The engine answers them with
commands; the state changes only when FreeSWITCH confirms (DESIGN, data flow 6),
except for a PARKED participant, which has no member to confirm anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsconf.conference.model import HttpMethod, ParticipantSettings

# --- the call layer ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParticipantArrived:
    """A call runs ``<Dial><Conference>`` for this conference."""

    call_sid: str
    call_uuid: str
    account_sid: str
    friendly_name: str
    settings: ParticipantSettings


@dataclass(frozen=True, slots=True)
class CallHungUp:
    """CHANNEL_HANGUP of a participant's channel."""

    call_sid: str
    cause: str = "NORMAL_CLEARING"


@dataclass(frozen=True, slots=True)
class JoinRefused:
    """The ``conference`` app returned without ``conference_member_id``: the
    room was full (B11). FreeSWITCH sends no event for it."""

    call_sid: str


@dataclass(frozen=True, slots=True)
class WaitAudioFailed:
    """The waitUrl of a PARKED participant could not be fetched or played."""

    call_sid: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the engine asked for (see ``StartTimer``) expired."""

    timer_id: str


@dataclass(frozen=True, slots=True)
class MembersVanished:
    """Reconciliation found these calls gone from the conference while nobody
    was watching (the event socket was down, FreeSWITCH or fsconf restarted).

    ``calls`` is ``(call sid, call still up)`` in the order to report them: a
    call that is no longer in ``show channels`` hung up; one that is still up
    left the room (a kick or hangup-on-star whose events were lost). They are
    handled as one step, so that a conference that vanished whole reads as its
    callers hanging up, not as a moderator ending it for the others.
    """

    calls: tuple[tuple[str, bool], ...]


# --- FreeSWITCH conference::maintenance ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberAdded:
    """add-member"""

    call_sid: str
    member_id: int


@dataclass(frozen=True, slots=True)
class MemberDeleted:
    """del-member; ``hangup_cause`` is present only when the channel was already
    hung up (surprise 14)."""

    call_sid: str
    member_id: int
    hangup_cause: str | None = None


@dataclass(frozen=True, slots=True)
class MemberKicked:
    """kick-member or hup-member (they precede del-member)."""

    call_sid: str
    member_id: int


@dataclass(frozen=True, slots=True)
class StartTalking:
    call_sid: str


@dataclass(frozen=True, slots=True)
class StopTalking:
    call_sid: str


@dataclass(frozen=True, slots=True)
class MemberMuted:
    """mute-member"""

    call_sid: str


@dataclass(frozen=True, slots=True)
class MemberUnmuted:
    """unmute-member"""

    call_sid: str


@dataclass(frozen=True, slots=True)
class MemberHeld:
    """hold-member"""

    call_sid: str


@dataclass(frozen=True, slots=True)
class MemberUnheld:
    """unhold-member"""

    call_sid: str


@dataclass(frozen=True, slots=True)
class PlayFileDone:
    """play-file-done / play-file-member-done carrying ``fsconf_announce`` (B5)."""

    announce_id: str


@dataclass(frozen=True, slots=True)
class PlayFailed:
    """``conference play`` answered ``-ERR`` (the member variant sends no event, B7)."""

    announce_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    """start-recording; the shell mints the RecordingSid. ``error`` is the
    event's ``Error`` header (the file could not be opened)."""

    path: str
    recording_sid: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RecordingStopped:
    """stop-recording with ``Milliseconds-Elapsed`` and ``Record-File-Size``."""

    path: str
    milliseconds_elapsed: int | None
    file_size: int | None
    error: str | None = None


# --- API requests (REST and CLI) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiMute:
    call_sid: str
    muted: bool


@dataclass(frozen=True, slots=True)
class ApiHold:
    call_sid: str
    hold: bool
    hold_url: str | None = None
    hold_method: HttpMethod = HttpMethod.GET
    # What FreeSWITCH plays, already resolved by the shell (fsconf.service.media:
    # a TwiML HoldUrl becomes a playlist); None: the URL through mod_http_cache.
    media: str | None = None


@dataclass(frozen=True, slots=True)
class ApiAnnounce:
    """AnnounceUrl on a conference (``call_sid`` None) or a participant.

    ``media`` is what FreeSWITCH plays; by default the URL through
    mod_http_cache. The call layer may resolve a TwiML AnnounceUrl itself.
    """

    announce_id: str
    url: str
    method: HttpMethod = HttpMethod.POST
    call_sid: str | None = None
    media: str | None = None
    # The AnnounceUrl could not be fetched or used (fsconf.service.media): play
    # nothing, report announcement-fail with this ReasonAnnouncementFailed.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ApiModify:
    """A participant update; ``None`` means "not in the request"."""

    call_sid: str
    beep_on_exit: bool | None = None
    end_conference_on_exit: bool | None = None
    coaching: bool | None = None
    call_sid_to_coach: str | None = None
    wait_url: str | None = None
    wait_method: HttpMethod | None = None


@dataclass(frozen=True, slots=True)
class ApiKick:
    call_sid: str


@dataclass(frozen=True, slots=True)
class ApiEndConference:
    """Conference update ``Status=completed``."""


ConferenceInput = (
    ParticipantArrived
    | CallHungUp
    | JoinRefused
    | WaitAudioFailed
    | TimerFired
    | MembersVanished
    | MemberAdded
    | MemberDeleted
    | MemberKicked
    | StartTalking
    | StopTalking
    | MemberMuted
    | MemberUnmuted
    | MemberHeld
    | MemberUnheld
    | PlayFileDone
    | PlayFailed
    | RecordingStarted
    | RecordingStopped
    | ApiMute
    | ApiHold
    | ApiAnnounce
    | ApiModify
    | ApiKick
    | ApiEndConference
)
