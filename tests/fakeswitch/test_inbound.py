"""Inbound ESL: auth, subscriptions, filters, api/bgapi, exit.

Texts from the captures errors.jsonl and b2_bgapi_jobuuid.jsonl.
"""

from __future__ import annotations

import json
import socket

from fsconf.esl import commands
from fsconf.esl.frames import ApiResponse, AuthRequest, CommandReply, DisconnectNotice, Event
from fsconf.testing import FakeSwitch
from tests.fakeswitch.client import Client

GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def test_auth_request_then_accepted(fs: FakeSwitch) -> None:
    client = Client(socket.create_connection(fs.address))
    assert isinstance(client.next_frame(), AuthRequest)
    reply = client.command(commands.auth("ClueCon"))
    assert reply.reply_text == "+OK accepted"
    client.close()


def test_bad_password_is_refused_and_closed(fs: FakeSwitch) -> None:
    client = Client(socket.create_connection(fs.address))
    client.next_frame()
    assert client.command(commands.auth("wrong")).reply_text == "-ERR invalid"
    assert client.read_closed()


def test_surprise16_esl_level_errors(fs: FakeSwitch) -> None:
    client = Client.connect(fs.address)
    expected = {
        b"foo\n\n": "-ERR command not found",
        b"event plain BOGUS_EVENT\n\n": "-ERR no keywords supplied",
        b"filter\n\n": "-ERR command not found",
        b"filter Event-Name\n\n": "-ERR invalid syntax",
        b"nixevent BOGUS\n\n": "-ERR no keywords supplied",
        b"api\n\n": "-ERR command not found",
        b"bgapi\n\n": "-ERR command not found",
        b"auth ClueCon\n\n": "-ERR command not found",
        b"noevents\n\n": "+OK no longer listening for events",
        b"myevents 00000000-0000-0000-0000-000000000000\n\n": "+OK Events Enabled",
        b"sendmsg 00000000-0000-0000-0000-000000000000\ncall-command: execute\n"
        b"execute-app-name: answer\n\n":
            "-ERR invalid session id [00000000-0000-0000-0000-000000000000]",
    }
    for data, text in expected.items():
        assert client.command(data).reply_text == text, data
    client.close()


def test_api_errors_exact_bodies(esl: Client) -> None:
    assert esl.api("nosuchcommand") == "-ERR nosuchcommand Command not found!\n"
    assert esl.api("uuid_kill 00000000-0000-0000-0000-000000000000") == "-ERR No such channel!\n"
    assert esl.api("uuid_kill") == "-USAGE: <uuid> [cause]\n"
    assert esl.api("originate nosuchtech/foo &park") == "-ERR CHAN_NOT_IMPLEMENTED\n"
    assert esl.api("originate loopback/nosuchext/default &park") == "-ERR NORMAL_CLEARING\n"
    assert esl.api("conference nosuch list") == "-ERR Conference nosuch not found\n"
    assert esl.api("conference list") == "+OK No active conferences.\n"
    assert esl.api("version") == "FreeSWITCH Version 1.11.3-dev~64bit ( 64bit)\n"
    assert esl.api("module_exists mod_conference") == "true"
    assert esl.api("conference").startswith("<conf name> canvas-auto-clear")


def test_bgapi_echoes_job_uuid_and_background_job_body(esl: Client) -> None:
    job = "ddbfa445-c005-4f54-bb10-73caf0dac22a"
    reply = esl.command(commands.bgapi("conference nosuch list", job))
    assert reply.reply_text == f"+OK Job-UUID: {job}"
    assert reply.headers["Job-UUID"] == job
    event = esl.event("BACKGROUND_JOB", **{"Job-UUID": job})
    assert event.body == "-ERR Conference nosuch not found\n"
    assert event.get("Job-Command") == "conference"
    assert event.get("Job-Command-Arg") == "nosuch list"


def test_bgapi_without_job_uuid_gets_one(esl: Client) -> None:
    reply = esl.command(b"bgapi status\n\n")
    job = reply.headers["Job-UUID"]
    assert reply.reply_text == f"+OK Job-UUID: {job}"
    assert esl.event("BACKGROUND_JOB", **{"Job-UUID": job}).body.startswith("UP ")


def test_b1_every_word_after_custom_is_a_subclass(fs: FakeSwitch) -> None:
    client = Client.connect(fs.address)
    reply = client.command(
        b"event json CUSTOM conference::maintenance BACKGROUND_JOB HEARTBEAT\n\n"
    )
    assert reply.reply_text == "+OK event listener enabled json"
    client.command(commands.bgapi("status", "10a04bf5-6ff9-45de-9f37-df7d288c4621"))
    fs.heartbeat()
    # Nothing but the marker reply may arrive: subscribe properly and compare.
    client.command(commands.event(["HEARTBEAT"], "json"))
    fs.heartbeat()
    event = client.expect(lambda f: isinstance(f, Event))
    assert event.name == "HEARTBEAT"
    assert not [f for f in client.backlog if isinstance(f, Event)]
    client.close()


def test_json_events_are_compact_with_body(fs: FakeSwitch) -> None:
    client = Client.connect(fs.address)
    client.command(commands.event(["BACKGROUND_JOB"], "json"))
    job = "a16f5364-9321-419b-93f2-76ad82c40f04"
    client.command(commands.bgapi("conference nosuch list", job))
    event = client.event("BACKGROUND_JOB")
    assert event.format == "json"
    assert event.body == "-ERR Conference nosuch not found\n"
    raw = bytes(client.raw).decode()
    head_end = raw.index("\nContent-Type: text/event-json\n\n")
    assert raw[raw.rindex("\n", 0, head_end) + 1 : head_end].startswith("Content-Length: ")
    payload = raw[head_end + len("\nContent-Type: text/event-json\n\n") :]
    assert payload.startswith('{"Event-Name":"BACKGROUND_JOB","Core-UUID":')
    assert json.loads(payload)["_body"] == event.body
    client.close()


def test_filter_unique_id_hides_background_job_and_delete(esl: Client, fs: FakeSwitch) -> None:
    uuid = "4b7d33ca-df87-40c7-a08c-99870c5beb41"
    reply = esl.command(commands.filter_add("Unique-ID", uuid))
    assert reply.reply_text == f"+OK filter added. [Unique-ID]=[{uuid}]"
    esl.command(commands.bgapi("status", "81fec1c4-96a9-407d-9bf5-5506260e35b9"))
    fs.heartbeat()  # has no Unique-ID either: filtered
    reply = esl.command(commands.filter_delete("Unique-ID", uuid))
    assert reply.reply_text == f"+OK filter deleted. [Unique-ID][{uuid}]"
    fs.heartbeat()
    event = esl.expect(lambda f: isinstance(f, Event))
    assert event.name == "HEARTBEAT"


def test_nixevent_and_heartbeat(esl: Client, fs: FakeSwitch) -> None:
    fs.heartbeat()
    heartbeat = esl.event("HEARTBEAT")
    assert heartbeat.core_uuid == fs.core_uuid
    assert heartbeat.get("Event-Info") == "System Ready"
    assert esl.command(commands.nixevent(["ALL"])).reply_text == "+OK events nixed"


def test_heartbeat_interval(fs: FakeSwitch) -> None:
    switch = FakeSwitch(heartbeat_interval=0.05).start()
    try:
        client = Client.connect(switch.address)
        client.command(commands.event(["HEARTBEAT"]))
        first = client.event("HEARTBEAT")
        second = client.event("HEARTBEAT")
        assert int(second.get("Event-Sequence")) > int(first.get("Event-Sequence"))
        client.close()
    finally:
        switch.stop()


def test_exit_says_bye_then_disconnect_notice(esl: Client) -> None:
    esl.send(commands.exit_())
    reply = esl.expect(lambda f: isinstance(f, CommandReply))
    assert reply.reply_text == "+OK bye"
    notice = esl.expect(lambda f: isinstance(f, DisconnectNotice))
    assert notice.body == GOODBYE
    assert esl.read_closed()


def test_commands_are_recorded_with_connection_name(fs: FakeSwitch, esl: Client) -> None:
    esl.api("version")
    assert [(c.connection, c.line) for c in fs.commands][-1] == ("inbound-1", "api version")
    assert fs.commands[0].line == "auth ClueCon"


def test_drop_connections_and_restart_new_core_uuid(fs: FakeSwitch, esl: Client) -> None:
    old = fs.core_uuid
    fs.restart()
    assert esl.read_closed()
    assert fs.core_uuid != old
    client = Client.connect(fs.address)
    client.command(commands.event(["HEARTBEAT"]))
    fs.heartbeat()
    assert client.event("HEARTBEAT").core_uuid == fs.core_uuid
    client.close()


def test_write_garbage_reaches_the_client(fs: FakeSwitch, esl: Client) -> None:
    fs.write_garbage(b"garbage without headers\n\n")
    esl.sock.settimeout(5)
    data = esl.sock.recv(100)
    assert b"garbage" in data
    assert isinstance(esl.decoder, object)


def test_api_reply_comes_before_the_events_it_causes(fs: FakeSwitch, esl: Client) -> None:
    esl.send(commands.api("originate {origination_uuid=7dea7e7f-57b9-4d1e-8b20-aaff175e8a28}"
                          "loopback/talk/default &park"))
    first_reply = esl.expect(lambda f: isinstance(f, ApiResponse))
    assert first_reply.body == "+OK 7dea7e7f-57b9-4d1e-8b20-aaff175e8a28\n"
