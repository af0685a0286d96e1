"""The reading commands, on a real migrated database: text tables, --json
documents, exit codes, and CONFERENCE/PARTICIPANT resolution."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session, sessionmaker

from fsconf.store import repositories as repo
from fsconf.store.db import transaction
from fsconf.store.migrate import pending
from tests.cli.conftest import (
    ACCOUNT,
    ALICE,
    BOB,
    CAROL,
    LONELY_ROOM,
    OLD_ROOM,
    OTHER_ACCOUNT,
    OTHER_ROOM,
    OTHER_TOKEN,
    ROOM,
    TOKEN,
    Invoke,
)


def document(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- db, accounts -----------------------------------------------------------------------


def test_db_upgrade_migrates_an_empty_database(env: dict[str, str], db_url: str) -> None:
    invoke = Invoke(env)
    assert pending(db_url)
    result = invoke("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "is at revision" in result.stdout
    assert not pending(db_url)
    again = invoke("db", "upgrade")
    assert again.exit_code == 0


def test_listing_an_unmigrated_database_says_to_upgrade(env: dict[str, str]) -> None:
    result = Invoke(env)("accounts", "list")
    assert result.exit_code == 1
    assert "fsconf db upgrade" in result.output


def test_accounts_create_prints_sid_and_token_once_and_list_never(invoke: Invoke) -> None:
    created = invoke("accounts", "create", "--friendly-name", "Ops")
    assert created.exit_code == 0, created.output
    lines = dict(line.split(":", 1) for line in created.stdout.strip().splitlines())
    sid, token = lines["AccountSid"].strip(), lines["AuthToken"].strip()
    assert sid.startswith("AC") and len(sid) == 34
    assert len(token) == 32

    listed = invoke("accounts", "list")
    assert listed.exit_code == 0
    assert sid in listed.stdout and "Ops" in listed.stdout
    assert token not in listed.stdout
    as_json = document(invoke("accounts", "list", "--json"))
    assert [row["sid"] for row in as_json["accounts"]] == [sid]
    assert token not in json.dumps(as_json)
    assert "auth_token" not in as_json["accounts"][0]


def test_accounts_create_keeps_a_given_sid_and_token(invoke: Invoke) -> None:
    created = document(
        invoke(
            "accounts",
            "create",
            "--sid",
            ACCOUNT,
            "--auth-token",
            "-",
            "--json",
            input=TOKEN + "\n",
        )
    )
    assert created["sid"] == ACCOUNT and created["auth_token"] == TOKEN
    again = invoke("accounts", "create", "--sid", ACCOUNT, "--auth-token", TOKEN)
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_accounts_create_usage_errors_exit_2(invoke: Invoke) -> None:
    alone = invoke("accounts", "create", "--sid", ACCOUNT)
    assert alone.exit_code == 2
    assert "--sid and --auth-token go together" in alone.output
    bad = invoke("accounts", "create", "--sid", "ACnope", "--auth-token", TOKEN)
    assert bad.exit_code == 2
    assert "32 lowercase hex" in bad.output


# --- conferences -------------------------------------------------------------------------


def test_conferences_list_text_is_an_aligned_table(invoke: Invoke, seeded) -> None:
    result = invoke("conferences", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["SID", "FRIENDLY"]
    # Newest first; every column starts at the same offset on every line.
    sids = [line.split()[0] for line in lines[1:]]
    assert set(sids) == {ROOM, OLD_ROOM, OTHER_ROOM, LONELY_ROOM}
    status_column = lines[0].index("STATUS")
    row = next(line for line in lines if line.startswith(ROOM))
    assert row[status_column:].startswith("in-progress")
    assert "2" in row[lines[0].index("PARTICIPANTS") :].split()[0]


def test_conferences_list_json_and_status_filter(invoke: Invoke, seeded) -> None:
    everything = document(invoke("conferences", "list", "--json"))["conferences"]
    assert len(everything) == 4
    room = next(row for row in everything if row["sid"] == ROOM)
    assert room == {
        "sid": ROOM,
        "account_sid": ACCOUNT,
        "friendly_name": "Room 1234",
        "status": "in-progress",
        "region": None,
        "reason_conference_ended": None,
        "call_sid_ending_conference": None,
        "date_created": "2024-05-01T12:05:00Z",
        "date_updated": room["date_updated"],
        "start_time": "2024-05-01T12:05:00Z",
        "end_time": None,
        "participant_count": 2,
    }
    completed = document(invoke("conferences", "list", "--status", "completed", "--json"))
    assert {row["sid"] for row in completed["conferences"]} == {OLD_ROOM, LONELY_ROOM}
    mine = document(invoke("conferences", "list", "--account", OTHER_ACCOUNT, "--json"))
    assert [row["sid"] for row in mine["conferences"]] == [OTHER_ROOM]


def test_conferences_list_bad_status_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("conferences", "list", "--status", "ringing")
    assert result.exit_code == 2
    assert "Invalid value for '--status'" in result.output


def test_conferences_show_by_sid_with_participants(invoke: Invoke, seeded) -> None:
    result = invoke("conferences", "show", ROOM)
    assert result.exit_code == 0, result.output
    assert "Room 1234" in result.stdout
    assert ALICE in result.stdout and BOB in result.stdout and "alice" in result.stdout
    shown = document(invoke("conferences", "show", ROOM, "--json"))
    assert shown["sid"] == ROOM and shown["participant_count"] == 2
    assert [p["call_sid"] for p in shown["participants"]] == [ALICE, BOB]
    bob = shown["participants"][1]
    assert bob["muted"] is True and bob["label"] is None and bob["status"] == "connected"


def test_friendly_name_prefers_the_default_accounts_active_conference(
    invoke: Invoke, seeded
) -> None:
    shown = document(
        invoke("conferences", "show", "Room 1234", "--json", FSCONF_ACCOUNT_SID=ACCOUNT)
    )
    assert shown["sid"] == ROOM
    other = document(
        invoke("conferences", "show", "Room 1234", "--json", FSCONF_ACCOUNT_SID=OTHER_ACCOUNT)
    )
    assert other["sid"] == OTHER_ROOM


def test_friendly_name_falls_back_to_the_most_recent(
    invoke: Invoke, seeded: sessionmaker[Session]
) -> None:
    with transaction(seeded) as session:
        repo.end_conference(session, sid=ROOM, reason="conference-ended-via-api")
    shown = document(
        invoke("conferences", "show", "Room 1234", "--json", FSCONF_ACCOUNT_SID=ACCOUNT)
    )
    assert shown["sid"] == ROOM  # completed now, but newer than OLD_ROOM
    lonely = document(invoke("conferences", "show", "Standup", "--json"))
    assert lonely["sid"] == LONELY_ROOM  # no default account, one account uses the name


def test_ambiguous_and_unknown_conferences_exit_1(invoke: Invoke, seeded) -> None:
    ambiguous = invoke("conferences", "show", "Room 1234")
    assert ambiguous.exit_code == 1
    assert "ambiguous" in ambiguous.output
    assert ROOM in ambiguous.output and OTHER_ROOM in ambiguous.output
    unknown = invoke("conferences", "show", "No Such Room")
    assert unknown.exit_code == 1
    assert "no conference named 'No Such Room'" in unknown.output
    missing_sid = invoke("conferences", "show", "CF" + "9" * 32)
    assert missing_sid.exit_code == 1
    assert "no conference CF9999" in missing_sid.output


def test_conferences_show_needs_an_argument_exit_2(invoke: Invoke) -> None:
    result = invoke("conferences", "show")
    assert result.exit_code == 2
    assert "Missing argument 'CONFERENCE'" in result.output


# --- participants ------------------------------------------------------------------------


def test_participants_list_text_json_and_all(invoke: Invoke, seeded: sessionmaker[Session]) -> None:
    text = invoke("participants", "list", OTHER_ROOM)
    assert text.exit_code == 0, text.output
    assert CAROL in text.stdout and "carol" in text.stdout
    assert text.stdout.splitlines()[0].startswith("CALL SID")

    with transaction(seeded) as session:
        repo.mark_participant_left(session, conference_sid=ROOM, call_sid=BOB)
    present = document(invoke("participants", "list", ROOM, "--json"))
    assert present["conference_sid"] == ROOM
    assert [p["call_sid"] for p in present["participants"]] == [ALICE]
    everyone = document(invoke("participants", "list", ROOM, "--all", "--json"))
    assert [(p["call_sid"], p["status"]) for p in everyone["participants"]] == [
        (ALICE, "connected"),
        (BOB, "complete"),
    ]


def test_empty_listings(invoke: Invoke) -> None:
    assert document(invoke("conferences", "list", "--json")) == {"conferences": []}
    assert invoke("conferences", "list").stdout.split() == [
        "SID",
        "FRIENDLY",
        "NAME",
        "STATUS",
        "PARTICIPANTS",
        "CREATED",
        "ACCOUNT",
    ]


# --- callbacks ---------------------------------------------------------------------------


def test_callbacks_list_masks_url_credentials(invoke: Invoke, callback_ids) -> None:
    failed, delivered, pending_id = callback_ids
    text = invoke("callbacks", "list")
    assert text.exit_code == 0, text.output
    assert "s3cret" not in text.stdout
    assert "https://***@hooks.example.com/status" in text.stdout
    rows = document(invoke("callbacks", "list", "--json"))["callbacks"]
    assert [row["id"] for row in rows] == [failed, delivered, pending_id]
    assert "s3cret" not in json.dumps(rows)
    only_failed = document(invoke("callbacks", "list", "--failed", "--json"))["callbacks"]
    assert [(row["id"], row["attempts"], row["last_error"]) for row in only_failed] == [
        (failed, 8, "HTTP 500")
    ]


def test_callbacks_retry_resets_a_failed_row(invoke: Invoke, callback_ids, read) -> None:
    failed, _delivered, _pending = callback_ids
    result = invoke("callbacks", "retry", str(failed))
    assert result.exit_code == 0, result.output
    row = read(failed)
    assert (row.status, row.attempts, row.claimed_by) == ("pending", 0, None)
    assert document(invoke("callbacks", "list", "--failed", "--json")) == {"callbacks": []}


def test_callbacks_retry_all_failed(invoke: Invoke, callback_ids, read) -> None:
    failed, delivered, _pending = callback_ids
    result = invoke("callbacks", "retry", "--all-failed")
    assert result.exit_code == 0, result.output
    assert "1 failed callbacks queued again" in result.stdout
    assert read(failed).status == "pending"
    assert read(delivered).status == "delivered"


def test_callbacks_retry_errors(invoke: Invoke, callback_ids) -> None:
    _failed, delivered, _pending = callback_ids
    assert invoke("callbacks", "retry").exit_code == 2
    assert invoke("callbacks", "retry", "1", "--all-failed").exit_code == 2
    assert invoke("callbacks", "retry", "abc").exit_code == 2
    done = invoke("callbacks", "retry", str(delivered))
    assert done.exit_code == 1
    assert "delivered" in done.output
    missing = invoke("callbacks", "retry", "99999")
    assert missing.exit_code == 1
    assert "not found" in missing.output


# --- alerts ------------------------------------------------------------------------------


def test_alerts_list(invoke: Invoke, seeded: sessionmaker[Session]) -> None:
    with transaction(seeded) as session:
        repo.create_alert(
            session,
            account_sid=ACCOUNT,
            error_code=16025,
            message="label alice is already in use",
            call_sid=BOB,
        )
    text = invoke("alerts", "list")
    assert text.exit_code == 0, text.output
    assert "16025" in text.stdout and "label alice is already in use" in text.stdout
    alerts = document(invoke("alerts", "list", "--json"))["alerts"]
    assert len(alerts) == 1
    assert alerts[0]["error_code"] == 16025
    assert alerts[0]["alert_text"] == "label alice is already in use"
    assert alerts[0]["more_info"] == "https://www.twilio.com/docs/errors/16025"
    assert alerts[0]["date_created"].endswith("Z")
    assert document(invoke("alerts", "list", "--account", OTHER_ACCOUNT, "--json")) == {
        "alerts": []
    }


def test_no_listing_prints_a_token(invoke: Invoke, seeded, callback_ids) -> None:
    for args in (
        ["accounts", "list"],
        ["conferences", "list", "--json"],
        ["conferences", "show", ROOM, "--json"],
        ["callbacks", "list", "--json"],
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert TOKEN not in result.output and OTHER_TOKEN not in result.output
