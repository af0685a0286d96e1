"""What the REST API and the CLI may ask of live conferences.

Theory of operation
-------------------
The REST API and the CLI never touch FreeSWITCH or the engine directly: they
call a :class:`ConferenceControl`. Each method validates its arguments, asks
the conference's serial queue to act, and returns once FreeSWITCH has
*confirmed* the change with an event (the database is written from that event,
never from an API reply), or raises :class:`~fsconf.errors.TwilioApiError`
with Twilio's code and HTTP status (20404 unknown resource, 21xxx bad
parameters, 16025 duplicate label, 13240 coach target not present...).

Callers read the resulting rows from the store afterwards; the methods return
only what cannot be read back (the new CallSid of a dial-out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ParticipantUpdate:
    """The Participant resource's update parameters; None = leave unchanged."""

    muted: bool | None = None
    hold: bool | None = None
    hold_url: str | None = None
    hold_method: str | None = None
    announce_url: str | None = None
    announce_method: str | None = None
    wait_url: str | None = None
    wait_method: str | None = None
    beep_on_exit: bool | None = None
    end_conference_on_exit: bool | None = None
    coaching: bool | None = None
    call_sid_to_coach: str | None = None


@dataclass(frozen=True, slots=True)
class ParticipantCreate:
    """The Participant resource's create parameters (a dial-out that joins)."""

    from_: str
    to: str
    label: str | None = None
    timeout: int = 60
    beep: str = "true"
    muted: bool = False
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    wait_url: str | None = None
    wait_method: str = "POST"
    max_participants: int = 250
    conference_record: str = "do-not-record"
    conference_trim: str = "trim-silence"
    conference_status_callback: str | None = None
    conference_status_callback_method: str = "POST"
    conference_status_callback_event: tuple[str, ...] = ()
    conference_recording_status_callback: str | None = None
    conference_recording_status_callback_method: str = "POST"
    conference_recording_status_callback_event: tuple[str, ...] = ("completed",)
    coaching: bool = False
    call_sid_to_coach: str | None = None
    jitter_buffer_size: str = "large"
    time_limit: int | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_event: tuple[str, ...] = ("completed",)
    region: str | None = None


class ConferenceControl(Protocol):
    def end_conference(self, *, account_sid: str, conference_sid: str) -> None:
        """Status=completed: every participant continues to its Dial action."""

    def announce_conference(
        self, *, account_sid: str, conference_sid: str, url: str, method: str
    ) -> None:
        """AnnounceUrl on the Conference: play to the whole room."""

    def update_participant(
        self,
        *,
        account_sid: str,
        conference_sid: str,
        call_sid: str,
        update: ParticipantUpdate,
    ) -> None:
        """Mute, hold, announce, modify one participant."""

    def kick_participant(self, *, account_sid: str, conference_sid: str, call_sid: str) -> None:
        """DELETE: the call continues to its Dial action (participant_updated_via_api)."""

    def create_participant(
        self, *, account_sid: str, conference: str, create: ParticipantCreate
    ) -> str:
        """Dial out and join on answer; ``conference`` is a SID or a friendly name.

        Returns the new CallSid (the participant starts as queued).
        """

    def update_recording(
        self, *, account_sid: str, conference_sid: str, recording_sid: str, status: str
    ) -> None:
        """Status=paused|in-progress|stopped."""
