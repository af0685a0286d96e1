"""Channel life cycles, profile sounds and the floor, as the captures show them."""

from __future__ import annotations

from fsconf.esl import commands
from fsconf.testing import FakeSwitch
from tests.fakeswitch.client import Client, SessionListener, keys
from tests.fakeswitch.test_conference import ALICE, BOB, CID, member_id

ALONE = "/srv/fswitch/fs/share/freeswitch/sounds/en/us/callie/conference/conf-alone.wav"
ENTER = "tone_stream://%(200,0,500,600,700)"
EXIT = "tone_stream://%(500,0,300,200,100,50,25)"


def originate(esl: Client, uuid: str, ext: str, target: str) -> None:
    reply = esl.api(
        f"originate {{origination_uuid={uuid},origination_caller_id_number=1,"
        f"origination_caller_id_name=X}}loopback/{ext}/default {target}"
    )
    assert reply == f"+OK {uuid}\n"


def of(events: list, uuid: str) -> list[str]:  # type: ignore[type-arg]
    return keys([e for e in events if e.unique_id == uuid])


def test_originated_a_leg_outgoing_create_originate(esl: Client) -> None:
    originate(esl, ALICE, "silent", "&conference(room-l@default)")
    events = esl.drain_until("add-member", **{"Unique-ID": ALICE})
    assert of(events, ALICE)[:5] == [
        "CHANNEL_OUTGOING", "CHANNEL_CREATE", "CHANNEL_ORIGINATE", "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE",
    ]


def test_talk_b_leg_playback_ends_with_playback_error_before_hangup(
    fs: FakeSwitch, esl: Client
) -> None:
    originate(esl, ALICE, "talk", "&conference(room-l@default)")
    esl.event("add-member", **{"Unique-ID": ALICE})
    b_leg = fs.channels[ALICE].other
    assert b_leg is not None
    assert esl.api(f"uuid_kill {ALICE}") == "+OK\n"
    events = esl.drain_until("CHANNEL_DESTROY", **{"Unique-ID": b_leg.uuid})
    b_events = [e for e in events if e.unique_id == b_leg.uuid]
    assert keys(b_events)[-4:] == [
        "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY",
    ]
    assert b_events[-4].get("Application") == "playback"
    assert b_events[-4].get("Application-Response") == "PLAYBACK ERROR"


def test_silent_park_blocks_until_hangup_then_unparks(fs: FakeSwitch, esl: Client) -> None:
    originate(esl, ALICE, "silent", "&conference(room-l@default)")
    esl.event("add-member", **{"Unique-ID": ALICE})
    b_leg = fs.channels[ALICE].other
    assert b_leg is not None
    esl.api(f"uuid_kill {ALICE}")
    events = esl.drain_until("CHANNEL_DESTROY", **{"Unique-ID": b_leg.uuid})
    # hangup_causes.jsonl (O2b..O7b): the parked peer notices on its next media read, the
    # park ends, then the leg hangs up NORMAL_CLEARING
    assert of(events, b_leg.uuid)[-5:] == [
        "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY",
    ]


def test_socket_session_parks_and_unparks(
    fs: FakeSwitch, esl: Client, listener: SessionListener
) -> None:
    uuid = fs.place_call(listener.address, destination="fsconf_sock_8090")
    call = listener.accept()
    call.command(commands.connect())
    assert call.command(commands.myevents()).reply_text == "+OK Events Enabled"
    assert call.event("CHANNEL_PARK").unique_id == uuid
    execute = esl.event("CHANNEL_EXECUTE", **{"Unique-ID": uuid})
    assert execute.get("Application") == "socket"
    event_uuid = "eeeeeeee-0000-0000-0000-000000000000"
    call.command(commands.sendmsg_execute("hangup", None, event_uuid=event_uuid, event_lock=True))
    events = esl.drain_until("CHANNEL_HANGUP_COMPLETE", **{"Unique-ID": uuid})
    mine = [e for e in events if e.unique_id == uuid]
    assert keys(mine)[-3:] == [
        "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP_COMPLETE",
    ]
    assert mine[-2].get("Application") == "socket"


def test_default_profile_alone_moh_enter_exit_sounds(esl: Client) -> None:
    originate(esl, ALICE, "silent", "&conference(room-s@default)")
    first = esl.drain_until("play-file", File="local_stream://moh")
    custom = [e for e in first if e.name == "CUSTOM"]
    assert keys(custom) == ["conference-create", "play-file", "add-member", "floor-change",
                            "play-file"]
    assert custom[1].get("File") == ALONE
    assert custom[1].get("Error") == "File could not be played"
    assert custom[1].get("Conference-Size") == "1"
    originate(esl, BOB, "silent", "&conference(room-s@default)")
    done = esl.event("play-file-done", File=ENTER)
    assert done.get("milliseconds") == "400"  # B6: twice the real length
    esl.api(f"uuid_kill {BOB}")
    leave = esl.drain_until("play-file", File="local_stream://moh")
    custom = [e for e in leave if e.name == "CUSTOM"][-4:]
    assert keys(custom) == ["play-file", "del-member", "play-file-done", "play-file"]
    assert custom[0].get("File") == ALONE
    assert custom[2].get("File") == EXIT


def test_fsconf_profile_is_silent_and_limited_has_max_members(esl: Client) -> None:
    originate(esl, ALICE, "silent", "&conference(room-f@fsconf)")
    events = esl.drain_until("floor-change")
    assert "play-file" not in keys(events)
    originate(esl, BOB, "silent", "&conference(room-m@limited)")
    esl.event("add-member", **{"Unique-ID": BOB})
    assert esl.api("conference room-m get max_members") == "2"


def test_floor_moves_only_when_holder_is_silent_and_leaving_holder_is_none(
    fs: FakeSwitch, esl: Client
) -> None:
    originate(esl, ALICE, "silent", "&conference(room-fl@fsconf)")
    alice = member_id(esl, ALICE)
    originate(esl, BOB, "silent", "&conference(room-fl@fsconf)")
    bob = member_id(esl, BOB)
    fs.start_talking(ALICE)
    fs.start_talking(BOB)  # the holder talks: no floor change
    fs.stop_talking(BOB)
    events = esl.drain_until("stop-talking", **{"Member-ID": str(bob)})
    assert not [e for e in events if e.action == "floor-change" and e.get("Old-ID") != "none"]
    fs.stop_talking(ALICE)
    fs.start_talking(BOB)  # the holder is silent now: the floor moves
    change = esl.event("floor-change", **{"New-ID": str(bob)})
    assert change.get("Old-ID") == str(alice)
    esl.api(f"uuid_kill {BOB}")
    gone = esl.event("floor-change", **{"New-ID": "none"})
    assert gone.get("Old-ID") == "none" and gone.get("Member-ID") is None
    picked = esl.event("floor-change", **{"New-ID": str(alice)})  # the next frame
    assert picked.get("Old-ID") == "none"


def test_kick_all_fires_every_kick_member_first(esl: Client) -> None:
    for uuid in (ALICE, BOB, CID):
        originate(esl, uuid, "silent", "&conference(room-k@fsconf)")
        esl.event("add-member", **{"Unique-ID": uuid})
    esl.api("conference room-k kick all")
    events = esl.drain_until("conference-destroy")
    custom = [e for e in events if e.action in ("kick-member", "del-member")]
    assert keys(custom)[:3] == ["kick-member"] * 3
    assert [e.get("Conference-Size") for e in custom[:3]] == ["3", "3", "3"]
    dels = [e.unique_id for e in custom if e.action == "del-member"]
    assert dels == [BOB, CID, ALICE]  # the others in join order, the floor holder last
