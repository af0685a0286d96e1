"""Authentication, account isolation, routing errors and the health check."""

from __future__ import annotations

import hmac

import pytest

from fsconf.api import auth
from tests.api.fakes import FakeControl
from tests.api.support import Api, World, assert_twilio_error

MISSING_CF = "CF" + "0" * 32


def test_health_needs_no_auth_and_exposes_nothing(api: Api):
    response = api.get("/healthz", auth=None)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "credentials",
    [
        None,
        ("ACdoesnotexist", "whatever"),
        ("", ""),
    ],
    ids=["missing", "unknown-account", "empty"],
)
def test_missing_or_unknown_credentials(api: Api, credentials):
    response = api.get("Conferences.json", auth=credentials)
    assert_twilio_error(response, 401, 20003)
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_wrong_token(api: Api, world: World):
    response = api.get("Conferences.json", auth=(world.alice.sid, world.bob.token))
    assert_twilio_error(response, 401, 20003)


def test_bearer_scheme_is_refused(api: Api):
    response = api.get("Conferences.json", auth=None, headers={"Authorization": "Bearer x"})
    assert_twilio_error(response, 401, 20003)


def test_inactive_account(api: Api, world: World):
    from fsconf.store.db import transaction
    from fsconf.store.models import Account

    with transaction(world.session_factory) as session:
        session.get(Account, world.alice.sid).status = "suspended"
    assert_twilio_error(api.get("Conferences.json"), 401, 20005)


def test_token_is_compared_in_constant_time(api: Api, world: World, monkeypatch):
    calls = []
    original = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert api.get("Conferences.json").status_code == 200
    assert (world.alice.token.encode(), world.alice.token.encode()) in calls
    calls.clear()
    # An unknown account still goes through compare_digest (no early return).
    assert api.get("Conferences.json", auth=("ACnobody", "x")).status_code == 401
    assert calls


def test_path_account_must_be_the_authenticated_one(api: Api, world: World):
    room = world.conference(world.bob)
    response = api.get(f"Conferences/{room.sid}.json", account_sid=world.bob.sid)
    assert_twilio_error(response, 404, 20404)
    response = api.get("Conferences.json", account_sid=world.bob.sid)
    assert_twilio_error(response, 404, 20404)


def test_unknown_route_and_method(api: Api):
    assert_twilio_error(api.get("Calls.json"), 404, 20404)
    assert_twilio_error(api.get("/nothing/here", auth=None), 404, 20404)
    response = api.request("PUT", "Conferences.json")
    assert_twilio_error(response, 405, 20004)
    assert "GET" in response.headers["Allow"]


def other_account_requests(world: World):
    """Every endpoint, aimed at bob's rows, by alice."""
    room = world.conference(world.bob)
    person = world.participant(world.bob, room, label="bobs-label")
    recording = world.recording(world.bob, room)
    conference = f"Conferences/{room.sid}"
    participant = f"{conference}/Participants/{person.call_sid}.json"
    return [
        ("GET", f"{conference}.json", None),
        ("POST", f"{conference}.json", {"Status": "completed"}),
        ("POST", f"{conference}.json", {"AnnounceUrl": "https://example.com/a.mp3"}),
        ("GET", f"{conference}/Participants.json", None),
        ("POST", f"{conference}/Participants.json", {"From": "+1555", "To": "+1556"}),
        ("GET", participant, None),
        ("GET", f"{conference}/Participants/bobs-label.json", None),
        ("POST", participant, {"Muted": "true"}),
        ("DELETE", participant, None),
        ("GET", f"{conference}/Recordings.json", None),
        ("GET", f"{conference}/Recordings/{recording.sid}.json", None),
        ("POST", f"{conference}/Recordings/{recording.sid}.json", {"Status": "paused"}),
        ("DELETE", f"{conference}/Recordings/{recording.sid}.json", None),
        ("GET", f"Recordings/{recording.sid}", None),
        ("GET", f"Recordings/{recording.sid}.wav", None),
        ("GET", f"Recordings/{recording.sid}.mp3", None),
    ]


def test_another_accounts_resources_are_not_found_anywhere(
    api: Api, world: World, control: FakeControl
):
    requests = other_account_requests(world)
    for method, path, data in requests:
        response = api.request(method, path, data=data)
        assert_twilio_error(response, 404, 20404)
    assert control.calls == []
    # And bob still sees all of it.
    bob = Api(api.base_url, world.bob)
    for method, path, _data in requests:
        if method == "GET" and not path.startswith("Recordings/"):
            assert bob.get(path).status_code == 200, path


def test_unknown_sids_are_not_found(api: Api, world: World, control: FakeControl):
    room = world.conference(world.alice)
    for path in (
        f"Conferences/{MISSING_CF}.json",
        "Conferences/not-a-sid.json",
        f"Conferences/{MISSING_CF}/Participants.json",
        f"Conferences/{room.sid}/Participants/CA{'0' * 32}.json",
        f"Conferences/{room.sid}/Participants/no-such-label.json",
        f"Conferences/{MISSING_CF}/Recordings.json",
        f"Conferences/{room.sid}/Recordings/RE{'0' * 32}.json",
        f"Recordings/RE{'0' * 32}",
        f"Recordings/RE{'0' * 32}.wav",
    ):
        assert_twilio_error(api.get(path), 404, 20404)
    assert_twilio_error(
        api.post(f"Conferences/{MISSING_CF}/Participants.json", {"From": "+1", "To": "+2"}),
        404,
        20404,
    )
    assert control.calls == []


def test_health_reports_a_dead_database(world: World, control: FakeControl):
    from fsconf.api import create_app
    from fsconf.errors import StoreError

    def broken_sessions():
        raise StoreError("database error: connection refused")

    app = create_app(
        session_factory=broken_sessions, control=control, public_url="http://127.0.0.1"
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable"}


def test_oversized_request_is_refused(api: Api, world: World, control: FakeControl):
    room = world.conference(world.alice)
    response = api.post(f"Conferences/{room.sid}.json", {"AnnounceUrl": "x" * 100_000})
    assert response.status_code == 413
    assert response.json()["status"] == 413
    assert control.calls == []


def test_public_url_is_checked():
    from fsconf.api import create_app
    from fsconf.errors import ConfigError

    with pytest.raises(ConfigError):
        create_app(session_factory=None, control=None, public_url="fsconf.example")
