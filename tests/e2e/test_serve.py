"""``fsconf serve`` as operators run it: a real subprocess, configured by FSCONF_*.

The FakeSwitch and the customer application run in the test process; fsconf
runs in its own, exactly as ``fsconf serve`` is started by a supervisor. The
test follows the process through its log (one line per step), never by
sleeping.
"""

from __future__ import annotations

import signal
from pathlib import Path

import gevent
import gevent.event
import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from fsconf.demo import Received
from fsconf.service.collector import YOUNG_THRESHOLD
from fsconf.store import models
from tests.serve_process import ServeProcess, free_port, serve_environment


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def events(received: list[Received], name: str) -> list[Received]:
    return [r for r in received if r.get("StatusCallbackEvent") == name]


def test_serve_migrates_takes_a_call_and_stops_on_sigterm_flushing_the_outbox(
    workdir, switch, customer
):
    env = serve_environment(workdir / "serve.db", switch, customer)
    http = f"http://{env['FSCONF_HTTP_LISTEN']}"
    customer.documents["/voice"] = (
        f'<Response><Dial><Conference statusCallback="{customer.url("/events")}" '
        'statusCallbackEvent="start end join leave">Serve Room</Conference></Dial></Response>'
    )
    # The application holds the first callback until told: what is queued
    # behind it is still in the outbox when SIGTERM arrives.
    release = gevent.event.Event()
    customer.on_request = lambda r: release.wait() if r.path == "/events" else None
    serve = ServeProcess(env)
    try:
        serve.wait_line(lambda line: "fsconf started" in line)
        # serve sets the collector up for load (fsconf.service.collector).
        tuned = serve.wait_line(lambda line: "garbage collector:" in line)
        assert f"thresholds ({YOUNG_THRESHOLD}, 10, 10)" in tuned
        # and the GIL's switch interval for its SQLite thread (fsconf.store.native)
        switching = serve.wait_line(lambda line: "thread switch interval" in line)
        assert "thread switch interval 0.20 ms (was 5.00)" in switching
        serve.wait_line(lambda line: "connected (core" in line)

        # first start: migrated, and the default account exists
        database = create_engine(env["FSCONF_DATABASE_URL"], poolclass=NullPool)
        with database.connect() as connection:
            accounts = connection.execute(select(models.Account.sid)).scalars().all()
        assert accounts == [env["FSCONF_ACCOUNT_SID"]]
        assert requests.get(f"{http}/healthz", timeout=5).status_code == 200
        metrics = requests.get(f"{http}/metrics", timeout=5).text
        assert "fsconf_esl_connected{" in metrics and "} 1.0" in metrics

        # a call: it joins, then hangs up (join, leave, end are queued)
        outbound = env["FSCONF_OUTBOUND_LISTEN"].rsplit(":", 1)
        uuid = switch.place_call((outbound[0], int(outbound[1])), caller_id_number="+15551230001")
        call_sid = "CA" + uuid.replace("-", "")
        joined = serve.wait_line(lambda line: f"participant {call_sid} joined" in line)
        conference_sid = joined.split(": ")[-2].split()[-1]
        switch.hangup(uuid)
        serve.wait_line(lambda line: f"participant {call_sid} left" in line)

        serve.process.send_signal(signal.SIGTERM)
        serve.wait_line(lambda line: "no longer taking calls" in line)
        # no new calls: FreeSWITCH's socket app cannot connect any more
        refused = switch.place_call((outbound[0], int(outbound[1])))
        switch.wait_until(lambda: refused not in switch.channels, timeout=5)
        release.set()
        assert serve.process.wait(timeout=10) == 0
    finally:
        release.set()
        code = serve.stop()
    assert code == 0

    names = [r.get("StatusCallbackEvent") for r in customer.callbacks("/events")]
    assert names == ["participant-join", "participant-leave", "conference-end"]
    assert all(r.signature_ok for r in customer.callbacks("/events"))
    output = serve.output
    for step in (
        f"{conference_sid}: conference 'Serve Room' opened",
        f"{conference_sid}: participant {call_sid} joined",
        f"{conference_sid}: participant {call_sid} left",
        f"{conference_sid}: conference completed",
        "fsconf stopped",
    ):
        assert step in output, step
    assert customer.auth_token not in output
    assert switch.password not in output


def test_a_bad_database_url_stops_serve_with_one_line(workdir, switch, customer):
    env = serve_environment(
        workdir / "serve.db", switch, customer, FSCONF_DATABASE_URL="nosuchdb://user:pw@x/y"
    )
    serve = ServeProcess(env)
    code = serve.process.wait(timeout=30)  # exits by itself: no signal is sent
    serve.stop()
    assert code == 1
    assert serve.lines == ["Error: bad FSCONF_DATABASE_URL (NoSuchModuleError)"]


def test_an_unreachable_freeswitch_does_not_stop_serve(workdir, switch, customer):
    unreachable = f"127.0.0.1:{free_port()}:{switch.password}"
    env = serve_environment(workdir / "serve.db", switch, customer, FSCONF_ESL=unreachable)
    serve = ServeProcess(env)
    try:
        serve.wait_line(lambda line: "fsconf started" in line)
        waiting = serve.wait_line(lambda line: "reconnecting in" in line)
        assert "esl 127.0.0.1:" in waiting
        http = f"http://{env['FSCONF_HTTP_LISTEN']}"
        assert requests.get(f"{http}/healthz", timeout=5).status_code == 200
        assert "fsconf_esl_connected{" in requests.get(f"{http}/metrics", timeout=5).text
    finally:
        code = serve.stop()
    assert code == 0
    assert switch.password not in serve.output and customer.auth_token not in serve.output
