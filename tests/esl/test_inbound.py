"""InboundClient and KeyedDispatcher over real loopback sockets."""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import gevent.event
import gevent.queue
import pytest

from fsconf.errors import EslCommandError, EslDisconnected
from fsconf.esl.codec import encode_api_response, encode_event_plain
from fsconf.esl.dispatch import KeyedDispatcher, default_key
from fsconf.esl.frames import Event
from fsconf.esl.inbound import InboundClient, backoff_delay
from tests.esl.scripted_server import WAIT, ScriptedConnection, ScriptedSwitch, frames_in

ROOM_A = "CF" + "a" * 32
ROOM_B = "CF" + "b" * 32


def conference_event(room: str, action: str, core: str = "core-1", **extra: str) -> bytes:
    headers = {
        "Event-Name": "CUSTOM",
        "Core-UUID": core,
        "Event-Subclass": "conference::maintenance",
        "Conference-Name": room,
        "Action": action,
    }
    headers.update(extra)
    return encode_event_plain(headers)


def make_client(
    switch: ScriptedSwitch, events: gevent.queue.Queue, **kwargs: object
) -> InboundClient:
    options: dict[str, object] = {
        "subscriptions": ["CHANNEL_HANGUP_COMPLETE", "conference::maintenance"],
        "on_event": events.put,
        "random": lambda: 0.0,
        "connect_timeout": WAIT,
        "command_timeout": WAIT,
    }
    options.update(kwargs)
    return InboundClient("127.0.0.1", switch.port, "ClueCon", **options)  # type: ignore[arg-type]


@pytest.fixture
def switch() -> Iterator[ScriptedSwitch]:
    with ScriptedSwitch(core_uuid="core-1") as scripted:
        yield scripted


@pytest.fixture
def events() -> gevent.queue.Queue:
    return gevent.queue.Queue()


@pytest.fixture
def client(switch: ScriptedSwitch, events: gevent.queue.Queue) -> Iterator[InboundClient]:
    inbound = make_client(switch, events)
    inbound.start()
    assert inbound.wait_connected(WAIT)
    yield inbound
    inbound.stop()


def test_subscribes_with_custom_last_and_heartbeat(
    client: InboundClient, switch: ScriptedSwitch
) -> None:
    peer = switch.next_connection()
    lines = [command.line for command in peer.received]
    assert lines == [
        "auth ClueCon",
        "api global_getvar core_uuid",
        "event plain CHANNEL_HANGUP_COMPLETE HEARTBEAT BACKGROUND_JOB"
        " CUSTOM conference::maintenance",
    ]
    assert client.core_uuid == "core-1"


def test_api_ok_error_and_unchecked(client: InboundClient, switch: ScriptedSwitch) -> None:
    peer = switch.next_connection()
    replies = gevent.queue.Queue()

    def call(text: str, **kwargs: object) -> None:
        try:
            replies.put(client.api(text, **kwargs))  # type: ignore[arg-type]
        except EslCommandError as error:
            replies.put(error)

    gevent.spawn(call, "uuid_setvar 4b7d33ca-df87-40c7-a08c-99870c5beb41 fsconf_probe 1")
    peer.expect("api uuid_setvar")
    peer.send(frames_in("b2_bgapi_jobuuid.jsonl")[22])
    assert replies.get(timeout=WAIT).body == "+OK\n"

    gevent.spawn(call, "conference CFx get wait_mod")
    peer.expect("api conference")
    peer.send(encode_api_response("-ERR no reply\n"))
    error = replies.get(timeout=WAIT)
    assert isinstance(error, EslCommandError) and error.reply == "-ERR no reply\n"

    gevent.spawn(call, "conference CFx get wait_mod", check=False)
    peer.expect("api conference")
    peer.send(encode_api_response("-ERR no reply\n"))
    assert replies.get(timeout=WAIT).is_error


def test_bgapi_is_resolved_by_its_own_job_uuid(
    client: InboundClient, switch: ScriptedSwitch, events: gevent.queue.Queue
) -> None:
    peer = switch.next_connection()
    capture = frames_in("b2_bgapi_jobuuid.jsonl")
    ours = "10a04bf5-6ff9-45de-9f37-df7d288c4621"
    call = gevent.spawn(client.bgapi, "status", job_uuid=ours)
    command = peer.expect("bgapi status")
    assert command.headers == {"Job-UUID": ours}
    # The captured reply; someone else's job finishes first, then ours.
    peer.send(capture[5], capture[8], capture[6])
    job = call.get(timeout=WAIT)
    result = job.get(timeout=WAIT)
    assert result.job_uuid == ours
    assert result.body is not None and result.body.startswith("UP 0 years")
    assert result.get("Job-Command") == "status"
    foreign = events.get(timeout=WAIT)
    assert (
        foreign.name == "BACKGROUND_JOB"
        and foreign.job_uuid == "fe4ef8fb-2fd8-4c54-ab67-e6f77adad234"
    )


def test_bgapi_generates_a_uuid_and_fails_on_disconnect(
    client: InboundClient, switch: ScriptedSwitch
) -> None:
    peer = switch.next_connection()
    call = gevent.spawn(client.bgapi, "originate error/USER_BUSY &park")
    command = peer.expect("bgapi originate")
    job_uuid = command.headers["Job-UUID"]
    assert len(job_uuid) == 36
    peer.send(
        f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job_uuid}\n"
        f"Job-UUID: {job_uuid}\n\n".encode()
    )
    job = call.get(timeout=WAIT)
    peer.close()
    with pytest.raises(EslDisconnected):
        job.get(timeout=WAIT)


def test_api_pending_at_disconnect_raises(client: InboundClient, switch: ScriptedSwitch) -> None:
    peer = switch.next_connection()
    call = gevent.spawn(client.api, "status")
    peer.expect("api status")
    peer.close()
    with pytest.raises(EslDisconnected):
        call.get(timeout=WAIT)


def test_reconnect_resubscribes_and_reconciles_before_dispatch(
    switch: ScriptedSwitch, events: gevent.queue.Queue
) -> None:
    log: list[str] = []
    reconciled = gevent.event.Event()

    def reconcile(inbound: InboundClient) -> None:
        log.append("reconcile-start")
        reply = inbound.api("conference json_list", check=False)
        log.append(f"reconcile-api {reply.body.strip()}")
        log.append("reconcile-end")
        reconciled.set()

    def on_event(event: Event) -> None:
        log.append(f"event {event.action}")
        events.put(event)

    def hook(connection: ScriptedConnection, command: object) -> bool:
        line = getattr(command, "line", "")
        if line == "api conference json_list":
            # An event overtakes the reply: it must still wait for reconcile.
            connection.send(conference_event(ROOM_A, "add-member"))
            connection.send(encode_api_response("[]"))
            return True
        return False

    switch.hook = hook
    inbound = make_client(switch, events, reconcile=reconcile, on_event=on_event)
    inbound.start()
    try:
        assert events.get(timeout=WAIT).action == "add-member"
        first = switch.next_connection()
        first.close()  # the socket drops; FreeSWITCH is still the same core
        second = switch.next_connection()
        assert events.get(timeout=WAIT).action == "add-member"
        assert [c.line for c in second.received][:3] == [c.line for c in first.received][:3]
        assert (
            log
            == [
                "reconcile-start",
                "reconcile-api []",
                "reconcile-end",
                "event add-member",
            ]
            * 2
        )
        assert inbound.connections_made == 2
        assert not inbound.restarted
    finally:
        inbound.stop()


def test_restart_is_told_apart_by_core_uuid(
    switch: ScriptedSwitch, events: gevent.queue.Queue
) -> None:
    restarts: gevent.queue.Queue = gevent.queue.Queue()
    inbound = make_client(switch, events, on_restart=lambda old, new: restarts.put((old, new)))
    inbound.start()
    try:
        assert inbound.wait_connected(WAIT)
        switch.next_connection().close()
        switch.core_uuid = "core-2"
        peer = switch.next_connection()
        assert restarts.get(timeout=WAIT) == ("core-1", "core-2")
        assert inbound.wait_connected(WAIT)
        assert inbound.core_uuid == "core-2" and inbound.restarted
        # A later event from another core (a second restart seen via events).
        peer.send(conference_event(ROOM_A, "add-member", core="core-3"))
        assert restarts.get(timeout=WAIT) == ("core-2", "core-3")
    finally:
        inbound.stop()


def test_slow_key_does_not_delay_other_keys_or_the_reader(
    switch: ScriptedSwitch,
) -> None:
    blocked = gevent.event.Event()
    handled: gevent.queue.Queue = gevent.queue.Queue()

    def on_event(event: Event) -> None:
        if event.get("Conference-Name") == ROOM_A and event.action == "block":
            blocked.wait()  # stuck "forever" (until the test ends)
        handled.put((event.get("Conference-Name"), event.action))

    inbound = make_client(switch, gevent.queue.Queue(), on_event=on_event)
    inbound.start()
    try:
        assert inbound.wait_connected(WAIT)
        peer = switch.next_connection()
        peer.send(conference_event(ROOM_A, "block"), conference_event(ROOM_A, "after-block"))
        peer.send(*[conference_event(ROOM_B, f"b{n}") for n in range(50)])
        assert [handled.get(timeout=WAIT) for _ in range(50)] == [
            (ROOM_B, f"b{n}") for n in range(50)
        ]
        # The reader still answers api calls while key A is stuck.
        call = gevent.spawn(inbound.api, "status")
        peer.expect("api status")
        peer.send(encode_api_response("UP\n"))
        assert call.get(timeout=WAIT).body == "UP\n"
        assert handled.empty()
        blocked.set()
        assert handled.get(timeout=WAIT) == (ROOM_A, "block")
        assert handled.get(timeout=WAIT) == (ROOM_A, "after-block")
    finally:
        blocked.set()
        inbound.stop()


def test_heartbeat_watchdog_reconnects_a_silent_connection(
    switch: ScriptedSwitch, events: gevent.queue.Queue
) -> None:
    inbound = make_client(switch, events, heartbeat_timeout=0.3)
    inbound.start()
    try:
        first = switch.next_connection()
        with gevent.Timeout(WAIT):
            assert first.wait_closed()  # torn down by us: the switch sent nothing
        second = switch.next_connection()
        assert inbound.wait_connected(WAIT)
        assert second.received[0].line == "auth ClueCon"
    finally:
        inbound.stop()


def test_stop_closes_the_socket(switch: ScriptedSwitch, events: gevent.queue.Queue) -> None:
    inbound = make_client(switch, events)
    inbound.start()
    assert inbound.wait_connected(WAIT)
    peer = switch.next_connection()
    inbound.stop()
    assert peer.wait_closed()
    assert not inbound.connected
    with pytest.raises(EslDisconnected):
        inbound.api("status")


def test_backoff_is_jittered_and_capped_at_five_seconds() -> None:
    assert backoff_delay(0, base=0.2, cap=5.0, random=lambda: 1.0) == pytest.approx(0.2)
    assert backoff_delay(3, base=0.2, cap=5.0, random=lambda: 1.0) == pytest.approx(1.6)
    assert backoff_delay(50, base=0.2, cap=5.0, random=lambda: 1.0) == 5.0
    assert backoff_delay(50, base=0.2, cap=5.0, random=lambda: 0.5) == 2.5


def test_default_key() -> None:
    room = Event(
        {
            "Event-Name": "CUSTOM",
            "Event-Subclass": "conference::maintenance",
            "Conference-Name": ROOM_A,
            "Unique-ID": "u1",
        },
        None,
    )
    channel = Event({"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Unique-ID": "u1"}, None)
    heartbeat = Event({"Event-Name": "HEARTBEAT"}, None)
    assert default_key(room) == ROOM_A
    assert default_key(channel) == "u1"
    assert default_key(heartbeat) == "*global*"


def test_dispatcher_logs_a_growing_backlog_but_drops_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = gevent.event.Event()
    seen: list[str] = []

    def handler(event: Event) -> None:
        gate.wait()
        seen.append(event.name)

    dispatcher = KeyedDispatcher(handler, warn_at=5, label="test")
    for n in range(12):
        dispatcher.submit(Event({"Event-Name": f"E{n}"}, None))
    assert dispatcher.backlog == 12
    assert "events waiting for handlers" in caplog.text
    gate.set()
    assert dispatcher.wait_idle(WAIT)
    assert seen == [f"E{n}" for n in range(12)]


def _room_event(room: str, action: str) -> Event:
    headers = {"Event-Name": "CUSTOM", "Event-Subclass": "conference::maintenance"}
    return Event({**headers, "Conference-Name": room, "Action": action}, None)


def test_inline_handler_takes_events_of_an_idle_key_on_the_caller() -> None:
    """No queue and no worker for a key with nothing waiting: the event is
    handled before submit returns, and the worker's handler never sees it."""
    inline: list[str] = []
    worked: list[str] = []

    def take(event: Event) -> bool:
        inline.append(event.get("Action") or "")
        return True

    dispatcher = KeyedDispatcher(lambda e: worked.append(e.name), inline=take)
    dispatcher.submit(_room_event(ROOM_A, "start-talking"))
    assert inline == ["start-talking"]  # already, without a yield
    assert dispatcher.backlog == 0
    assert dispatcher.wait_idle(WAIT)
    gevent.sleep(0)
    assert worked == []


def test_inline_handler_never_overtakes_events_queued_for_its_key() -> None:
    """While a key's worker is busy, its later events queue behind it even
    when the inline handler would take them: order within a key holds."""
    gate = gevent.event.Event()
    order: list[str] = []

    def handler(event: Event) -> None:
        if event.get("Action") == "slow":
            gate.wait()
        order.append(f"worker {event.get('Action')}")

    def take(event: Event) -> bool:
        if event.get("Action") == "slow":
            return False  # this one may block: it goes to the worker
        order.append(f"inline {event.get('Action')}")
        return True

    dispatcher = KeyedDispatcher(handler, inline=take)
    dispatcher.submit(_room_event(ROOM_A, "slow"))
    dispatcher.submit(_room_event(ROOM_A, "after-slow"))
    dispatcher.submit(_room_event(ROOM_B, "other-room"))
    gevent.sleep(0)
    assert order == ["inline other-room"]  # room B is not held up by room A
    gate.set()
    assert dispatcher.wait_idle(WAIT)
    assert order == ["inline other-room", "worker slow", "worker after-slow"]
    # Room A's queue is gone with its worker: the next one is inline again.
    dispatcher.submit(_room_event(ROOM_A, "later"))
    assert order[-1] == "inline later"


def test_inline_handler_that_raises_is_logged_and_the_reader_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    taken: list[str] = []

    def take(event: Event) -> bool:
        if event.get("Action") == "bad":
            raise RuntimeError("boom")
        taken.append(event.get("Action") or "")
        return True

    dispatcher = KeyedDispatcher(lambda e: None, inline=take, label="test")
    dispatcher.submit(_room_event(ROOM_A, "bad"))
    dispatcher.submit(_room_event(ROOM_A, "good"))
    assert taken == ["good"]
    assert "inline handler failed on CUSTOM" in caplog.text


def test_held_events_are_not_taken_inline_until_release() -> None:
    taken: list[str] = []

    def take(event: Event) -> bool:
        taken.append(event.get("Action") or "")
        return True

    dispatcher = KeyedDispatcher(lambda e: None, inline=take)
    dispatcher.hold()
    dispatcher.submit(_room_event(ROOM_A, "one"))
    dispatcher.submit(_room_event(ROOM_B, "two"))
    assert taken == []
    dispatcher.release()
    assert taken == ["one", "two"]


def test_the_client_offers_events_to_its_inline_handler_first(switch: ScriptedSwitch) -> None:
    """Over the socket: a conference event the owner takes inline never reaches
    ``on_event``; one it declines does, in order with the others of its key."""
    taken: gevent.queue.Queue = gevent.queue.Queue()
    queued: gevent.queue.Queue = gevent.queue.Queue()

    def inline(event: Event) -> bool:
        if event.action == "pause-recording":
            return False
        taken.put(event.action)
        return True

    inbound = make_client(switch, queued, on_event_inline=inline)
    inbound.start()
    try:
        assert inbound.wait_connected(WAIT)
        peer = switch.next_connection()
        peer.send(
            conference_event(ROOM_A, "start-talking"),
            conference_event(ROOM_A, "pause-recording"),
        )
        assert taken.get(timeout=WAIT) == "start-talking"
        assert queued.get(timeout=WAIT).action == "pause-recording"
        assert taken.empty() and queued.empty()
    finally:
        inbound.stop()
