"""A recording stand-in for :class:`fsconf.service.control.ConferenceControl`.

It records every call and then changes the rows the way the real control
does once FreeSWITCH has confirmed the change (participant muted, conference
completed, new participant queued, ...), so the API's "call the control, read
the rows again" path is exercised end to end.

It exists only until the lead's real control lands; the API tests take it
through the ``control`` fixture, so swapping it is a one-line change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fsconf.errors import TwilioApiError
from fsconf.service.control import ParticipantCreate, ParticipantUpdate
from fsconf.store import repositories as repo
from fsconf.store.db import transaction
from fsconf.store.ids import call_sid_from_uuid, is_sid
from fsconf.store.models import Participant


@dataclass
class RecordedCall:
    method: str
    kwargs: dict[str, Any]


def _not_found(what: str) -> TwilioApiError:
    return TwilioApiError(20404, f"{what} not found", 404)


@dataclass
class FakeControl:
    session_factory: sessionmaker[Session]
    calls: list[RecordedCall] = field(default_factory=list)
    #: Raised (once) by the next call instead of acting, to test error paths.
    fail_next: TwilioApiError | None = None

    def _record(self, name: str, /, **kwargs: Any) -> None:
        self.calls.append(RecordedCall(name, kwargs))
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    # --- conferences ---------------------------------------------------------

    def _conference(self, session: Session, account_sid: str, sid: str) -> Any:
        conference = repo.get_conference(session, sid=sid)
        if conference is None or conference.account_sid != account_sid:
            raise _not_found(f"conference {sid}")
        return conference

    def end_conference(self, *, account_sid: str, conference_sid: str) -> None:
        self._record("end_conference", account_sid=account_sid, conference_sid=conference_sid)
        with transaction(self.session_factory) as session:
            conference = self._conference(session, account_sid, conference_sid)
            if conference.status == "completed":
                return
            for participant in repo.list_participants(session, conference_sid=conference_sid):
                repo.mark_participant_left(
                    session, conference_sid=conference_sid, call_sid=participant.call_sid
                )
            repo.end_conference(session, sid=conference_sid, reason="conference-ended-via-api")

    def announce_conference(
        self, *, account_sid: str, conference_sid: str, url: str, method: str
    ) -> None:
        self._record(
            "announce_conference",
            account_sid=account_sid,
            conference_sid=conference_sid,
            url=url,
            method=method,
        )
        with transaction(self.session_factory) as session:
            self._conference(session, account_sid, conference_sid)

    # --- participants ---------------------------------------------------------

    def _participant(self, session: Session, conference_sid: str, call_sid: str) -> Participant:
        participant = repo.get_participant(
            session, conference_sid=conference_sid, call_sid=call_sid
        )
        if participant is None or not participant.present:
            raise _not_found(f"participant {call_sid}")
        return participant

    def update_participant(
        self, *, account_sid: str, conference_sid: str, call_sid: str, update: ParticipantUpdate
    ) -> None:
        self._record(
            "update_participant",
            account_sid=account_sid,
            conference_sid=conference_sid,
            call_sid=call_sid,
            update=update,
        )
        changes = {
            name: getattr(update, name)
            for name in (
                "muted",
                "hold",
                "hold_url",
                "hold_method",
                "wait_url",
                "wait_method",
                "end_conference_on_exit",
                "coaching",
                "call_sid_to_coach",
            )
            if getattr(update, name) is not None
        }
        with transaction(self.session_factory) as session:
            self._conference(session, account_sid, conference_sid)
            self._participant(session, conference_sid, call_sid)
            if update.call_sid_to_coach is not None:
                # Twilio's 13240: the coached call must be in the conference.
                target = repo.get_participant(
                    session, conference_sid=conference_sid, call_sid=update.call_sid_to_coach
                )
                if target is None or not target.present:
                    raise TwilioApiError(13240, "CallSidToCoach is not in the conference", 400)
            repo.update_participant(
                session, conference_sid=conference_sid, call_sid=call_sid, **changes
            )

    def kick_participant(self, *, account_sid: str, conference_sid: str, call_sid: str) -> None:
        self._record(
            "kick_participant",
            account_sid=account_sid,
            conference_sid=conference_sid,
            call_sid=call_sid,
        )
        with transaction(self.session_factory) as session:
            self._conference(session, account_sid, conference_sid)
            self._participant(session, conference_sid, call_sid)
            repo.mark_participant_left(session, conference_sid=conference_sid, call_sid=call_sid)

    def create_participant(
        self, *, account_sid: str, conference: str, create: ParticipantCreate
    ) -> str:
        self._record(
            "create_participant", account_sid=account_sid, conference=conference, create=create
        )
        call_sid = call_sid_from_uuid(uuid.uuid4())
        with transaction(self.session_factory) as session:
            if is_sid(conference, "CF"):
                row = self._conference(session, account_sid, conference)
            else:
                row, _created = repo.get_or_create_active_conference(
                    session,
                    account_sid=account_sid,
                    friendly_name=conference,
                    max_participants=create.max_participants,
                )
            if create.label is not None and repo.get_participant_by_label(
                session, conference_sid=row.sid, label=create.label
            ):
                raise TwilioApiError(16025, f"label {create.label!r} is already in use", 400)
            repo.create_call(
                session,
                sid=call_sid,
                account_sid=account_sid,
                from_=create.from_,
                to=create.to,
                direction="outbound-api",
                status="queued",
            )
            repo.add_participant(
                session,
                conference_sid=row.sid,
                call_sid=call_sid,
                label=create.label,
                status="queued",
                muted=create.muted,
                coaching=create.coaching,
                call_sid_to_coach=create.call_sid_to_coach,
                start_conference_on_enter=create.start_conference_on_enter,
                end_conference_on_exit=create.end_conference_on_exit,
                beep=create.beep,
                wait_url=create.wait_url,
                wait_method=create.wait_method,
                jitter_buffer_size=create.jitter_buffer_size,
            )
        return call_sid

    # --- recordings ---------------------------------------------------------------

    def update_recording(
        self, *, account_sid: str, conference_sid: str, recording_sid: str, status: str
    ) -> None:
        self._record(
            "update_recording",
            account_sid=account_sid,
            conference_sid=conference_sid,
            recording_sid=recording_sid,
            status=status,
        )
        with transaction(self.session_factory) as session:
            recording = repo.get_recording(session, sid=recording_sid)
            if recording is None or recording.account_sid != account_sid:
                raise _not_found(f"recording {recording_sid}")
            repo.update_recording(session, sid=recording_sid, status=status)
