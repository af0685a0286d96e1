"""OutboundServer / OutboundSession against a scripted FreeSWITCH that dials in.

The scripted switch replays call-1 of ``b2_outbound_conference_flow.jsonl``:
for each ``sendmsg`` it answers ``+OK`` and sends the captured
CHANNEL_EXECUTE / CHANNEL_EXECUTE_COMPLETE of that application with the
captured Application-UUID replaced by the Event-UUID we sent (same length, so
every Content-Length stays right).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import gevent
import gevent.event
import gevent.queue
import pytest

from fsconf.errors import EslDisconnected
from fsconf.esl.frames import ClientCommand, Event
from fsconf.esl.outbound import OutboundServer, OutboundSession, SessionHungUp
from tests.esl.scripted_server import WAIT, ScriptedConnection, capture, dial, raw

FLOW = "b2_outbound_conference_flow.jsonl"
CALL_UUID = "5984a1eb-0e80-477b-9480-ec40792004d7"
OK = b"Content-Type: command/reply\nReply-Text: +OK\n\n"
BYE = b"Content-Type: command/reply\nReply-Text: +OK bye\n\n"
_APP = re.compile(rb"\nApplication: (\w+)\n")
_APP_UUID = re.compile(rb"\nApplication-UUID: ([0-9a-f-]{36})\n")
_NAME = re.compile(rb"\nEvent-Name: (\w+)\n")


def call_frames() -> list[bytes]:
    return [raw(r) for r in capture(FLOW) if r["dir"] == "in" and r.get("conn") == "call-1"]


def event_name(frame: bytes) -> str:
    match = _NAME.search(frame)
    return match.group(1).decode() if match else ""


class FakeCall:
    """FreeSWITCH's side of one outbound socket, replaying call-1."""

    def __init__(self) -> None:
        frames = call_frames()
        self.channel_data = frames[0]
        self.replies = {"myevents": frames[1], "linger": frames[2], "event": frames[3]}
        self.executions: dict[str, list[tuple[bytes, bytes, bytes]]] = {}
        self.hangup_tail: list[bytes] = []
        self.disconnect = next(f for f in frames if b"Content-Disposition: disconnect" in f)
        self._index(frames)
        self.before_completion: Callable[[ScriptedConnection, str], None] | None = None
        self.sendmsgs: gevent.queue.Queue = gevent.queue.Queue()
        self.connection: ScriptedConnection | None = None

    def _index(self, frames: list[bytes]) -> None:
        started: dict[bytes, bytes] = {}
        for frame in frames:
            uuid_match = _APP_UUID.search(frame)
            if uuid_match is None:
                continue
            if event_name(frame) == "CHANNEL_EXECUTE":
                started[uuid_match.group(1)] = frame
            elif event_name(frame) == "CHANNEL_EXECUTE_COMPLETE" and uuid_match.group(1) in started:
                app = _APP.search(frame).group(1).decode()  # type: ignore[union-attr]
                start = started[uuid_match.group(1)]
                self.executions.setdefault(app, []).append((uuid_match.group(1), start, frame))
                if app == "hangup":
                    # Everything FreeSWITCH sent after the hangup's start.
                    self.hangup_tail = frames[
                        frames.index(start) + 1 : frames.index(self.disconnect) - 1
                    ]

    def dial(self, address: tuple[str, int]) -> ScriptedConnection:
        self.connection = dial(address, hook=self.on_command)
        return self.connection

    def on_command(self, connection: ScriptedConnection, command: ClientCommand) -> bool:
        if command.verb == "connect":
            connection.send(self.channel_data)
        elif command.verb in self.replies:
            connection.send(self.replies[command.verb])
        elif command.verb == "sendmsg":
            connection.send(OK)
            self.sendmsgs.put(command)
            self.run_app(connection, command)
        elif command.verb == "exit":
            connection.send(BYE, self.disconnect)
            connection.close()
        else:
            return False
        return True

    def run_app(self, connection: ScriptedConnection, command: ClientCommand) -> None:
        app = command.headers["execute-app-name"]
        ours = command.headers["Event-UUID"].encode()
        if app == "playback":
            return  # left running: tests complete it (or not) themselves
        captured, start, complete = self.executions[app].pop(0)
        connection.send(start.replace(captured, ours))
        if self.before_completion is not None:
            self.before_completion(connection, app)
        if app == "hangup":
            connection.send(*[frame.replace(captured, ours) for frame in self.hangup_tail])
        else:
            connection.send(complete.replace(captured, ours))


@pytest.fixture
def call() -> FakeCall:
    return FakeCall()


def serve(handler: Callable[[OutboundSession], None]) -> Iterator[OutboundServer]:
    server = OutboundServer(("127.0.0.1", 0), handler, command_timeout=WAIT)
    server.start()
    try:
        yield server
    finally:
        server.stop(timeout=1)


def run_call(call: FakeCall, handler: Callable[[OutboundSession], None]) -> ScriptedConnection:
    done = gevent.event.Event()

    def wrapped(session: OutboundSession) -> None:
        try:
            handler(session)
        finally:
            done.set()

    for server in serve(wrapped):
        connection = call.dial(server.address)
        assert done.wait(WAIT), "handler did not finish"
        assert connection.wait_closed(), "session did not exit"
    return connection


def test_setup_parses_the_connect_channel_data(call: FakeCall) -> None:
    seen: dict[str, object] = {}

    def handler(session: OutboundSession) -> None:
        data = session.setup()
        seen.update(
            uuid=session.uuid,
            sid=session.call_sid,
            caller=data["Caller-Caller-ID-Number"],
            name=data["Event-Name"],
            reply=data["Reply-Text"],
            var=session.variable("call_uuid"),
            missing=session.variable("no_such_variable"),
        )

    connection = run_call(call, handler)
    assert seen == {
        "uuid": CALL_UUID,
        "sid": "CA" + CALL_UUID.replace("-", ""),
        "caller": "+15551230001",
        "name": "CHANNEL_DATA",
        "reply": "+OK\n",
        "var": CALL_UUID,
        "missing": None,
    }
    assert [c.line for c in connection.received] == [
        "connect",
        "myevents",
        "linger",
        "exit",
    ]


def test_execute_is_matched_by_application_uuid_not_by_name(call: FakeCall) -> None:
    results: list[Event] = []
    foreign = call.executions["set"][1][2]  # a captured set completion, not ours

    def first_someone_elses(connection: ScriptedConnection, app: str) -> None:
        if app == "set":
            connection.send(foreign)

    call.before_completion = first_someone_elses

    def handler(session: OutboundSession) -> None:
        session.setup()
        results.append(session.execute("set", "hangup_after_conference=false", timeout=WAIT))
        results.append(session.execute("answer", timeout=WAIT))

    connection = run_call(call, handler)
    sent = [c for c in connection.received if c.verb == "sendmsg"]
    assert [c.headers["execute-app-name"] for c in sent] == ["set", "answer"]
    for command, event in zip(sent, results, strict=True):
        assert command.headers["event-lock"] == "true"
        assert event.name == "CHANNEL_EXECUTE_COMPLETE"
        assert event.get("Application-UUID") == command.headers["Event-UUID"]
    assert results[0].get("Application-Data") == "hangup_after_conference=false"
    assert sent[0].body == "hangup_after_conference=false"


def test_concurrent_executes_complete_out_of_order(call: FakeCall) -> None:
    outcome: dict[str, object] = {}

    def handler(session: OutboundSession) -> None:
        session.setup()
        playback = session.execute_async("playback", "tone_stream://%(300,0,500)")
        command = call.sendmsgs.get(timeout=WAIT)
        outcome["set"] = session.execute("set", "a=b", timeout=WAIT).get("Application")
        outcome["playback_pending"] = not playback.ready()
        # Now FreeSWITCH finishes the playback (captured frame, our uuid).
        captured, _, complete = call.executions["playback"][0]
        assert call.connection is not None
        call.connection.send(complete.replace(captured, command.headers["Event-UUID"].encode()))
        outcome["playback"] = playback.get(timeout=WAIT).get("Application-Response")

    run_call(call, handler)
    assert outcome == {"set": "set", "playback_pending": True, "playback": "FILE PLAYED"}


def test_hangup_flow_linger_and_exit(call: FakeCall) -> None:
    outcome: dict[str, object] = {}
    events: list[str] = []

    def handler(session: OutboundSession) -> None:
        session.on_event = lambda event: events.append(event.name)
        session.setup()
        completion = session.execute("hangup", "NORMAL_CLEARING", timeout=WAIT)
        # The hangup app's own completion arrives after CHANNEL_HANGUP.
        outcome["completed"] = completion.get("Application")
        outcome["waited"] = session.wait_hangup(WAIT)
        assert session.wait_closed(0) is False
        outcome["hungup"] = session.hungup
        outcome["cause"] = session.hangup_cause
        assert session.wait_events_idle(WAIT)
        with pytest.raises(SessionHungUp):
            session.execute("playback", "silence_stream://100")
        outcome["lingering"] = _wait_for(lambda: session.lingering)

    connection = run_call(call, handler)
    assert outcome == {
        "completed": "hangup",
        "waited": True,
        "hungup": True,
        "cause": "NORMAL_CLEARING",
        "lingering": True,
    }
    assert "CHANNEL_HANGUP" in events and "CHANNEL_HANGUP_COMPLETE" in events
    assert events.index("CHANNEL_HANGUP") < events.index(
        "CHANNEL_EXECUTE_COMPLETE", events.index("CHANNEL_HANGUP")
    )
    assert connection.received[-1].line == "exit"


def _wait_for(predicate: Callable[[], bool]) -> bool:
    with gevent.Timeout(WAIT, False):
        while not predicate():
            gevent.idle()
    return predicate()


def test_pending_execute_fails_when_the_socket_closes(call: FakeCall) -> None:
    outcome: dict[str, object] = {}

    def handler(session: OutboundSession) -> None:
        session.setup()
        playback = session.execute_async("playback", "tone_stream://%(300,0,500)")
        call.sendmsgs.get(timeout=WAIT)
        assert call.connection is not None
        call.connection.close()  # FreeSWITCH goes away mid-playback
        with pytest.raises(EslDisconnected) as caught:
            playback.get(timeout=WAIT)
        outcome["error"] = type(caught.value).__name__
        outcome["hungup"] = session.wait_hangup(WAIT)

    done = gevent.event.Event()

    def wrapped(session: OutboundSession) -> None:
        try:
            handler(session)
        finally:
            done.set()

    for server in serve(wrapped):
        call.dial(server.address)
        assert done.wait(WAIT)
    assert outcome == {"error": "EslDisconnected", "hungup": True}


def test_conference_events_reach_on_event_in_order(call: FakeCall) -> None:
    frames = call_frames()
    conference = [
        f
        for f in frames
        if b"Event-Subclass: conference%3A%3Amaintenance" in f
        or b"Event-Subclass: conference::maintenance" in f
    ]
    received: list[str | None] = []
    gate = gevent.event.Event()

    def handler(session: OutboundSession) -> None:
        def on_event(event: Event) -> None:
            gate.wait(WAIT)  # a slow owner must not stall the reader
            received.append(event.action)

        session.on_event = on_event
        session.setup()
        assert call.connection is not None
        call.connection.send(*conference)
        reply = gevent.spawn(
            session.api, "conference CFf0d5d6661dda4d13b3a490fea9d1f8aa getvar conference_sid"
        )
        command = _next_api(call.connection)
        assert command.line.startswith("api conference")
        call.connection.send(
            b"Content-Type: api/response\nContent-Length: 34\n\nCFf0d5d6661dda4d13b3a490fea9d1f8aa"
        )
        assert reply.get(timeout=WAIT).body == "CFf0d5d6661dda4d13b3a490fea9d1f8aa"
        gate.set()
        assert session.wait_events_idle(WAIT)

    run_call(call, handler)
    expected = [_action(frame) for frame in conference]
    assert received == expected and len(expected) >= 4


def _next_api(connection: ScriptedConnection) -> ClientCommand:
    return connection.expect("api ")


def _action(frame: bytes) -> str:
    match = re.search(rb"\nAction: ([\w-]+)\n", frame)
    assert match
    return match.group(1).decode()
