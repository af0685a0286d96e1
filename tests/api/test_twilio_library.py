"""Acceptance: the official ``twilio`` helper library, unchanged, against fsconf."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.api.fakes import FakeControl
from tests.api.support import World


def test_conferences_list_fetch_and_end(twilio: Client, world: World, control: FakeControl):
    room = world.conference(world.alice, "Room A")
    world.conference(world.bob, "Room B")  # another account's: never listed

    listed = twilio.conferences.list()
    assert [conference.sid for conference in listed] == [room.sid]

    fetched = twilio.conferences(room.sid).fetch()
    assert fetched.friendly_name == "Room A"
    assert fetched.status == "in-progress"
    assert fetched.account_sid == world.alice.sid
    assert fetched.date_created is not None and fetched.date_created.tzinfo is not None
    assert fetched.subresource_uris["participants"].endswith(f"/{room.sid}/Participants.json")

    ended = twilio.conferences(room.sid).update(status="completed")
    assert ended.status == "completed"
    assert ended.reason_conference_ended == "conference-ended-via-api"
    assert control.methods() == ["end_conference"]


def test_participants_update_create_fetch_delete(
    twilio: Client, world: World, control: FakeControl
):
    room = world.conference(world.alice)
    alice = world.participant(world.alice, room, label="customer")
    participants = twilio.conferences(room.sid).participants

    assert [p.call_sid for p in participants.list()] == [alice.call_sid]

    updated = participants(alice.call_sid).update(
        muted=True, hold=True, hold_url="https://example.com/hold.xml"
    )
    assert (updated.muted, updated.hold) == (True, True)
    update = control.calls[-1].kwargs["update"]
    assert update.hold_url == "https://example.com/hold.xml"
    assert update.muted is True and update.hold is True and update.announce_url is None

    created = participants.create(from_="+15550001111", to="+15550002222", label="agent")
    assert created.status == "queued"
    assert created.label == "agent"
    assert created.conference_sid == room.sid
    request = control.calls[-1].kwargs["create"]
    assert (request.from_, request.to, request.label) == ("+15550001111", "+15550002222", "agent")

    by_label = participants("agent").fetch()
    assert by_label.call_sid == created.call_sid

    assert participants(created.call_sid).delete() is True
    assert control.methods()[-1] == "kick_participant"
    with pytest.raises(TwilioRestException) as caught:
        participants(created.call_sid).fetch()
    assert caught.value.status == 404 and caught.value.code == 20404


def test_create_participant_by_friendly_name(twilio: Client, world: World):
    created = twilio.conferences("Brand new room").participants.create(
        from_="+15550001111", to="sip:agent@example.com"
    )
    conference = twilio.conferences(created.conference_sid).fetch()
    assert conference.friendly_name == "Brand new room"


def test_recordings_list(twilio: Client, world: World):
    room = world.conference(world.alice)
    first = world.recording(world.alice, room)
    recordings = twilio.conferences(room.sid).recordings.list()
    assert [recording.sid for recording in recordings] == [first.sid]
    assert recordings[0].duration == "7"
    assert recordings[0].channels == 1
    assert recordings[0].source == "Conference"


def test_paging_across_pages(twilio: Client, world: World):
    start = datetime(2024, 5, 1, tzinfo=UTC)
    rooms = [
        world.conference(world.alice, f"Room {index}", now=start + timedelta(minutes=index))
        for index in range(7)
    ]
    newest_first = [room.sid for room in reversed(rooms)]

    assert [c.sid for c in twilio.conferences.list(page_size=2)] == newest_first
    assert [c.sid for c in twilio.conferences.list(limit=5, page_size=2)] == newest_first[:5]
    page = twilio.conferences.page(page_size=3)
    assert [c.sid for c in page] == newest_first[:3]
    second = page.next_page()
    assert [c.sid for c in second] == newest_first[3:6]
    assert [c.sid for c in second.previous_page()] == newest_first[:3]


def test_participant_paging(twilio: Client, world: World):
    room = world.conference(world.alice)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    joined = [
        world.participant(world.alice, room, now=start + timedelta(seconds=index)).call_sid
        for index in range(5)
    ]
    listed = twilio.conferences(room.sid).participants.list(page_size=2)
    assert [p.call_sid for p in listed] == joined


def test_errors_surface_as_twilio_exceptions(twilio: Client, world: World):
    with pytest.raises(TwilioRestException) as caught:
        twilio.conferences("CF" + "0" * 32).fetch()
    assert caught.value.status == 404 and caught.value.code == 20404

    bad = Client(world.alice.sid, "wrong-token")
    bad.api.base_url = twilio.api.base_url
    with pytest.raises(TwilioRestException) as caught:
        bad.conferences("CF" + "0" * 32).fetch()
    assert caught.value.status == 401 and caught.value.code == 20003


def test_labels_announcements_and_recordings(twilio: Client, world: World, control: FakeControl):
    room = world.conference(world.alice)
    person = world.participant(world.alice, room, label="front desk")
    conference = twilio.conferences(room.sid)
    assert conference.participants("front desk").fetch().call_sid == person.call_sid

    conference.update(announce_url="https://example.com/hello.mp3", announce_method="GET")
    assert control.calls[-1].kwargs["url"] == "https://example.com/hello.mp3"

    recording = world.recording(world.alice, room, status="in-progress")
    paused = conference.recordings(recording.sid).update(status="paused")
    assert paused.status == "paused"
    assert conference.recordings(recording.sid).fetch().status == "paused"
    conference.recordings(recording.sid).update(status="stopped")
    assert conference.recordings(recording.sid).delete() is True
    assert conference.recordings.list() == []


def test_bad_value_through_the_library(twilio: Client, world: World, control: FakeControl):
    room = world.conference(world.alice)
    person = world.participant(world.alice, room)
    with pytest.raises(TwilioRestException) as caught:
        twilio.conferences(room.sid).participants(person.call_sid).update(hold_url="nope")
    assert (caught.value.status, caught.value.code) == (400, 21205)
    assert control.calls == []
