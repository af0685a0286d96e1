"""Conference Recordings and the recording media."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.api.fakes import FakeControl
from tests.api.support import Api, World, assert_twilio_error

RECORDING_FIELDS = {
    "account_sid",
    "api_version",
    "call_sid",
    "channels",
    "conference_sid",
    "date_created",
    "date_updated",
    "duration",
    "encryption_details",
    "error_code",
    "price",
    "price_unit",
    "sid",
    "source",
    "start_time",
    "status",
    "uri",
}
WAV = b"RIFF$\x00\x00\x00WAVEfmt " + bytes(range(64))
MAY_1 = datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def room(world: World):
    return world.conference(world.alice)


def path(room, sid: str | None = None) -> str:
    base = f"Conferences/{room.sid}/Recordings"
    return f"{base}.json" if sid is None else f"{base}/{sid}.json"


def test_recording_json_is_twilios(api: Api, world: World, room):
    recording = world.recording(world.alice, room, now=MAY_1)
    body = api.get(path(room, recording.sid)).json()
    assert set(body) == RECORDING_FIELDS
    assert body["sid"] == recording.sid
    assert body["duration"] == "7"
    assert body["channels"] == 1
    assert body["source"] == "Conference"
    assert body["status"] == "completed"
    assert body["start_time"] == "Wed, 01 May 2024 12:00:00 +0000"
    assert body["uri"] == (
        f"/2010-04-01/Accounts/{world.alice.sid}/Conferences/{room.sid}"
        f"/Recordings/{recording.sid}.json"
    )
    in_progress = world.recording(world.alice, room, status="in-progress")
    assert api.get(path(room, in_progress.sid)).json()["duration"] == "-1"


def test_list_newest_first_with_date_filter(api: Api, world: World, room):
    old = world.recording(world.alice, room, now=MAY_1 - timedelta(days=1))
    new = world.recording(world.alice, room, now=MAY_1)
    other_room = world.conference(world.alice, "Other")
    world.recording(world.alice, other_room)
    body = api.get(path(room)).json()
    assert [r["sid"] for r in body["recordings"]] == [new.sid, old.sid]
    filtered = api.get(path(room), params={"DateCreated": "2024-04-30"}).json()
    assert [r["sid"] for r in filtered["recordings"]] == [old.sid]
    page = api.get(path(room), params={"PageSize": 1}).json()
    assert [r["sid"] for r in api.get(page["next_page_uri"]).json()["recordings"]] == [old.sid]
    assert_twilio_error(api.get(path(room), params={"DateCreated<": "May 1"}), 400, 20001)


@pytest.mark.parametrize("status", ["paused", "in-progress", "stopped"])
def test_update_status(api: Api, world: World, room, control: FakeControl, status):
    recording = world.recording(world.alice, room, status="in-progress")
    response = api.post(path(room, recording.sid), {"Status": status, "PauseBehavior": "skip"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    assert control.calls[0].kwargs == {
        "account_sid": world.alice.sid,
        "conference_sid": room.sid,
        "recording_sid": recording.sid,
        "status": status,
    }


@pytest.mark.parametrize(
    "data",
    [{}, {"Status": "completed"}, {"Status": "Paused"}, {"Status": "paused", "PauseBehavior": "x"}],
)
def test_bad_update(api: Api, world: World, room, control: FakeControl, data):
    recording = world.recording(world.alice, room, status="in-progress")
    assert_twilio_error(api.post(path(room, recording.sid), data), 400, 20001)
    assert control.calls == []


def test_recording_of_another_conference_is_not_found(api: Api, world: World, room):
    recording = world.recording(world.alice, world.conference(world.alice, "Other"))
    assert_twilio_error(api.get(path(room, recording.sid)), 404, 20404)


def test_delete_removes_row_and_file(api: Api, world: World, room):
    recording = world.recording(world.alice, room)
    assert Path(recording.path).exists()
    response = api.delete(path(room, recording.sid))
    assert response.status_code == 204 and response.content == b""
    assert not Path(recording.path).exists()
    assert_twilio_error(api.get(path(room, recording.sid)), 404, 20404)
    assert_twilio_error(api.delete(path(room, recording.sid)), 404, 20404)


def test_delete_of_a_recording_being_written_is_refused(api: Api, world: World, room):
    recording = world.recording(world.alice, room, status="in-progress")
    assert_twilio_error(api.delete(path(room, recording.sid)), 400, 20001)
    assert Path(recording.path).exists()


def test_delete_never_touches_files_outside_the_recordings_dir(
    api: Api, world: World, room, tmp_path
):
    outside = tmp_path / "precious.wav"
    outside.write_bytes(WAV)
    recording = world.recording(world.alice, room, path=str(outside))
    assert api.delete(path(room, recording.sid)).status_code == 204
    assert outside.exists()
    traversal = world.recording(
        world.alice, room, path=str(world.recordings_dir / ".." / "precious.wav")
    )
    assert api.delete(path(room, traversal.sid)).status_code == 204
    assert outside.exists()


# --- media ----------------------------------------------------------------------


def media(recording) -> str:
    return f"Recordings/{recording.sid}"


def test_wav_media(api: Api, world: World, room):
    recording = world.recording(world.alice, room, content=WAV)
    for suffix in ("", ".wav"):
        response = api.get(media(recording) + suffix)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "audio/wav"
        assert response.content == WAV


def test_media_needs_auth(api: Api, world: World, room):
    recording = world.recording(world.alice, room)
    assert_twilio_error(api.get(media(recording), auth=None), 401, 20003)


def test_media_not_available(api: Api, world: World, room, tmp_path):
    in_progress = world.recording(world.alice, room, status="in-progress")
    assert_twilio_error(api.get(media(in_progress)), 404, 20404)
    no_file = world.recording(world.alice, room, content=None)
    assert_twilio_error(api.get(media(no_file)), 404, 20404)
    vanished = world.recording(world.alice, room)
    os.unlink(vanished.path)
    assert_twilio_error(api.get(media(vanished)), 404, 20404)
    outside = tmp_path / "secret.wav"
    outside.write_bytes(WAV)
    escaped = world.recording(world.alice, room, path=str(outside))
    assert_twilio_error(api.get(media(escaped)), 404, 20404)
    recording = world.recording(world.alice, room)
    for suffix in (".json", ".ogg", ".wav.wav"):
        assert_twilio_error(api.get(media(recording) + suffix), 404, 20404)


def test_mp3_without_an_encoder(api: Api, world: World, room, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    recording = world.recording(world.alice, room)
    body = assert_twilio_error(api.get(media(recording) + ".mp3"), 404, 20404)
    assert "MP3" in body["message"] and "lame" in body["message"]


def test_mp3_with_an_encoder(api: Api, world: World, room, monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    lame = bin_dir / "lame"
    # A stand-in encoder with lame's command line: lame --quiet SRC DST.
    lame.write_text('#!/bin/sh\nprintf "ID3" > "$3"\ncat "$2" >> "$3"\n')
    lame.chmod(lame.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    recording = world.recording(world.alice, room, content=WAV)
    response = api.get(media(recording) + ".mp3")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert response.content == b"ID3" + WAV
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"{recording.sid}-*.mp3"))
