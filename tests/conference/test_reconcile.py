"""R15 (MembersVanished) and restoring a conference from its rows (fsconf restarted)."""

from __future__ import annotations

from fsconf.conference import events as ev
from fsconf.conference.effects import ContinueCall, SendApi, StoreConference, StoreParticipant
from fsconf.conference.engine import conference_row, participant_row
from fsconf.conference.model import ConferenceStatus, Placement
from fsconf.conference.restore import call_uuid_of, restore_conference
from tests.conference.support import CONFIG, Driver, call_sid, evented, hooks, names, of_type, uuid


def started(count: int, **overrides) -> Driver:
    driver = Driver()
    for n in range(1, count + 1):
        driver.arrive(n, evented(**(overrides if n == 1 else {})))
    for n in range(1, count + 1):
        driver.added(n, 10 + n)
    driver.log.clear()
    return driver


def test_a_vanished_room_reads_as_its_callers_hanging_up_then_the_end() -> None:
    driver = started(2)
    effects = driver(ev.MembersVanished(((call_sid(1), False), (call_sid(2), False))))
    assert names(effects) == ["participant-leave", "participant-leave", "conference-end"]
    leaves = hooks(effects)[:2]
    assert [c.get("CallSid") for c in leaves] == [call_sid(1), call_sid(2)]
    assert {c.get("ReasonParticipantLeft") for c in leaves} == {"participant_hung_up"}
    assert {c.get("ParticipantCallStatus") for c in leaves} == {"completed"}
    end = hooks(effects)[2]
    assert end.get("ReasonConferenceEnded") == "last-participant-left"
    assert end.get("CallSidEndingConference") == call_sid(2)
    assert not of_type(effects, SendApi), "nothing to kick: the room is gone"
    assert not of_type(effects, ContinueCall), "hung-up calls do not go on"
    assert driver.state.status is ConferenceStatus.COMPLETED


def test_a_call_still_up_left_the_room_and_goes_on() -> None:
    driver = started(3)
    effects = driver(ev.MembersVanished(((call_sid(3), True),)))
    assert names(effects) == ["participant-leave"]
    assert hooks(effects)[0].get("ParticipantCallStatus") == "in-progress"
    assert [c.call_sid for c in of_type(effects, ContinueCall)] == [call_sid(3)]
    assert driver.state.status is ConferenceStatus.IN_PROGRESS


def test_a_leave_is_reported_once_whichever_comes_first() -> None:
    driver = started(3)
    driver.deleted(3, 13, "NORMAL_CLEARING")
    assert driver(ev.MembersVanished(((call_sid(3), False),))) == []
    # and the other way round: del-member after reconciliation is stale
    driver(ev.MembersVanished(((call_sid(2), False),)))
    assert driver.deleted(2, 12, "NORMAL_CLEARING") == []
    assert names(driver.log).count("participant-leave") == 2


def test_an_end_on_exit_participant_among_the_vanished_names_the_ending() -> None:
    driver = started(3, end_conference_on_exit=True)
    effects = driver(ev.MembersVanished(((call_sid(2), False), (call_sid(1), False))))
    assert names(effects) == ["participant-leave"] * 3 + ["conference-end"]
    end = hooks(effects)[-1]
    assert end.get("ReasonConferenceEnded") == "participant-with-end-conference-on-exit-left"
    assert end.get("CallSidEndingConference") == call_sid(1)
    # the one still there is kicked, as when a moderator leaves (R8)
    assert of_type(effects, SendApi)[0].command.endswith("kick 13")


def test_vanished_after_the_end_is_stale() -> None:
    driver = started(2)
    driver(ev.MembersVanished(((call_sid(1), False), (call_sid(2), False))))
    assert driver(ev.MembersVanished(((call_sid(1), False),))) == []


def _rows(driver: Driver):
    state = driver.state
    row = conference_row(state)
    participants = [participant_row(state.sid, p) for p in (*state.departed, *state.participants)]
    return row, participants


def test_restore_is_the_inverse_of_the_rows_and_continues_the_sequence() -> None:
    driver = started(3)
    driver.deleted(3, 13, "NORMAL_CLEARING")
    row, participants = _rows(driver)
    restored = restore_conference(row, participants, config=CONFIG)
    assert restored.sequence_number == driver.state.sequence_number
    assert restored.status is ConferenceStatus.IN_PROGRESS
    assert [p.call_sid for p in restored.participants] == [call_sid(1), call_sid(2)]
    assert [p.member_id for p in restored.participants] == [11, 12]
    assert {p.placement for p in restored.participants} == {Placement.MIXED}
    assert restored.has_departed(call_sid(3))
    assert restored.room == driver.state.room
    assert call_uuid_of(call_sid(1)) == uuid(1)
    # the rows of the restored state are the stored rows: nothing to rewrite
    assert conference_row(restored) == row
    assert [participant_row(restored.sid, p) for p in restored.participants] == [
        participant_row(driver.state.sid, p) for p in driver.state.participants
    ]

    # later events continue the SequenceNumber where the old process stopped
    again = Driver(restored)
    effects = again.deleted(2, 12, "NORMAL_CLEARING")
    assert names(effects) == ["participant-leave"]
    assert hooks(effects)[0].get("SequenceNumber") == str(driver.state.sequence_number + 1)
    effects = again.deleted(1, 11, "NORMAL_CLEARING")
    assert names(effects) == ["participant-leave", "conference-end"]
    assert hooks(effects)[-1].get("SequenceNumber") == str(driver.state.sequence_number + 3)
    assert of_type(effects, StoreConference) and of_type(effects, StoreParticipant)


def test_a_restored_rejoin_takes_the_next_join_sequence() -> None:
    driver = started(3)
    driver.deleted(3, 13)  # left with the call up (hangupOnStar), may come back
    row, participants = _rows(driver)
    again = Driver(restore_conference(row, participants, config=CONFIG))
    again.arrive(3, evented())
    assert again.state.find(call_sid(3)).join_sequence == 2
