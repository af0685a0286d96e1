"""Authentication and account isolation on every REST endpoint, on the real stack.

Two accounts on one fsconf: A owns a live conference (two callers), its
participants and a finished recording; B is a second, valid account.  Every
endpoint is asked about A's resources:

* with no credentials, and with A's SID and a wrong token: 401 (20003);
* with an unknown AccountSid: 401, by the very same path as a wrong token;
* with B's credentials, both under A's path and under B's own path: 404
  (20404), and nothing happens (the participant is still there, the recording
  still exists);
* with A's credentials: the answer a client expects (the control that makes
  the 401/404s mean something).

The token comparison is proved constant-time by spying on the auth module's
own ``hmac.compare_digest`` (wrapping the real one): it is called for an
existing account *and* for an unknown one, with the token as one argument.
``/metrics`` and ``/healthz`` are read without credentials and must hold no
auth token, no ESL password and no database credentials.
"""

from __future__ import annotations

import hmac
import secrets
import uuid as uuid_module
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from sqlalchemy.engine import make_url

from fsconf.api import auth as auth_module
from fsconf.demo import Stack
from fsconf.store import models
from fsconf.store import repositories as repo
from fsconf.store.db import transaction
from tests.e2e.support import has, wait
from tests.hostile.support import Placed, hang_up, place, settle


@dataclass
class World:
    base: str
    a_sid: str
    a_token: str
    b_sid: str
    b_token: str
    conference_sid: str
    call_sid: str
    recording_sid: str
    calls: list[Placed]


@pytest.fixture
def world(stack: Stack, tmp_path: Path) -> Iterator[World]:
    events = f"/auth-events/{uuid_module.uuid4().hex}"
    body = (
        f'<Response><Dial><Conference statusCallback="{stack.customer.url(events)}" '
        f'statusCallbackEvent="start">Auth room {uuid_module.uuid4().hex[:6]}'
        "</Conference></Dial></Response>"
    )
    calls = [place(stack, "a1", body), place(stack, "a2", body, caller="+15551230002")]
    settle(stack, calls)
    wait(stack.customer, has("conference-start", path=events), "conference-start")
    conference_sid = stack.customer.callbacks(events)[0].get("ConferenceSid")
    assert conference_sid is not None
    # Recording media is served only from the recordings directory.
    media = Path(stack.app.conferences.config.recordings_dir) / "recording.wav"
    with wave.open(str(media), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\x00\x00" * 800)
    b_token = secrets.token_hex(16)
    with transaction(stack.app.sessions) as session:
        b_sid = repo.create_account(session, auth_token=b_token, friendly_name="B").sid
        recording = repo.create_recording(
            session,
            account_sid=stack.account_sid,
            conference_sid=conference_sid,
            path=str(media),
            status="completed",
        )
        recording_sid = recording.sid
    host, port = stack.app.http_address
    yield World(
        base=f"http://{host}:{port}",
        a_sid=stack.account_sid,
        a_token=stack.auth_token,
        b_sid=b_sid,
        b_token=b_token,
        conference_sid=conference_sid,
        call_sid=calls[0].call_sid,
        recording_sid=recording_sid,
        calls=calls,
    )
    hang_up(stack, calls)


def endpoints(world: World) -> list[tuple[str, str, dict[str, str], int]]:
    """(method, path under the account, form, A's own status) for every endpoint."""
    conference = f"/Conferences/{world.conference_sid}"
    participant = f"{conference}/Participants/{world.call_sid}.json"
    recording = f"{conference}/Recordings/{world.recording_sid}.json"
    return [
        ("GET", "/Conferences.json", {}, 200),
        ("GET", f"{conference}.json", {}, 200),
        ("POST", f"{conference}.json", {}, 200),
        ("GET", f"{conference}/Participants.json", {}, 200),
        ("GET", participant, {}, 200),
        ("POST", participant, {}, 200),
        ("DELETE", participant, {}, 204),
        (
            "POST",
            f"{conference}/Participants.json",
            {"From": "+15551230001", "To": "+15550100"},
            201,
        ),
        ("GET", f"{conference}/Recordings.json", {}, 200),
        ("GET", recording, {}, 200),
        ("POST", recording, {"Status": "paused"}, 200),
        ("GET", f"/Recordings/{world.recording_sid}.wav", {}, 200),
        ("GET", f"/Recordings/{world.recording_sid}", {}, 200),
        ("DELETE", recording, {}, 204),
    ]


def ask(
    world: World, method: str, account: str, path: str, form: dict[str, str], credentials: Any
) -> requests.Response:
    return requests.request(
        method,
        f"{world.base}/2010-04-01/Accounts/{account}{path}",
        data=form or None,
        auth=credentials,
        timeout=10,
    )


def error_code(response: requests.Response) -> int:
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}, body
    assert body["status"] == response.status_code
    return int(body["code"])


class CompareSpy:
    """Wraps the real ``hmac.compare_digest`` as the auth module sees it."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, bytes]] = []

    def compare_digest(self, left: Any, right: Any) -> bool:
        self.calls.append((bytes(left), bytes(right)))
        return hmac.compare_digest(left, right)


def test_every_endpoint_refuses_strangers_and_the_other_account(
    stack: Stack, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = CompareSpy()
    monkeypatch.setattr(auth_module, "hmac", SimpleNamespace(compare_digest=spy.compare_digest))
    unknown = "AC" + secrets.token_hex(16)
    checked = 0
    for method, path, form, _ in endpoints(world):
        what = f"{method} {path}"
        strangers = [
            ("no auth", world.a_sid, None, 401, 20003),
            ("wrong token", world.a_sid, (world.a_sid, secrets.token_hex(16)), 401, 20003),
            ("empty token", world.a_sid, (world.a_sid, ""), 401, 20003),
            ("unknown account", world.a_sid, (unknown, world.a_token), 401, 20003),
            ("B on A's path", world.a_sid, (world.b_sid, world.b_token), 404, 20404),
            ("B on its own path", world.b_sid, (world.b_sid, world.b_token), 404, 20404),
            ("B's SID, A's token", world.a_sid, (world.b_sid, world.a_token), 401, 20003),
        ]
        for label, account, credentials, status, code in strangers:
            spy.calls.clear()
            response = ask(world, method, account, path, form, credentials)
            if path == "/Conferences.json" and label == "B on its own path":
                # B may list its own conferences: A's are not among them.
                assert response.status_code == 200
                assert response.json()["conferences"] == []
                assert world.conference_sid not in response.text
                checked += 1
                continue
            assert response.status_code == status, (
                f"{what} {label}: {response.status_code} {response.text}"
            )
            assert error_code(response) == code, f"{what} {label}"
            if status == 401:
                assert response.headers["WWW-Authenticate"].startswith("Basic")
            if credentials is not None:
                # The token was compared in constant time, for known and
                # unknown accounts alike, against the account's token (or the
                # dummy), never with ==.
                username, password = credentials
                compared = [pair for pair in spy.calls if pair[0] == password.encode()]
                assert compared, f"{what} {label}: no compare_digest of the token"
                if username == unknown:
                    assert compared[0][1] == auth_module._DUMMY_TOKEN
                else:
                    expected = world.a_token if username == world.a_sid else world.b_token
                    assert compared[0][1] == expected.encode()
            checked += 1
    # Nothing the strangers asked for happened.
    with stack.app.sessions() as session:
        participant = repo.get_participant(
            session, conference_sid=world.conference_sid, call_sid=world.call_sid
        )
        assert participant is not None and participant.present
        recording = session.get(models.Recording, world.recording_sid)
        assert recording is not None and recording.status == "completed"
    channel = stack.switch.channels.get(world.calls[0].uuid)
    assert channel is not None and not channel.hungup
    print(
        f"\nauth: {len(endpoints(world))} endpoints x 7 strangers = {checked} requests "
        "refused (401/404)"
    )


def test_the_owner_gets_through(stack: Stack, world: World) -> None:
    """The control: with A's credentials every endpoint answers as a client expects."""
    owner = (world.a_sid, world.a_token)
    for method, path, form, status in endpoints(world):
        response = ask(world, method, world.a_sid, path, form, owner)
        if method == "POST" and path.endswith("/Participants.json") and response.status_code == 400:
            # Dial-out may be unavailable on this switch: still Twilio's answer.
            assert error_code(response) == 21220
            continue
        if method == "POST" and "/Recordings/" in path and response.status_code == 400:
            # Pausing a finished recording may be refused: with Twilio's body.
            error_code(response)
            continue
        assert response.status_code == status, (
            f"{method} {path}: {response.status_code} {response.text}"
        )


def test_metrics_and_healthz_hold_no_secrets(stack: Stack, stack_db_url: str, world: World) -> None:
    texts = []
    for path in ("/metrics", "/healthz"):
        response = requests.get(f"{world.base}{path}", timeout=5)
        assert response.status_code == 200
        texts.append(response.text)
    text = "\n".join(texts)
    url = make_url(stack_db_url)
    secrets_ = [world.a_token, world.b_token, stack.switch.password, stack_db_url]
    if url.password:
        secrets_.append(f":{url.password}@")
    if url.host:
        secrets_.append(f"@{url.host}")
    if url.database and "/" in url.database:
        secrets_.append(url.database)
    for secret in secrets_:
        assert secret not in text, "a secret is exposed"
    assert "fsconf_" in text  # the metrics are really there
    print(
        f"\nmetrics/healthz: {len(text)} bytes read without auth, "
        f"none of {len(secrets_)} secrets in them"
    )
