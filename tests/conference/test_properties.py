"""Random input sequences never produce an invalid state.

Inputs are drawn for a handful of calls, mostly plausible ones (the driver
knows who is present), some not: an impossible input must raise
TransitionError or TwilioApiError and change nothing.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from fsconf.conference import events as ev
from fsconf.conference.effects import (
    Callback,
    RecordingFinished,
    SendApi,
    StoreConference,
    StoreParticipant,
)
from fsconf.conference.engine import participant_row
from fsconf.conference.model import (
    ConferenceState,
    ConferenceStatus,
    ParticipantSettings,
    Placement,
    Record,
    RecordingEvent,
    StatusCallbackToken,
)
from fsconf.errors import TransitionError, TwilioApiError
from tests.conference.support import ACCOUNT, NAME, SID, Driver, call_sid, uuid

CALLS = 4
KINDS = (
    "arrive",
    "added",
    "deleted",
    "deleted-hangup",
    "hangup",
    "refused",
    "talk",
    "quiet",
    "muted",
    "unmuted",
    "held",
    "unheld",
    "api-mute",
    "api-hold",
    "api-kick",
    "api-modify",
    "timer",
    "api-end",
    "rec-start",
    "rec-stop",
    "wait-failed",
    "announce",
    "announce-done",
)

participant_settings = st.builds(
    ParticipantSettings,
    muted=st.booleans(),
    start_conference_on_enter=st.booleans(),
    end_conference_on_exit=st.booleans(),
    participant_label=st.sampled_from([None, "a", "b"]),
    max_participants=st.integers(2, 4),
    record=st.sampled_from(list(Record)),
    coach=st.sampled_from([None, None, None, None, call_sid(1), call_sid(2)]),
    status_callback=st.just("https://app.example.com/cb"),
    status_callback_event=st.just(frozenset(StatusCallbackToken)),
    recording_status_callback=st.just("https://app.example.com/rec"),
    recording_status_callback_event=st.just(frozenset(RecordingEvent)),
    event_callback_url=st.sampled_from([None, "https://app.example.com/ev"]),
)

# Plausible inputs more often than the rest, and the end rarely, so that walks
# reach started conferences with members, mutes, kicks and recordings.
WEIGHTED = (*KINDS, *(["arrive", "added"] * 4), *(["deleted", "api-kick", "rec-start"] * 2))
WEIGHTED = (*(kind for kind in WEIGHTED if kind != "api-end"), "api-end")

arrivals = st.lists(
    st.tuples(st.just("arrive"), st.integers(1, CALLS), participant_settings),
    min_size=2,
    max_size=CALLS,
)
moves = st.builds(
    lambda head, tail: head + tail,
    arrivals,
    st.lists(
        st.tuples(st.sampled_from(WEIGHTED), st.integers(1, CALLS), participant_settings),
        min_size=5,
        max_size=40,
    ),
)


def make(kind: str, n: int, config: ParticipantSettings, driver: Driver) -> object:
    sid = call_sid(n)
    path = f"/rec/{SID}.wav"
    member = 100 + n
    table = {
        "arrive": lambda: ev.ParticipantArrived(sid, uuid(n), ACCOUNT, NAME, config),
        "added": lambda: ev.MemberAdded(sid, member),
        "deleted": lambda: ev.MemberDeleted(sid, member),
        "deleted-hangup": lambda: ev.MemberDeleted(sid, member, "NORMAL_CLEARING"),
        "hangup": lambda: ev.CallHungUp(sid),
        "refused": lambda: ev.JoinRefused(sid),
        "talk": lambda: ev.StartTalking(sid),
        "quiet": lambda: ev.StopTalking(sid),
        "muted": lambda: ev.MemberMuted(sid),
        "unmuted": lambda: ev.MemberUnmuted(sid),
        "held": lambda: ev.MemberHeld(sid),
        "unheld": lambda: ev.MemberUnheld(sid),
        "api-mute": lambda: ev.ApiMute(sid, config.muted),
        "api-hold": lambda: ev.ApiHold(sid, config.muted),
        "api-kick": lambda: ev.ApiKick(sid),
        "api-modify": lambda: ev.ApiModify(
            sid, beep_on_exit=config.muted, end_conference_on_exit=config.end_conference_on_exit
        ),
        "timer": lambda: ev.TimerFired(f"{sid}/1/time-limit"),
        "api-end": lambda: ev.ApiEndConference(),
        "rec-start": lambda: ev.RecordingStarted(path, "RE1"),
        "rec-stop": lambda: ev.RecordingStopped(path, 1000 * n, 100 * (n - 1)),
        "wait-failed": lambda: ev.WaitAudioFailed(sid),
        "announce": lambda: ev.ApiAnnounce(
            f"AN{n}", "https://a.example.com/x.wav", call_sid=sid if config.muted else None
        ),
        "announce-done": lambda: ev.PlayFileDone(f"AN{n}"),
    }
    return table[kind]()


def check_state(state: ConferenceState) -> None:
    present = [p.call_sid for p in state.participants]
    assert len(present) == len(set(present)), "a call is present twice"
    labels = Counter(p.label for p in state.participants if p.label is not None)
    assert all(count == 1 for count in labels.values()), "duplicate label"
    placements = {p.placement for p in state.participants}
    if state.status is ConferenceStatus.INIT:
        assert placements <= {Placement.PARKED}
    elif state.status is ConferenceStatus.IN_PROGRESS:
        assert placements <= {Placement.MIXED}
    else:
        assert state.participants == ()
        assert state.ending is not None and state.end_time is not None
    for participant in state.participants:
        if participant.member_id is not None:
            assert participant.placement is Placement.MIXED
    if state.participants:
        assert state.room is not None


def all_rows(state: ConferenceState) -> dict:
    """Every participant row of ``state``, present and departed, by key."""
    return {
        (p.call_sid, p.join_sequence): participant_row(state.sid, p)
        for p in (*state.participants, *state.departed)
    }


def check_participant_rows(before: ConferenceState, after: ConferenceState, effects) -> None:
    """The engine stores exactly the participant rows that changed: compared
    here row by row over everyone, departed included (the engine itself only
    looks at the present and the newly departed)."""
    old, new = all_rows(before), all_rows(after)
    changed = [row for key, row in new.items() if old.get(key) != row]
    stored = [e.row for e in effects if isinstance(e, StoreParticipant)]
    assert sorted(stored, key=repr) == sorted(changed, key=repr)


def check_after_end(effects: tuple) -> None:
    for effect in effects:
        if isinstance(effect, SendApi):
            assert " kick " in effect.command
        elif isinstance(effect, Callback):
            assert effect.kind in ("recording", "event")
        else:
            assert isinstance(effect, RecordingFinished | StoreConference), effect


@settings(max_examples=300, deadline=None)
@given(moves)
def test_random_inputs_keep_the_state_valid(steps: list) -> None:
    driver = Driver()
    for kind, n, config in steps:
        event = make(kind, n, config, driver)
        before = driver.state
        try:
            effects = driver(event)
        except (TransitionError, TwilioApiError):
            assert driver.state is before
            continue
        check_state(driver.state)
        if driver.state.room is not None:
            check_participant_rows(before, driver.state, effects)
        numbers = [
            int(c.get("SequenceNumber") or 0)
            for c in effects
            if isinstance(c, Callback) and c.kind != "recording"
        ]
        first = before.sequence_number + 1
        expected = list(range(first, first + len(numbers)))
        assert numbers == expected, "SequenceNumber must be monotonic and gap-free"
        assert driver.state.sequence_number == before.sequence_number + len(numbers)
        if before.status is ConferenceStatus.COMPLETED:
            check_after_end(effects)
            assert driver.state.status is ConferenceStatus.COMPLETED
