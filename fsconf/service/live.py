"""``ConferenceControl`` over live conferences (what the REST API calls).

Theory of operation
-------------------
Each request becomes an engine API input on the conference's serial queue.
The engine answers with FreeSWITCH commands and changes its state only when
FreeSWITCH confirms with an event (R9); this module then waits until the state
shows the change, so when a method returns the database already holds it.
A request the engine refuses raises :class:`TwilioApiError` with Twilio's code.

A HoldUrl or AnnounceUrl is fetched (signed with the account's auth token) and
resolved into what FreeSWITCH plays *before* the input is submitted
(:mod:`fsconf.service.media`): a TwiML document becomes a playlist, a failed
HoldUrl the configured hold media, a failed AnnounceUrl an announcement-fail.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import gevent

from fsconf.conference import events as engine_events
from fsconf.conference.model import ConferenceState, ConferenceStatus, HttpMethod
from fsconf.errors import TwilioApiError
from fsconf.esl import commands
from fsconf.service.conferences import ConferenceService, Room
from fsconf.service.control import ParticipantCreate, ParticipantUpdate
from fsconf.service.dialout import DialOut
from fsconf.service.media import MediaResolver, Target
from fsconf.store import models
from fsconf.store.db import transaction

RECORDING_ACTIONS = {"paused": "pause", "in-progress": "resume", "stopped": "stop"}
# Which row statuses each requested Status may start from, and where it ends.
RECORDING_FROM = {
    "paused": frozenset({"in-progress"}),
    "in-progress": frozenset({"paused"}),
    "stopped": frozenset({"in-progress", "paused"}),
}
RECORDING_DONE = {
    "paused": frozenset({"paused"}),
    "in-progress": frozenset({"in-progress"}),
    "stopped": frozenset({"stopped", "completed", "absent"}),
}


def _announce_id() -> str:
    # Not a stored SID (new_sid refuses "AN"): the id only travels in
    # {fsconf_announce=...} and must match conferences._ANNOUNCE_ID.
    return "AN" + secrets.token_hex(16)


def _method(value: str | None, default: HttpMethod) -> HttpMethod:
    return HttpMethod(value.upper()) if value else default


class LiveControl:
    """The real :class:`~fsconf.service.control.ConferenceControl`."""

    def __init__(
        self,
        service: ConferenceService,
        dialout: DialOut | None = None,
        media: MediaResolver | None = None,
    ) -> None:
        self.service = service
        self.dialout = dialout
        self.media = media or MediaResolver(
            sessions=service.sessions, hold_fallback=service.config.hold_media
        )

    def end_conference(self, *, account_sid: str, conference_sid: str) -> None:
        room = self.service.request(account_sid, conference_sid, engine_events.ApiEndConference())
        self.service.wait_until(
            room, lambda state: state.status is ConferenceStatus.COMPLETED, "the end"
        )

    def announce_conference(
        self, *, account_sid: str, conference_sid: str, url: str, method: str
    ) -> None:
        room = self.service.rooms.get(conference_sid)
        if room is None or room.state.account_sid != account_sid:
            raise TwilioApiError(20404, f"Conference {conference_sid} is not in progress", 404)
        announce = self._announce(
            Target(account_sid, conference_sid), url, _method(method, HttpMethod.POST)
        )
        self.service.request(account_sid, conference_sid, announce)

    def _announce(self, target: Target, url: str, method: HttpMethod) -> engine_events.ApiAnnounce:
        resolved = self.media.announcement(target, url, method.value)
        if isinstance(resolved, str):
            return engine_events.ApiAnnounce(
                _announce_id(), url, method, target.call_sid, media=resolved
            )
        return engine_events.ApiAnnounce(
            _announce_id(), url, method, target.call_sid, error=str(resolved)
        )

    def update_participant(
        self,
        *,
        account_sid: str,
        conference_sid: str,
        call_sid: str,
        update: ParticipantUpdate,
    ) -> None:
        room = self._room_with(account_sid, conference_sid, call_sid)
        target = Target(account_sid, conference_sid, call_sid)
        for event, confirmed in self._requests(target, update):
            self.service.request(account_sid, conference_sid, event)
            if confirmed is not None:
                self.service.wait_until(room, confirmed, f"{type(event).__name__} {call_sid}")

    def _requests(
        self, target: Target, update: ParticipantUpdate
    ) -> list[tuple[engine_events.ConferenceInput, Callable[[ConferenceState], bool] | None]]:
        call_sid = target.call_sid
        assert call_sid is not None
        wanted: list[
            tuple[engine_events.ConferenceInput, Callable[[ConferenceState], bool] | None]
        ] = []
        if update.muted is not None:
            muted = update.muted
            wanted.append(
                (
                    engine_events.ApiMute(call_sid, muted),
                    lambda state: _flag(state, call_sid, "muted") in (muted, None),
                )
            )
        if update.hold is not None:
            hold = update.hold
            hold_method = _method(update.hold_method, HttpMethod.GET)
            media = None
            if hold and update.hold_url:
                media = self.media.hold(target, update.hold_url, hold_method.value)
            wanted.append(
                (
                    engine_events.ApiHold(
                        call_sid, hold, update.hold_url, hold_method, media=media
                    ),
                    lambda state: _flag(state, call_sid, "hold") in (hold, None),
                )
            )
        if _modifies(update):
            wanted.append(
                (
                    engine_events.ApiModify(
                        call_sid,
                        beep_on_exit=update.beep_on_exit,
                        end_conference_on_exit=update.end_conference_on_exit,
                        coaching=update.coaching,
                        call_sid_to_coach=update.call_sid_to_coach,
                        wait_url=update.wait_url,
                        wait_method=_method(update.wait_method, HttpMethod.POST)
                        if update.wait_method
                        else None,
                    ),
                    None,
                )
            )
        if update.announce_url:
            method = _method(update.announce_method, HttpMethod.POST)
            wanted.append((self._announce(target, update.announce_url, method), None))
        return wanted

    def kick_participant(self, *, account_sid: str, conference_sid: str, call_sid: str) -> None:
        room = self._room_with(account_sid, conference_sid, call_sid)
        self.service.request(account_sid, conference_sid, engine_events.ApiKick(call_sid))
        self.service.wait_until(
            room, lambda state: state.find(call_sid) is None, f"the kick of {call_sid}"
        )

    def create_participant(
        self, *, account_sid: str, conference: str, create: ParticipantCreate
    ) -> str:
        if self.dialout is None:
            raise TwilioApiError(21220, "Dial-out is not configured in this fsconf", 400)
        # Answers once the rows exist (participant "queued"); the leg is
        # dialled in the background and joins on answer (fsconf.service.dialout).
        return self.dialout.create(account_sid=account_sid, conference=conference, create=create)

    def update_recording(
        self, *, account_sid: str, conference_sid: str, recording_sid: str, status: str
    ) -> None:
        action = RECORDING_ACTIONS.get(status)
        if action is None:
            raise TwilioApiError(21220, f"Invalid recording status {status!r}", 400)
        current, path = self._recording(account_sid, conference_sid, recording_sid)
        if current not in RECORDING_FROM[status]:
            # Twilio refuses a transition the recording is not in a state for
            # (pausing a completed recording, resuming one that is not paused).
            raise TwilioApiError(
                21220, f"Recording {recording_sid} is {current}: cannot set {status}", 400
            )
        command = commands.conference_recording_cmd(conference_sid, action, path)  # type: ignore[arg-type]
        reply = self.service.api_for(conference_sid)(command)
        if reply.is_error:
            raise TwilioApiError(21220, f"FreeSWITCH refused: {reply.body.strip()}", 400)
        self._wait_recording(account_sid, conference_sid, recording_sid, RECORDING_DONE[status])

    def _recording(
        self, account_sid: str, conference_sid: str, recording_sid: str
    ) -> tuple[str, str]:
        with transaction(self.service.sessions) as session:
            recording = session.get(models.Recording, recording_sid)
            if (
                recording is None
                or recording.account_sid != account_sid
                or recording.conference_sid != conference_sid
                or not recording.path
            ):
                raise TwilioApiError(20404, f"Recording {recording_sid} was not found", 404)
            return recording.status, recording.path

    def _wait_recording(
        self, account_sid: str, conference_sid: str, recording_sid: str, wanted: frozenset[str]
    ) -> None:
        """Until FreeSWITCH's event has moved the row (the DB follows events)."""
        changed = self.service.recordings_changed
        with gevent.Timeout(self.service.confirm_timeout, False):
            while self._recording(account_sid, conference_sid, recording_sid)[0] not in wanted:
                changed.wait(timeout=0.5)
            return
        raise TwilioApiError(20500, "FreeSWITCH did not confirm the recording change", 500)

    def _room_with(self, account_sid: str, conference_sid: str, call_sid: str) -> Room:
        room = self.service.rooms.get(conference_sid)
        if room is None or room.state.account_sid != account_sid:
            raise TwilioApiError(20404, f"Conference {conference_sid} is not in progress", 404)
        if room.state.find(call_sid) is None:
            raise TwilioApiError(20404, f"Participant {call_sid} was not found", 404)
        return room


def _modifies(update: ParticipantUpdate) -> bool:
    return any(
        value is not None
        for value in (
            update.beep_on_exit,
            update.end_conference_on_exit,
            update.coaching,
            update.call_sid_to_coach,
            update.wait_url,
        )
    )


def _flag(state: ConferenceState, call_sid: str, name: str) -> bool | None:
    participant = state.find(call_sid)
    return None if participant is None else bool(getattr(participant, name))
