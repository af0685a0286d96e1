"""SQLite: another process holds the database's write lock for seconds, mid-conference.

What an operator actually runs into with SQLite: a ``sqlite3`` shell, a backup
or a report script opens the same file and keeps a write transaction open
(``BEGIN EXCLUSIVE``; in WAL mode readers go on, writers wait). fsconf runs as
``fsconf serve`` in its own process, exactly as deployed; the FakeSwitch, the
customer application and the lock holder (a plain ``sqlite3`` client in a
child process) are real, on loopback. While the lock is held, the conference
lives on: a participant talks, a third caller dials in, another hangs up.

What must hold:

* the calls stay up: fsconf sends FreeSWITCH no hangup and no kick, and the
  caller who dialled in during the lock waits and is not refused;
* fsconf says what it waits for, with the error's class and no secret;
* once the lock is released nothing is lost: every callback is stored and
  delivered, in SequenceNumber order (1, 2, 3... with no gap), and the
  participant and call rows end as on Twilio.
"""

from __future__ import annotations

import re
from itertools import pairwise

from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from fsconf.demo import Received
from fsconf.store import models
from fsconf.testing import FakeSwitch
from tests.faults.support import SqliteLockHolder, conference_twiml, events_named, has
from tests.serve_process import ServeProcess, serve_environment

WAITING = re.compile(
    r"(CF[0-9a-f]{32}): waiting for the database to store (\d+) rows and (\d+) callbacks: "
    r"(OperationalError)$"
)


def members(switch: FakeSwitch, conference_sid: str) -> list[str]:
    """The channel uuids in the FreeSWITCH room (named by the ConferenceSid)."""
    room = switch.rooms.get(conference_sid)
    return [] if room is None else [member.channel.uuid for member in room.members]


def hangups_and_kicks(switch: FakeSwitch, since: int) -> list[str]:
    """Every command since ``since`` that would end a call or drop a member."""
    found = []
    for recorded in switch.commands[since:]:
        command = recorded.command
        text = " ".join([command.line, *command.headers.values(), command.body or ""])
        if re.search(r"\bhangup\b|uuid_kill|hupall|\bkick\b", text):
            found.append(f"{recorded.connection}: {text[:120]}")
    return found


def speech_then_leave(received: list[Received], call_sid: str) -> list[str]:
    names = [r.get("StatusCallbackEvent") or "" for r in received]
    return [
        name
        for name, r in zip(names, received, strict=True)
        if name.startswith("participant-speech") or (
            name == "participant-leave" and r.get("CallSid") == call_sid
        )
    ]


def test_sqlite_write_lock_held_by_another_process(tmp_path, switch, customer):
    database = tmp_path / "fsconf.db"
    env = serve_environment(database, switch, customer)
    customer.documents["/voice"] = conference_twiml("Lock Room", customer.url("/events"))
    outbound_host, outbound_port = env["FSCONF_OUTBOUND_LISTEN"].rsplit(":", 1)
    outbound = (outbound_host, int(outbound_port))

    def call(number: str) -> str:
        uuid = switch.place_call(outbound, caller_id_number=number, caller_id_name="Caller")
        return uuid

    serve = ServeProcess(env)
    holder: SqliteLockHolder | None = None
    try:
        serve.wait_line(lambda line: "fsconf started" in line, timeout=30)
        serve.wait_line(lambda line: "connected (core" in line)
        alice, bob = call("+15551230001"), call("+15551230002")
        alice_sid, bob_sid = ("CA" + uuid.replace("-", "") for uuid in (alice, bob))
        assert customer.wait_for(has("participant-join", 2), timeout=15)
        assert customer.wait_for(has("conference-start"), timeout=15)
        conference_sid = events_named(customer.received, "conference-start")[0].get(
            "ConferenceSid"
        )
        switch.wait_until(lambda: len(members(switch, conference_sid)) == 2, timeout=10)
        before = len(customer.callbacks())
        sent_before = len(switch.commands)

        holder = SqliteLockHolder(str(database), "BEGIN EXCLUSIVE")
        switch.start_talking(alice)
        switch.stop_talking(alice)
        carol = call("+15551230003")
        carol_sid = "CA" + carol.replace("-", "")
        switch.hangup(bob)
        # Held until fsconf waits for it on both paths: the room (alice's
        # speech, bob's leave) and carol's call (its first row).
        waiting = serve.wait_line(lambda line: bool(WAITING.search(line)), timeout=30)
        carol_waits = serve.wait_line(
            lambda line: f"{carol_sid}: waiting for the database to store the call" in line,
            timeout=60,
        )
        # While the lock is held: every call still up, alice in her room,
        # carol not refused, and nothing stored could be delivered.
        assert not switch.channels[alice].hungup
        assert not switch.channels[carol].hungup
        assert alice in members(switch, conference_sid)
        assert len(customer.callbacks()) == before
        holder.release()
        holder = None

        assert customer.wait_for(has("participant-join", 1, CallSid=carol_sid), timeout=30)
        assert customer.wait_for(has("participant-leave", 1, CallSid=bob_sid), timeout=30)
        switch.wait_until(lambda: carol in members(switch, conference_sid), timeout=10)
        # nobody was hung up or kicked by fsconf: the outage cost no call
        assert hangups_and_kicks(switch, sent_before) == []
        assert not switch.channels[alice].hungup and not switch.channels[carol].hungup

        switch.hangup(alice)
        switch.hangup(carol)
        assert customer.wait_for(has("conference-end"), timeout=30)
        assert customer.wait_for(has("participant-leave", 3), timeout=30)
    finally:
        if holder is not None:
            holder.kill()
        code = serve.stop()
        print(serve.output[-8000:])  # shown by pytest when the test fails
    assert code == 0, serve.output[-4000:]

    match = WAITING.search(waiting)
    assert match, waiting
    assert match.group(1) == conference_sid
    assert carol_waits.endswith(f"{carol_sid}: waiting for the database to store the call: "
                                "OperationalError"), carol_waits
    output = serve.output
    assert f"{conference_sid}: database back; stored after" in output
    assert customer.auth_token not in output and switch.password not in output

    callbacks = customer.callbacks()
    assert all(r.signature_ok for r in callbacks)
    numbers = [int(r.get("SequenceNumber") or 0) for r in callbacks]
    assert numbers == list(range(1, len(callbacks) + 1))
    assert all(a < b for a, b in pairwise(numbers))
    names = sorted(r.get("StatusCallbackEvent") or "" for r in callbacks[before:])
    assert names == sorted(
        ["participant-speech-start", "participant-speech-stop", "participant-join"]
        + ["participant-leave"] * 3
        + ["conference-end"]
    )
    # the room's own inputs kept their order: alice talked, then bob left
    assert speech_then_leave(callbacks[before:], bob_sid) == [
        "participant-speech-start",
        "participant-speech-stop",
        "participant-leave",
    ]

    engine = create_engine(f"sqlite:///{database}", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(models.Callback.sequence_number, models.Callback.status)
                .where(models.Callback.conference_sid == conference_sid)
                .order_by(models.Callback.id)
            ).all()
            participants = dict(
                connection.execute(
                    select(models.Participant.call_sid, models.Participant.status)
                ).all()
            )
            calls = dict(connection.execute(select(models.Call.sid, models.Call.status)).all())
            conference = connection.execute(
                select(models.Conference.status, models.Conference.sequence_number).where(
                    models.Conference.sid == conference_sid
                )
            ).one()
    finally:
        engine.dispose()
    assert [number for number, _status in rows] == numbers
    assert {status for _number, status in rows} == {"delivered"}
    assert participants == {alice_sid: "complete", bob_sid: "complete", carol_sid: "complete"}
    assert calls == {alice_sid: "completed", bob_sid: "completed", carol_sid: "completed"}
    assert tuple(conference) == ("completed", len(callbacks))
