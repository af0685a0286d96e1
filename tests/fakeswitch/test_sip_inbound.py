"""SIP-style inbound calls and the vanilla catch-all dialplan, over real ESL sockets.

Captures: sipp_inbound (a sipp call to 3000 -> conference test@default, a second one
refused by the lock, the first one's BYE), b2_dtmf_in_conference (RFC 2833 digits on a sipp
call session), b2_jitterbuffer (jitterbuffer before/after the media is up) and errors
(``originate loopback/nosuchext/default``: the catch-all of the vanilla ``default`` context).
"""

from __future__ import annotations

import time
import uuid as uuid_module

import pytest

from fsconf.esl import commands
from fsconf.esl.frames import Event
from fsconf.testing import Conference, FakeSwitch
from tests.fakeswitch.client import Client, SessionListener
from tests.fakeswitch.test_outbound import execute

SIPP = "sofia/internal/sipp@127.0.0.1:5070"
# errors.jsonl was recorded on a Wednesday at 14:12 local time: tod_example's office hours
CAPTURE_TIME = time.strptime("2026-11-25 14:12:09", "%Y-%m-%d %H:%M:%S")
SATURDAY_NIGHT = time.strptime("2026-11-28 03:00:00", "%Y-%m-%d %H:%M:%S")


def _key(event: Event) -> str:
    if event.name == "CUSTOM":
        return str(event.action)
    if event.name in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"):
        return f"{event.name} {event.get('Application')}"
    return event.name


def _of(events: list[Event], uuid: str) -> list[Event]:
    noise = {"CHANNEL_OUTGOING", "CHANNEL_ORIGINATE"}  # originate bookkeeping
    return [e for e in events if e.get("Unique-ID") == uuid and e.name not in noise]


def _sipp_call(fs: FakeSwitch, port: int = 5070) -> str:
    return fs.place_call(caller_id_number="sipp", caller_id_name="sipp", destination="3000",
                         endpoint="sofia", sip_from=f"sipp@127.0.0.1:{port}")


def test_sip_call_is_one_sofia_channel_with_early_media_before_answer(
    fs: FakeSwitch, esl: Client
) -> None:
    fs.dialplan["3000"] = Conference("test@default")  # dialplan_fswitch_tests.xml
    uuid = _sipp_call(fs)
    events = esl.drain_until("add-member", **{"Unique-ID": uuid})
    assert [_key(e) for e in _of(events, uuid)] == [
        "CHANNEL_CREATE", "CHANNEL_EXECUTE answer", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE_COMPLETE answer", "CHANNEL_EXECUTE conference", "add-member",
    ]
    # one channel, no loopback peer
    assert [e.get("Unique-ID") for e in events if e.name == "CHANNEL_CREATE"] == [uuid]
    create, answer = events[0], next(e for e in events if e.name == "CHANNEL_ANSWER")
    assert create.get("Channel-Name") == SIPP
    assert create.get("Call-Direction") == "inbound"
    assert create.get("Channel-Presence-ID") == "sipp@127.0.0.1"
    assert create.get("Caller-Username") == "sipp"
    assert create.get("Caller-Source") == "mod_sofia"
    assert create.get("variable_sip_from_uri") == "sipp@127.0.0.1:5070"
    assert create.get("variable_endpoint_disposition") == "DELAYED NEGOTIATION"
    assert create.get("Caller-Callee-ID-Name") is None  # not in a sofia channel's block
    assert answer.get("Channel-Read-Codec-Name") == "PCMU"
    assert answer.get("variable_rtp_use_codec_name") == "PCMU"
    row = esl.api("conference test list").splitlines()[0].split(";")
    assert row[1:5] == [SIPP, uuid, "sipp", "sipp"]


def test_far_end_bye_leaves_the_room_and_says_recv_bye(fs: FakeSwitch, esl: Client) -> None:
    fs.dialplan["3000"] = Conference("test@default")
    uuid = _sipp_call(fs)
    esl.drain_until("add-member", **{"Unique-ID": uuid})
    fs.hangup(uuid)  # sipp's BYE
    drained = esl.drain_until("CHANNEL_DESTROY", **{"Unique-ID": uuid})
    assert "conference-destroy" in [_key(e) for e in drained]  # the room's last member left
    events = _of(drained, uuid)
    assert [_key(e) for e in events if e.name != "CUSTOM" or e.action == "del-member"] == [
        "CHANNEL_HANGUP", "del-member", "CHANNEL_EXECUTE_COMPLETE conference",
        "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY",
    ]
    leave = next(e for e in events if e.action == "del-member")
    assert leave.get("Hangup-Cause") == "NORMAL_CLEARING"
    complete = next(e for e in events if e.name == "CHANNEL_HANGUP_COMPLETE")
    assert complete.get("variable_sip_hangup_disposition") == "recv_bye"


def test_locked_room_refuses_a_sip_call_whose_dialplan_then_ends(
    fs: FakeSwitch, esl: Client
) -> None:
    """Inbound calls obey the lock (sipp_inbound <S2>); the dialplan is over, so the switch
    hangs the call up itself: NORMAL_CLEARING, send_bye."""
    fs.dialplan["3000"] = Conference("test@default")
    first = _sipp_call(fs)
    esl.event("add-member", **{"Unique-ID": first})
    assert esl.api("conference test lock") == "+OK test locked\n"
    second = _sipp_call(fs, port=5072)
    events = _of(esl.drain_until("CHANNEL_DESTROY", **{"Unique-ID": second}), second)
    assert [_key(e) for e in events] == [
        "CHANNEL_CREATE", "CHANNEL_EXECUTE answer", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE_COMPLETE answer", "CHANNEL_EXECUTE conference",
        "CHANNEL_EXECUTE_COMPLETE conference", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_DESTROY",
    ]
    assert events[-3].get("Hangup-Cause") == "NORMAL_CLEARING"
    assert events[-2].get("variable_sip_hangup_disposition") == "send_bye"
    assert events[0].get("Channel-Name") == "sofia/internal/sipp@127.0.0.1:5072"
    assert esl.api("conference test list count") == "1"


def _sip_session(fs: FakeSwitch, listener: SessionListener) -> tuple[str, Client]:
    uuid = fs.place_call(listener.address, caller_id_number="dtmfcaller", caller_id_name="DTMF",
                         destination="fsconf_sock_8097", endpoint="sofia",
                         sip_from="dtmfcaller@127.0.0.1:5084", codec="PCMA")
    call = listener.accept()
    reply = call.command(commands.connect())
    assert reply.headers["Unique-ID"] == uuid
    assert reply.headers["Channel-Name"] == "sofia/internal/dtmfcaller@127.0.0.1:5084"
    assert call.command(commands.myevents()).reply_text == "+OK Events Enabled"
    assert call.command(commands.linger()).reply_text == "+OK will linger"
    return uuid, call


def test_sip_session_answer_codec_and_rtp_dtmf(fs: FakeSwitch, listener: SessionListener) -> None:
    uuid, call = _sip_session(fs, listener)
    answer = execute(call, "answer")
    events = call.drain_until("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": answer})
    assert [_key(e) for e in events if e.name != "CHANNEL_PARK"] == [
        "CHANNEL_EXECUTE answer", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE_COMPLETE answer",
    ]
    assert call.api(f"uuid_getvar {uuid} rtp_use_codec_name") == "PCMA"
    fs.receive_dtmf(uuid, "1#")  # RFC 2833 from sipp (b2_dtmf_in_conference)
    digits = [call.event("DTMF"), call.event("DTMF")]
    assert [(d.get("DTMF-Digit"), d.get("DTMF-Source"), d.get("DTMF-Duration")) for d in digits] \
        == [("1", "RTP", "2240"), ("#", "RTP", "2240")]
    assert fs.channels[uuid].name == "sofia/internal/dtmfcaller@127.0.0.1:5084"


def test_jitterbuffer_is_a_noop_until_the_sip_media_is_up(
    fs: FakeSwitch, listener: SessionListener
) -> None:
    """b2_jitterbuffer call-2: `set jitterbuffer_msec=40`, `jitterbuffer 60` before answer
    (no RTP yet) -> still 40; call-1: once answered `jitterbuffer bogus` stores the junk."""
    uuid, call = _sip_session(fs, listener)
    execute(call, "set", "jitterbuffer_msec=40")
    early = execute(call, "jitterbuffer", "60")
    done = call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": early})
    assert done.get("Application-Response") == "_none_"
    assert call.api(f"uuid_getvar {uuid} jitterbuffer_msec") == "40"
    execute(call, "answer")
    late = execute(call, "jitterbuffer", "bogus")
    call.event("CHANNEL_EXECUTE_COMPLETE", **{"Application-UUID": late})
    assert call.api(f"uuid_getvar {uuid} jitterbuffer_msec") == "bogus"


CATCH_ALL_B_LEG = [
    ("CHANNEL_CREATE", None, None),
    ("CHANNEL_EXECUTE set", "open=true", None),
    ("CHANNEL_EXECUTE_COMPLETE set", "open=true", "_none_"),
    *[
        step
        for data in (
            "CRIT WARNING WARNING WARNING WARNING WARNING WARNING WARNING WARNING WARNING ",
            "CRIT Open /srv/fswitch/conf/vars.xml and change the default_password.",
            "CRIT Once changed type 'reloadxml' at the console.",
            "CRIT WARNING WARNING WARNING WARNING WARNING WARNING WARNING WARNING WARNING ",
        )
        for step in (("CHANNEL_EXECUTE log", data, None),
                     ("CHANNEL_EXECUTE_COMPLETE log", data, "_none_"))
    ],
    ("CHANNEL_EXECUTE sleep", "10000", None),
    ("CHANNEL_EXECUTE_COMPLETE sleep", "10000", "_none_"),
    ("CHANNEL_EXECUTE acknowledge_call", None, None),
    ("CHANNEL_EXECUTE_COMPLETE acknowledge_call", None, "_none_"),
    ("CHANNEL_EXECUTE ring_ready", None, None),
    ("CHANNEL_PROGRESS", None, None),
    ("CHANNEL_EXECUTE_COMPLETE ring_ready", None, "_none_"),
    ("CHANNEL_PROGRESS_MEDIA", None, None),
    ("CHANNEL_EXECUTE playback", "local_stream://moh", None),
    ("CHANNEL_EXECUTE_COMPLETE playback", "local_stream://moh", "FILE NOT FOUND"),
    ("CHANNEL_HANGUP", None, None),
    ("CHANNEL_HANGUP_COMPLETE", None, None),
    ("CHANNEL_DESTROY", None, None),
]


def _steps(events: list[Event]) -> list[tuple[str, str | None, str | None]]:
    return [(_key(e), e.get("Application-Data"), e.get("Application-Response"))
            for e in events]


def test_unknown_extension_runs_the_vanilla_catch_all(fs: FakeSwitch, esl: Client) -> None:
    """errors.jsonl: `originate loopback/nosuchext/default &park` answers -ERR NORMAL_CLEARING
    only after the catch-all ran on the B-leg and both legs hung up."""
    fs.wall_clock = lambda: CAPTURE_TIME
    a_leg = str(uuid_module.uuid4())
    reply = esl.api(f"originate {{origination_uuid={a_leg}}}loopback/nosuchext/default &park")
    assert reply == "-ERR NORMAL_CLEARING\n"
    events = esl.drain_until("CHANNEL_DESTROY", **{"Unique-ID": a_leg})
    b_leg = next(e.get("Unique-ID") for e in events
                 if e.name == "CHANNEL_CREATE" and e.get("Channel-Name") == "loopback/nosuchext-b")
    assert b_leg is not None
    assert [_key(e) for e in _of(events, a_leg)] == [
        "CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY",
    ]
    assert _steps(_of(events, b_leg)) == CATCH_ALL_B_LEG
    causes = {e.get("Hangup-Cause") for e in events if e.name == "CHANNEL_HANGUP"}
    assert causes == {"NORMAL_CLEARING"}
    assert fs.channels == {}


def test_catch_all_follows_the_clock_and_the_default_password(
    fs: FakeSwitch, esl: Client
) -> None:
    """Outside tod_example's office hours there is no `set open=true`; with a changed
    default_password no warning and no 10 s sleep: only the acknowledge_call extension."""
    fs.wall_clock = lambda: SATURDAY_NIGHT
    fs.global_vars["default_password"] = "changed"
    b_leg = fs.place_call(caller_id_number="+15550001111", caller_id_name="X",
                          destination="nosuchext")  # a loopback pair, as by default
    events = _of(esl.drain_until("CHANNEL_DESTROY", **{"Unique-ID": b_leg}), b_leg)
    assert [step[0] for step in _steps(events)] == [
        "CHANNEL_CREATE", "CHANNEL_EXECUTE acknowledge_call",
        "CHANNEL_EXECUTE_COMPLETE acknowledge_call", "CHANNEL_EXECUTE ring_ready",
        "CHANNEL_PROGRESS", "CHANNEL_EXECUTE_COMPLETE ring_ready", "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_EXECUTE playback", "CHANNEL_EXECUTE_COMPLETE playback", "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY",
    ]
    assert events[0].get("Channel-Name") == "loopback/nosuchext-b"


def test_place_call_checks_its_sip_arguments(fs: FakeSwitch) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        fs.place_call(destination="silent", endpoint="pstn")
    with pytest.raises(ValueError, match="user@host:port"):
        fs.place_call(destination="silent", endpoint="sofia", sip_from="sipp")
    with pytest.raises(ValueError, match="codec"):
        fs.place_call(destination="silent", endpoint="sofia", codec="G729")
    assert fs.channels == {}
