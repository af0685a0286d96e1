"""Outbound ESL call sessions (captures: outbound_socket, b2_* call-N connections)."""

from __future__ import annotations

import uuid as uuid_module

from fsconf.esl import commands
from fsconf.esl.frames import CommandReply, DisconnectNotice
from fsconf.testing import FakeSwitch
from tests.fakeswitch.client import Client, SessionListener, keys

ROOM = "CF5218adc6a934491a91811e46ef75322e"


def _eid() -> str:
    return str(uuid_module.uuid4())


def session(fs: FakeSwitch, listener: SessionListener, name: str = "Alice",
            number: str = "+15551230001") -> tuple[str, Client]:
    uuid = fs.place_call(listener.address, caller_id_number=number, caller_id_name=name,
                         destination="fsconf_sock_8090")
    call = listener.accept()
    reply = call.command(commands.connect())
    assert reply.headers["Unique-ID"] == uuid
    for data, text in ((commands.myevents(), "+OK Events Enabled"),
                       (commands.linger(), "+OK will linger"),
                       (commands.event([], subclasses=["conference::maintenance"]),
                        "+OK event listener enabled plain")):
        assert call.command(data).reply_text == text
    return uuid, call


def execute(call: Client, app: str, arg: str | None = None, lock: bool = True) -> str:
    event_uuid = _eid()
    reply = call.command(commands.sendmsg_execute(app, arg, event_uuid=event_uuid,
                                                  event_lock=lock))
    assert reply.reply_text == "+OK"
    return event_uuid


def test_surprise17_connect_reply_is_channel_data(
    fs: FakeSwitch, listener: SessionListener
) -> None:
    uuid = fs.place_call(listener.address, caller_id_number="+15551230001",
                         caller_id_name="Alice", destination="fsconf_sock_8090")
    call = listener.accept()
    call.send(commands.connect())
    raw = b""
    while not raw.endswith(b"\n\n"):
        raw += call.sock.recv(65536)
    text = raw.decode()
    assert text.startswith("Event-Name: CHANNEL_DATA\nCore-UUID: ")
    assert text.endswith(
        "Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n"
    )
    assert f"\nUnique-ID: {uuid}\n" in text
    assert "\nChannel-Caller-ID-Number: %2B15551230001\n" in text
    assert "\nCall-Direction: inbound\n" in text
    assert "\nChannel-Name: loopback/fsconf_sock_8090-b\n" in text
    assert f"\nvariable_uuid: {uuid}\n" in text
    assert [c.connection for c in fs.commands] == ["call-1"]


def test_application_uuid_is_event_uuid_header_and_body(
    fs: FakeSwitch, listener: SessionListener
) -> None:
    _, call = session(fs, listener)
    body_arg = execute(call, "set", "conference_enter_sound=tone_stream://%(200,0,800)")
    done = call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": body_arg})
    assert done.get("Application-Data") == "conference_enter_sound=tone_stream://%(200,0,800)"
    assert done.get("Application-Response") == "_none_"
    call.send(b"sendmsg\ncall-command: execute\nexecute-app-name: set\n"
              b"Event-UUID: 7d360dc4-4393-47e0-869b-fd2b97a2ce7a\n"
              b"execute-app-arg: hangup_after_conference=false\n\n")
    done = call.event("CHANNEL_EXECUTE_COMPLETE",
                      **{"Application-UUID": "7d360dc4-4393-47e0-869b-fd2b97a2ce7a"})
    assert done.get("variable_hangup_after_conference") == "false"
    execute(call, "multiset", "^^|a=1|b=2")
    done = call.event("CHANNEL_EXECUTE_COMPLETE", Application="multiset")
    assert (done.get("variable_a"), done.get("variable_b")) == ("1", "2")


def test_b2_kick_returns_conference_app_channel_stays_up(
    fs: FakeSwitch, listener: SessionListener, esl: Client
) -> None:
    uuid, call = session(fs, listener)
    execute(call, "set", "hangup_after_conference=false")
    execute(call, "answer")
    join = execute(call, "conference", f"{ROOM}@fsconf")
    add = call.event("add-member")
    call.event("CHANNEL_EXECUTE", **{"Application-UUID": join})
    member = add.get("Member-ID")
    assert esl.api(f"conference {ROOM} kick {member}") == f"+OK kicked {member}\n"
    done = call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": join})
    assert done.get("Application-Response") == "_none_"
    assert esl.api(f"uuid_exists {uuid}") == "true"
    assert esl.api(f"uuid_getvar {uuid} conference_member_id") == member
    # B14: rejoining keeps the id
    execute(call, "conference", f"{ROOM}@fsconf")
    assert call.event("add-member").get("Member-ID") == member


def test_hangup_linger_notice_then_exit(fs: FakeSwitch, listener: SessionListener,
                                        esl: Client) -> None:
    uuid, call = session(fs, listener)
    execute(call, "answer")
    join = execute(call, "conference", f"{ROOM}@fsconf")
    call.event("add-member")
    other = fs.channels[uuid].other
    assert other is not None
    esl.api(f"uuid_kill {other.uuid}")
    assert call.event("CHANNEL_HANGUP").get("Hangup-Cause") == "NORMAL_CLEARING"
    assert call.event("del-member").get("Hangup-Cause") == "NORMAL_CLEARING"
    call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": join})
    call.event("CHANNEL_HANGUP_COMPLETE")
    notice = call.expect(lambda f: isinstance(f, DisconnectNotice))
    assert notice.linger and notice.linger_time == -1
    assert notice.headers["Controlled-Session-UUID"] == uuid
    assert esl.api(f"uuid_exists {uuid}") == "false"
    call.send(commands.exit_())
    assert call.expect(lambda f: isinstance(f, CommandReply)).reply_text == "+OK bye"
    bye = call.expect(lambda f: isinstance(f, DisconnectNotice))
    assert bye.body.startswith("Disconnected, goodbye.")
    assert bye.headers["Content-Disposition"] == "disconnect"
    esl.event("CHANNEL_DESTROY", **{"Unique-ID": uuid})
    assert call.read_closed()


def test_b12_event_lock_queues_and_break_all_discards(
    fs: FakeSwitch, listener: SessionListener, esl: Client
) -> None:
    uuid, call = session(fs, listener)
    play = execute(call, "playback", "tone_stream://%(1000,0,440);loops=-1")
    call.event("CHANNEL_EXECUTE", **{"Application-UUID": play})
    execute(call, "set", "fsconf_queued_b=yes", lock=True)
    assert esl.api(f"uuid_getvar {uuid} fsconf_queued_b") == "_undef_"
    assert esl.api(f"uuid_break {uuid} all") == "+OK\n"
    done = call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": play})
    assert done.get("Application-Response") == "FILE PLAYED"  # B13
    marker = execute(call, "set", "fsconf_marker=1")
    call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": marker})
    assert esl.api(f"uuid_getvar {uuid} fsconf_queued_b") == "_undef_"  # discarded


def test_b12_plain_break_lets_queue_run_and_no_lock_runs_nested(
    fs: FakeSwitch, listener: SessionListener, esl: Client
) -> None:
    uuid, call = session(fs, listener)
    # b2_park_then_join A: a playback WITHOUT event-lock lets the next message run nested
    play = execute(call, "playback", "tone_stream://%(1000,0,440);loops=-1", lock=False)
    call.event("CHANNEL_EXECUTE", **{"Application-UUID": play})
    nested = execute(call, "set", "fsconf_nested_a=yes", lock=False)
    call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": nested})
    esl.api(f"uuid_break {uuid} all")
    call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": play})
    # C: behind an event-lock playback even a message without event-lock queues; a plain
    # uuid_break lets it run after the playback
    play = execute(call, "playback", "tone_stream://%(1000,0,440);loops=-1")
    call.event("CHANNEL_EXECUTE", **{"Application-UUID": play})
    queued = execute(call, "set", "fsconf_queued_c=yes", lock=False)
    esl.api(f"uuid_break {uuid}")
    call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": play})
    call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": queued})
    assert esl.api(f"uuid_getvar {uuid} fsconf_queued_c") == "yes"


def test_b2_3_hangup_on_star_leaves_channel_up(
    fs: FakeSwitch, listener: SessionListener, esl: Client
) -> None:
    uuid, call = session(fs, listener)
    execute(call, "set", "conference_controls=fsconf-hangup-on-star")
    join = execute(call, "conference", f"{ROOM}@fsconf")
    call.event("add-member")
    assert esl.api(f"uuid_recv_dtmf {uuid} *") == f"+OK {uuid} received DTMF *.\n"
    assert call.event("DTMF").get("DTMF-Digit") == "*"
    call.event("del-member")
    call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": join})
    assert esl.api(f"uuid_exists {uuid}") == "true"
    fs.receive_dtmf(uuid, "*")  # not in a room any more: only the DTMF
    call.event("DTMF")


def test_b2_2_endconf_kick_hangs_up_only_default_members(
    fs: FakeSwitch, listener: SessionListener, esl: Client
) -> None:
    gina, call_g = session(fs, listener, "Gina", "+15551231004")
    execute(call_g, "set", "hangup_after_conference=false")
    execute(call_g, "conference", f"{ROOM}@fsconf+flags{{endconf}}")
    gina_id = call_g.event("add-member").get("Member-ID")
    hank, call_h = session(fs, listener, "Hank", "+15551231005")
    execute(call_h, "conference", f"{ROOM}@fsconf")
    call_h.event("add-member")
    esl.api(f"conference {ROOM} kick {gina_id}")
    esl.event("conference-destroy")
    call_h.event("CHANNEL_HANGUP_COMPLETE")
    assert esl.api(f"uuid_exists {hank}") == "false"
    assert esl.api(f"uuid_exists {gina}") == "true"


def test_sendmsg_hangup_and_jitterbuffer_noop(fs: FakeSwitch, listener: SessionListener) -> None:
    _, call = session(fs, listener)
    jb = execute(call, "jitterbuffer", "60")
    assert call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": jb}).get(
        "Application-Response") == "_none_"
    call.command(commands.sendmsg_hangup("USER_BUSY"))
    assert call.event("CHANNEL_HANGUP_COMPLETE").get("Hangup-Cause") == "USER_BUSY"
    assert call.expect(lambda f: isinstance(f, DisconnectNotice)).linger


def test_outbound_api_and_enter_sound_only_play_file_done(
    fs: FakeSwitch, listener: SessionListener, esl: Client
) -> None:
    first, call_1 = session(fs, listener)
    assert call_1.api(f"uuid_getvar {first} conference_name") == "_undef_"
    execute(call_1, "conference", f"{ROOM}@fsconf")
    call_1.event("add-member")
    _, call_2 = session(fs, listener, "Bob", "+15551230002")
    execute(call_2, "set", "conference_enter_sound=tone_stream://%(200,0,800)")
    execute(call_2, "conference", f"{ROOM}@fsconf")
    done = esl.event("play-file-done")  # B8: no play-file before it
    assert done.get("File") == "tone_stream://%(200,0,800)"
    assert done.get("milliseconds") == "400"  # B6: twice the real length
    assert not [e for e in esl.events() if e.action == "play-file"]


def test_conference_app_pre_answers_an_unanswered_channel(
    fs: FakeSwitch, listener: SessionListener, esl: Client
) -> None:
    """b2_max_members_full call-4: `conference` (SAF_NONE) on an unanswered channel fires
    CHANNEL_PROGRESS_MEDIA on the loopback peer, then on the channel, before its
    CHANNEL_EXECUTE; then the answer. An answered channel gets none."""
    uuid, call = session(fs, listener)
    other = fs.channels[uuid].other
    assert other is not None
    join = execute(call, "conference", f"{ROOM}@fsconf")
    seen = call.drain_until("CHANNEL_ANSWER")
    names = [e.name for e in seen if e.name.startswith("CHANNEL_")]
    assert names[-3:] == ["CHANNEL_PROGRESS_MEDIA", "CHANNEL_EXECUTE", "CHANNEL_ANSWER"]
    assert seen[-2].get("Application-UUID") == join
    inbound = esl.drain_until("CHANNEL_EXECUTE", Application="conference")
    media = [e.get("Unique-ID") for e in inbound if e.name == "CHANNEL_PROGRESS_MEDIA"]
    assert media == [other.uuid, uuid]
    _uuid2, call2 = session(fs, listener, "Bob", "+15551230002")
    execute(call2, "answer")
    join2 = execute(call2, "conference", f"{ROOM}@fsconf")
    seen = call2.drain_until("add-member")
    assert any(e.get("Application-UUID") == join2 for e in seen)
    assert "CHANNEL_PROGRESS_MEDIA" not in [e.name for e in seen]


def test_pre_answer_app_is_early_media_not_an_answer(
    fs: FakeSwitch, listener: SessionListener, esl: Client
) -> None:
    """`pre_answer` is switch_channel_pre_answer (a 183): CHANNEL_PROGRESS_MEDIA on the
    loopback peer, then on the channel, and no CHANNEL_ANSWER until `answer`."""
    uuid, call = session(fs, listener)
    other = fs.channels[uuid].other
    assert other is not None
    execute(call, "pre_answer")
    assert not fs.channels[uuid].answered.is_set()
    inbound = esl.drain_until("CHANNEL_EXECUTE_COMPLETE", Application="pre_answer")
    media = [e.get("Unique-ID") for e in inbound if e.name == "CHANNEL_PROGRESS_MEDIA"]
    assert media == [other.uuid, uuid]
    assert "CHANNEL_ANSWER" not in [e.name for e in inbound]
    execute(call, "answer")
    assert fs.channels[uuid].answered.is_set()


def test_myevents_alone_carries_no_conference_events(
    fs: FakeSwitch, listener: SessionListener, esl: Client
) -> None:
    """mod_event_socket's myevents subscribes a fixed list of channel events
    (no CUSTOM): a session sees its member's conference::maintenance events
    only after its own ``event ... CUSTOM conference::maintenance``, as every
    captured call session sent one. fsconf's sessions send none."""
    uuid = fs.place_call(listener.address, caller_id_number="+15551230001",
                         caller_id_name="Alice", destination="fsconf_sock_8090")
    call = listener.accept()
    call.command(commands.connect())
    assert call.command(commands.myevents()).reply_text == "+OK Events Enabled"
    execute(call, "answer")
    join = execute(call, "conference", f"{ROOM}@fsconf")
    esl.event("add-member", **{"Unique-ID": uuid})
    fs.start_talking(uuid)
    esl.event("start-talking", **{"Unique-ID": uuid})
    esl.api(f"uuid_kill {uuid}")
    seen = call.drain_until("CHANNEL_HANGUP_COMPLETE")
    names = keys(seen)
    assert "CHANNEL_EXECUTE" in names and "CHANNEL_HANGUP" in names
    assert [e.name for e in seen if e.name == "CUSTOM"] == []
    assert any(e.get("Application-UUID") == join for e in seen)


def test_myevents_and_the_conference_subscription_carry_the_members_events(
    fs: FakeSwitch, listener: SessionListener, esl: Client
) -> None:
    uuid, call = session(fs, listener)  # connect, myevents, linger, event CUSTOM ...
    execute(call, "answer")
    execute(call, "conference", f"{ROOM}@fsconf")
    assert call.event("add-member").get("Unique-ID") == uuid
    fs.start_talking(uuid)
    assert call.event("start-talking").get("Unique-ID") == uuid
