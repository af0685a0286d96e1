"""Golden tests of the ESL command builders.

Where a capture has the very command, the capture is the golden: the builder
must produce those exact bytes (``captured()`` checks that the bytes are an
``out`` record of that file). Everything else is an exact literal. The
injection corpus checks that no argument can change the meaning of a command:
it is refused with :class:`EslArgumentError`, or (URLs, TTS text) re-encoded
so that no FreeSWITCH metacharacter survives.
"""

from __future__ import annotations

import pytest

from fsconf.errors import EslArgumentError
from fsconf.esl import commands as c
from fsconf.esl.codec import CommandDecoder
from tests.esl import captures

ROOM = "CF4c29fed766de431ba20d1d60ba820691"  # b2_announcements
UUID = "4b7d33ca-df87-40c7-a08c-99870c5beb41"
EVENT_UUID = "bd621efe-3c58-4318-8653-c9d020f758e0"


def captured(name: str, data: bytes) -> bool:
    return any(data in commands for commands in captures.out_commands(name).values())


def api(text: str) -> bytes:
    return c.api(text)


# --- the captures' own commands as goldens --------------------------------------------

GOLDENS = [
    ("basic_two_party.jsonl", lambda: c.auth("ClueCon")),
    ("basic_two_party.jsonl", lambda: c.event(["ALL"])),
    ("json_events.jsonl", lambda: c.event(["ALL"], "json")),
    ("basic_two_party.jsonl", lambda: c.api("version")),
    ("basic_two_party.jsonl", c.exit_),
    ("outbound_socket.jsonl", c.connect),
    ("outbound_socket.jsonl", c.myevents),
    ("outbound_socket.jsonl", c.linger),
    ("errors.jsonl", lambda: c.myevents("00000000-0000-0000-0000-000000000000")),
    ("b2_bgapi_jobuuid.jsonl", c.noevents),
    ("outbound_socket.jsonl", lambda: c.event([], subclasses=["conference::maintenance"])),
    (
        "outbound_socket.jsonl",
        lambda: c.event(
            [
                "CHANNEL_CREATE",
                "CHANNEL_ANSWER",
                "CHANNEL_HANGUP_COMPLETE",
                "CHANNEL_DESTROY",
                "BACKGROUND_JOB",
                "SOCKET_DATA",
            ],
            subclasses=["conference::maintenance"],
        ),
    ),
    # B1: CUSTOM and its subclasses last, even when asked for first.
    (
        "b2_bgapi_jobuuid.jsonl",
        lambda: c.event(
            [
                "CUSTOM",
                "BACKGROUND_JOB",
                "CHANNEL_HANGUP_COMPLETE",
                "CHANNEL_EXECUTE_COMPLETE",
                "HEARTBEAT",
            ],
            "json",
            ["conference::maintenance"],
        ),
    ),
    ("b2_bgapi_jobuuid.jsonl", lambda: c.bgapi("status", "ddbfa445-c005-4f54-bb10-73caf0dac22a")),
    (
        "b2_bgapi_jobuuid.jsonl",
        lambda: c.bgapi(
            c.originate_cmd(
                origination_uuid=UUID,
                endpoint="loopback/silent/default",
                variables={
                    "origination_caller_id_number": "+15551241001",
                    "origination_caller_id_name": "Job",
                    "origination_callee_id_number": "+15551241001",
                    "origination_callee_id_name": "Job",
                },
                app="conference",
                app_arg=c.conference_app_arg("CFba01fa46c4db4737847b228c2b3ba0ec"),
            ),
            "ed750e65-0427-4774-8d3b-8b1ba56eb615",
        ),
    ),
    (
        "b2_bgapi_jobuuid.jsonl",
        lambda: c.bgapi(
            c.conference_list_cmd("CFba01fa46c4db4737847b228c2b3ba0ec"),
            "fsconf-job-not-a-uuid-0001",
        ),
    ),
    ("b2_bgapi_jobuuid.jsonl", lambda: c.filter_add("Unique-ID", UUID)),
    ("b2_bgapi_jobuuid.jsonl", lambda: c.filter_delete("Unique-ID", UUID)),
    ("b2_bgapi_jobuuid.jsonl", lambda: c.nixevent(["CHANNEL_EXECUTE_COMPLETE"])),
    # sendmsg: the argument as a content-length body (and without event-lock,
    # as the recorder sent it).
    (
        "b2_outbound_conference_flow.jsonl",
        lambda: c.sendmsg_execute(
            "set",
            c.set_arg("confvar_conference_sid", "CFf0d5d6661dda4d13b3a490fea9d1f8aa"),
            event_uuid="189f8d1d-3259-4677-ae4a-2a2fe86ec363",
            event_lock=False,
        ),
    ),
    (
        "b2_outbound_conference_flow.jsonl",
        lambda: c.sendmsg_execute(
            "set",
            "conference_enter_sound=tone_stream://%(200,0,800)",
            event_uuid=EVENT_UUID,
            event_lock=False,
        ),
    ),
    (
        "b2_outbound_conference_flow.jsonl",
        lambda: c.sendmsg_execute(
            "playback",
            "tone_stream://%(300,0,500)",
            event_uuid="9f7f2d91-b545-4894-ac0c-dd1fcc50afbf",
            event_lock=False,
        ),
    ),
    (
        "b2_outbound_conference_flow.jsonl",
        lambda: c.sendmsg_execute(
            "answer", event_uuid="29c0b9e7-8892-433b-8b39-35dce1bb9b3a", event_lock=False
        ),
    ),
    ("b2_outbound_conference_flow.jsonl", lambda: c.sendmsg_hangup("NORMAL_CLEARING")),
    # api texts
    ("b2_announcements.jsonl", lambda: api(c.conference_say_cmd(ROOM, "hello"))),
    ("b2_announcements.jsonl", lambda: api(c.conference_saymember_cmd(ROOM, 106, "hello"))),
    ("b2_announcements.jsonl", lambda: api(c.conference_stop_cmd(ROOM, 107))),
    ("b2_announcements.jsonl", lambda: api(c.conference_stop_cmd(ROOM))),
    (
        "b2_announcements.jsonl",
        lambda: api(
            c.conference_play_cmd(
                ROOM, "tone_stream://%(500,0,600)", variables={"fsconf_announce": "AN1"}
            )
        ),
    ),
    (
        "b2_announcements.jsonl",
        lambda: api(
            c.conference_play_cmd(
                ROOM,
                "tone_stream://%(500,0,600)",
                member_id=106,
                variables={"fsconf_announce": "AN2"},
            )
        ),
    ),
    (
        "b2_announcements.jsonl",
        lambda: api(
            c.conference_play_cmd(
                ROOM,
                "tone_stream://%(500,0,600)",
                variables={"fsconf_announce": "AN3", "vol": "-3"},
                async_=True,
            )
        ),
    ),
    (
        "b2_announcements.jsonl",
        lambda: api(
            c.uuid_setvar_cmd("762402aa-9902-4296-a681-1753966efc41", "RECORD_STEREO", "true")
        ),
    ),
    (
        "hangup_causes.jsonl",
        lambda: api(c.uuid_kill_cmd("3f72e0f1-baf0-4981-bc23-c90a05077048", "NORMAL_CLEARING")),
    ),
    (
        "hangup_causes.jsonl",
        lambda: api(c.uuid_kill_cmd("f619be8e-381d-478d-a421-360b1b34f410", "USER_BUSY")),
    ),
    (
        "hangup_causes.jsonl",
        lambda: api(
            c.uuid_getvar_cmd("3af327b0-0a1d-4918-838a-2d63d985fe61", "other_loopback_leg_uuid")
        ),
    ),
    (
        "b2_end_room_continue.jsonl",
        lambda: api(c.uuid_exists_cmd("32abc9ec-0d85-41cf-95fd-b6d053520868")),
    ),
    (
        "b2_park_then_join.jsonl",
        lambda: api(c.uuid_break_cmd("40b5ca22-3492-4a75-8ed9-56cc0f00949d", all_=True)),
    ),
    (
        "b2_end_room_continue.jsonl",
        lambda: api(c.conference_kick_all_cmd("CF5218adc6a934491a91811e46ef75322e")),
    ),
    (
        "b2_end_room_continue.jsonl",
        lambda: api(c.conference_kick_cmd("CF64c3cbf8d8eb4ba09d44d318f3ef410b", 95)),
    ),
    (
        "b2_end_room_continue.jsonl",
        lambda: api(c.conference_list_cmd("CF5218adc6a934491a91811e46ef75322e")),
    ),
    (
        "b2_outbound_conference_flow.jsonl",
        lambda: api(
            c.conference_getvar_cmd("CFf0d5d6661dda4d13b3a490fea9d1f8aa", "conference_sid")
        ),
    ),
    (
        "b2_outbound_conference_flow.jsonl",
        lambda: api(c.conference_json_list_cmd("CFf0d5d6661dda4d13b3a490fea9d1f8aa")),
    ),
    (
        "b2_hold_native.jsonl",
        lambda: api(c.conference_hold_cmd("CFb5f5450c04fe4c9b9e4fcdd10404b89f", 109)),
    ),
    (
        "b2_hold_native.jsonl",
        lambda: api(
            c.conference_hold_cmd("CFb5f5450c04fe4c9b9e4fcdd10404b89f", 109, "local_stream://moh")
        ),
    ),
    (
        "b2_hold_native.jsonl",
        lambda: api(
            c.conference_hold_cmd(
                "CFb5f5450c04fe4c9b9e4fcdd10404b89f", 109, "tone_stream://%(1000,500,440);loops=-1"
            )
        ),
    ),
    (
        "b2_hold_native.jsonl",
        lambda: api(c.conference_unhold_cmd("CFb5f5450c04fe4c9b9e4fcdd10404b89f", 109)),
    ),
    (
        "b2_hold_native.jsonl",
        lambda: api(c.conference_mute_cmd("CFb5f5450c04fe4c9b9e4fcdd10404b89f", 109)),
    ),
    (
        "b2_hold_native.jsonl",
        lambda: api(c.conference_unmute_cmd("CFb5f5450c04fe4c9b9e4fcdd10404b89f", 109)),
    ),
    (
        "b2_relate_coach.jsonl",
        lambda: api(
            c.conference_relate_cmd("CF9e93dc1fe18a468986f223f64e489159", 102, [100], "nospeak")
        ),
    ),
    (
        "b2_relate_coach.jsonl",
        lambda: api(
            c.conference_relate_cmd("CF9e93dc1fe18a468986f223f64e489159", 102, [100], "clear")
        ),
    ),
    (
        "b2_record_lifecycle.jsonl",
        lambda: api(
            c.conference_record_cmd(
                "CF17c969e9b47d43fab75c22924cbaf8cb",
                "/srv/fswitch/rec/CF17c969e9b47d43fab75c22924cbaf8cb.wav",
            )
        ),
    ),
    (
        "b2_record_lifecycle.jsonl",
        lambda: api(
            c.conference_recording_cmd(
                "CF17c969e9b47d43fab75c22924cbaf8cb",
                "stop",
                "/srv/fswitch/rec/CF17c969e9b47d43fab75c22924cbaf8cb.wav",
            )
        ),
    ),
]


@pytest.mark.parametrize(("name", "build"), GOLDENS)
def test_builder_output_is_a_captured_command(name, build):
    data = build()
    assert isinstance(data, bytes)
    assert captured(name, data), data


def test_mute_quiet_is_the_captured_batch_1_form():
    # "api conference room-mhk mute 7 quiet" (mute_hold_kick): same words.
    text = c.conference_mute_cmd(ROOM, 7)
    assert text == f"conference {ROOM} mute 7 quiet"
    assert captured("mute_hold_kick.jsonl", b"api conference room-mhk mute 7 quiet\n\n")


def test_every_wire_builder_decodes_back_as_one_command():
    frames = [
        c.auth("ClueCon"),
        c.bgapi("status", UUID),
        c.sendmsg_execute("playback", "a b {c} ${d}\tx", event_uuid=EVENT_UUID, uuid=UUID),
        c.sendmsg_execute("answer", event_uuid=EVENT_UUID),
        c.sendmsg_hangup("USER_BUSY", uuid=UUID),
        c.linger(5),
        c.exit_(),
    ]
    decoder = CommandDecoder()
    for frame in frames:
        for index in range(len(frame)):
            decoder.feed(frame[index : index + 1])
    decoded = list(decoder)
    assert len(decoded) == len(frames)
    assert decoded[2].body == "a b {c} ${d}\tx"
    assert decoded[2].line == f"sendmsg {UUID}"


# --- exact outputs --------------------------------------------------------------------


def test_sendmsg_execute_exact_bytes():
    assert c.sendmsg_execute("playback", "/tmp/a b.wav", event_uuid=EVENT_UUID, loops=2) == (
        b"sendmsg\ncall-command: execute\nexecute-app-name: playback\n"
        b"Event-UUID: bd621efe-3c58-4318-8653-c9d020f758e0\nevent-lock: true\nloops: 2\n"
        b"content-type: text/plain\ncontent-length: 12\n\n/tmp/a b.wav"
    )
    assert c.sendmsg_execute("answer", event_uuid=EVENT_UUID, uuid=UUID) == (
        b"sendmsg 4b7d33ca-df87-40c7-a08c-99870c5beb41\ncall-command: execute\n"
        b"execute-app-name: answer\nEvent-UUID: bd621efe-3c58-4318-8653-c9d020f758e0\n"
        b"event-lock: true\n\n"
    )


def test_sendmsg_body_length_counts_bytes():
    arg = c.speak_arg("flite", "kal", "Grüße 😀")
    data = c.sendmsg_execute("speak", arg, event_uuid=EVENT_UUID)
    head, body = data.split(b"\n\n", 1)
    assert body == "flite|kal|Grüße 😀".encode()
    assert head.endswith(b"content-length: %d" % len(body))


def test_small_builders_exact():
    assert c.linger() == b"linger\n\n"
    assert c.linger(30) == b"linger 30\n\n"
    assert c.connect() == b"connect\n\n"
    assert c.noevents() == b"noevents\n\n"
    assert c.nixevent(["HEARTBEAT", "CHANNEL_DESTROY"]) == b"nixevent HEARTBEAT CHANNEL_DESTROY\n\n"
    assert c.speak_arg("flite", "kal", "Hello world") == "flite|kal|Hello world"
    assert any(
        raw.endswith(b"execute-app-arg: flite|kal|Hello world\n\n")
        for raw in captures.out_commands("b2_tts_and_http_play.jsonl")["call-1"]
    )
    assert c.set_arg("hangup_after_conference", "false") == "hangup_after_conference=false"
    assert c.multiset_arg({"a": "1", "b_c": "x+y"}) == "^^|a=1|b_c=x+y"
    assert c.conference_app_arg(ROOM) == f"{ROOM}@fsconf"
    assert (
        c.conference_app_arg(ROOM, "fsconf", ["mute", "endconf", "mute"])
        == f"{ROOM}@fsconf+flags{{endconf|mute}}"
    )
    assert c.jitterbuffer_arg("off") == "stop"
    assert c.jitterbuffer_arg("medium") == "40"
    assert c.conference_count_cmd(ROOM) == f"conference {ROOM} count"
    assert c.conference_list_cmd() == "conference list"
    assert c.conference_json_list_cmd() == "conference json_list"
    assert c.conference_deaf_cmd(ROOM, 7) == f"conference {ROOM} deaf 7"
    assert c.conference_undeaf_cmd(ROOM, 7) == f"conference {ROOM} undeaf 7"
    assert c.conference_hup_cmd(ROOM, 7) == f"conference {ROOM} hup 7"
    assert c.conference_lock_cmd(ROOM) == f"conference {ROOM} lock"
    assert c.conference_unlock_cmd(ROOM) == f"conference {ROOM} unlock"
    assert c.conference_set_max_members_cmd(ROOM, 3) == f"conference {ROOM} set max_members 3"
    assert c.conference_relate_cmd(ROOM, 102, [100, 101], "nohear") == (
        f"conference {ROOM} relate 102 100,101 nohear"
    )
    assert c.uuid_break_cmd(UUID) == f"uuid_break {UUID}"
    assert c.uuid_transfer_cmd(UUID, "park_ext") == f"uuid_transfer {UUID} park_ext XML default"
    assert c.show_channels_cmd() == "show channels as json"
    assert c.originate_cmd(
        origination_uuid=UUID, endpoint="sofia/gateway/gw1/+15551230001", timeout=30
    ) == (
        f"originate {{origination_uuid={UUID},originate_timeout=30}}"
        "sofia/gateway/gw1/+15551230001 &park"
    )


def test_url_is_reencoded_so_no_metacharacter_survives():
    url = "http://example.com/a b{c}|d'e\"f$g^h\\i?q=1,2#frag"
    assert c.quote_url(url) == (
        "http://example.com/a%20b%7Bc%7D%7Cd%27e%22f%24g%5Eh%5Ci?q=1%2C2#frag"
    )
    assert c.quote_url(c.quote_url(url)) == c.quote_url(url)
    assert c.http_media("https://h.example/x y.wav") == "http_cache://https://h.example/x%20y.wav"
    played = api(c.conference_play_cmd(ROOM, c.http_media(url)))
    assert (
        played
        == (
            f"api conference {ROOM} play http_cache://http://example.com/"
            "a%20b%7Bc%7D%7Cd%27e%22f%24g%5Eh%5Ci?q=1%2C2#frag\n\n"
        ).encode()
    )


def test_tts_text_is_sanitised_to_the_same_words():
    text = "Pay $5.00 now {x} | y \\ z\r\n${evil}"
    assert c.sanitize_tts_text(text) == "Pay 5.00 dollars now x y z dollars evil"
    assert c.conference_say_cmd(ROOM, c.sanitize_tts_text(text)) == (
        f"conference {ROOM} say Pay 5.00 dollars now x y z dollars evil"
    )
    assert c.sanitize_tts_text("\x00\x07") == " "
    assert c.sanitize_tts_text("x" * 5000) == "x" * 4000


# --- injection corpus -------------------------------------------------------------------

NASTY_TEXT = [
    "",
    "a\rb",
    "a\nb",
    "a\x00b",
    "a b",
    "a@b",
    "a+b",
    "{a}",
    "a|b",
    "'a'",
    '"a"',
    "${a}",
    "conference x kick all",
    "x\n\nexit",
    "a,b",
]
BAD_ROOMS = [
    *NASTY_TEXT,
    "room-basic",
    "CF" + "0" * 31,
    "CF" + "0" * 33,
    "CF" + "A" * 32,
    "cf" + "0" * 32,
    "CF" + "0" * 32 + " kick all",
    "CF" + "0" * 32 + "\n",
    "CF" + "0" * 32 + "@fsconf",
    7,
    b"CF" + b"0" * 32,
]
BAD_UUIDS = [
    *NASTY_TEXT,
    UUID + " ",
    UUID + "\r\n",
    " " + UUID,
    UUID + " all",
    UUID[:-1],
    UUID.replace("-", ""),
    UUID.encode(),
]
BAD_MEMBER_IDS = [0, -1, True, False, "7", 7.0, 2**31, "all"]
BAD_VAR_NAMES = [*NASTY_TEXT, "1abc", "a=b", "a-b", "a.b", "x" * 65]
# "@" and "+" are legitimate in values (+15551230001, sip:a@b) and media.
LEGITIMATE = {"", "a@b", "a+b"}
BAD_VAR_VALUES = [v for v in NASTY_TEXT if v not in LEGITIMATE] + ["a^b", "a;b", "a\\b", "x" * 513]
BAD_MEDIA = [
    *(v for v in NASTY_TEXT if v not in LEGITIMATE | {"a,b"}),
    "",
    "/tmp/a b.wav",
    "${base_dir}/x.wav",
    "{a=b}/tmp/x.wav",
    "a\\b.wav",
    "x" * 2049,
]
BAD_TTS = ["", "a\nb", "a\rb", "a\x00", "a${b}", "a{b}", "a|b", "a\\b", "\x07"]
BAD_URLS = [
    "http://h/a\nb",
    "http://h/a\rb",
    "http://h/\x00",
    "file:///etc/passwd",
    "ftp://h/x",
    "javascript:alert(1)",
    "/relative",
    "http:///nohost",
]


def _raises(build, *args, **kwargs):
    with pytest.raises(EslArgumentError) as info:
        build(*args, **kwargs)
    return info.value


ROOM_BUILDERS = [
    lambda room: c.conference_list_cmd(room),
    lambda room: c.conference_json_list_cmd(room),
    lambda room: c.conference_count_cmd(room),
    lambda room: c.conference_mute_cmd(room, 7),
    lambda room: c.conference_kick_all_cmd(room),
    lambda room: c.conference_play_cmd(room, "/tmp/a.wav"),
    lambda room: c.conference_say_cmd(room, "hi"),
    lambda room: c.conference_lock_cmd(room),
    lambda room: c.conference_getvar_cmd(room, "conference_sid"),
    lambda room: c.conference_app_arg(room),
]


@pytest.mark.parametrize("room", BAD_ROOMS, ids=repr)
def test_rooms_other_than_our_sids_are_refused(room):
    for build in ROOM_BUILDERS:
        _raises(build, room)


UUID_BUILDERS = [
    c.uuid_kill_cmd,
    c.uuid_break_cmd,
    c.uuid_exists_cmd,
    lambda u: c.uuid_getvar_cmd(u, "x"),
    lambda u: c.uuid_setvar_cmd(u, "x", "1"),
    lambda u: c.uuid_transfer_cmd(u, "x"),
    lambda u: c.myevents(u),
    lambda u: c.sendmsg_execute("answer", event_uuid=u),
    lambda u: c.sendmsg_execute("answer", event_uuid=EVENT_UUID, uuid=u),
    lambda u: c.sendmsg_hangup(uuid=u),
    lambda u: c.originate_cmd(origination_uuid=u, endpoint="loopback/x/default"),
]


@pytest.mark.parametrize("uuid", BAD_UUIDS, ids=repr)
def test_bad_uuids_are_refused(uuid):
    for build in UUID_BUILDERS:
        _raises(build, uuid)


MEMBER_BUILDERS = [
    c.conference_mute_cmd,
    c.conference_unmute_cmd,
    c.conference_deaf_cmd,
    c.conference_undeaf_cmd,
    c.conference_hold_cmd,
    c.conference_unhold_cmd,
    c.conference_kick_cmd,
    c.conference_hup_cmd,
    lambda room, m: c.conference_saymember_cmd(room, m, "hi"),
    lambda room, m: c.conference_stop_cmd(room, m),
    lambda room, m: c.conference_play_cmd(room, "/tmp/a.wav", member_id=m),
    lambda room, m: c.conference_relate_cmd(room, m, [1], "nospeak"),
    lambda room, m: c.conference_relate_cmd(room, 1, [m], "nospeak"),
]


@pytest.mark.parametrize("member_id", BAD_MEMBER_IDS, ids=repr)
def test_bad_member_ids_are_refused(member_id):
    for build in MEMBER_BUILDERS:
        error = _raises(build, ROOM, member_id)
        assert error.value == member_id


def test_none_means_no_member_only_where_documented():
    assert c.conference_stop_cmd(ROOM, None) == f"conference {ROOM} stop all"
    assert c.conference_list_cmd(None) == "conference list"
    assert c.myevents(None) == b"myevents\n\n"
    for build in (c.conference_kick_cmd, c.conference_mute_cmd, c.conference_hold_cmd):
        _raises(build, ROOM, None)
    _raises(c.conference_count_cmd, None)
    _raises(c.conference_say_cmd, None, "x")
    _raises(c.uuid_kill_cmd, None)
    _raises(c.sendmsg_execute, "answer", event_uuid=None)


def test_legitimate_characters_are_kept():
    assert c.set_arg("origination_caller_id_number", "+15551230001") == (
        "origination_caller_id_number=+15551230001"
    )
    assert c.set_arg("sip_to", "sip:alice@example.com") == "sip_to=sip:alice@example.com"
    assert c.check_media("/srv/rec/a,b@c+d.wav") == "/srv/rec/a,b@c+d.wav"


def test_member_id_bounds():
    assert c.conference_kick_cmd(ROOM, 1).endswith(" kick 1")
    assert c.conference_kick_cmd(ROOM, 2**31 - 1).endswith(f" kick {2**31 - 1}")


@pytest.mark.parametrize("name", BAD_VAR_NAMES, ids=repr)
def test_bad_variable_names_are_refused(name):
    _raises(c.set_arg, name, "1")
    _raises(c.multiset_arg, {name: "1"})
    _raises(c.uuid_setvar_cmd, UUID, name, "1")
    _raises(c.uuid_getvar_cmd, UUID, name)
    _raises(c.conference_getvar_cmd, ROOM, name)
    _raises(c.originate_cmd, origination_uuid=UUID, endpoint="loopback/x/d", variables={name: "1"})
    _raises(c.conference_play_cmd, ROOM, "/tmp/a.wav", variables={name: "1"})


@pytest.mark.parametrize("value", BAD_VAR_VALUES, ids=repr)
def test_bad_variable_values_are_refused(value):
    _raises(c.set_arg, "x", value)
    _raises(c.multiset_arg, {"x": value})
    _raises(c.uuid_setvar_cmd, UUID, "x", value)
    _raises(c.originate_cmd, origination_uuid=UUID, endpoint="loopback/x/d", variables={"x": value})
    _raises(c.conference_play_cmd, ROOM, "/tmp/a.wav", variables={"x": value})
    _raises(c.filter_add, "Unique-ID", value)


@pytest.mark.parametrize("media", BAD_MEDIA, ids=repr)
def test_bad_media_is_refused(media):
    _raises(c.conference_play_cmd, ROOM, media)
    _raises(c.conference_hold_cmd, ROOM, 7, media)
    _raises(c.conference_record_cmd, ROOM, media)
    _raises(c.conference_recording_cmd, ROOM, "stop", media)


@pytest.mark.parametrize("text", BAD_TTS, ids=repr)
def test_unsanitised_tts_text_is_refused(text):
    _raises(c.conference_say_cmd, ROOM, text)
    _raises(c.conference_saymember_cmd, ROOM, 7, text)
    _raises(c.speak_arg, "flite", "kal", text)
    cleaned = c.sanitize_tts_text(text)
    for char in "\r\n\x00${}|\\":
        assert char not in cleaned
    c.conference_say_cmd(ROOM, cleaned)


@pytest.mark.parametrize("url", BAD_URLS, ids=repr)
def test_bad_urls_are_refused(url):
    _raises(c.quote_url, url)
    _raises(c.http_media, url)


@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\x00b", "status\n\nexit"], ids=repr)
def test_line_breaks_never_reach_the_wire(text):
    _raises(c.api, text)
    _raises(c.bgapi, text, UUID)
    _raises(c.sendmsg_execute, "playback", text, event_uuid=EVENT_UUID)
    _raises(c.sendmsg_execute, text, event_uuid=EVENT_UUID)


def test_other_arguments_are_refused():
    _raises(c.bgapi, "status", "")
    _raises(c.bgapi, "status", "a b")
    _raises(c.bgapi, "status", "x" * 65)
    _raises(c.event, [])
    _raises(c.event, ["ALL"], "xml")
    _raises(c.event, ["CHANNEL_CREATE exit"])
    _raises(c.event, ["ALL"], "plain", ["conference::maintenance BACKGROUND_JOB"])
    _raises(c.event, ["all"])
    _raises(c.nixevent, ["BOGUS BOGUS"])
    _raises(c.filter_add, "Unique ID", "x")
    _raises(c.linger, 0)
    _raises(c.linger, -1)
    _raises(c.linger, True)
    _raises(c.linger, "5")
    _raises(c.sendmsg_execute, "answer", event_uuid=EVENT_UUID, loops=-2)
    _raises(c.sendmsg_execute, "answer", event_uuid=EVENT_UUID, loops=True)
    _raises(c.sendmsg_hangup, "normal clearing")
    _raises(c.uuid_kill_cmd, UUID, "NORMAL_CLEARING all")
    _raises(c.conference_app_arg, ROOM, "fsconf", ["mute|endconf"])
    _raises(c.conference_app_arg, ROOM, "fsconf", ["kick"])
    _raises(c.conference_app_arg, ROOM, "fs conf")
    _raises(c.conference_app_arg, ROOM, "fsconf+flags{moderator}")
    _raises(c.conference_play_cmd, ROOM, "/tmp/a.wav", member_id=7, async_=True)
    _raises(c.conference_recording_cmd, ROOM, "bogus", "/tmp/a.wav")
    _raises(c.conference_relate_cmd, ROOM, 7, [], "nospeak")
    _raises(c.conference_relate_cmd, ROOM, 7, [8], "sendvideo")
    _raises(c.conference_set_max_members_cmd, ROOM, 0)
    _raises(c.conference_set_max_members_cmd, ROOM, True)
    _raises(c.jitterbuffer_arg, "huge")
    _raises(c.speak_arg, "flite|x", "kal", "hi")
    _raises(c.uuid_transfer_cmd, UUID, "park ext")


def test_originate_refusals():
    base = {"origination_uuid": UUID, "endpoint": "loopback/x/default"}
    _raises(c.originate_cmd, origination_uuid=UUID, endpoint="loopback/x y/default")
    _raises(c.originate_cmd, origination_uuid=UUID, endpoint="sofia/gw/${x}")
    _raises(c.originate_cmd, origination_uuid=UUID, endpoint="{a=b}sofia/gw/x")
    _raises(c.originate_cmd, **base, app="park now")
    _raises(c.originate_cmd, **base, app="conference", app_arg="tone_stream://%(1,0,2)")
    _raises(c.originate_cmd, **base, app="conference", app_arg="a b")
    _raises(c.originate_cmd, **base, timeout=0)
    _raises(c.originate_cmd, **base, timeout=601)
    _raises(c.originate_cmd, **base, timeout=True)
    # Our correlation id cannot be replaced through the variables.
    _raises(c.originate_cmd, **base, variables={"origination_uuid": EVENT_UUID})
    _raises(c.originate_cmd, **base, timeout=5, variables={"originate_timeout": "600"})


def test_password_never_appears_in_the_error():
    for password in ("", "a b", "sec\nret", "sec\rret", "sec\x00ret"):
        error = _raises(c.auth, password)
        assert error.value == "***"
        if password:
            assert password not in str(error)


def test_originate_refuses_a_second_leg_hidden_in_the_endpoint():
    with pytest.raises(EslArgumentError, match=":_:"):
        c.originate_cmd(
            origination_uuid="4b7d33ca-df87-40c7-a08c-99870c5beb41",
            endpoint="loopback/1/default:_:sofia/gateway/premium/+19005550100",
        )


def test_quote_url_refuses_an_unparsable_url_with_its_own_error():
    with pytest.raises(EslArgumentError):
        c.quote_url("http://[::1")
