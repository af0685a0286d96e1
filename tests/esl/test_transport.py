"""EslConnection over real loopback sockets against a scripted switch."""

from __future__ import annotations

import logging

import gevent
import gevent.queue
import pytest

from fsconf.errors import EslAuthError, EslDisconnected, EslTimeout
from fsconf.esl import commands
from fsconf.esl.codec import encode_api_response, encode_event_plain
from fsconf.esl.frames import ApiResponse, CommandReply, Event, Frame
from fsconf.esl.transport import EslAuthTimeout, EslConnection
from tests.esl.scripted_server import WAIT, ScriptedSwitch, capture, frames_in, raw


def open_connection(
    switch: ScriptedSwitch, frames: gevent.queue.Queue | None = None
) -> EslConnection:
    sink = frames if frames is not None else gevent.queue.Queue()
    return EslConnection.open("127.0.0.1", switch.port, connect_timeout=WAIT, on_frame=sink.put)


def test_auth_ok_sends_the_captured_bytes() -> None:
    with ScriptedSwitch() as switch:
        connection = open_connection(switch)
        reply = connection.authenticate("ClueCon", timeout=WAIT)
        peer = switch.next_connection()
        assert reply.reply_text == "+OK accepted"
        assert bytes(peer.bytes_received) == frames_bytes_out("b2_bgapi_jobuuid.jsonl")[0]
        assert connection.connected
        connection.close()


def frames_bytes_out(name: str) -> list[bytes]:
    return [raw(record) for record in capture(name) if record["dir"] == "out"]


def test_wrong_password_raises_auth_error_and_closes() -> None:
    with ScriptedSwitch(password="secret") as switch:
        connection = open_connection(switch)
        with pytest.raises(EslAuthError, match="-ERR invalid"):
            connection.authenticate("ClueCon", timeout=WAIT)
        assert not connection.connected


def test_auth_request_that_never_comes_times_out() -> None:
    with ScriptedSwitch(greeting=None) as switch:
        connection = open_connection(switch)
        with gevent.Timeout(WAIT), pytest.raises(EslAuthTimeout) as caught:
            connection.authenticate("ClueCon", timeout=0.2)
        assert isinstance(caught.value, EslTimeout)
        assert isinstance(caught.value, EslAuthError)
        assert not connection.connected
        assert switch.next_connection().wait_closed()


def test_rude_rejection_is_a_clear_auth_error() -> None:
    with ScriptedSwitch(greeting="rude") as switch:
        connection = open_connection(switch)
        with pytest.raises(EslAuthError, match="rude rejection"):
            connection.authenticate("ClueCon", timeout=WAIT)
        assert "Access Denied" in (connection.rejection or "")


def authenticated(switch: ScriptedSwitch, frames: gevent.queue.Queue | None = None):
    connection = open_connection(switch, frames)
    connection.authenticate("ClueCon", timeout=WAIT)
    return connection, switch.next_connection()


def test_pipelined_replies_are_matched_in_order() -> None:
    with ScriptedSwitch() as switch:
        connection, peer = authenticated(switch)
        first = connection.request_async(commands.api("uuid_setvar x y 1"))
        second = connection.request_async(commands.filter_add("Unique-ID", "abc"))
        third = connection.request_async(commands.api("conference CF0 list"))
        for expected in ("api uuid_setvar", "filter Unique-ID", "api conference"):
            peer.expect(expected)
        # Real reply frames (b2_bgapi_jobuuid), in the order FreeSWITCH sends them.
        replies = frames_in("b2_bgapi_jobuuid.jsonl")
        peer.send(replies[22], replies[19], replies[23])
        assert first.get(timeout=WAIT) == ApiResponse(
            "+OK\n", {"Content-Type": "api/response", "Content-Length": "4"}
        )
        assert second.get(timeout=WAIT).reply_text.startswith("+OK filter added")
        assert third.get(timeout=WAIT).body == "+OK mute 136\n+OK mute 135\n"
        connection.close()


def test_command_timeout_tears_down_and_fails_the_others() -> None:
    with ScriptedSwitch() as switch:
        connection, peer = authenticated(switch)
        other = connection.request_async(commands.api("status"))
        with gevent.Timeout(WAIT), pytest.raises(EslTimeout) as caught:
            connection.request(commands.api("version"), timeout=0.2)
        assert caught.value.command == "api version"
        assert not connection.connected
        with pytest.raises(EslDisconnected):
            other.get(timeout=WAIT)
        assert peer.wait_closed()
        with pytest.raises(EslDisconnected):
            connection.request(commands.api("status"), timeout=WAIT)


def test_disconnect_fails_every_pending_request_promptly() -> None:
    with ScriptedSwitch() as switch:
        connection, peer = authenticated(switch)
        pending = [connection.request_async(commands.api(f"status {n}")) for n in range(3)]
        peer.expect("api status 0")
        peer.close()
        with gevent.Timeout(WAIT):
            for result in pending:
                with pytest.raises(EslDisconnected):
                    result.get()
        assert connection.wait_closed(WAIT)
        assert not connection.connected


def test_protocol_error_logs_length_not_content_and_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ScriptedSwitch() as switch:
        connection, peer = authenticated(switch)
        pending = connection.request_async(commands.api("status"))
        caplog.set_level(logging.DEBUG, logger="fsconf.esl.transport")
        peer.send(b"this is no header secret-password-42\n\n")
        with pytest.raises(EslDisconnected):
            pending.get(timeout=WAIT)
        assert not connection.connected
        assert "secret-password-42" not in caplog.text
        assert "protocol error in the last 38 bytes" in caplog.text


def test_events_reach_on_frame_in_order_and_a_failing_owner_does_not_kill_the_reader() -> None:
    received: list[Frame] = []

    def on_frame(frame: Frame) -> None:
        received.append(frame)
        if len(received) == 1:
            raise RuntimeError("owner bug")

    with ScriptedSwitch() as switch:
        connection = EslConnection.open(
            "127.0.0.1", switch.port, connect_timeout=WAIT, on_frame=on_frame
        )
        connection.authenticate("ClueCon", timeout=WAIT)
        peer = switch.next_connection()
        peer.send(
            encode_event_plain({"Event-Name": "CUSTOM", "Unique-ID": "a"}),
            encode_event_plain({"Event-Name": "HEARTBEAT"}),
        )
        reply = connection.request_async(commands.api("status"))
        peer.expect("api status")
        peer.send(encode_api_response("UP\n"))
        assert reply.get(timeout=WAIT).body == "UP\n"
        assert [f.name for f in received if isinstance(f, Event)] == ["CUSTOM", "HEARTBEAT"]
        assert connection.connected
        connection.close()


def test_reply_types_are_kept() -> None:
    with ScriptedSwitch() as switch:
        connection, peer = authenticated(switch)
        result = connection.request_async(commands.filter_add("Unique-ID", "x"))
        peer.expect("filter")
        peer.send(frames_in("b2_bgapi_jobuuid.jsonl")[19])
        reply = result.get(timeout=WAIT)
        assert isinstance(reply, CommandReply)
        assert reply.reply_text.startswith("+OK filter added")
        connection.close()
