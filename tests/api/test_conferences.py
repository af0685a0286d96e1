"""Conferences: JSON shape, filters, paging meta, update."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from fsconf.store.times import format_rfc2822
from tests.api.fakes import FakeControl
from tests.api.support import Api, World, assert_twilio_error

CONFERENCE_FIELDS = {
    "account_sid",
    "api_version",
    "call_sid_ending_conference",
    "date_created",
    "date_updated",
    "friendly_name",
    "reason_conference_ended",
    "region",
    "sid",
    "status",
    "subresource_uris",
    "uri",
}
META_KEYS = {
    "first_page_uri",
    "next_page_uri",
    "previous_page_uri",
    "page",
    "page_size",
    "start",
    "end",
    "uri",
}
MAY_1 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_conference_json_is_twilios(api: Api, world: World):
    # status init: a same-instant start_conference would hit the store's
    # onupdate quirk (date_updated set to an equal value becomes "now").
    room = world.conference(world.alice, "Room 1", now=MAY_1, status="init")
    body = api.get(f"Conferences/{room.sid}.json").json()
    assert set(body) == CONFERENCE_FIELDS
    base = f"/2010-04-01/Accounts/{world.alice.sid}/Conferences/{room.sid}"
    assert body == {
        "account_sid": world.alice.sid,
        "api_version": "2010-04-01",
        "call_sid_ending_conference": None,
        "date_created": "Wed, 01 May 2024 12:00:00 +0000",
        "date_updated": "Wed, 01 May 2024 12:00:00 +0000",
        "friendly_name": "Room 1",
        "reason_conference_ended": None,
        "region": "us1",
        "sid": room.sid,
        "status": "init",
        "subresource_uris": {
            "participants": f"{base}/Participants.json",
            "recordings": f"{base}/Recordings.json",
        },
        "uri": f"{base}.json",
    }


def test_list_has_one_records_key_and_twilios_meta(api: Api, world: World):
    world.conference(world.alice)
    body = api.get("Conferences.json").json()
    assert set(body) == META_KEYS | {"conferences"}
    path = f"/2010-04-01/Accounts/{world.alice.sid}/Conferences.json"
    assert body["uri"] == path
    assert body["first_page_uri"] == f"{path}?PageSize=50&Page=0"
    assert (body["page"], body["page_size"], body["start"], body["end"]) == (0, 50, 0, 0)
    assert body["next_page_uri"] is None and body["previous_page_uri"] is None


def test_paging_meta_and_tokens(api: Api, world: World):
    rooms = [
        world.conference(world.alice, f"R{i}", now=MAY_1 + timedelta(minutes=i)) for i in range(5)
    ]
    expected = [room.sid for room in reversed(rooms)]
    first = api.get("Conferences.json", params={"PageSize": 2, "Status": "in-progress"}).json()
    assert [c["sid"] for c in first["conferences"]] == expected[:2]
    assert (first["start"], first["end"]) == (0, 1)
    next_uri = first["next_page_uri"]
    query = parse_qs(urlsplit(next_uri).query)
    assert query["Page"] == ["1"] and query["PageSize"] == ["2"]
    assert query["Status"] == ["in-progress"]  # filters survive the walk
    assert query["PageToken"][0].startswith("PA")

    # A conference created between two pages neither repeats nor shifts rows.
    world.conference(world.alice, "late", now=MAY_1 + timedelta(hours=1))
    second = api.get(next_uri).json()
    assert [c["sid"] for c in second["conferences"]] == expected[2:4]
    assert (second["page"], second["start"], second["end"]) == (1, 2, 3)
    previous = api.get(second["previous_page_uri"]).json()
    assert [c["sid"] for c in previous["conferences"]] == expected[:2]

    third = api.get(second["next_page_uri"]).json()
    assert [c["sid"] for c in third["conferences"]] == expected[4:]
    assert third["next_page_uri"] is None


def test_page_without_token_uses_offset(api: Api, world: World):
    rooms = [
        world.conference(world.alice, f"R{i}", now=MAY_1 + timedelta(minutes=i)) for i in range(3)
    ]
    body = api.get("Conferences.json", params={"PageSize": 1, "Page": 2}).json()
    assert [c["sid"] for c in body["conferences"]] == [rooms[0].sid]
    assert body["next_page_uri"] is None and body["previous_page_uri"] is not None


def test_filters(api: Api, world: World):
    old = world.conference(world.alice, "Old", now=MAY_1 - timedelta(days=2), status="completed")
    today = world.conference(world.alice, "Today", now=MAY_1)
    waiting = world.conference(world.alice, "Waiting", now=MAY_1 + timedelta(days=3), status="init")

    def sids(**params):
        response = api.get("Conferences.json", params=params)
        assert response.status_code == 200, response.text
        return {c["sid"] for c in response.json()["conferences"]}

    assert sids(FriendlyName="Today") == {today.sid}
    assert sids(Status="completed") == {old.sid}
    assert sids(Status="init") == {waiting.sid}
    assert sids(DateCreated="2024-05-01") == {today.sid}
    assert sids(**{"DateCreated<": "2024-05-01"}) == {old.sid, today.sid}
    assert sids(**{"DateCreated>": "2024-05-01"}) == {today.sid, waiting.sid}
    assert sids(**{"DateCreated>": "2024-04-30", "DateCreated<": "2024-05-02"}) == {today.sid}
    assert sids(DateUpdated="2024-05-04") == {waiting.sid}
    assert sids(Unknown="ignored") == {old.sid, today.sid, waiting.sid}


def test_filters_from_the_library(twilio, world: World):
    world.conference(world.alice, "Old", now=MAY_1 - timedelta(days=2))
    today = world.conference(world.alice, "Today", now=MAY_1)
    listed = twilio.conferences.list(
        date_created_after=MAY_1.date(), date_created_before=MAY_1.date(), status="in-progress"
    )
    assert [c.sid for c in listed] == [today.sid]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Status": "bogus"}, 20001),
        ({"DateCreated": "2024-13-01"}, 20001),
        ({"DateCreated": "2019-09-06T03:59:31-0400"}, 20001),
        ({"DateUpdated>": "yesterday"}, 20001),
        ({"PageSize": "0"}, 20001),
        ({"PageSize": "1001"}, 20001),
        ({"PageSize": "ten"}, 20001),
        ({"Page": "-1"}, 20001),
        ({"PageToken": "garbage"}, 20001),
        ({"PageToken": "PAbm90IGpzb24"}, 20001),
        ({"PageToken": "PAWyJ4Il0"}, 20001),
        # A token we did not make: a date without a timezone (was a 500).
        (
            {
                "PageToken": "PAWyIyMDIwLTAxLTAxVDAwOjAwOjAwIiwiQ0ZhYWFhYWFhYWFhYWFhYWFh"
                "YWFhYWFhYWFhYWFhYWFhYSJd"
            },
            20001,
        ),
    ],
)
def test_bad_list_parameters(api: Api, params, code):
    assert_twilio_error(api.get("Conferences.json", params=params), 400, code)


def test_update_end(api: Api, world: World, control: FakeControl):
    room = world.conference(world.alice)
    response = api.post(f"Conferences/{room.sid}.json", {"Status": "completed", "Foo": "bar"})
    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert control.calls[0].kwargs == {"account_sid": world.alice.sid, "conference_sid": room.sid}


def test_update_announce(api: Api, world: World, control: FakeControl):
    room = world.conference(world.alice)
    url = "https://example.com/announce.xml?x=1"
    response = api.post(f"Conferences/{room.sid}.json", {"AnnounceUrl": url})
    assert response.status_code == 200
    assert control.calls[0].method == "announce_conference"
    assert control.calls[0].kwargs["url"] == url
    assert control.calls[0].kwargs["method"] == "POST"
    api.post(f"Conferences/{room.sid}.json", {"AnnounceUrl": url, "AnnounceMethod": "get"})
    assert control.calls[1].kwargs["method"] == "GET"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"Status": "bogus"}, 20001),
        ({"Status": "in-progress"}, 20001),
        ({"AnnounceUrl": "https://example.com/a.mp3", "AnnounceMethod": "PUT"}, 21209),
        ({"AnnounceUrl": "not a url"}, 21205),
        ({"AnnounceUrl": "ftp://example.com/a.mp3"}, 21205),
        ({"AnnounceUrl": "https://"}, 21205),
        ({"AnnounceUrl": "https://example.com/a\r\nb"}, 21205),
        ({"AnnounceUrl": ""}, 21205),
        ({"Status": "completed", "AnnounceUrl": "javascript:alert(1)"}, 21205),
    ],
)
def test_bad_update_sends_nothing(api: Api, world: World, control: FakeControl, data, code):
    room = world.conference(world.alice)
    assert_twilio_error(api.post(f"Conferences/{room.sid}.json", data), 400, code)
    assert control.calls == []


def test_control_errors_pass_through(api: Api, world: World, control: FakeControl):
    from fsconf.errors import TwilioApiError

    room = world.conference(world.alice)
    control.fail_next = TwilioApiError(20500, "FreeSWITCH did not confirm", 503)
    assert_twilio_error(
        api.post(f"Conferences/{room.sid}.json", {"Status": "completed"}), 503, 20500
    )


def test_ended_conference_reports_how(api: Api, world: World):
    room = world.conference(world.alice, now=MAY_1, status="completed")
    body = api.get(f"Conferences/{room.sid}.json").json()
    assert body["status"] == "completed"
    assert body["reason_conference_ended"] == "last-participant-left"
    assert body["date_updated"] == format_rfc2822(MAY_1)
