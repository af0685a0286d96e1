"""Actions go through the running server's REST API.

The server here is the real ``fsconf.api.create_app`` served by gevent's
WSGIServer on loopback; only its ConferenceControl (the engine, which needs
FreeSWITCH) is a recorder.  So these tests cover the whole path: resolution
in the CLI, the Twilio request, HTTP Basic auth as the conference's account,
the API's own lookup of the CallSid, and the error bodies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from gevent.pywsgi import WSGIServer
from sqlalchemy.orm import Session, sessionmaker

from fsconf.api import create_app
from fsconf.errors import TwilioApiError
from fsconf.service.control import ParticipantCreate, ParticipantUpdate
from fsconf.store import repositories as repo
from fsconf.store.db import transaction
from tests.cli.conftest import ACCOUNT, ALICE, BOB, CAROL, OTHER_ACCOUNT, OTHER_ROOM, ROOM, Invoke


@dataclass
class RecordingControl:
    """Stands in for the engine: records what the API asked for."""

    calls: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    fail_with: TwilioApiError | None = None

    def _record(self, name: str, **kwargs: object) -> None:
        self.calls.append((name, kwargs))
        if self.fail_with is not None:
            raise self.fail_with

    def end_conference(self, *, account_sid: str, conference_sid: str) -> None:
        self._record("end_conference", account_sid=account_sid, conference_sid=conference_sid)

    def announce_conference(
        self, *, account_sid: str, conference_sid: str, url: str, method: str
    ) -> None:
        self._record("announce_conference", conference_sid=conference_sid, url=url)

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

    def kick_participant(self, *, account_sid: str, conference_sid: str, call_sid: str) -> None:
        self._record(
            "kick_participant",
            account_sid=account_sid,
            conference_sid=conference_sid,
            call_sid=call_sid,
        )

    def create_participant(
        self, *, account_sid: str, conference: str, create: ParticipantCreate
    ) -> str:
        raise AssertionError("the CLI never dials out")

    def update_recording(
        self, *, account_sid: str, conference_sid: str, recording_sid: str, status: str
    ) -> None:
        raise AssertionError("the CLI does not touch recordings")


@pytest.fixture
def control() -> RecordingControl:
    return RecordingControl()


@pytest.fixture
def server(seeded: sessionmaker[Session], control: RecordingControl) -> Iterator[str]:
    app = create_app(session_factory=seeded, control=control, public_url="http://127.0.0.1:8080")
    wsgi = WSGIServer(("127.0.0.1", 0), app, log=None)
    wsgi.start()
    try:
        yield f"127.0.0.1:{wsgi.server_port}"
    finally:
        wsgi.stop(timeout=1)


@pytest.fixture
def act(env: dict[str, str], server: str) -> Invoke:
    return Invoke({**env, "FSCONF_HTTP_LISTEN": server, "FSCONF_ACCOUNT_SID": ACCOUNT})


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("mute", ParticipantUpdate(muted=True)),
        ("unmute", ParticipantUpdate(muted=False)),
        ("hold", ParticipantUpdate(hold=True)),
        ("unhold", ParticipantUpdate(hold=False)),
    ],
)
def test_participant_updates_by_label_and_friendly_name(
    act: Invoke, control: RecordingControl, command: str, expected: ParticipantUpdate
) -> None:
    result = act("participants", command, "Room 1234", "alice")
    assert result.exit_code == 0, result.output
    assert ALICE in result.stdout
    assert control.calls == [
        (
            "update_participant",
            {
                "account_sid": ACCOUNT,
                "conference_sid": ROOM,
                "call_sid": ALICE,
                "update": expected,
            },
        )
    ]


def test_kick_by_sids(act: Invoke, control: RecordingControl) -> None:
    result = act("participants", "kick", ROOM, BOB)
    assert result.exit_code == 0, result.output
    assert "kicked" in result.stdout
    assert control.calls == [
        ("kick_participant", {"account_sid": ACCOUNT, "conference_sid": ROOM, "call_sid": BOB})
    ]


def test_announce(act: Invoke, control: RecordingControl) -> None:
    url = "https://media.example.com/notice.mp3"
    result = act("participants", "announce", ROOM, "alice", url, "--method", "GET")
    assert result.exit_code == 0, result.output
    ((name, kwargs),) = control.calls
    assert name == "update_participant"
    assert kwargs["update"] == ParticipantUpdate(announce_url=url, announce_method="GET")


def test_announce_needs_an_http_url_exit_2(act: Invoke, control: RecordingControl) -> None:
    result = act("participants", "announce", ROOM, "alice", "file:///etc/passwd")
    assert result.exit_code == 2
    assert "absolute http(s) URL" in result.output
    assert control.calls == []


def test_actions_authenticate_as_the_conferences_account(
    act: Invoke, control: RecordingControl
) -> None:
    # OTHER_ROOM belongs to OTHER_ACCOUNT, not to the default account.
    result = act("participants", "mute", OTHER_ROOM, "carol")
    assert result.exit_code == 0, result.output
    assert control.calls[0][1]["account_sid"] == OTHER_ACCOUNT
    assert control.calls[0][1]["call_sid"] == CAROL


def test_conferences_end(act: Invoke, control: RecordingControl) -> None:
    result = act("conferences", "end", "Room 1234")
    assert result.exit_code == 0, result.output
    assert control.calls == [("end_conference", {"account_sid": ACCOUNT, "conference_sid": ROOM})]


def test_ending_a_completed_conference_exits_1(
    act: Invoke, control: RecordingControl, seeded: sessionmaker[Session]
) -> None:
    with transaction(seeded) as session:
        repo.end_conference(session, sid=ROOM, reason="last-participant-left")
    result = act("conferences", "end", ROOM)
    assert result.exit_code == 1
    assert "already ended" in result.output
    assert control.calls == []


def test_the_servers_twilio_error_is_shown_exit_1(act: Invoke, control: RecordingControl) -> None:
    control.fail_with = TwilioApiError(13240, "Call is not in the conference", 400)
    result = act("participants", "mute", ROOM, "alice")
    assert result.exit_code == 1
    assert "Call is not in the conference (code 13240)" in result.output


def test_the_token_is_read_from_the_database_for_each_action(
    act: Invoke, control: RecordingControl, seeded: sessionmaker[Session]
) -> None:
    with transaction(seeded) as session:
        account = repo.get_account(session, sid=ACCOUNT)
        assert account is not None
        account.auth_token = "0" * 32
    # The CLI reads the token from the same database, so it follows the change:
    result = act("participants", "mute", ROOM, "alice")
    assert result.exit_code == 0, result.output


def test_unknown_participant_never_reaches_the_server(
    act: Invoke, control: RecordingControl, seeded: sessionmaker[Session]
) -> None:
    unknown = act("participants", "mute", ROOM, "nobody")
    assert unknown.exit_code == 1
    assert "no participant 'nobody'" in unknown.output
    with transaction(seeded) as session:
        repo.mark_participant_left(session, conference_sid=ROOM, call_sid=ALICE)
    gone = act("participants", "kick", ROOM, "alice")
    assert gone.exit_code == 1
    assert "has left" in gone.output
    assert control.calls == []


def test_server_not_running(env: dict[str, str], seeded) -> None:
    result = Invoke(env)("participants", "mute", ROOM, "alice")
    assert result.exit_code == 1
    listen = env["FSCONF_HTTP_LISTEN"]
    assert f"fsconf serve is not running at http://{listen}: " in result.output
    assert "refused" in result.output.lower()


def test_action_usage_errors_exit_2(act: Invoke) -> None:
    assert act("participants", "mute", ROOM).exit_code == 2
    assert act("participants", "wave", ROOM, "alice").exit_code == 2
