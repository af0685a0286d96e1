"""fsconf is killed (SIGKILL) in the middle of conferences, then started again.

``fsconf serve`` runs as a subprocess (as in ``tests/e2e/test_serve.py``);
the FakeSwitch and the customer application run in the test process. The
application holds every callback request until told, so that when the kill
comes the outbox holds queued callbacks and one request per conference is in
flight.

What a real FreeSWITCH does when fsconf dies (mod_event_socket's
``listener_run``, read for this test): the call's outbound listener ends,
clears CF_CONTROLLED and leaves the channel alone (no ``socket_resume``): the
socket app's park ends once the app running inside it returns, so a member
stays in its room until it leaves, then the dialplan is over and the channel
hangs up. The FakeSwitch does the same (``Channel.release_socket``).

Checked after the restart:

* every callback queued before the kill is delivered; per conference the
  SequenceNumbers received are 1..N with no gap; the only duplicates are the
  requests that were in flight at the kill (at-least-once delivery: the old
  process may have sent it and died before recording the answer; the new one
  releases the dead process's claim at start and sends it again);
* no half-written rows: each conference row's SequenceNumber equals the
  number of its callbacks in the outbox (rows and callbacks are one
  transaction);
* the conference still on the switch is adopted: its later events continue
  its SequenceNumber; the conference whose callers hung up while fsconf was
  down is ended by reconciliation with its callbacks.
"""

from __future__ import annotations

import itertools
import signal
from collections import Counter
from pathlib import Path

import gevent.event
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from fsconf.demo import CustomerApp, Received
from fsconf.store import models
from fsconf.testing import FakeSwitch
from tests.faults.support import conference_twiml, events_named, uuid_of
from tests.serve_process import ServeProcess, serve_environment


def status_events(customer: CustomerApp) -> list[Received]:
    return [r for r in customer.callbacks("/events") if r.get("StatusCallbackEvent")]


def call(switch: FakeSwitch, address, customer: CustomerApp, path: str, number: str) -> str:
    uuid = switch.place_call(
        address, caller_id_number=number, variables={"fsconf_voice_url": customer.url(path)}
    )
    return "CA" + uuid.replace("-", "")


def rooms_with(switch: FakeSwitch, counts: list[int]) -> bool:
    return sorted(len(room.members) for room in switch.rooms.values()) == counts


def test_sigkill_mid_conference_then_restart(tmp_path: Path, switch, customer, capsys):
    env = serve_environment(tmp_path / "serve.db", switch, customer)
    events = customer.url("/events")
    customer.documents["/kept"] = conference_twiml("Kept", events)
    customer.documents["/gone"] = conference_twiml("Gone", events)
    gate = gevent.event.Event()
    in_flight: list[Received] = []

    def hold(received: Received) -> None:
        if received.path == "/events" and not gate.is_set():
            in_flight.append(received)
            gate.wait()

    customer.on_request = hold
    host, port = env["FSCONF_OUTBOUND_LISTEN"].rsplit(":", 1)
    address = (host, int(port))
    first = ServeProcess(env)
    second: ServeProcess | None = None
    try:
        first.wait_line(lambda line: "connected (core" in line)
        a1 = call(switch, address, customer, "/kept", "+15551230001")
        a2 = call(switch, address, customer, "/kept", "+15551230002")
        g1 = call(switch, address, customer, "/gone", "+15551230101")
        g2 = call(switch, address, customer, "/gone", "+15551230102")
        # both rooms up (their joins and starts are in the outbox: rows are
        # stored before the join is sent) and one request per conference held
        switch.wait_until(lambda: rooms_with(switch, [2, 2]), timeout=10)
        switch.wait_until(lambda: len({r.get("ConferenceSid") for r in in_flight}) == 2, timeout=10)

        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(timeout=10) == -signal.SIGKILL
        # like FreeSWITCH: the members stay in their rooms, out of fsconf's control
        switch.wait_until(
            lambda: all(c.socket_released for c in switch.channels.values() if c.connection),
            timeout=5,
        )
        assert rooms_with(switch, [2, 2])
        # while fsconf is down, the "Gone" callers hang up: that room goes
        switch.hangup(uuid_of(g1))
        switch.hangup(uuid_of(g2))
        switch.wait_until(lambda: rooms_with(switch, [2]), timeout=5)
        gate.set()

        second = ServeProcess(env)
        second.wait_line(lambda line: "connected (core" in line)
        assert customer.wait_for(lambda r: len(events_named(r, "conference-end")) >= 1)
        switch.hangup(uuid_of(a2))
        assert customer.wait_for(
            lambda r: any(x.get("CallSid") == a2 for x in events_named(r, "participant-leave"))
        )
        switch.hangup(uuid_of(a1))
        assert customer.wait_for(lambda r: len(events_named(r, "conference-end")) >= 2)
        output = second.output
    finally:
        gate.set()
        if first.process.poll() is None:
            first.process.kill()
        if second is not None:
            assert second.stop() == 0

    received = status_events(customer)
    by_conference: dict[str, list[Received]] = {}
    for request in received:
        by_conference.setdefault(request.get("ConferenceSid"), []).append(request)
    kept_sid = next(r.get("ConferenceSid") for r in received if r.get("CallSid") == a1)
    gone_sid = next(r.get("ConferenceSid") for r in received if r.get("CallSid") == g1)
    held = {(r.get("ConferenceSid"), r.get("SequenceNumber")) for r in in_flight}
    for sid, requests in by_conference.items():
        numbers = [int(r.get("SequenceNumber")) for r in requests]
        assert sorted(set(numbers)) == list(range(1, max(numbers) + 1)), (sid, numbers)
        duplicates = {(sid, str(n)) for n, times in Counter(numbers).items() if times > 1}
        assert duplicates <= held, "only a request in flight at the kill may come twice"
        # in order: SequenceNumber never goes back (a repeat is the in-flight one)
        assert all(b >= a for a, b in itertools.pairwise(numbers)), numbers

    def final(sid: str) -> dict[int, Received]:
        return {int(r.get("SequenceNumber")): r for r in by_conference[sid]}

    gone = final(gone_sid)
    assert [gone[n].get("StatusCallbackEvent") for n in sorted(gone)] == [
        "participant-join",
        "participant-join",
        "conference-start",
        "participant-leave",
        "participant-leave",
        "conference-end",
    ]
    assert {gone[n].get("CallSid") for n in (4, 5)} == {g1, g2}
    for n in (4, 5):
        assert gone[n].get("ReasonParticipantLeft") == "participant_hung_up"
        assert gone[n].get("ParticipantCallStatus") == "completed"
    assert gone[6].get("ReasonConferenceEnded") == "last-participant-left"

    kept = final(kept_sid)
    assert [kept[n].get("StatusCallbackEvent") for n in sorted(kept)] == [
        "participant-join",
        "participant-join",
        "conference-start",
        "participant-leave",
        "participant-leave",
        "conference-end",
    ]
    assert [kept[n].get("CallSid") for n in (4, 5)] == [a2, a1]
    assert (
        f"{kept_sid}: conference 'Kept' adopted (in-progress, 2 participants, SequenceNumber 3)"
        in output
    )
    assert f"{gone_sid}: conference 'Gone' adopted" in output
    with capsys.disabled():
        print(f"\nin flight at the kill: {sorted(held)}; received: {len(received)} requests")

    database = create_engine(env["FSCONF_DATABASE_URL"], poolclass=NullPool)
    with database.connect() as connection:
        conferences = {row.sid: row for row in connection.execute(select(models.Conference)).all()}
        callbacks = connection.execute(select(models.Callback)).all()
    database.dispose()
    for sid in (kept_sid, gone_sid):
        rows = [c for c in callbacks if c.conference_sid == sid]
        assert conferences[sid].status == "completed"
        assert conferences[sid].sequence_number == len(rows) == 6
        assert sorted(c.sequence_number for c in rows) == list(range(1, 7))
        assert {c.status for c in rows} == {"delivered"}
