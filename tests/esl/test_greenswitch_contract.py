"""Contract: none of greenswitch 0.0.19's defects reaches fsconf.

For each defect listed in STYLE.md, the same bytes go over loopback to *our*
layer (EslConnection / InboundClient), which must stay correct. Where it is
quick and cannot hang the test run, the test also shows that greenswitch's own
``InboundESL`` really has the defect, so every test here could fail.
(EOF inside a body makes greenswitch spin without yielding, which would freeze
this process's hub: that one is shown on our side only.)
"""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import gevent.queue
import pytest
from greenswitch import esl as greenswitch_esl

from fsconf.errors import EslDisconnected
from fsconf.esl import commands
from fsconf.esl.codec import encode_api_response, encode_frame
from fsconf.esl.frames import Event
from fsconf.esl.transport import EslAuthTimeout, EslConnection
from tests.esl.scripted_server import WAIT, ScriptedSwitch, capture, frames_in, raw

GLUE_DEADLINE = 1.0


def background_job_plain() -> bytes:
    for record in capture("basic_two_party.jsonl"):
        data = raw(record)
        if record["dir"] == "in" and b"Event-Name: BACKGROUND_JOB" in data:
            return data
    raise AssertionError("no BACKGROUND_JOB in basic_two_party")


def event_json() -> bytes:
    return frames_in("b2_bgapi_jobuuid.jsonl")[6]


def invalid_utf8_event() -> bytes:
    body = b"caller \xff\xfe name\n"
    inner = (
        b"Event-Name: CUSTOM\nEvent-Subclass: conference%3A%3Amaintenance\n"
        b"Content-Length: " + str(len(body)).encode() + b"\n\n" + body
    )
    return encode_frame("text/event-plain", inner)


@pytest.fixture
def switch() -> Iterator[ScriptedSwitch]:
    with ScriptedSwitch() as scripted:
        yield scripted


def ours(switch: ScriptedSwitch) -> tuple[EslConnection, gevent.queue.Queue]:
    frames: gevent.queue.Queue = gevent.queue.Queue()
    connection = EslConnection.open(
        "127.0.0.1", switch.port, connect_timeout=WAIT, on_frame=frames.put
    )
    connection.authenticate("ClueCon", timeout=WAIT)
    return connection, frames


def theirs(switch: ScriptedSwitch) -> greenswitch_esl.InboundESL:
    client = greenswitch_esl.InboundESL("127.0.0.1", switch.port, "ClueCon")
    connecting = gevent.spawn(client.connect)
    connecting.join(WAIT)
    assert connecting.successful(), "greenswitch could not even connect"
    return client


def discard(client: greenswitch_esl.InboundESL) -> None:
    client._run = False
    gevent.killall(
        [g for g in (client._receive_events_greenlet, client._process_events_greenlet) if g],
        block=True,
        timeout=1,
    )
    client.sock.close()


def still_answers(connection: EslConnection, switch_peer) -> None:
    result = connection.request_async(commands.api("status"))
    switch_peer.expect("api status")
    switch_peer.send(encode_api_response("UP\n"))
    assert result.get(timeout=WAIT).body == "UP\n"


# --- 1. whole-frame URL-decoding glues a BACKGROUND_JOB body into a header ----


def test_background_job_body_stays_the_body(switch: ScriptedSwitch) -> None:
    connection, frames = ours(switch)
    switch.next_connection().send(background_job_plain())
    event = frames.get(timeout=WAIT)
    assert isinstance(event, Event)
    assert event.body == "+OK 7dea7e7f-57b9-4d1e-8b20-aaff175e8a28\n"
    assert event.get("Content-Length") == "41"
    assert event.get("Job-Command-Arg", "").startswith("{origination_uuid=7dea7e7f")
    assert all("+OK" not in value for value in event.headers.values())
    connection.close()


def test_greenswitch_glues_the_body_into_a_header() -> None:
    inner = background_job_plain().split(b"\n\n", 1)[1].decode()
    parsed = greenswitch_esl.ESLEvent(inner)
    assert "+OK 7dea7e7f" in parsed.headers["Content-Length"]


# --- 2. text/event-json kills greenswitch's reader -----------------------------


def test_event_json_is_delivered(switch: ScriptedSwitch) -> None:
    connection, frames = ours(switch)
    peer = switch.next_connection()
    peer.send(event_json())
    event = frames.get(timeout=WAIT)
    assert event.format == "json" and event.name == "BACKGROUND_JOB"
    assert event.body is not None and event.body.startswith("UP 0 years")
    still_answers(connection, peer)
    connection.close()


def test_greenswitch_reader_dies_on_event_json(switch: ScriptedSwitch) -> None:
    client = theirs(switch)
    try:
        switch.next_connection().send(event_json())
        client._receive_events_greenlet.join(WAIT)
        assert client._receive_events_greenlet.dead
        assert client.connected  # ... and it still claims to be connected
    finally:
        discard(client)


# --- 3. invalid UTF-8 in a body --------------------------------------------------


def test_invalid_utf8_survives_and_the_reader_goes_on(switch: ScriptedSwitch) -> None:
    connection, frames = ours(switch)
    peer = switch.next_connection()
    peer.send(invalid_utf8_event())
    event = frames.get(timeout=WAIT)
    assert event.body is not None
    assert event.body.encode("utf-8", "surrogateescape") == b"caller \xff\xfe name\n"
    still_answers(connection, peer)
    assert connection.connected
    connection.close()


def test_greenswitch_reader_dies_on_invalid_utf8(switch: ScriptedSwitch) -> None:
    client = theirs(switch)
    try:
        switch.next_connection().send(invalid_utf8_event())
        client._receive_events_greenlet.join(WAIT)
        assert client._receive_events_greenlet.dead
        assert client.connected
    finally:
        discard(client)


# --- 4. EOF in the middle of a body ----------------------------------------------


def test_eof_inside_a_body_ends_the_connection_promptly(switch: ScriptedSwitch) -> None:
    connection, _ = ours(switch)
    peer = switch.next_connection()
    pending = connection.request_async(commands.api("status"))
    peer.expect("api status")
    peer.send(b"Content-Type: api/response\nContent-Length: 100\n\nonly ten b")
    peer.close()
    with gevent.Timeout(GLUE_DEADLINE):  # greenswitch spins here forever
        with pytest.raises(EslDisconnected, match="inside a frame"):
            pending.get()
        assert connection.wait_closed()


# --- 5. commands pending at a disconnect -------------------------------------------


def test_pending_command_at_disconnect_raises(switch: ScriptedSwitch) -> None:
    connection, _ = ours(switch)
    peer = switch.next_connection()
    pending = connection.request_async(commands.api("status"))
    peer.expect("api status")
    peer.close()
    with pytest.raises(EslDisconnected):
        pending.get(timeout=WAIT)


def test_greenswitch_blocks_forever_on_a_command_pending_at_disconnect(
    switch: ScriptedSwitch,
) -> None:
    client = theirs(switch)
    peer = switch.next_connection()
    sending = gevent.spawn(client.send, "api status")
    try:
        peer.expect("api status")
        peer.close()
        client._receive_events_greenlet.join(WAIT)
        assert not client.connected
        sending.join(0.3)
        assert not sending.ready()  # neither a reply nor an error: stuck
    finally:
        sending.kill(block=False)
        discard(client)


# --- 6. an auth request that never comes --------------------------------------------


def test_auth_request_that_never_comes_times_out() -> None:
    with ScriptedSwitch(greeting=None) as switch:
        connection = EslConnection.open(
            "127.0.0.1", switch.port, connect_timeout=WAIT, on_frame=lambda f: None
        )
        with gevent.Timeout(WAIT), pytest.raises(EslAuthTimeout):
            connection.authenticate("ClueCon", timeout=0.2)


def test_greenswitch_waits_forever_for_auth_request() -> None:
    with ScriptedSwitch(greeting=None) as switch:
        client = greenswitch_esl.InboundESL("127.0.0.1", switch.port, "ClueCon", timeout=WAIT)
        connecting = gevent.spawn(client.connect)
        try:
            switch.next_connection()
            connecting.join(0.3)
            assert not connecting.ready()
        finally:
            connecting.kill(block=False)
            discard(client)


# --- 7. send(): our sends are whole and serialised ------------------------------------


def test_concurrent_big_sends_are_not_interleaved(switch: ScriptedSwitch) -> None:
    connection, _ = ours(switch)
    peer = switch.next_connection()
    arguments = [chr(ord("a") + n) * 300_000 for n in range(4)]
    senders = [
        gevent.spawn(connection.request_async, commands.api(f"echo {text}")) for text in arguments
    ]
    gevent.joinall(senders, timeout=WAIT, raise_error=True)
    received = sorted(peer.expect("api echo").argument for _ in arguments)
    assert received == sorted(f"echo {text}" for text in arguments)
    connection.close()
