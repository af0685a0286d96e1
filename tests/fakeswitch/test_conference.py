"""mod_conference model over inbound ESL (texts from the captures)."""

from __future__ import annotations

import json

from fsconf.esl import commands
from fsconf.testing import FakeSwitch
from tests.fakeswitch.client import Client, keys

ALICE = "7dea7e7f-57b9-4d1e-8b20-aaff175e8a28"
BOB = "39ab4747-3ca7-4831-9107-6bd0917e3cfc"
CID = "efe2349a-0089-4e7a-a75d-f56edab98c0f"
ROOM = "CFf0d5d6661dda4d13b3a490fea9d1f8aa"


def originate(esl: Client, uuid: str, name: str, number: str, arg: str, callee: bool = True) -> str:
    variables = f"origination_uuid={uuid},origination_caller_id_number={number}," \
        f"origination_caller_id_name={name}"
    if callee:
        variables += f",origination_callee_id_number={number},origination_callee_id_name={name}"
    return esl.api(f"originate {{{variables}}}loopback/silent/default &conference({arg})")


def member_id(esl: Client, uuid: str) -> int:
    return int(esl.event("add-member", **{"Unique-ID": uuid}).get("Member-ID"))


def test_surprise1_originated_leg_reports_callee_id(esl: Client) -> None:
    assert originate(esl, ALICE, "Alice", "1001", "room-basic@default", callee=False) == \
        f"+OK {ALICE}\n"
    originate(esl, BOB, "Bob", "1002", "room-basic@default")
    a, b = member_id(esl, ALICE), member_id(esl, BOB)
    assert esl.api("conference room-basic list") == (
        f"{b};loopback/silent-a;{BOB};Bob;1002;hear|speak;0;0;100\n"
        f"{a};loopback/silent-a;{ALICE};Outbound Call;default;hear|speak|floor;0;0;100\n"
    )


def test_create_add_floor_events_and_conference_sid(esl: Client, fs: FakeSwitch) -> None:
    esl.api(f"originate {{origination_uuid={ALICE},confvar_conference_sid={ROOM}}}"
            f"loopback/silent/default &conference({ROOM}@fsconf+flags{{mute}})")
    seen = esl.drain_until("floor-change")
    custom = [e for e in seen if e.name == "CUSTOM"]
    assert keys(custom) == ["conference-create", "add-member", "floor-change"]
    assert all(e.get("conference_sid") == ROOM for e in custom)  # B2.1
    add = custom[1]
    flags = (add.get("Speak"), add.get("Hear"), add.get("Member-Type"))
    assert flags == ("false", "true", "member")
    assert custom[2].get("Old-ID") == "none"
    assert custom[2].get("New-ID") == add.get("Member-ID")
    assert esl.api(f"conference {ROOM} getvar conference_sid") == ROOM
    assert esl.api(f"conference {ROOM} list").endswith(";hear|floor;0;0;100\n")


def test_surprise14_kick_has_no_hangup_cause_kill_has(esl: Client) -> None:
    originate(esl, ALICE, "Ann", "3001", "room-mhk@default")
    originate(esl, BOB, "Ben", "3002", "room-mhk@default")
    ann, ben = member_id(esl, ALICE), member_id(esl, BOB)
    assert esl.api(f"conference room-mhk kick {ben}") == f"+OK kicked {ben}\n"
    kicked = esl.drain_until("del-member", **{"Member-ID": str(ben)})
    # the default profile's alone sound (play-file, unplayable) comes between when one is left
    custom = [e for e in kicked if e.name == "CUSTOM" and e.action != "play-file"]
    assert keys(custom)[-2:] == ["kick-member", "del-member"]
    assert kicked[-1].get("Hangup-Cause") is None
    # an originated `&conference` leg has nothing left to run: it hangs up (mute_hold_kick)
    hangup = esl.event("CHANNEL_HANGUP", **{"Unique-ID": BOB})
    assert hangup.get("Hangup-Cause") == "NORMAL_CLEARING"
    assert esl.api(f"uuid_kill {ALICE} USER_BUSY") == "+OK\n"
    gone = esl.event("del-member", **{"Member-ID": str(ann)})
    assert gone.get("Hangup-Cause") == "USER_BUSY"
    esl.event("conference-destroy")  # B9: no empty rooms
    assert esl.api("conference room-mhk list") == "-ERR Conference room-mhk not found\n"


def test_member_commands_exact_replies(esl: Client) -> None:
    originate(esl, ALICE, "Ann", "3001", "room-mhk@default")
    originate(esl, BOB, "Ben", "3002", "room-mhk@default")
    ann, ben = member_id(esl, ALICE), member_id(esl, BOB)
    room = "conference room-mhk"
    assert esl.api(f"{room} mute {ann}") == f"+OK mute {ann}\n"
    assert esl.event("mute-member").get("Speak") == "false"
    assert esl.api(f"{room} unmute {ann} quiet") == f"+OK unmute {ann}\n"
    esl.event("unmute-member")
    assert esl.api(f"{room} tmute {ann}") == f"+OK mute {ann}\n"
    assert esl.api(f"{room} mute all") == f"+OK mute {ben}\n+OK mute {ann}\n"
    assert esl.api(f"{room} mute 999") == "-ERR Non-Existant ID 999\n"
    assert esl.api(f"{room} mute") == "mute <[member_id|all]|last|non_moderator> [<quiet>]"
    assert esl.api(f"{room} deaf {ben}") == f"+OK deaf {ben}\n"
    assert esl.api(f"{room} bogus") == "-ERR Conference command 'bogus' not found.\n"
    assert esl.api(room) == "Conference command, not specified.\nTry 'help'\n"
    assert esl.api(f"{room} count") == "2"
    assert esl.api(f"{room} list count") == "2"
    assert esl.api(f"{room} get max_members") == "0"
    assert esl.api(f"{room} get is_locked") == "-ERR no reply\n"  # surprise 3
    assert esl.api(f"{room} get bogus") == "get <parameter-name>"
    assert esl.api(f"{room} set max_members 3") == "0"  # surprise 8: the OLD value
    assert esl.api(f"{room} set max_members 2") == "3"
    assert esl.api(f"{room} dtmf {ann} 123") == f"+OK sent 123 to {ann}\n"
    assert esl.event("dtmf-member").get("Digits") == "123"
    assert esl.api(f"{room} say hello everyone") == "+OK (say) OK\n"
    assert esl.event("speak-text").get("Text") == "hello everyone"
    assert esl.api(f"{room} get-uuid {ben}") == BOB
    assert esl.api(f"{room} setvar foo bar") == "+OK\n"
    assert esl.api(f"{room} getvar foo") == "bar"


def test_b10_hold_in_json_list_and_list(esl: Client) -> None:
    originate(esl, ALICE, "Talker", "1", "room-h@default")
    originate(esl, BOB, "Held", "2", "room-h@default")
    held = member_id(esl, BOB)
    member_id(esl, ALICE)
    assert esl.api(f"conference room-h hold {held}") == f"+OK hold {held}\n"
    event = esl.event("hold-member")
    assert (event.get("Hold"), event.get("Hear"), event.get("Speak")) == ("true", "true", "true")
    data = json.loads(esl.api("conference room-h json_list compact"))
    flags = next(m["flags"] for m in data[0]["members"] if m["id"] == held)
    assert (flags["hold"], flags["can_hear"], flags["can_speak"]) == (True, False, False)
    assert f"\n{held};" in "\n" + esl.api("conference room-h list")
    assert ";hold;0;0;100\n" in esl.api("conference room-h list")
    assert esl.api("conference room-h unhold 999") == "-ERR Non-Existant ID 999\n"


def test_b5_b6_b7_play_vars_lengths_and_errors(esl: Client) -> None:
    originate(esl, ALICE, "Ann", "1", "room-p@default")
    ann = member_id(esl, ALICE)
    room = "conference room-p"
    file = "{fsconf_announce=AN1}tone_stream://%(500,0,600)"
    assert esl.api(f"{room} play {file}") == f"+OK (play) Playing file {file}\n"
    play = esl.event("play-file", File=file)
    assert (play.get("fsconf_announce"), play.get("File"), play.get("Async")) == (
        "AN1", file, "false")
    done = esl.event("play-file-done")
    assert (done.get("fsconf_announce"), done.get("milliseconds"), done.get("seconds")) == (
        "AN1", "1000", "1")
    assert esl.api(f"{room} play {file} {ann}") == \
        f"+OK (play) Playing file {file} to member {ann}\n"
    assert esl.event("play-file-member-done").get("fsconf_announce") == "AN1"
    async_file = "{fsconf_announce=AN3,vol=-3}tone_stream://%(500,0,600)"
    esl.api(f"{room} play {async_file} async")
    assert esl.event("play-file", Async="true").get("fsconf_announce") is None
    assert esl.event("play-file-done", fsconf_announce="AN3").get("vol") == "-3"
    assert esl.api(f"{room} play /nonexistent.wav") == \
        "-ERR (play) File: /nonexistent.wav not found.\n"
    assert esl.event("play-file", File="/nonexistent.wav").get("Error") == \
        "File could not be played"
    reply = esl.api(f"{room} play tone_stream://%(200,0,600) 999")
    assert reply.startswith("-ERR Member: ")
    assert reply.endswith(" not found.\nplay <file_path> [async|<member_id> [nomux]]")
    assert esl.api(f"{room} play") == "play <file_path> [async|<member_id> [nomux]]"


def test_surprise6_7_b15_recording_texts(esl: Client) -> None:
    originate(esl, ALICE, "Rita", "1", "room-rec@default")
    member_id(esl, ALICE)
    room = "conference room-rec"
    path = "/srv/fswitch/rec/room-rec.wav"
    assert esl.api(f"{room} record {path}") == f"+OK Record file {path}\n"
    assert esl.event("start-recording").get("Path") == path
    assert esl.api(f"{room} recording check") == f"+OK Record file {path}\n"
    members = json.loads(esl.api(f"{room} json_list compact"))[0]["members"]
    assert members[0]["type"] == "recording_node"
    assert members[0]["record_path"] == path
    assert esl.api(f"{room} recording pause {path}") == f"+OK Pause recording file {path}\n"
    assert esl.event("pause-recording").get("Other-Recordings") == "true"
    assert esl.api(f"{room} recording stop {path}") == \
        f"Stopped recording file {path}\n+OK Stopped recording 0 files\n"
    assert esl.event("stop-recording").get("Other-Recordings") == "false"
    assert esl.api(f"{room} recording stop {path}") == \
        f"-ERR non-existant recording '{path}'\n+OK Stopped recording 0 files\n"
    assert esl.api(f"{room} recording check") == "-ERR Conference is not being recorded.\n"
    assert esl.api(f"{room} recording bogus") == "+OK Record file bogus\n"
    esl.event("stop-recording", Path="bogus")
    # the failed recording's thread is over: nothing left to stop or list (errors.jsonl)
    assert esl.api(f"{room} norecord all") == "+OK Stopped recording 0 files\n"
    assert esl.api(f"{room} recording check") == "-ERR Conference is not being recorded.\n"
    assert esl.api(f"{room} record") == "record <filename>"


def test_b16_relate_texts(esl: Client) -> None:
    originate(esl, ALICE, "Customer", "1", "room-r@default")
    originate(esl, BOB, "Coach", "2", "room-r@default")
    customer, coach = member_id(esl, ALICE), member_id(esl, BOB)
    room = "conference room-r"
    assert esl.api(f"{room} relate") == "+OK No relationships\n"
    assert esl.api(f"{room} relate {coach} {customer} nospeak") == \
        f"+OK {coach}->{customer} nospeak set\n"
    assert esl.api(f"{room} relate") == "-ERR no reply\n"
    assert esl.api(f"{room} relate {coach}") == \
        f"{coach} -> {customer} NOSPEAK HEAR NOSENDVIDEO \n"
    assert esl.api(f"{room} relate 999 {customer} nospeak") == \
        f"-ERR relationship 999->{customer} not found.\n"
    assert esl.api(f"{room} relate {coach} {customer}").startswith("relate <member_id>")
    assert esl.api(f"{room} relate {coach} {customer} clear") == \
        f"+OK relationship {coach}->{customer} cleared.\n"


def test_b11_full_room_refuses_silently(esl: Client, fs: FakeSwitch) -> None:
    esl.api(f"originate {{origination_uuid={ALICE},conference_max_members=1}}"
            "loopback/silent/default &conference(room-max@default)")
    member_id(esl, ALICE)
    assert esl.api("conference room-max get max_members") == "1"
    originate(esl, BOB, "Max2", "2", "room-max@default")
    done = esl.event("CHANNEL_EXECUTE_COMPLETE", **{"Unique-ID": BOB, "Application": "conference"})
    assert done.get("Application-Response") == "_none_"
    assert done.get("variable_conference_name") == "room-max"
    assert done.get("variable_conference_member_id") is None
    # refused silently; the originated leg then ends like its app (maxmembers_lock)
    assert esl.event("CHANNEL_HANGUP", **{"Unique-ID": BOB}).get("Hangup-Cause") == \
        "NORMAL_CLEARING"
    assert esl.api("conference room-max count") == "1"
    assert not [e for e in esl.events() if e.name == "CUSTOM" and e.unique_id == BOB]


def test_endconf_member_leaving_ends_room(esl: Client) -> None:
    originate(esl, ALICE, "Mod", "6000", "room-hup@default+flags{moderator|endconf}")
    originate(esl, BOB, "Victim", "6006", "room-hup@default")
    mod, victim = member_id(esl, ALICE), member_id(esl, BOB)
    assert esl.api("conference room-hup list").endswith(";hear|speak|floor|moderator;0;0;100\n")
    esl.api(f"uuid_kill {ALICE}")
    seen = esl.drain_until("conference-destroy")
    dels = [e for e in seen if e.name == "CUSTOM" and e.action == "del-member"]
    assert [e.get("Member-ID") for e in dels] == [str(mod), str(victim)]
    # the victim's hangup_after_conference is unset: mod_conference hangs it up (B2.2)
    assert dels[1].get("Hangup-Cause") == "NORMAL_CLEARING"
    esl.event("CHANNEL_HANGUP_COMPLETE", **{"Unique-ID": BOB})


def test_b14_member_id_kept_on_rejoin_and_ids_increase(fs: FakeSwitch, esl: Client) -> None:
    originate(esl, ALICE, "A", "1", "room-1@default")
    first = member_id(esl, ALICE)
    originate(esl, BOB, "B", "2", "room-1@default")
    assert member_id(esl, BOB) == first + 1
    channel = fs.channels[BOB]
    channel.hangup_when_done = False  # keep the leg up after its app, like a call session
    esl.api(f"conference room-1 kick {first + 1}")
    esl.event("del-member", **{"Unique-ID": BOB})
    from fsconf.testing.fakeswitch import Message

    channel.submit(Message("conference", "room-2@default", "e" * 8 + "-0000-0000-0000-" + "0" * 12,
                           True))
    assert member_id(esl, BOB) == first + 1


def test_start_stop_talking_control_api(fs: FakeSwitch, esl: Client) -> None:
    originate(esl, ALICE, "A", "1", "room-t@default")
    originate(esl, BOB, "B", "2", "room-t@default")
    a, b = member_id(esl, ALICE), member_id(esl, BOB)
    fs.start_talking(BOB)
    assert esl.event("start-talking").get("Talking") == "true"
    change = esl.event("floor-change", **{"New-ID": str(b)})
    assert change.get("Old-ID") == str(a)
    fs.stop_talking(BOB)
    assert esl.event("stop-talking").get("Member-ID") == str(b)


def test_show_channels_count_and_json(esl: Client) -> None:
    assert esl.api("show channels count") == "\n0 total.\n"
    originate(esl, ALICE, "A", "1", "room-s@default")
    member_id(esl, ALICE)
    assert esl.api("show channels count") == "\n2 total.\n"
    rows = json.loads(esl.api("show channels as json"))["rows"]
    assert {r["name"] for r in rows} == {"loopback/silent-a", "loopback/silent-b"}
    assert esl.api(f"uuid_getvar {ALICE} nosuchvar") == "_undef_"
    assert esl.api(f"uuid_setvar {ALICE} foo bar") == "+OK\n"
    assert esl.api(f"uuid_getvar {ALICE} foo") == "bar"
    esl.send(commands.api(f"uuid_kill {ALICE}"))
    esl.event("CHANNEL_DESTROY", **{"Unique-ID": ALICE})


def _b_leg(esl: Client, uuid: str) -> str:
    return esl.api(f"uuid_getvar {uuid} other_loopback_leg_uuid")


def test_conference_dtmf_is_sent_by_the_member(esl: Client) -> None:
    """mute_hold_kick / b2_hangup_on_star: dtmf-member on the member's next frame, then the far
    loopback leg receives the digits (the member's channel SENDS them)."""
    originate(esl, ALICE, "Ann", "1", "room-d@default")
    ann = member_id(esl, ALICE)
    far = _b_leg(esl, ALICE)
    assert esl.api(f"conference room-d dtmf {ann} 12") == f"+OK sent 12 to {ann}\n"
    assert esl.event("dtmf-member").get("Digits") == "12"
    assert esl.event("DTMF", **{"Unique-ID": far}).get("DTMF-Digit") == "1"
    assert esl.event("DTMF", **{"Unique-ID": far}).get("DTMF-Digit") == "2"


def test_relate_lists_newest_first_and_nospeak_restarts_talk(
    fs: FakeSwitch, esl: Client
) -> None:
    """b2_relate_coach: relationships are listed newest first; setting nospeak silently clears
    the member's talking state (no stop-talking; a start-talking on its next voiced frame)."""
    originate(esl, ALICE, "Customer", "1", "room-r@default")
    originate(esl, BOB, "Agent", "2", "room-r@default")
    originate(esl, CID, "Coach", "3", "room-r@default")
    customer, agent, coach = member_id(esl, ALICE), member_id(esl, BOB), member_id(esl, CID)
    fs.start_talking(CID)
    esl.event("start-talking", **{"Unique-ID": CID})
    room = "conference room-r"
    assert esl.api(f"{room} relate {coach} {coach} nospeak") == \
        f"+OK {coach}->{coach} nospeak set\n"
    line = next(x for x in esl.api(f"{room} list").splitlines() if x.startswith(f"{coach};"))
    assert "talking" not in line.split(";")[5]
    assert esl.api(f"{room} relate {coach} {customer},{agent} nospeak") == (
        f"+OK {coach}->{customer} nospeak set\n+OK {coach}->{agent} nospeak set\n")
    assert esl.api(f"{room} relate {coach}") == (
        f"{coach} -> {agent} NOSPEAK HEAR NOSENDVIDEO \n"
        f"{coach} -> {customer} NOSPEAK HEAR NOSENDVIDEO \n"
        f"{coach} -> {coach} NOSPEAK HEAR NOSENDVIDEO \n"
    )
    fs.start_talking(CID)
    event = esl.event("start-talking", **{"Unique-ID": CID})
    assert event.get("Talking") == "true"


def test_uuid_record_answers_success(esl: Client) -> None:
    originate(esl, ALICE, "Ann", "1", "room-u@default")
    member_id(esl, ALICE)
    assert esl.api(f"uuid_record {ALICE} start /tmp/x.wav") == "+OK Success\n"
    assert esl.api(f"uuid_record {ALICE} stop /tmp/x.wav") == "+OK Success\n"
    assert esl.api(f"uuid_record {ALICE}").startswith("-USAGE: ")


def test_hold_file_ends_on_the_frame_after_unhold(fs: FakeSwitch, esl: Client) -> None:
    """b2_hold_native: play-file-member-done of the hold music comes one frame after
    unhold-member, after a start-talking of that frame (so it says Talking: true)."""
    originate(esl, ALICE, "Talker", "1", "room-h@default")
    originate(esl, BOB, "Held", "2", "room-h@default")
    held = member_id(esl, BOB)
    room = "conference room-h"
    assert esl.api(f"{room} hold {held} tone_stream://%(1000,500,440);loops=-1") == \
        f"+OK hold {held}\n"
    esl.event("hold-member")
    assert esl.api(f"{room} unhold {held}") == f"+OK unhold {held}\n"
    esl.event("unhold-member")
    fs.start_talking(BOB)
    seen = esl.drain_until("play-file-member-done")
    assert "start-talking" in [e.get("Action") for e in seen]
    assert seen[-1].get("Talking") == "true"


def test_b13_application_response_of_the_last_app_inside(esl: Client) -> None:
    """b2_park_then_join: every app starts without a response, so a `set` after a playback
    says _none_, while a conference that ran a nested playback says FILE PLAYED."""
    esl.api(f"originate {{origination_uuid={ALICE}}}loopback/silent/default &park")
    esl.event("CHANNEL_PARK", **{"Unique-ID": ALICE})

    def run(app: str, arg: str | None, event_uuid: str, lock: bool = True) -> None:
        esl.command(commands.sendmsg_execute(
            app, arg, event_uuid=event_uuid, uuid=ALICE, event_lock=lock))

    play, set_, conference, nested = (f"00000000-0000-0000-0000-00000000000{i}" for i in "1234")
    run("playback", "tone_stream://%(100,0,440)", play)
    assert esl.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": play}).get(
        "Application-Response") == "FILE PLAYED"
    run("set", "a=b", set_)
    assert esl.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": set_}).get(
        "Application-Response") == "_none_"
    run("conference", "room-b13@fsconf", conference, lock=False)
    me = member_id(esl, ALICE)
    run("playback", "tone_stream://%(100,0,440)", nested, lock=False)
    esl.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": nested})
    assert esl.api(f"conference room-b13 kick {me}") == f"+OK kicked {me}\n"
    assert esl.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": conference}).get(
        "Application-Response") == "FILE PLAYED"


def test_b17_http_playback_needs_its_module_and_a_reachable_url(
    fs: FakeSwitch, esl: Client
) -> None:
    url = "http://127.0.0.1:8099/run/tone.wav"
    fs.missing_files.add("http://127.0.0.1:8099/run/missing404.wav")
    assert not fs.is_missing(url)
    assert fs.is_missing("http://127.0.0.1:8099/run/missing404.wav")
    assert fs.is_missing("http_cache://http://127.0.0.1:8099/run/missing404.wav")
    assert esl.api("unload mod_httapi").startswith("+OK")
    assert fs.is_missing(url)
    assert not fs.is_missing(f"http_cache://{url}")
    esl.api("load mod_httapi")
    assert not fs.is_missing(url)


def test_burst_of_hangups_leaves_together_holder_last(fs: FakeSwitch, esl: Client) -> None:
    """b2_relate_coach: members hung up during the same frame (a burst of uuid_kill) leave
    together, the others in join order and the floor holder last (harness decision 5b
    accepts the holder-first order of maxmembers_lock as the same race)."""
    originate(esl, ALICE, "A", "1", "room-burst@default")
    alice = member_id(esl, ALICE)
    esl.event("floor-change", **{"New-ID": str(alice)})
    originate(esl, BOB, "B", "2", "room-burst@default")
    originate(esl, CID, "C", "3", "room-burst@default")
    bob, cid = member_id(esl, BOB), member_id(esl, CID)
    for uuid in (ALICE, BOB, CID):  # all within one frame
        fs.hangup(uuid)
    seen = esl.drain_until("conference-destroy")
    departures = [
        (e.action, e.get("Member-ID"), e.get("Conference-Size"))
        for e in seen
        if e.name == "CUSTOM" and e.action in ("del-member", "floor-change")
    ]
    assert departures == [
        ("del-member", str(bob), "2"),
        ("del-member", str(cid), "1"),
        ("floor-change", None, "1"),
        ("del-member", str(alice), "0"),
    ]


def test_all_rooms_views_walk_the_conference_hash(esl: Client) -> None:
    """b2_reconcile_views: `conference list`/`json_list`/`xml_list` without a room name walk
    mod_conference's hash (53 buckets): rooms created R1, R2, R3 are listed R3, R1, R2."""
    r1, r2, r3 = (
        "CFf8fed4dd9d7e43b7a277f4039acdfe51",
        "CF607a6287a2e54464b924c2437f0ab095",
        "CFd58f262b5b5e44589671fdbe5515a356",
    )
    for uuid, room in ((ALICE, r1), (BOB, r2), (CID, r3)):
        originate(esl, uuid, "V", "1", f"{room}@default")
        member_id(esl, uuid)
    names = [r["conference_name"] for r in json.loads(esl.api("conference json_list"))]
    assert names == [r3, r1, r2]
    listed = [line.split()[2] for line in esl.api("conference list").splitlines()
              if line.startswith("+OK Conference ")]
    assert listed == [r3, r1, r2]


def test_show_channels_call_uuid_of_loopback_legs(esl: Client) -> None:
    """b2_reconcile_views: the originated A-leg shows callee_direction RECV and its own
    call_uuid, the loopback B-leg an empty call_uuid (show channels and show calls)."""
    originate(esl, ALICE, "A", "1", "room-s@default")
    member_id(esl, ALICE)
    for command in ("show channels as json", "show calls as json"):
        rows = {r["name"]: r for r in json.loads(esl.api(command))["rows"]}
        a_leg, b_leg = rows["loopback/silent-a"], rows["loopback/silent-b"]
        assert (a_leg["callee_direction"], a_leg["call_uuid"]) == ("RECV", ALICE), command
        assert (b_leg["callee_direction"], b_leg["call_uuid"]) == ("", ""), command


def test_b15_auto_record_of_the_creating_member(esl: Client) -> None:
    """b2_record_lifecycle: ``conference_auto_record`` on the member that creates the room
    starts recording right after its join (start-recording after the first floor-change),
    ``recording check`` lists it with ``(Auto)``; it stops when the room is destroyed."""
    path = "/srv/fswitch/rec/room-auto-auto.wav"
    esl.api(f"originate {{origination_uuid={ALICE},conference_auto_record={path}}}"
            "loopback/silent/default &conference(room-auto@fsconf)")
    seen = esl.drain_until("start-recording")
    custom = [e.action for e in seen if e.name == "CUSTOM"]
    assert custom == ["conference-create", "add-member", "floor-change", "start-recording"]
    assert esl.api("conference room-auto recording check") == f"+OK Record file {path} (Auto)\n"
    esl.api(f"uuid_kill {ALICE}")
    seen = esl.drain_until("conference-destroy")
    assert [e.action for e in seen if e.name == "CUSTOM"][-3:] == [
        "del-member", "stop-recording", "conference-destroy"]


def test_b15_auto_record_waits_for_min_recording_participants(esl: Client) -> None:
    """b2_record_lifecycle (profile fsconf-minrec2): no recording while one member is in
    the room; start-recording right after the second add-member; it goes on after that
    member leaves."""
    path = "/srv/fswitch/rec/room-min-auto.wav"
    esl.api(f"originate {{origination_uuid={ALICE},conference_auto_record={path}}}"
            "loopback/silent/default &conference(room-min@fsconf-minrec2)")
    member_id(esl, ALICE)
    assert esl.api("conference room-min recording check") == (
        "-ERR Conference is not being recorded.\n")
    originate(esl, BOB, "B", "2", "room-min@fsconf-minrec2")
    seen = esl.drain_until("start-recording")
    custom = [e.action for e in seen if e.name == "CUSTOM"]
    assert custom[-2:] == ["add-member", "start-recording"]
    esl.api(f"uuid_kill {BOB}")
    esl.event("del-member", **{"Unique-ID": BOB})
    assert esl.api("conference room-min recording check") == f"+OK Record file {path} (Auto)\n"


def test_lock_and_unlock_play_the_profile_sounds(esl: Client) -> None:
    """maxmembers_lock, sipp_inbound: play-file of is-locked-sound / is-unlocked-sound
    (failing on the captured switch) right before the lock / unlock event."""
    originate(esl, ALICE, "A", "1", "room-lk@default")
    member_id(esl, ALICE)
    esl.api("conference room-lk lock")
    seen = esl.drain_until("lock")
    files = [(e.action, e.get("File", "")) for e in seen if e.name == "CUSTOM"][-2:]
    assert files[0][0] == "play-file" and files[0][1].endswith("conf-is-locked.wav")
    assert files[1] == ("lock", "")
    assert esl.api("conference room-lk get is_locked") == "locked"  # maxmembers_lock
    esl.api("conference room-lk unlock")
    seen = esl.drain_until("unlock")
    files = [(e.action, e.get("File", "")) for e in seen if e.name == "CUSTOM"][-2:]
    assert files[0][0] == "play-file" and files[0][1].endswith("conf-is-unlocked.wav")
    assert files[1] == ("unlock", "")


def _member_plays(seen: list, member: int) -> list[tuple[str, str | None, str | None]]:  # type: ignore[type-arg]
    """(action, File or Text, fsconf_announce) of one member's play/say events, in order."""
    actions = ("play-file-member", "play-file-member-done", "speak-text-member")
    return [
        (e.action, e.get("File") or e.get("Text"), e.get("fsconf_announce"))
        for e in seen
        if e.name == "CUSTOM" and e.action in actions and e.get("Member-ID") == str(member)
    ]


def test_member_plays_queue_one_after_another(esl: Client) -> None:
    """b2_announcements (B5): a member play queued behind another one waits for it; its
    play-file-member carries the vars of the file playing NOW, each done its own vars, in
    queue order; saymember without TTS (fsconf-notts) queues nothing."""
    originate(esl, ALICE, "Ann", "1", "room-mq@fsconf-notts")
    ann = member_id(esl, ALICE)
    room = "conference room-mq"
    long = "{fsconf_announce=AN9}tone_stream://%(500,0,600);loops=100"  # 50 s, stopped below
    short = "{fsconf_announce=AN16}tone_stream://%(300,0,650)"
    assert esl.api(f"{room} play {long} {ann}") == \
        f"+OK (play) Playing file {long} to member {ann}\n"
    assert esl.api(f"{room} play {short} {ann} nomux") == \
        f"+OK (play) Playing file {short} to member {ann}\n"
    assert esl.api(f"{room} saymember {ann} hello") == "+OK (saymember) OK\n"
    assert esl.api(f"{room} play_status {ann}") == "+OK 0/0 %(500,0,600);loops=100\n"
    assert esl.api(f"{room} stop current {ann}") == "+OK Stopped 1 files.\n"
    seen = esl.drain_until("play-file-member-done", File=short)
    assert _member_plays(seen, ann) == [
        ("play-file-member", long, "AN9"),
        ("play-file-member", short, "AN9"),  # queued behind AN9: the head's vars (B5)
        ("speak-text-member", "hello", None),
        ("play-file-member-done", long, "AN9"),
        ("play-file-member-done", short, "AN16"),
    ]
    assert esl.api(f"{room} play_status {ann}") == "-ERR Nothing is playing\n"
    assert esl.api(f"{room} stop all {ann}") == "+OK Stopped 0 files.\n"


def test_first_member_hears_the_alone_tts_before_its_plays(fs: FakeSwitch, esl: Client) -> None:
    """b2_announcements AN2 (B4, B5): profile fsconf has tts-engine and no alone-sound, so
    the first member hears "You are currently the only person..." on its own queue: a play
    to it right after the join waits behind the speech and its play-file-member has no
    vars; `stop all` ends both (2 files) and only the file reports done. With
    conference_silent_entry (first join) nothing is queued."""
    fs.time_scale = 1.0  # the speech lasts ~3.7 s: far longer than this test's commands
    originate(esl, ALICE, "Ann", "1", "room-alone@fsconf")
    ann = member_id(esl, ALICE)
    room = "conference room-alone"
    file = "{fsconf_announce=AN2}tone_stream://%(500,0,600)"
    assert esl.api(f"{room} play {file} {ann}") == \
        f"+OK (play) Playing file {file} to member {ann}\n"
    play = esl.event("play-file-member")
    assert (play.get("File"), play.get("fsconf_announce")) == (file, None)
    assert esl.api(f"{room} stop all {ann}") == "+OK Stopped 2 files.\n"
    seen = esl.drain_until("play-file-member-done")
    assert _member_plays(seen, ann) == [("play-file-member-done", file, "AN2")]

    esl.api(f"originate {{origination_uuid={BOB},conference_silent_entry=true}}"
            "loopback/silent/default &conference(room-quiet@fsconf)")
    esl.event("conference-create", **{"Conference-Name": "room-quiet"})
    bob = esl.api("conference room-quiet list").split(";")[0]  # B4: no add-member
    assert esl.api(f"conference room-quiet stop all {bob}") == "+OK Stopped 0 files.\n"
    esl.api(f"conference room-quiet play {file} {bob}")
    assert esl.event("play-file-member", **{"Member-ID": bob}).get("fsconf_announce") == "AN2"


def test_floor_goes_to_a_member_whose_channel_hung_up_after_the_holder_left(
    fs: FakeSwitch, esl: Client
) -> None:
    """b2_max_members_full: the room thread picks the next holder among the members still
    listed, and a member whose channel hung up is listed until its own thread notices
    (one frame after CHANNEL_HANGUP). Bob hangs up after holder Alice left but before the
    pick: the floor goes to Bob (floor-change with Hangup-Cause), then he leaves as holder
    (none/none, del-member). Hung up in the holder's own frame, he would leave with it
    (test_burst_of_hangups_leaves_together_holder_last)."""
    originate(esl, ALICE, "A", "1", "room-pick@fsconf-notts")
    alice = member_id(esl, ALICE)
    esl.event("floor-change", **{"New-ID": str(alice)})
    originate(esl, BOB, "B", "2", "room-pick@fsconf-notts")
    bob = member_id(esl, BOB)
    # no yield between the two: Alice is out and Bob's channel down before the next frame
    assert fs.api(f"conference room-pick kick {alice}") == f"+OK kicked {alice}\n"
    fs.hangup(BOB)
    seen = esl.drain_until("conference-destroy")
    room = [
        (e.action, e.get("Member-ID"), e.get("Old-ID"), e.get("New-ID"), e.get("Hangup-Cause"))
        for e in seen
        if e.name == "CUSTOM" and e.action in ("floor-change", "del-member")
    ]
    assert room == [
        ("floor-change", None, "none", "none", None),
        ("del-member", str(alice), None, None, None),
        ("floor-change", str(bob), "none", str(bob), "NORMAL_CLEARING"),
        ("floor-change", None, "none", "none", None),
        ("del-member", str(bob), None, None, "NORMAL_CLEARING"),
    ]
    order = [(e.name, e.action, e.get("Unique-ID")) for e in seen]
    # Bob's channel was already down when he was handed the floor
    assert order.index(("CHANNEL_HANGUP", None, BOB)) < order.index(
        ("CUSTOM", "floor-change", BOB))
