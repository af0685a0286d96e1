"""One test per surprise of ``tests/data/README.md`` (1-20 and B1-B20).

Switch behaviours run against the FakeSwitch over real ESL sockets (inbound, and outbound call
sessions through a loopback listener); wire-format facts run the production codec on the
capture's own frame. Expected strings are taken from the captures wherever one shows them
(:func:`captured_reply`), so a test can only pass when the FakeSwitch says what FreeSWITCH said.
Surprises that are controller duties test that the switch *sets the trap*; the docstring names
the fsconf component that must avoid it. Nothing is skipped: what the FakeSwitch cannot show yet
fails.

=====  =====================================================================
#      test (what the surprise is, in short)
=====  =====================================================================
1      test_s01_originated_member_shows_callee_id
         (originated member reports callee id)
2      test_s02_lock_stops_only_inbound_or_enforced
         (lock does not stop originated members)
3      test_s03_empty_output_is_err_no_reply
         (empty api output is ``-ERR no reply``)
4      test_s04_usage_text_without_err
         (usage text instead of -ERR)
5      test_s05_misspelled_errors
         ("Non-Existant" / conference not found)
6      test_s06_mixed_result_bodies
         (mixed-result bodies)
7      test_s07_recording_unknown_keyword_records
         (``recording bogus`` starts and fails a recording)
8      test_s08_set_returns_old_value
         (``set`` returns the old value)
9      test_s09_max_energy_numbers_swapped
         (max-energy prints the numbers swapped)
10     test_s10_play_status_ignores_async
         (play_status ignores async plays)
11     test_s11_tmute_and_quiet
         (tmute answers mute/unmute; quiet still fires events)
12     test_s12_setvar_becomes_event_header
         (setvar vars become event headers)
13     test_s13_dtmf_caller_controls
         (DTMF caller-controls fire level events)
14     test_s14_del_member_hangup_cause
         (Hangup-Cause on del-member only when hung up)
15     test_s15_member_flag_names
         (member flag names in list/json_list/events)
16     test_s16_esl_level_errors
         (ESL-level errors)
17     test_s17_connect_reply_wire_format, test_s17_connect_reply_and_linger
         (outbound connect reply carries channel data (wire))
18     test_s18_play_missing_file
         (conference play returns at once / missing file)
19     test_s19_originate_app_args_cut_at_paren
         (``&app(args)`` cut at the first ``)``)
20     test_s20_floor_change_and_play_done_fields, test_s20_wire_format
         (floor-change Old/New-ID none, lowercase play-file-done)
B1     test_b01_custom_must_be_last
         (``event ... CUSTOM x X Y``: all subclasses)
B2     test_b02_kick_does_not_hang_up_session
         (kick/hup never hang up a socket-controlled channel)
B3     test_b03_kicked_endconf_ends_room
         (a kicked endconf member ends the room)
B4     test_b04_silent_entry_hides_add_member
         (silent_entry suppresses add-member; mute speaks)
B5     test_b05_play_vars_on_done
         (``{vars}`` come back on *-done)
B6     test_b06_play_done_twice_length
         (play-file-done reports twice the length)
B7     test_b07_play_unknown_member
         (play to unknown member: garbage id + usage)
B8     test_b08_say_events_no_var_parsing
         (enter sound gives only play-file-done; say events)
B9     test_b09_no_empty_room
         (no empty room)
B10    test_b10_hold_views_disagree
         (hold views disagree)
B11    test_b11_full_room_refuses_silently
         (full room refuses silently)
B12    test_b12_sendmsg_without_event_lock_nests
         (sendmsg without event-lock runs nested)
B13    test_b13_uuid_break_is_file_played
         (uuid_break ends playback with FILE PLAYED)
B14    test_b14_rejoin_keeps_member_id
         (rejoin keeps the member id)
B15    test_b15_recording_quirks
         (recording event/answer quirks)
B16    test_b16_relate_no_events
         (relate: no events, errors)
B17    test_b17_http_modules
         (mod_http_cache loaded; unload mod_httapi)
B18    test_b18_jitterbuffer_noop
         (jitterbuffer without RTP is a no-op)
B19    test_b19_fsctl_loglevel_without_arg
         (``fsctl loglevel`` without argument sets DISABLE)
B20    test_b20_xml_list_url_encodes_caller_id
         (show calls / xml_list encoding)
=====  =====================================================================
"""

from __future__ import annotations

import json
import socket
import uuid as uuidlib
from collections.abc import Callable, Iterator

import gevent
import gevent.event
import gevent.queue
import pytest

from fsconf.esl.codec import FrameDecoder
from fsconf.esl.frames import ApiResponse, CommandReply, DisconnectNotice, Event, Frame
from tests.fakeswitch import harness

TIMEOUT = 3.0
CONF = "conference::maintenance"


# --- helpers ---------------------------------------------------------------------------------


def captured_reply(capture: str, command: str) -> str:
    """The body/Reply-Text the real switch answered to the first ``command`` in ``capture``."""
    cap = harness.load_capture(capture)
    lines = cap.lines
    for i, line in enumerate(lines):
        if line.dir == "out" and line.raw.rstrip("\n") == command:
            for nxt in lines[i + 1 :]:
                if nxt.conn != line.conn or nxt.dir != "in":
                    continue
                if isinstance(nxt.frame, ApiResponse):
                    return nxt.frame.body
                if isinstance(nxt.frame, CommandReply):
                    return nxt.frame.reply_text
    raise AssertionError(f"{command!r} not in {capture}")


def captured_frame(capture: str, predicate: Callable[[Frame], bool]) -> tuple[str, Frame]:
    for line in harness.load_capture(capture).lines:
        if line.dir == "in" and line.frame is not None and predicate(line.frame):
            return line.raw, line.frame
    raise AssertionError(f"no such frame in {capture}")


class Esl:
    """A minimal ESL client for the tests (inbound, or an accepted outbound socket)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames: list[Frame] = []
        self.replies: gevent.queue.Queue[Frame] = gevent.queue.Queue()
        self.changed = gevent.event.Event()
        self.reader = gevent.spawn(self._read)

    @classmethod
    def inbound(cls, address: tuple[str, int], password: str = "ClueCon") -> Esl:
        esl = cls(socket.create_connection(address, timeout=TIMEOUT))
        esl.sock.settimeout(None)
        esl.wait(lambda: bool(esl.frames), "auth/request")
        assert esl.cmd(f"auth {password}").startswith("+OK")
        return esl

    def _read(self) -> None:
        decoder = FrameDecoder()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            for frame in decoder.frames(data):
                self.frames.append(frame)
                if isinstance(frame, CommandReply | ApiResponse):
                    self.replies.put(frame)
                self.changed.set()
        self.changed.set()

    def send(self, raw: str) -> None:
        self.sock.sendall(raw.encode())

    def _reply(self) -> Frame:
        return self.replies.get(timeout=TIMEOUT)

    def cmd(self, line: str) -> str:
        self.send(line + "\n\n")
        reply = self._reply()
        assert isinstance(reply, CommandReply), reply
        return reply.reply_text

    def reply(self, line: str) -> CommandReply:
        self.send(line + "\n\n")
        reply = self._reply()
        assert isinstance(reply, CommandReply), reply
        return reply

    def api(self, line: str) -> str:
        self.send(f"api {line}\n\n")
        reply = self._reply()
        assert isinstance(reply, ApiResponse), reply
        return reply.body

    def events(self, predicate: Callable[[Event], bool] = lambda e: True) -> list[Event]:
        return [f for f in self.frames if isinstance(f, Event) and predicate(f)]

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        with gevent.Timeout(timeout, AssertionError(f"timed out waiting for {what}")):
            while not predicate():
                self.changed.clear()
                if predicate():
                    break
                self.changed.wait()

    def wait_event(self, predicate: Callable[[Event], bool], what: str = "event") -> Event:
        self.wait(lambda: bool(self.events(predicate)), what)
        return self.events(predicate)[0]

    def mark(self) -> int:
        return len(self.frames)

    def since(self, mark: int, predicate: Callable[[Event], bool] = lambda e: True) -> list[Event]:
        return [f for f in self.frames[mark:] if isinstance(f, Event) and predicate(f)]

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            self.reader.kill(block=False)


def conf(action: str, uuid: str | None = None) -> Callable[[Event], bool]:
    return lambda e: (
        e.subclass == CONF and e.action == action and (uuid is None or e.unique_id == uuid)
    )


def named(name: str, uuid: str | None = None, app: str | None = None) -> Callable[[Event], bool]:
    return lambda e: (
        e.name == name
        and (uuid is None or e.unique_id == uuid)
        and (app is None or e.get("Application") == app)
    )


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = harness.make_listener()
    yield sock
    sock.close()


@pytest.fixture
def fs(listener: socket.socket):  # type: ignore[no-untyped-def]
    import fsconf.testing as testing  # a missing FakeSwitch fails every test (no skip)

    switch = testing.FakeSwitch(password="ClueCon", host="127.0.0.1", port=0, profiles="captured")
    if hasattr(switch, "time_scale"):
        switch.time_scale = 0.02
    switch.dialplan["talk"] = testing.Talk()
    switch.dialplan["silent"] = testing.Silent()
    switch.dialplan["fsconf_sock_1"] = testing.Socket(listener.getsockname()[:2])
    switch.start()
    yield switch
    switch.stop()


@pytest.fixture
def esl(fs) -> Iterator[Esl]:  # type: ignore[no-untyped-def]
    client = Esl.inbound(tuple(fs.address))
    assert client.cmd("event plain ALL").startswith("+OK")
    yield client
    client.close()


def room_name() -> str:
    return "CF" + uuidlib.uuid4().hex


def originate(
    esl: Esl,
    room: str,
    *,
    profile: str = "default",
    ext: str = "silent",
    flags: str = "",
    variables: str = "",
    callee: bool = True,
    join: bool = True,
) -> str:
    """bgapi originate a loopback member; returns its uuid once it joined (or was refused)."""
    uid = str(uuidlib.uuid4())
    vs = f"origination_uuid={uid},origination_caller_id_number=5551,"
    vs += "origination_caller_id_name=Tester"
    if callee:
        vs += ",origination_callee_id_number=5551,origination_callee_id_name=Tester"
    if variables:
        vs += "," + variables
    target = f"{room}@{profile}" + (f"+flags{{{flags}}}" if flags else "")
    assert esl.cmd(
        f"bgapi originate {{{vs}}}loopback/{ext}/default &conference({target})"
    ).startswith("+OK")
    if join:
        esl.wait_event(conf("add-member", uid), f"add-member of {uid}")
    else:
        esl.wait_event(named("CHANNEL_EXECUTE_COMPLETE", uid, "conference"), "refusal")
    return uid


def member_id(esl: Esl, uid: str) -> str:
    return esl.wait_event(conf("add-member", uid)).get("Member-ID") or ""


class Session:
    """A call session: the switch's outbound socket to our listener (connect/myevents/linger)."""

    def __init__(self, esl: Esl, listener: socket.socket, name: str = "Sess") -> None:
        self.a_leg = str(uuidlib.uuid4())
        vs = (
            f"origination_uuid={self.a_leg},origination_caller_id_number=+15550001,"
            f"origination_caller_id_name={name},origination_callee_id_number=+15550001,"
            f"origination_callee_id_name={name}"
        )
        assert esl.cmd(f"bgapi originate {{{vs}}}loopback/fsconf_sock_1/default &park").startswith(
            "+OK"
        )
        with gevent.Timeout(TIMEOUT, AssertionError("the switch never connected")):
            sock, _ = listener.accept()
        self.esl = Esl(sock)
        self.connect = self.esl.reply("connect")
        self.uuid = self.connect.headers.get("Unique-ID", "")
        assert self.esl.cmd("myevents").startswith("+OK")
        assert self.esl.cmd("linger").startswith("+OK")
        assert self.esl.cmd(f"event plain CUSTOM {CONF}").startswith("+OK")

    def execute(self, app: str, arg: str = "", *, lock: bool = False, wait: bool = True) -> str:
        event_uuid = str(uuidlib.uuid4())
        msg = f"sendmsg\ncall-command: execute\nexecute-app-name: {app}\nEvent-UUID: {event_uuid}\n"
        if lock:
            msg += "event-lock: true\n"
        if arg:
            msg += f"execute-app-arg: {arg}\n"
        self.esl.send(msg + "\n")
        reply = self.esl._reply()
        assert isinstance(reply, CommandReply) and reply.ok, reply
        if wait:
            self.completed(event_uuid)
        return event_uuid

    def completed(self, event_uuid: str) -> Event:
        return self.esl.wait_event(
            lambda e: (
                e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application-UUID") == event_uuid
            ),
            f"EXECUTE_COMPLETE {event_uuid}",
        )

    def join(self, room: str, profile: str = "fsconf", flags: str = "") -> str:
        arg = f"{room}@{profile}" + (f"+flags{{{flags}}}" if flags else "")
        return self.execute("conference", arg, wait=False)


# --- batch 1 surprises -------------------------------------------------------------------------


def test_s01_originated_member_shows_callee_id(esl: Esl) -> None:
    room = "room-basic"
    alice = originate(esl, room, ext="talk", callee=False)
    line = next(x for x in esl.api(f"conference {room} list").splitlines() if alice in x)
    # `Outbound Call` / the last segment of the dial string (`default` of loopback/talk/default)
    assert line.split(";")[3:5] == ["Outbound Call", "default"]
    real = captured_reply("basic_two_party.jsonl", "api conference room-basic list")
    assert ";Outbound Call;default;" in real
    add = esl.events(conf("add-member", alice))[0]
    assert add.get("Caller-Caller-ID-Name") == "Outbound Call"
    assert add.get("Caller-Orig-Caller-ID-Name") == "Tester"


def test_s02_lock_stops_only_inbound_or_enforced(esl: Esl) -> None:
    room = room_name()
    originate(esl, room)
    assert esl.api(f"conference {room} lock") == f"+OK {room} locked\n"
    originate(esl, room)  # an originated member still joins
    mark = esl.mark()
    refused = originate(esl, room, variables="conference_enforce_security=true", join=False)
    assert not esl.since(mark, lambda e: e.subclass == CONF and e.unique_id == refused)


def test_s03_empty_output_is_err_no_reply(esl: Esl) -> None:
    room = room_name()
    originate(esl, room)
    real = captured_reply("mute_hold_kick.jsonl", "api conference room-mhk get is_locked")
    assert real == "-ERR no reply\n"
    assert esl.api(f"conference {room} get is_locked") == real
    assert ApiResponse(real, {}).is_error  # the codec flags it, callers must not treat as data


def test_s04_usage_text_without_err(esl: Esl) -> None:
    room = "room-err"
    originate(esl, room)
    real = captured_reply("errors.jsonl", "api conference room-err mute")
    assert real == "mute <[member_id|all]|last|non_moderator> [<quiet>]"
    assert esl.api(f"conference {room} mute") == real
    assert esl.api(f"conference {room} get") == captured_reply(
        "errors.jsonl", "api conference room-err get"
    )


def test_s05_misspelled_errors(esl: Esl) -> None:
    room = "room-err"
    originate(esl, room)
    assert esl.api(f"conference {room} mute 999") == "-ERR Non-Existant ID 999\n"
    assert esl.api("conference nosuch list") == captured_reply(
        "errors.jsonl", "api conference nosuch list"
    )


def test_s06_mixed_result_bodies(esl: Esl) -> None:
    room = "room-err"
    originate(esl, room)
    cmd = "api conference room-err norecord /srv/fswitch/rec/nonexistent.wav"
    assert esl.api(cmd[4:]) == captured_reply("errors.jsonl", cmd)


def test_s07_recording_unknown_keyword_records(esl: Esl) -> None:
    room = "room-err"
    originate(esl, room)
    mark = esl.mark()
    assert esl.api(f"conference {room} recording bogus") == "+OK Record file bogus\n"
    start = esl.wait_event(conf("start-recording"))
    assert start.get("Error") == "File could not be opened for recording"
    esl.wait_event(conf("stop-recording"))
    assert [e.action for e in esl.since(mark, lambda e: e.subclass == CONF)][:2] == [
        "start-recording",
        "stop-recording",
    ]


def test_s08_set_returns_old_value(esl: Esl) -> None:
    room = "room-max"
    originate(esl, room, profile="limited")
    assert esl.api(f"conference {room} set max_members 3") == captured_reply(
        "maxmembers_lock.jsonl", "api conference room-max set max_members 3"
    )
    assert esl.api(f"conference {room} get max_members") == "3"


def test_s09_max_energy_numbers_swapped(esl: Esl) -> None:
    room = "room-x"
    mid = member_id(esl, originate(esl, room))
    esl.api(f"conference {room} energy {mid} 300")
    real = captured_reply("extras.jsonl", "api conference room-x max-energy 32 2000")
    assert esl.api(f"conference {room} max-energy {mid} 2000") == real.replace("32", mid, 1)


def test_s10_play_status_ignores_async(esl: Esl) -> None:
    room = room_name()
    originate(esl, room)
    esl.api(f"conference {room} play tone_stream://%(2000,0,350);loops=5 async")
    assert esl.api(f"conference {room} play_status").startswith("-ERR Nothing is playing")


def test_s11_tmute_and_quiet(esl: Esl) -> None:
    room = room_name()
    uid = originate(esl, room)
    mid = member_id(esl, uid)
    assert esl.api(f"conference {room} tmute {mid}") == f"+OK mute {mid}\n"
    assert esl.api(f"conference {room} tmute {mid}") == f"+OK unmute {mid}\n"
    mark = esl.mark()
    esl.api(f"conference {room} mute {mid} quiet")
    esl.wait(lambda: bool(esl.since(mark, conf("mute-member", uid))), "mute-member with quiet")


def test_s12_setvar_becomes_event_header(esl: Esl) -> None:
    room = room_name()
    uid = originate(esl, room)
    mid = member_id(esl, uid)
    esl.api(f"conference {room} setvar foo bar")
    esl.api(f"conference {room} kick {mid}")
    assert esl.wait_event(conf("kick-member", uid)).get("foo") == "bar"


def test_s13_dtmf_caller_controls(fs, esl: Esl) -> None:  # type: ignore[no-untyped-def]
    room = room_name()
    uid = originate(esl, room)
    for digit, action in (("9", "energy-level"), ("3", "volume-level"), ("6", "gain-level")):
        mark = esl.mark()
        fs.receive_dtmf(uid, digit)
        esl.wait(lambda a=action, m=mark: bool(esl.since(m, conf(a, uid))), action)
        assert esl.since(mark, conf(action, uid))[0].get("New-Level")
    mark = esl.mark()
    fs.receive_dtmf(uid, "*")
    esl.wait(lambda: bool(esl.since(mark, conf("deaf-member", uid))), "* -> deaf-member")
    assert esl.since(mark, conf("mute-member", uid))


def test_s14_del_member_hangup_cause(esl: Esl) -> None:
    room = room_name()
    originate(esl, room)  # keeps the room alive
    killed, kicked = originate(esl, room), originate(esl, room)
    esl.api(f"uuid_kill {killed}")
    assert esl.wait_event(conf("del-member", killed)).get("Hangup-Cause") == "NORMAL_CLEARING"
    esl.api(f"conference {room} kick {member_id(esl, kicked)}")
    esl.wait_event(conf("kick-member", kicked))
    assert esl.wait_event(conf("del-member", kicked)).get("Hangup-Cause") is None


def test_s15_member_flag_names(esl: Esl) -> None:
    room = room_name()
    uid = originate(esl, room)
    data = json.loads(esl.api(f"conference {room} json_list"))
    flags = data[0]["members"][0]["flags"]
    assert list(flags) == [
        "can_hear",
        "can_see",
        "can_speak",
        "hold",
        "mute_detect",
        "talking",
        "has_video",
        "video_bridge",
        "has_floor",
        "is_moderator",
        "end_conference",
        "mandatory_member_end_conference",
        "pass_digits",
    ]
    add = esl.events(conf("add-member", uid))[0]
    for header in (
        "Hear",
        "See",
        "Speak",
        "Talking",
        "Hold",
        "Mute-Detect",
        "Floor",
        "Video",
        "Member-Type",
        "Member-Ghost",
    ):
        assert header in add.headers, header


def test_s16_esl_level_errors(esl: Esl) -> None:
    assert esl.cmd("event plain BOGUS_EVENT") == "-ERR no keywords supplied"
    assert esl.cmd("filter") == "-ERR command not found"
    assert esl.cmd("auth ClueCon") == "-ERR command not found"
    assert esl.cmd("myevents 00000000-0000-0000-0000-000000000000") == "+OK Events Enabled"
    mark = esl.mark()
    esl.api("conference list")
    assert not esl.since(mark, lambda e: e.unique_id != "00000000-0000-0000-0000-000000000000")


def test_s17_connect_reply_wire_format() -> None:
    raw, frame = captured_frame(
        "outbound_socket.jsonl", lambda f: isinstance(f, CommandReply) and "Event-Name" in f.headers
    )
    assert isinstance(frame, CommandReply)
    assert raw.index("Event-Name: CHANNEL_DATA") < raw.index("Content-Type: command/reply")
    assert "Reply-Text: %2BOK%0A" in raw and frame.reply_text == "+OK\n" and frame.ok
    assert frame.headers["Socket-Mode"] == "async" and frame.headers["Control"] == "full"
    _, notice = captured_frame("outbound_socket.jsonl", lambda f: isinstance(f, DisconnectNotice))
    assert isinstance(notice, DisconnectNotice) and notice.linger and notice.linger_time == -1


def test_s17_connect_reply_and_linger(fs, esl: Esl, listener: socket.socket) -> None:  # type: ignore[no-untyped-def]
    session = Session(esl, listener)
    headers = session.connect.headers
    assert headers.get("Event-Name") == "CHANNEL_DATA" and session.connect.reply_text == "+OK\n"
    assert headers.get("Socket-Mode") == "async" and headers.get("Control") == "full"
    esl.api(f"uuid_kill {session.a_leg}")
    session.esl.wait(
        lambda: any(isinstance(f, DisconnectNotice) for f in session.esl.frames), "disconnect"
    )
    notice = next(f for f in session.esl.frames if isinstance(f, DisconnectNotice))
    assert notice.linger and notice.linger_time == -1


def test_s18_play_missing_file(esl: Esl) -> None:
    room = "room-err"
    originate(esl, room)
    cmd = "api conference room-err play /srv/fswitch/nonexistent.wav"
    assert esl.api(cmd[4:]) == captured_reply("errors.jsonl", cmd)


def test_s19_originate_app_args_cut_at_paren(esl: Esl) -> None:
    uid = str(uuidlib.uuid4())
    esl.cmd(
        f"bgapi originate {{origination_uuid={uid}}}loopback/silent/default "
        f"&playback(tone_stream://%(100,0,440))"
    )
    ev = esl.wait_event(named("CHANNEL_EXECUTE", uid, "playback"))
    assert ev.get("Application-Data") == "tone_stream://%(100,0,440"


def test_s20_floor_change_and_play_done_fields(esl: Esl) -> None:
    room = room_name()
    uid = originate(esl, room)
    floor = esl.wait_event(conf("floor-change", uid))
    assert floor.get("Old-ID") == "none" and floor.get("New-ID") == member_id(esl, uid)
    esl.api(f"conference {room} play tone_stream://%(100,0,440)")
    done = esl.wait_event(conf("play-file-done"))
    for key in ("seconds", "milliseconds", "samples"):
        assert key in done.headers, key


def test_s20_wire_format() -> None:
    def is_conf(action: str) -> Callable[[Frame], bool]:
        return lambda f: isinstance(f, Event) and conf(action)(f)

    _, done = captured_frame("basic_two_party.jsonl", is_conf("play-file-done"))
    assert isinstance(done, Event) and {"seconds", "milliseconds", "samples"} <= set(done.headers)
    _, floor = captured_frame("basic_two_party.jsonl", is_conf("floor-change"))
    assert isinstance(floor, Event) and floor.get("Old-ID") == "none"


# --- batch 2 surprises -------------------------------------------------------------------------


def test_b01_custom_must_be_last(esl: Esl) -> None:
    """Controller duty (fsconf.esl.commands.event): put ``CUSTOM <subclass>`` last."""
    assert esl.cmd("noevents").startswith("+OK")
    reply = esl.cmd(f"event plain CUSTOM {CONF} BACKGROUND_JOB")
    assert reply == "+OK event listener enabled plain"
    job = str(uuidlib.uuid4())
    mark = esl.mark()
    esl.send(f"bgapi status\nJob-UUID: {job}\n\n")
    esl._reply()
    esl.api("status")  # a round trip: the job has run by now
    assert not esl.since(mark, named("BACKGROUND_JOB"))


def test_b02_kick_does_not_hang_up_session(esl: Esl, listener: socket.socket) -> None:
    """Controller duty (fsconf.calls): after kick the channel is ours again; hang it up."""
    s = Session(esl, listener)
    s.execute("set", "hangup_after_conference=false")
    s.execute("answer")
    room = room_name()
    ev = s.join(room)
    mid = member_id(esl, s.uuid)
    assert esl.api(f"conference {room} kick {mid}") == f"+OK kicked {mid}\n"
    assert s.completed(ev).get("Application-Response") == "_none_"
    assert esl.api(f"uuid_exists {s.uuid}") == "true"


def test_b03_kicked_endconf_ends_room(esl: Esl, listener: socket.socket) -> None:
    room = room_name()
    a, b = Session(esl, listener, "A"), Session(esl, listener, "B")
    for s in (a, b):
        s.execute("set", "hangup_after_conference=false")
        s.execute("answer")
    a.join(room, flags="endconf")
    member_id(esl, a.uuid)
    b.join(room)
    member_id(esl, b.uuid)
    esl.api(f"conference {room} kick {member_id(esl, a.uuid)}")
    esl.wait_event(conf("del-member", b.uuid), "B removed because the endconf member left")
    esl.wait_event(conf("conference-destroy"))


def test_b04_silent_entry_hides_add_member(esl: Esl, listener: socket.socket) -> None:
    """Controller duty (fsconf.conference): use `quiet`, and know silent_entry hides add-member."""
    s = Session(esl, listener)
    s.execute("set", "hangup_after_conference=false")
    s.execute("set", "conference_silent_entry=true")
    s.execute("answer")
    room = room_name()
    mark = esl.mark()
    s.join(room)
    esl.wait(lambda: s.uuid in esl.api(f"conference {room} list"), "member listed")
    assert not esl.since(mark, conf("add-member"))


def test_b05_play_vars_on_done(esl: Esl) -> None:
    room = room_name()
    originate(esl, room)
    originate(esl, room)
    esl.api(
        f"conference {room} play {{fsconf_announce=AN3,vol=-3}}tone_stream://%(500,0,600) async"
    )
    # the room's own alone/moh play-file events come first: pick this play by its File
    # (the string as given, braces included: README 2.5)
    play = esl.wait_event(lambda e: conf("play-file")(e) and "AN3" in (e.get("File") or ""))
    done = esl.wait_event(lambda e: conf("play-file-done")(e) and e.get("fsconf_announce") == "AN3")
    assert play.get("Async") == "true" and play.get("fsconf_announce") is None
    assert done.get("fsconf_announce") == "AN3"


def test_b06_play_done_twice_length(esl: Esl) -> None:
    room = room_name()
    originate(esl, room)
    esl.api(f"conference {room} play tone_stream://%(500,0,600)")
    done = esl.wait_event(conf("play-file-done"))
    assert done.get("milliseconds") == "1000"


def test_b07_play_unknown_member(esl: Esl) -> None:
    room = room_name()
    originate(esl, room)
    body = esl.api(f"conference {room} play tone_stream://%(200,0,600) 999")
    first, usage = body.split("\n", 1)
    assert first.startswith("-ERR Member: ") and first.endswith(" not found.")
    assert usage == "play <file_path> [async|<member_id> [nomux]]"


def test_b08_say_events_no_var_parsing(esl: Esl) -> None:
    room = room_name()
    originate(esl, room)
    originate(esl, room)
    assert esl.api(f"conference {room} say {{fsconf_announce=AN8}}hello again") == "+OK (say) OK\n"
    ev = esl.wait_event(conf("speak-text"))
    assert ev.get("Text") == "{fsconf_announce=AN8}hello again"


def test_b09_no_empty_room(esl: Esl) -> None:
    room = room_name()
    uid = originate(esl, room)
    esl.api(f"uuid_kill {uid}")
    esl.wait_event(conf("conference-destroy"))
    assert esl.api(f"conference {room} play tone_stream://%(500,0,600)") == (
        f"-ERR Conference {room} not found\n"
    )


def test_b10_hold_views_disagree(esl: Esl) -> None:
    """Controller duty (fsconf.conference): decide "held" by the hold flag only."""
    room = room_name()
    originate(esl, room)
    uid = originate(esl, room)
    mid = member_id(esl, uid)
    assert esl.api(f"conference {room} hold {mid}") == f"+OK hold {mid}\n"
    ev = esl.wait_event(conf("hold-member", uid))
    assert (ev.get("Hold"), ev.get("Hear"), ev.get("Speak")) == ("true", "true", "true")
    member = next(
        m
        for m in json.loads(esl.api(f"conference {room} json_list"))[0]["members"]
        if m["uuid"] == uid
    )
    assert member["flags"]["hold"] is True and member["flags"]["can_hear"] is False
    line = next(x for x in esl.api(f"conference {room} list").splitlines() if uid in x)
    assert line.split(";")[5] == "hold"


def test_b11_full_room_refuses_silently(esl: Esl, listener: socket.socket) -> None:
    room = room_name()
    sessions = [Session(esl, listener, f"Max{i}") for i in range(3)]
    for i, s in enumerate(sessions):
        s.execute("set", "hangup_after_conference=false")
        if i == 0:
            s.execute("set", "conference_max_members=2")
        s.execute("answer")
    for s in sessions[:2]:
        s.join(room)
        member_id(esl, s.uuid)
    mark = esl.mark()
    ev = sessions[2].join(room)
    assert sessions[2].completed(ev).get("Application-Response") == "_none_"
    assert not esl.since(mark, lambda e: e.subclass == CONF)
    assert esl.api(f"uuid_exists {sessions[2].uuid}") == "true"
    assert esl.api(f"uuid_getvar {sessions[2].uuid} conference_member_id") == "_undef_"


def test_b12_sendmsg_without_event_lock_nests(esl: Esl, listener: socket.socket) -> None:
    """Controller duty (fsconf.esl.commands.sendmsg): always send event-lock: true."""
    s = Session(esl, listener)
    s.execute("answer")
    play = s.execute("playback", "tone_stream://%(1000,0,440);loops=-1", wait=False)
    nested = s.execute("set", "fsconf_nested_a=yes")  # completes while the playback runs
    assert not [
        e
        for e in s.esl.events()
        if e.get("Application-UUID") == play and e.name == "CHANNEL_EXECUTE_COMPLETE"
    ]
    assert nested
    esl.api(f"uuid_break {s.uuid} all")
    s.completed(play)
    # with event-lock the set queues, and uuid_break all discards it
    play = s.execute("playback", "tone_stream://%(1000,0,440);loops=-1", lock=True, wait=False)
    s.execute("set", "fsconf_queued_b=yes", wait=False)
    assert esl.api(f"uuid_getvar {s.uuid} fsconf_queued_b") == "_undef_"
    esl.api(f"uuid_break {s.uuid} all")
    s.completed(play)
    assert esl.api(f"uuid_getvar {s.uuid} fsconf_queued_b") == "_undef_"


def test_b13_uuid_break_is_file_played(esl: Esl, listener: socket.socket) -> None:
    s = Session(esl, listener)
    s.execute("answer")
    play = s.execute("playback", "tone_stream://%(1000,0,440);loops=-1", lock=True, wait=False)
    s.esl.wait_event(named("CHANNEL_EXECUTE", s.uuid, "playback"))
    esl.api(f"uuid_break {s.uuid} all")
    assert s.completed(play).get("Application-Response") == "FILE PLAYED"


def test_b14_rejoin_keeps_member_id(esl: Esl, listener: socket.socket) -> None:
    s = Session(esl, listener)
    s.execute("set", "hangup_after_conference=false")
    s.execute("answer")
    room1, room2 = room_name(), room_name()
    ev = s.join(room1)
    first = member_id(esl, s.uuid)
    esl.api(f"conference {room1} kick {first}")
    s.completed(ev)
    mark = esl.mark()
    s.join(room2)
    esl.wait(lambda: bool(esl.since(mark, conf("add-member", s.uuid))), "rejoin")
    assert esl.since(mark, conf("add-member", s.uuid))[0].get("Member-ID") == first


def test_b15_recording_quirks(esl: Esl) -> None:
    room = room_name()
    originate(esl, room)
    path = f"/tmp/{room}.wav"
    assert esl.api(f"conference {room} record {path}") == f"+OK Record file {path}\n"
    esl.api(f"conference {room} recording pause {path}")
    assert esl.wait_event(conf("pause-recording")).get("Other-Recordings") == "true"
    assert esl.api(f"conference {room} recording stop {path}") == (
        f"Stopped recording file {path}\n+OK Stopped recording 0 files\n"
    )


def test_b16_relate_no_events(esl: Esl) -> None:
    room = room_name()
    a = member_id(esl, originate(esl, room))
    b = member_id(esl, originate(esl, room))
    mark = esl.mark()
    assert esl.api(f"conference {room} relate {a} {b} nospeak") == f"+OK {a}->{b} nospeak set\n"
    assert esl.api(f"conference {room} relate 999 {b} nospeak") == (
        f"-ERR relationship 999->{b} not found.\n"
    )
    assert esl.api(f"conference {room} relate") == "-ERR no reply\n"
    assert not esl.since(mark, lambda e: e.subclass == CONF)


def test_b17_http_modules(esl: Esl) -> None:
    assert esl.api("module_exists mod_http_cache") == "true"
    assert esl.api("unload mod_httapi").startswith("+OK")
    assert esl.api("module_exists mod_httapi") == "false"


def test_b18_jitterbuffer_noop(esl: Esl, listener: socket.socket) -> None:
    s = Session(esl, listener)
    s.execute("answer")
    ev = s.execute("jitterbuffer", "bogus", wait=False)
    assert s.completed(ev).get("Application-Response") == "_none_"
    assert esl.api(f"uuid_getvar {s.uuid} jitterbuffer_msec") == "bogus"


def test_b19_fsctl_loglevel_without_arg(esl: Esl) -> None:
    """Tool caveat: `fsctl loglevel` with no argument SETS the level to DISABLE (-1).

    Nothing in fsconf sends fsctl; the switch's answer shows the trap.
    """
    assert "DISABLE" in esl.api("fsctl loglevel")


def test_b20_xml_list_url_encodes_caller_id(esl: Esl) -> None:
    room = room_name()
    uid = str(uuidlib.uuid4())
    esl.cmd(
        f"bgapi originate {{origination_uuid={uid},origination_callee_id_number=+15551240001,"
        f"origination_callee_id_name=View1}}loopback/silent/default &conference({room}@fsconf)"
    )
    esl.wait_event(conf("add-member", uid))
    assert "<caller_id_number>%2B15551240001</caller_id_number>" in esl.api(
        f"conference {room} xml_list"
    )
    assert '"caller_id_number":\t"+15551240001"' in esl.api(f"conference {room} json_list")
    calls = json.loads(esl.api("show calls as json"))
    row = next(r for r in calls["rows"] if r["uuid"] == uid)
    assert row["b_uuid"] == ""
