"""FreeSWITCH restarts, or the event socket drops, in the middle of conferences.

Real parts on loopback: the FakeSwitch (``restart()``: new Core-UUID, every
channel and room gone, sockets closed; ``drop_connections("inbound")``: the
event socket closes, calls and rooms survive), the whole ``fsconf serve``
pipeline (:func:`fsconf.demo.running_stack`) on SQLite and PostgreSQL, and a
customer application receiving the callbacks. Synchronisation is on
callbacks, on the client's connection count and on the switch's state.

The reconnect time is measured from ``restart()`` to the client being
connected, subscribed and reconciled again, and must stay under 5 s (the
backoff cap); it is printed (``-s``) for the record.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

import pytest

from fsconf.conference import events as engine_events
from fsconf.conference.model import (
    ConferenceStatus,
    Participant,
    ParticipantSettings,
    Placement,
    new_conference,
)
from fsconf.demo import Stack, running_stack
from fsconf.service.reconcile import SwitchView, parse_rooms, reconcile_inputs
from fsconf.store import models
from tests.faults.support import conference_twiml, events_named, has

RECONNECT_LIMIT = 5.0


@pytest.fixture
def stack(db_url):
    with running_stack(db_url) as running:
        yield running


def confirmed(stack: Stack, conference_sid: str, count: int) -> bool:
    """fsconf's engine has ``count`` participants confirmed in the room."""
    room = stack.app.conferences.rooms.get(conference_sid)
    if room is None:
        return False
    members = [p for p in room.state.participants if p.member_id is not None]
    return len(members) == count and room.queue.empty()


def reconnected(stack: Stack, before: int) -> bool:
    node = stack.app.nodes[0]
    return node.connections_made > before and node.connected


def sequence_ok(callbacks) -> None:
    by_conference: dict[str, list[int]] = {}
    for callback in callbacks:
        by_conference.setdefault(callback.get("ConferenceSid"), []).append(
            int(callback.get("SequenceNumber"))
        )
    for numbers in by_conference.values():
        assert numbers == list(range(1, len(numbers) + 1)), numbers


def test_a_freeswitch_restart_ends_every_conference_once(stack, capsys):
    customer, switch = stack.customer, stack.switch
    events = customer.url("/events")
    customer.documents["/room"] = conference_twiml("Mixed Room", events)
    customer.documents["/lobby"] = conference_twiml("Lobby", events, startConferenceOnEnter="false")
    alice = stack.call("/room", caller="+15551230001", name="Alice")
    bob = stack.call("/room", caller="+15551230002", name="Bob")
    carol = stack.call("/lobby", caller="+15551230003", name="Carol")
    assert customer.wait_for(has("conference-start"))
    assert customer.wait_for(has("participant-join", 3))
    joins = {
        r.get("CallSid"): r.get("ConferenceSid")
        for r in events_named(customer.received, "participant-join")
    }
    mixed, lobby = joins[alice], joins[carol]
    switch.wait_until(lambda: confirmed(stack, mixed, 2), timeout=5)
    assert stack.app.conferences.rooms[lobby].state.participants[0].placement is Placement.PARKED

    node = stack.app.nodes[0]
    before, old_core = node.connections_made, switch.core_uuid
    started = time.monotonic()
    switch.restart()
    switch.wait_until(lambda: reconnected(stack, before), timeout=RECONNECT_LIMIT)
    reconnect = time.monotonic() - started
    with capsys.disabled():
        print(f"\nreconnect after FreeSWITCH restart: {reconnect * 1000:.0f} ms")
    assert reconnect < RECONNECT_LIMIT
    assert node.core_uuid == switch.core_uuid != old_core and node.restarted

    assert customer.wait_for(has("conference-end", 2))
    switch.wait_until(lambda: not stack.app.conferences.rooms, timeout=5)
    callbacks = customer.callbacks()
    leaves = events_named(callbacks, "participant-leave")
    assert Counter(r.get("CallSid") for r in leaves) == {alice: 1, bob: 1, carol: 1}
    for leave in leaves:
        assert leave.get("ReasonParticipantLeft") == "participant_hung_up"
        assert leave.get("ParticipantCallStatus") == "completed"
    ends = {r.get("ConferenceSid"): r for r in events_named(callbacks, "conference-end")}
    assert set(ends) == {mixed, lobby}
    assert all(r.get("ReasonConferenceEnded") == "last-participant-left" for r in ends.values())
    assert len(events_named(callbacks, "conference-start")) == 1
    sequence_ok(callbacks)

    assert stack.app.wait_delivered(len(callbacks))
    with stack.app.sessions() as session:
        assert session.query(models.Callback).count() == len(callbacks)
        statuses = {c.sid: c.status for c in session.query(models.Conference)}
        assert statuses == {mixed: "completed", lobby: "completed"}
        assert {p.status for p in session.query(models.Participant)} == {"complete"}

    # fsconf goes on working on the restarted switch: a new call opens a new conference
    dave = stack.call("/room", caller="+15551230004", name="Dave")
    assert customer.wait_for(has("participant-join", 1, CallSid=dave))
    again = events_named(customer.received, "participant-join")[-1]
    assert again.get("ConferenceSid") not in (mixed, lobby)
    assert again.get("SequenceNumber") == "1"


def test_a_dropped_event_socket_keeps_conferences_and_reports_gap_leaves_once(stack, capsys):
    customer, switch = stack.customer, stack.switch
    customer.documents["/room"] = conference_twiml("Kept Room", customer.url("/events"))
    alice = stack.call("/room", caller="+15551230001", name="Alice")
    bob = stack.call("/room", caller="+15551230002", name="Bob")
    carol = stack.call("/room", caller="+15551230003", name="Carol")
    assert customer.wait_for(has("participant-join", 3))
    sid = events_named(customer.received, "participant-join")[0].get("ConferenceSid")
    switch.wait_until(lambda: confirmed(stack, sid, 3), timeout=5)

    node = stack.app.nodes[0]
    before, core = node.connections_made, switch.core_uuid
    sent_before = len(switch.commands)
    started = time.monotonic()
    switch.drop_connections(kind="inbound")
    stack.hangup(carol)  # while no event socket is up: its del-member goes nowhere
    switch.wait_until(lambda: reconnected(stack, before), timeout=RECONNECT_LIMIT)
    reconnect = time.monotonic() - started
    with capsys.disabled():
        print(f"\nreconnect after a dropped event socket: {reconnect * 1000:.0f} ms")
    assert node.core_uuid == core and not node.restarted
    assert customer.wait_for(has("participant-leave", 1, CallSid=carol))

    # the survivors were picked up as they were: they go on as usual
    assert switch.rooms[sid].members and len(switch.rooms[sid].members) == 2
    stack.hangup(alice)
    assert customer.wait_for(has("participant-leave", 1, CallSid=alice))
    stack.hangup(bob)
    assert customer.wait_for(has("conference-end"))
    switch.wait_until(lambda: not stack.app.conferences.rooms, timeout=5)

    callbacks = customer.callbacks()
    assert Counter(r.get("CallSid") for r in events_named(callbacks, "participant-join")) == {
        alice: 1,
        bob: 1,
        carol: 1,
    }
    leaves = events_named(callbacks, "participant-leave")
    assert Counter(r.get("CallSid") for r in leaves) == {alice: 1, bob: 1, carol: 1}
    assert all(r.get("ParticipantCallStatus") == "completed" for r in leaves)
    assert len(events_named(callbacks, "conference-start")) == 1
    assert len(events_named(callbacks, "conference-end")) == 1
    sequence_ok(callbacks)
    # reconciliation only looked: no join, kick or hangup was sent for survivors
    after = [
        c.command.line for c in switch.commands[sent_before:] if c.connection.startswith("inbound")
    ]
    assert any("show channels as json" in line for line in after)
    assert any("conference json_list" in line for line in after)
    assert not any(" kick " in line or "uuid_kill" in line for line in after[:4])


# --- the comparison itself (pure: a state and two views in, engine inputs out) -----------


ROOM_JSON = """[{"conference_name": "CF1", "members": [
  {"type": "recording_node", "record_path": "/tmp/x.wav"},
  {"type": "caller", "id": 7, "uuid": "u-in-room"},
  {"type": "caller", "id": 9, "uuid": "u-joining"}]}]"""


def test_parse_rooms_skips_the_recording_node_and_reads_empty_answers():
    assert parse_rooms(ROOM_JSON) == {"CF1": {"u-in-room": 7, "u-joining": 9}}
    assert parse_rooms("[]") == {}
    assert parse_rooms("-ERR No active conferences.\n") == {}


def _participant(name: str, placement: Placement, member_id: int | None) -> Participant:
    return Participant(
        call_sid=_sid(name),
        call_uuid=name,
        join_sequence=1,
        settings=ParticipantSettings(),
        placement=placement,
        member_id=member_id,
    )


def _sid(name: str) -> str:
    return "CA" + name


def test_reconcile_inputs_table():
    state = dataclasses.replace(
        new_conference("CF1", "AC1", "Room"),
        status=ConferenceStatus.IN_PROGRESS,
        participants=(
            _participant("u-in-room", Placement.MIXED, 7),
            _participant("u-joining", Placement.MIXED, None),
            _participant("u-left-room", Placement.MIXED, 3),
            _participant("u-hung-up", Placement.MIXED, 4),
            _participant("u-parked", Placement.PARKED, None),
            _participant("u-flight", Placement.MIXED, None),
        ),
    )
    view = SwitchView(
        channels=frozenset({"u-in-room", "u-joining", "u-left-room", "u-parked", "u-flight"}),
        rooms=parse_rooms(ROOM_JSON),
    )
    assert reconcile_inputs(state, view) == [
        engine_events.MemberAdded(_sid("u-joining"), 9),
        engine_events.MembersVanished(((_sid("u-left-room"), True), (_sid("u-hung-up"), False))),
    ]
    # after a fsconf restart nothing parked or in flight can be continued
    assert reconcile_inputs(state, view, adopted=True)[-1] == engine_events.MembersVanished(
        tuple((_sid(name), False) for name in ("u-left-room", "u-hung-up", "u-parked", "u-flight"))
    )
    # the views agree with the state: nothing to do
    agreed = SwitchView(frozenset({"u-in-room"}), {"CF1": {"u-in-room": 7}})
    only = dataclasses.replace(state, participants=state.participants[:1])
    assert reconcile_inputs(only, agreed) == []
