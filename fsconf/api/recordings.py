"""Conference Recordings (list, fetch, update, delete) and the recording media.

Theory of operation
-------------------
* ``Status=paused|in-progress|stopped`` goes to ``control.update_recording``
  (``PauseBehavior`` is validated and ignored: fsconf always pauses by
  skipping).
* DELETE removes the row and then the file.  A recording that is still being
  written (in-progress, paused) is refused: stop it first.  This is the only
  write the API makes itself, because no FreeSWITCH state is involved.
* The media lives at ``/Accounts/{AccountSid}/Recordings/{Sid}`` (WAV),
  ``.wav`` and ``.mp3``.  It needs the same Basic auth as the rest of the API
  (Twilio's "HTTP Basic auth for media" setting, always on): another account's
  recording is a 404.  MP3 is encoded on request with ``lame`` or ``ffmpeg``
  from ``PATH``; without either, ``.mp3`` is a 404 that says so.
* When ``recordings_dir`` is configured, a file outside it is never served or
  deleted, whatever the row says.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile

from flask import Blueprint, jsonify, request, send_file
from flask.typing import ResponseReturnValue

from fsconf.api import context, params, queries, serializers
from fsconf.api.conferences import current_uri, load_conference
from fsconf.api.errors import INTERNAL_ERROR, ResourceNotFound
from fsconf.api.paging import list_body
from fsconf.errors import TwilioApiError
from fsconf.store.models import Recording

log = logging.getLogger(__name__)

bp = Blueprint("recordings", __name__)

UPDATE_STATUSES = ("paused", "in-progress", "stopped")
ACTIVE_STATUSES = ("in-progress", "paused")
ENCODER_TIMEOUT = 300.0


class RecordingActiveError(TwilioApiError):
    def __init__(self, sid: str) -> None:
        super().__init__(
            params.INVALID_PARAMETER,
            f"Recording {sid} is still being written; update it to Status=stopped first",
            400,
        )


def load_recording(conference_sid: str, sid: str) -> Recording:
    with context.session_scope() as session:
        row = queries.recording(
            session, account_sid=context.account_sid(), sid=sid, conference_sid=conference_sid
        )
    if row is None:
        raise ResourceNotFound()
    return row


@bp.get("/Conferences/<conference_sid>/Recordings.json")
def list_recordings(conference_sid: str) -> ResponseReturnValue:
    account_sid = context.account_sid()
    query, filters = queries.recordings(
        request.args, account_sid=account_sid, conference_sid=conference_sid
    )
    load_conference(conference_sid)
    with context.session_scope() as session:
        body = list_body(
            session,
            args=request.args,
            query=query,
            keyset=queries.RECORDING_ORDER,
            key_types=queries.RECORDING_KEY_TYPES,
            filters=filters,
            records_key="recordings",
            serialize=serializers.recording,
            path=request.path,
            current_uri=current_uri(),
        )
    return jsonify(body)


@bp.get("/Conferences/<conference_sid>/Recordings/<sid>.json")
def fetch_recording(conference_sid: str, sid: str) -> ResponseReturnValue:
    return jsonify(serializers.recording(load_recording(conference_sid, sid)))


@bp.post("/Conferences/<conference_sid>/Recordings/<sid>.json")
def update_recording(conference_sid: str, sid: str) -> ResponseReturnValue:
    form = request.form
    status = params.choice(form, "Status", UPDATE_STATUSES)
    if status is None:
        raise params.invalid("Status", "", "required: " + ", ".join(UPDATE_STATUSES))
    params.choice(form, "PauseBehavior", ("skip", "silence"))
    row = load_recording(conference_sid, sid)
    log.info("API: recording %s of %s -> %s", row.sid, row.conference_sid, status)
    context.current().control.update_recording(
        account_sid=row.account_sid,
        conference_sid=row.conference_sid,
        recording_sid=row.sid,
        status=status,
    )
    return jsonify(serializers.recording(load_recording(conference_sid, sid)))


@bp.delete("/Conferences/<conference_sid>/Recordings/<sid>.json")
def delete_recording(conference_sid: str, sid: str) -> ResponseReturnValue:
    row = load_recording(conference_sid, sid)
    if row.status in ACTIVE_STATUSES:
        raise RecordingActiveError(row.sid)
    path = contained_path(row.path)
    log.info("API: delete recording %s of %s", row.sid, row.conference_sid)
    with context.session_scope() as session:
        stored = session.get(Recording, row.sid)
        if stored is not None:
            session.delete(stored)
    if path is not None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("recording %s: row deleted, file %s kept: %s", row.sid, path, error)
    return "", 204


# --- media ----------------------------------------------------------------------


def contained_path(path: str | None) -> str | None:
    """The real path of a recording file, or None if it may not be touched."""
    if not path:
        return None
    real = os.path.realpath(path)
    directory = context.current().recordings_dir
    if directory is not None:
        root = os.path.realpath(directory)
        if os.path.commonpath([root, real]) != root:
            log.warning("recording path %s is outside the recordings directory", path)
            return None
    return real


def encoder_command(source: str, target: str) -> list[str] | None:
    """The argv that encodes ``source`` (WAV) into ``target`` (MP3), if an
    encoder is installed."""
    lame = shutil.which("lame")
    if lame:
        return [lame, "--quiet", source, target]
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg:
        return [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", source, "-f", "mp3", target]
    return None


def _encode_mp3(source: str, sid: str) -> ResponseReturnValue:
    if encoder_command(source, source) is None:
        raise ResourceNotFound(
            detail="MP3 is not available on this server (no lame or ffmpeg on PATH); fetch the .wav"
        )
    handle, target = tempfile.mkstemp(prefix=f"{sid}-", suffix=".mp3")
    os.close(handle)
    try:
        command = encoder_command(source, target)
        assert command is not None
        subprocess.run(  # noqa: S603 - an argv list; both paths are ours
            command,
            check=True,
            timeout=ENCODER_TIMEOUT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        media = open(target, "rb")  # noqa: SIM115 - closed by the response
    except (OSError, subprocess.SubprocessError) as error:
        log.error("recording %s: MP3 encoding failed: %s", sid, error)
        raise TwilioApiError(INTERNAL_ERROR, "MP3 encoding failed", 500) from error
    finally:
        # POSIX: the open handle keeps the data until the response is sent.
        os.unlink(target)
    return send_file(media, mimetype="audio/mpeg", download_name=f"{sid}.mp3")


@bp.get("/Recordings/<name>")
def recording_media(name: str) -> ResponseReturnValue:
    sid, _dot, extension = name.partition(".")
    if extension not in ("", "wav", "mp3"):
        raise ResourceNotFound()
    with context.session_scope() as session:
        row = queries.recording(session, account_sid=context.account_sid(), sid=sid)
    if row is None:
        raise ResourceNotFound()
    if row.status in ACTIVE_STATUSES:
        raise ResourceNotFound(detail="the recording is still in progress")
    path = contained_path(row.path)
    if path is None or not os.path.isfile(path):
        raise ResourceNotFound(detail="the recording has no media")
    if extension == "mp3":
        return _encode_mp3(path, row.sid)
    return send_file(path, mimetype="audio/wav", download_name=f"{row.sid}.wav", conditional=True)
