"""HoldUrl and AnnounceUrl that answer TwiML, end to end through the ``twilio`` client.

The whole ``fsconf serve`` pipeline runs against the FakeSwitch; the customer
application serves the TwiML. What is checked is what FreeSWITCH would get
(``hold <id> <media>`` and ``play {fsconf_announce=...}<media>`` as api lines,
read back with FreeSWITCH's own word split) and the callbacks the application
receives. Synchronisation is on callbacks and commands, never on time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fsconf.demo import Stack
from fsconf.testing.conference import split_words
from tests.e2e import support
from tests.e2e.support import (
    AudioServer,
    api_lines,
    conference_sid,
    first,
    has,
    named,
    requested,
    rest,
    twiml,
    wait,
)

stack = support.stack

TAIL = "silence_stream://-1"
REFUSED_URL = "http://127.0.0.1:9/hold"  # discard port: connection refused on loopback


@pytest.fixture
def audio() -> Iterator[AudioServer]:
    with AudioServer() as server:
        yield server


def start(stack: Stack) -> tuple[str, str, str, dict[str, int]]:
    customer = stack.customer
    customer.documents["/voice"] = twiml("Hold Room", events_url=customer.url("/events"))
    alice = stack.call("/voice", caller="+15551230001", name="Alice")
    wait(customer, has("participant-join"), "Alice's join")
    bob = stack.call("/voice", caller="+15551230002", name="Bob")
    wait(customer, has("conference-start"), "the start")
    sid = conference_sid(customer)
    room = stack.app.conferences.rooms[sid]
    stack.switch.wait_until(
        lambda: sum(p.member_id is not None for p in room.state.participants) == 2, timeout=5
    )
    members = {p.call_sid: p.member_id for p in room.state.participants}
    return sid, alice, bob, members  # type: ignore[return-value]


def commands_with(stack: Stack, *words: str) -> list[list[str]]:
    """api lines (split as mod_conference splits them) that start with ``words``."""
    split = [split_words(line) for line in api_lines(stack)]
    return [w for w in split if w[: len(words)] == list(words)]


def wait_commands(stack: Stack, count: int, *words: str) -> list[list[str]]:
    stack.switch.wait_until(lambda: len(commands_with(stack, *words)) >= count, timeout=5)
    found = commands_with(stack, *words)
    assert len(found) >= count, (words, api_lines(stack)[-5:])
    return found


def playlist(media: str) -> list[str]:
    assert media.startswith("file_string://"), media
    return media[len("file_string://") :].split("!")


def test_hold_with_twiml_mp3_and_failing_hold_urls(stack: Stack, audio: AudioServer) -> None:
    customer = stack.customer
    sid, alice, _bob, members = start(stack)
    member = str(members[alice])
    participant = rest(stack).conferences(sid).participants(alice)
    customer.documents["/hold"] = (
        '<Response><Say voice="woman">Please hold, it\'s $5!</Say>'
        f'<Play loop="2">{audio.url("/music.mp3")}</Play></Response>'
    )

    # 1. A TwiML HoldUrl: fetched (GET, signed), played as a never-ending playlist.
    held = participant.update(hold=True, hold_url=customer.url("/hold"), hold_method="GET")
    assert held.hold is True
    wait(customer, has("participant-hold"), "participant-hold")
    [request] = customer.callbacks("/hold")
    assert request.method == "GET" and request.signature_ok
    assert dict(request.params) == {"AccountSid": stack.account_sid, "ConferenceSid": sid,
                                    "CallSid": alice}  # fmt: skip
    [hold] = wait_commands(stack, 1, "conference", sid, "hold", member)
    assert len(hold) == 5, hold  # the quoted playlist is ONE word for FreeSWITCH
    parts = playlist(hold[4])
    cycle = [
        "tts://flite|slt|Please hold, its 5 dollars.",
        f"http_cache://{audio.url('/music.mp3')}",
        f"http_cache://{audio.url('/music.mp3')}",
    ]
    assert parts[:6] == cycle * 2 and parts[-1] == TAIL
    # The FakeSwitch reads the same word: the held member's file is the playlist.
    fake_member = stack.switch.rooms[sid].find(int(member))
    assert fake_member is not None and fake_member.hold_file == hold[4]
    assert audio.requests == []  # fsconf fetched only the TwiML; FreeSWITCH plays the MP3

    # Unhold.
    assert participant.update(hold=False).hold is False
    wait(customer, has("participant-unhold"), "participant-unhold")
    wait_commands(stack, 1, "conference", sid, "unhold", member)

    # 2. An MP3 HoldUrl: fsconf sees audio/mpeg, FreeSWITCH plays it over and over.
    assert participant.update(hold=True, hold_url=audio.url("/hold.mp3")).hold is True
    wait(customer, has("participant-hold", 2), "the second participant-hold")
    assert audio.requests == [("GET", "/hold.mp3")]  # Twilio's default HoldMethod is GET
    hold = wait_commands(stack, 2, "conference", sid, "hold", member)[1]
    parts = playlist(hold[4])
    assert set(parts[:-1]) == {f"http_cache://{audio.url('/hold.mp3')}"}
    assert parts[-1] == TAIL and len(parts) > 2
    assert participant.update(hold=False).hold is False
    wait(customer, has("participant-unhold", 2), "the second participant-unhold")

    # 3. A HoldUrl that cannot be fetched: the configured playable hold music, still held.
    fallback = stack.app.conferences.config.hold_media
    assert participant.update(hold=True, hold_url=REFUSED_URL).hold is True
    wait(customer, has("participant-hold", 3), "the third participant-hold")
    hold = wait_commands(stack, 3, "conference", sid, "hold", member)[2]
    assert hold[4] == fallback and "loops=-1" in fallback
    assert fake_member.hold and fake_member.hold_file == fallback
    fetched = rest(stack).conferences(sid).participants(alice).fetch()
    assert fetched.hold is True
    assert not any("127.0.0.1:9" in line for line in api_lines(stack))


def test_announce_urls_with_twiml_and_a_failing_one(stack: Stack, audio: AudioServer) -> None:
    customer = stack.customer
    sid, alice, _bob, members = start(stack)
    member = str(members[alice])
    conference = rest(stack).conferences(sid)
    customer.documents["/announce"] = (
        '<Response><Say>Welcome</Say><Pause length="1"/>'
        f"<Play>{audio.url('/chime.wav')}</Play></Response>"
    )
    customer.documents["/mine"] = "<Response><Say>Just for you</Say></Response>"
    announce_url = customer.url("/announce")

    # The conference's AnnounceUrl (POST by default): one play into the room.
    conference.update(announce_url=announce_url)
    wait(customer, has("announcement-end"), "the conference announcement")
    [request] = customer.callbacks("/announce")
    assert request.method == "POST" and request.signature_ok
    assert dict(request.params) == {"AccountSid": stack.account_sid, "ConferenceSid": sid}
    [play] = commands_with(stack, "conference", sid, "play")
    assert len(play) == 4, play  # no member id: the room
    prefix, _, media = play[3].partition("}")
    assert prefix.startswith("{fsconf_announce=AN")
    assert playlist(media) == [
        "tts://flite|kal|Welcome",
        "silence_stream://1000",
        f"http_cache://{audio.url('/chime.wav')}",
    ]  # once: no endless tail
    end = first(customer, "announcement-end")
    assert end.get("AnnounceUrl") == announce_url and end.get("CallSid") is None

    # A participant's AnnounceUrl: played to that member only.
    mine = customer.url("/mine")
    conference.participants(alice).update(announce_url=mine, announce_method="GET")
    wait(customer, has("announcement-end", 2), "the participant announcement")
    assert customer.callbacks("/mine")[0].method == "GET"
    play = commands_with(stack, "conference", sid, "play")[1]
    assert play[4] == member and play[3].endswith("}file_string://tts://flite|kal|Just for you")
    ended = named(customer.callbacks(), "announcement-end")[1]
    assert ended.get("CallSid") == alice and ended.get("AnnounceUrl") == mine

    # An AnnounceUrl that cannot be fetched: announcement-fail with the reason, nothing played.
    conference.update(announce_url=REFUSED_URL)
    wait(customer, has("announcement-fail"), "the failed announcement")
    fail = first(customer, "announcement-fail")
    assert fail.get("AnnounceUrl") == REFUSED_URL
    assert "11205" in (fail.get("ReasonAnnouncementFailed") or "")
    assert len(commands_with(stack, "conference", sid, "play")) == 2
    # A TwiML error in the document is a failure too (a Dial is not allowed there).
    customer.documents["/bad"] = "<Response><Dial>+15550001111</Dial></Response>"
    conference.update(announce_url=customer.url("/bad"))
    wait(customer, has("announcement-fail", 2), "the second failed announcement")
    wait(customer, requested("/bad"), "the bad document's fetch")
    assert len(commands_with(stack, "conference", sid, "play")) == 2
