"""Translate between the outside world's vocabularies and the engine's.

* TwiML (``fsconf.twiml``) ``<Dial><Conference>`` -> the engine's
  :class:`~fsconf.conference.model.ParticipantSettings`. The two packages keep
  their own enumerations on purpose (each is pure and testable alone); the
  values are the same Twilio spellings, so the mapping is by value.
* FreeSWITCH ``conference::maintenance`` events -> engine inputs, keyed by the
  ``Unique-ID`` turned into our CallSid (never by member id, B14).

Both directions are pure functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from fsconf.conference import events as engine_events
from fsconf.conference.model import ParticipantSettings
from fsconf.esl.frames import Event
from fsconf.store.ids import call_sid_from_uuid

if TYPE_CHECKING:
    from fsconf.twiml import Conference, Dial

ROOM_SUBCLASS = "conference::maintenance"


_SETTINGS: dict[ParticipantSettings, ParticipantSettings] = {}
"""Equal settings -> one shared object (they are immutable)."""
_SETTINGS_MAX = 4096


def participant_settings(dial: Dial, noun: Conference) -> ParticipantSettings:
    """What one ``<Dial><Conference>`` asked for, in the engine's types.

    Callers of one application send the same document: each participant gets
    the one settings object its equals share, not its own (with its two
    frozensets, ~1.2 KB for as long as the conference keeps the participant,
    departed ones included: memory per participant).
    """
    settings = _settings(dial, noun)
    shared = _SETTINGS.get(settings)
    if shared is not None:
        return shared
    if len(_SETTINGS) >= _SETTINGS_MAX:
        _SETTINGS.clear()
    _SETTINGS[settings] = settings
    return settings


def _settings(dial: Dial, noun: Conference) -> ParticipantSettings:
    events = noun.status_callback_event or frozenset()
    return ParticipantSettings(
        muted=noun.muted,
        beep=noun.beep,
        start_conference_on_enter=noun.start_conference_on_enter,
        end_conference_on_exit=noun.end_conference_on_exit,
        participant_label=noun.participant_label,
        jitter_buffer_size=noun.jitter_buffer_size,
        wait_url=noun.wait_url,
        wait_method=noun.wait_method,
        max_participants=noun.max_participants,
        record=noun.record,
        region=noun.region.value if noun.region is not None else None,
        trim=noun.trim,
        coach=noun.coach,
        status_callback_event=frozenset(events),
        status_callback=noun.status_callback,
        status_callback_method=noun.status_callback_method,
        recording_status_callback=noun.recording_status_callback,
        recording_status_callback_method=noun.recording_status_callback_method,
        recording_status_callback_event=frozenset(noun.recording_status_callback_event),
        event_callback_url=noun.event_callback_url,
        action=dial.action,
        method=dial.method,
        hangup_on_star=dial.hangup_on_star,
        time_limit=dial.time_limit,
    )


# --- FreeSWITCH events -> engine inputs ----------------------------------------------


def room_of(event: Event) -> str | None:
    """The ConferenceSid a conference event belongs to.

    ``conference_sid`` is on every event of a room whose creating channel set
    ``confvar_conference_sid`` (B2.1); the room name is the same SID anyway,
    so Conference-Name is the fallback.
    """
    if event.subclass != ROOM_SUBCLASS:
        return None
    sid = event.get("conference_sid") or event.get("Conference-Name") or ""
    return sid if sid.startswith("CF") and len(sid) == 34 else None


_CALL_SIDS: dict[str, str | None] = {}
"""Unique-ID -> CallSid (None: not a channel UUID). A channel sends many events."""
_CALL_SIDS_MAX = 8192


def _call_sid(event: Event) -> str | None:
    uuid = event.unique_id
    if not uuid:
        return None
    if uuid in _CALL_SIDS:
        return _CALL_SIDS[uuid]
    try:
        call_sid: str | None = call_sid_from_uuid(uuid)
    except ValueError:
        call_sid = None
    if len(_CALL_SIDS) >= _CALL_SIDS_MAX:
        _CALL_SIDS.clear()
    _CALL_SIDS[uuid] = call_sid
    return call_sid


def _member_id(event: Event) -> int:
    return int(event.get("Member-ID") or "0")


def _int_or_none(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _added(event: Event, call_sid: str) -> engine_events.ConferenceInput:
    return engine_events.MemberAdded(call_sid, _member_id(event))


def _deleted(event: Event, call_sid: str) -> engine_events.ConferenceInput:
    return engine_events.MemberDeleted(call_sid, _member_id(event), event.get("Hangup-Cause"))


def _kicked(event: Event, call_sid: str) -> engine_events.ConferenceInput:
    return engine_events.MemberKicked(call_sid, _member_id(event))


MEMBER_ACTIONS: Mapping[str, Callable[[Event, str], engine_events.ConferenceInput]] = {
    "add-member": _added,
    "del-member": _deleted,
    "kick-member": _kicked,
    "hup-member": _kicked,
    "start-talking": lambda event, call_sid: engine_events.StartTalking(call_sid),
    "stop-talking": lambda event, call_sid: engine_events.StopTalking(call_sid),
    "mute-member": lambda event, call_sid: engine_events.MemberMuted(call_sid),
    "unmute-member": lambda event, call_sid: engine_events.MemberUnmuted(call_sid),
    "hold-member": lambda event, call_sid: engine_events.MemberHeld(call_sid),
    "unhold-member": lambda event, call_sid: engine_events.MemberUnheld(call_sid),
}
"""Actions about one member, which carry its channel's Unique-ID."""

PLAY_DONE_ACTIONS = frozenset({"play-file-done", "play-file-member-done"})


def engine_input(
    event: Event, mint_recording_sid: Callable[[], str]
) -> engine_events.ConferenceInput | None:
    """The engine input for one conference event, or None when it has none."""
    action = event.action or ""
    maker = MEMBER_ACTIONS.get(action)
    if maker is not None:
        call_sid = _call_sid(event)
        return maker(event, call_sid) if call_sid else None
    if action in PLAY_DONE_ACTIONS:
        announce_id = event.get("fsconf_announce")
        # Enter/exit sounds also end in play-file-done (B8): only ours count.
        return engine_events.PlayFileDone(announce_id) if announce_id else None
    if action == "start-recording":
        return engine_events.RecordingStarted(
            event.get("Path") or "", mint_recording_sid(), event.get("Error")
        )
    if action == "stop-recording":
        return engine_events.RecordingStopped(
            event.get("Path") or "",
            _int_or_none(event.get("Milliseconds-Elapsed")),
            _int_or_none(event.get("Record-File-Size")),
            event.get("Error"),
        )
    return None
