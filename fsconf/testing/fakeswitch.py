"""FakeSwitch: a FreeSWITCH stand-in that speaks real ESL, inbound and outbound.

Theory of operation
-------------------
One :class:`FakeSwitch` listens on a loopback port for inbound ESL clients
and opens outbound ("call session") connections to a client's listener, like
``socket host:port async full``. Its model (channels, rooms, members) lives in
plain objects changed only from greenlets, never across a blocking call, so
a change and the events it fires are atomic under gevent.

Every connection has a writer greenlet fed by a queue: the model never blocks
on a socket, and the bytes of one connection keep their order. While a
command of a connection runs, the events it causes are held back for that
connection and flushed right after its reply, as FreeSWITCH's replies come
first in the captures.

Every channel runs applications in its own greenlet. ``sendmsg`` with
``event-lock: true`` queues behind the running application; without it the
message runs at once, nested (B12). ``uuid_break`` interrupts the newest
interruptible application (playback, sleep, speak); ``uuid_break all`` also
discards the queue.

A placed call (``place_call``) is a loopback pair, like the captures' originated
calls, or with ``endpoint="sofia"`` one inbound SIP channel, like sipp's calls. An
extension missing from ``dialplan`` runs the vanilla catch-all (:mod:`dialplan`).

Events are built from the captured header templates (:mod:`eventsets`).
``commands`` records every command received on every connection.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
import uuid as uuid_module
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate

import gevent
from gevent.event import Event as GEvent
from gevent.queue import Queue

from fsconf.errors import EslProtocolError
from fsconf.esl.codec import CommandDecoder, encode_api_response, encode_command_reply
from fsconf.esl.frames import ClientCommand
from fsconf.testing import conference as conf
from fsconf.testing import eventsets
from fsconf.testing.dialplan import Silent, Socket, Talk, VanillaCatchAll, apps_of, office_hours
from fsconf.testing.eventsets import Blocks, Items

log = logging.getLogger(__name__)

VERSION = eventsets._DATA["api"].get("version", "FreeSWITCH Version 1.11.3-dev~64bit ( 64bit)\n")
CONFERENCE_HELP = eventsets._DATA["api"].get("conference", "")
GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"

EVENT_NAMES = frozenset(
    {
        "CUSTOM", "CHANNEL_CREATE", "CHANNEL_DESTROY", "CHANNEL_STATE", "CHANNEL_CALLSTATE",
        "CHANNEL_ANSWER", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "CHANNEL_BRIDGE",
        "CHANNEL_UNBRIDGE", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_OUTGOING",
        "CHANNEL_PARK", "CHANNEL_UNPARK", "CHANNEL_APPLICATION", "CHANNEL_ORIGINATE",
        "CHANNEL_UUID", "CHANNEL_DATA", "API", "BACKGROUND_JOB", "HEARTBEAT", "DTMF",
        "PLAYBACK_START", "PLAYBACK_STOP", "RECORD_START", "RECORD_STOP", "CODEC",
        "CALL_UPDATE", "PRESENCE_IN", "RE_SCHEDULE", "SOCKET_DATA", "MODULE_LOAD",
        "MODULE_UNLOAD", "RELOADXML", "PRIVATE_COMMAND", "MEDIA_BUG_START", "MEDIA_BUG_STOP",
        "ALL",
    }
)

_UUID_RE = re.compile(r"^[0-9a-fA-F-]{36}$")
_TONE_RE = re.compile(r"%\(([\d,]+)\)")
_ORIGINATE_RE = re.compile(r"^(?:\{(?P<vars>[^}]*)\})?(?P<endpoint>\S+)\s+(?P<target>.+)$")


def _now_us() -> int:
    return int(time.time() * 1_000_000)


@dataclass(frozen=True)
class RecordedCommand:
    """A command as the switch received it, with the connection's name and time."""

    connection: str
    command: ClientCommand
    t: float

    @property
    def line(self) -> str:
        return self.command.line

    @property
    def verb(self) -> str:
        return self.command.verb


# RTP payload types of the codecs a SIP-style call may offer (the captures: sipp offered
# PCMU in sipp_inbound, PCMA in b2_jitterbuffer / b2_dtmf_in_conference)
SIP_CODECS: dict[str, str] = {"PCMU": "0", "PCMA": "8"}
SIP_CODEC_STRING = "OPUS,G722,PCMU,PCMA,H264,VP8"  # the internal profile's codec-prefs
_SIP_FROM_RE = re.compile(r"^(?P<user>[^@\s]+)@(?P<host>[^:\s]+):(?P<port>\d+)$")


@dataclass(frozen=True)
class SipPeer:
    """The far end of a SIP-style call: its From/Contact ``user@host:port`` and the codec
    of its SDP offer (one payload type plus telephone-event, as sipp sends)."""

    user: str
    host: str
    port: int
    codec: str

    @classmethod
    def parse(cls, sip_from: str, codec: str) -> SipPeer:
        match = _SIP_FROM_RE.match(sip_from)
        if match is None:
            raise ValueError(f"sip_from must be user@host:port, not {sip_from!r}")
        if codec not in SIP_CODECS:
            raise ValueError(f"codec must be one of {sorted(SIP_CODECS)}, not {codec!r}")
        return cls(match["user"], match["host"], int(match["port"]), codec)

    @property
    def channel_name(self) -> str:
        return f"sofia/internal/{self.user}@{self.host}:{self.port}"


@dataclass
class SwitchEvent:
    name: str
    subclass: str | None
    items: Items
    body: str | None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in self.items:
            self.headers.setdefault(key, value)


@dataclass
class Message:
    app: str
    arg: str
    event_uuid: str
    lock: bool
    held: bool = False
    """sendmsg with event-lock: later messages queue behind it (B12)."""


class AppBroken(Exception):
    """Internal: the application was interrupted by uuid_break or hangup."""


# --- channels --------------------------------------------------------------------


class Channel:
    """One call leg: caller profile, variables, application runner."""

    def __init__(
        self,
        switch: FakeSwitch,
        *,
        uuid: str,
        name: str,
        direction: str,
        caller: tuple[str, str],
        callee: tuple[str, str],
        destination: str,
        variables: dict[str, str] | None = None,
        sip: SipPeer | None = None,
    ) -> None:
        self.switch = switch
        self.sip = sip
        """Set for a SIP-style (``sofia/internal/...``) channel, None for a loopback leg."""
        self.uuid = uuid
        self.name = name
        self.direction = direction
        self.caller = caller
        self.orig_caller = caller
        self.callee = callee
        self.destination = destination
        self.created_us = _now_us()
        self.answered_us = 0
        self.progress_media_us = 0
        self.hangup_us = 0
        self.answered = GEvent()
        self.early_media = False  # CHANNEL_PROGRESS_MEDIA fired (pre-answered)
        self.ringing = False  # CHANNEL_PROGRESS fired (ring_ready)
        self.hungup = False
        self.hangup_cause: str | None = None
        self.completed = False
        self.destroyed = False
        self.variables: dict[str, str] = {
            "direction": direction,
            "uuid": uuid,
            "session_id": str(switch.next_session_id()),
            "channel_name": name,
        }
        self.variables.update(variables or {})
        self.other: Channel | None = None
        self.connection: Connection | None = None
        self.member: conf.Member | None = None
        self.recordings: set[str] = set()  # uuid_record paths (no audio is written)
        self.queue: Queue[Message | None] = Queue()
        self.running = 0
        self.parked = 0
        self.nested = 0
        self.held = 0
        self.idle = GEvent()
        self.idle.set()
        self.breakables: list[GEvent] = []
        self.pending_hangup: str | None = None
        self.socket_parked = False
        self.socket_released = False
        self.ended_by_room = False
        self.playback_error = False
        self.hangup_when_done = False
        """An originated leg (``originate ... &app``) hangs up when its app returns."""
        self.runner = gevent.spawn(self._run)

    # --- event blocks -------------------------------------------------------------

    def profile_values(self, prefix: str) -> dict[str, str]:
        values = {
            f"{prefix}-Direction": self.direction,
            f"{prefix}-Logical-Direction": self.direction,
            f"{prefix}-Caller-ID-Name": self.caller[0],
            f"{prefix}-Caller-ID-Number": self.caller[1],
            f"{prefix}-Orig-Caller-ID-Name": self.orig_caller[0],
            f"{prefix}-Orig-Caller-ID-Number": self.orig_caller[1],
            f"{prefix}-Callee-ID-Name": self.callee[0],
            f"{prefix}-Callee-ID-Number": self.callee[1],
            f"{prefix}-ANI": self.orig_caller[1],
            f"{prefix}-Destination-Number": self.destination,
            f"{prefix}-Unique-ID": self.uuid,
            f"{prefix}-Channel-Name": self.name,
            f"{prefix}-Profile-Created-Time": str(self.created_us),
            f"{prefix}-Channel-Created-Time": str(self.created_us),
            f"{prefix}-Channel-Answered-Time": str(self.answered_us),
            f"{prefix}-Channel-Hangup-Time": str(self.hangup_us),
        }
        return values

    def block_values(self) -> dict[str, str]:
        if self.hungup:
            state, number, call_state = "CS_HANGUP", "10", "HANGUP"
        else:
            state, number = "CS_EXECUTE", "4"
            call_state = "ACTIVE" if self.answered.is_set() else "RINGING"
        values = {
            "Channel-State": state,
            "Channel-Call-State": call_state,
            "Channel-State-Number": number,
            "Channel-Name": self.name,
            "Unique-ID": self.uuid,
            "Call-Direction": self.direction,
            "Presence-Call-Direction": self.direction,
            "Channel-HIT-Dialplan": "true" if self.direction == "inbound" else "false",
            "Channel-Call-UUID": self.uuid,
            "Answer-State": "hangup" if self.hungup else (
                "answered" if self.answered.is_set() else "ringing"
            ),
        }
        values.update(self.profile_values("Caller"))
        if self.sip is not None:
            values.update(self._sip_block_values(self.sip))
        return values

    def _sip_block_values(self, sip: SipPeer) -> dict[str, str]:
        """The headers a sofia channel's block has and a loopback leg's lacks."""
        return {
            "Channel-Presence-ID": f"{sip.user}@{sip.host}",
            "Caller-Username": sip.user,
            "Caller-Dialplan": "XML",
            "Caller-Network-Addr": sip.host,
            "Caller-Source": "mod_sofia",
            "Caller-Channel-Progress-Media-Time": str(self.progress_media_us),
            **{f"Channel-{way}-Codec-{k}": v for way in ("Read", "Write")
               for k, v in (("Name", sip.codec), ("Rate", "8000"), ("Bit-Rate", "64000"))},
        }

    def channel_block(self) -> Items:
        template = eventsets.CHANNEL_BLOCK if self.sip is None else eventsets.SOFIA_CHANNEL_BLOCK
        return eventsets.channel_block(self.block_values(), self.hangup_cause, template)

    def variable_items(self) -> Items:
        return [(f"variable_{k}", v) for k, v in self.variables.items()]

    def fire(self, key: str, extra: dict[str, str] | None = None, body: str | None = None) -> None:
        values = dict(extra or {})
        self.switch.fire(
            key,
            None,
            Blocks(values=values, channel=self.channel_block(), variables=self.variable_items()),
            body,
        )

    def conference_caller_id(self) -> tuple[str, str]:
        return self.caller

    def getvar(self, name: str) -> str | None:
        if name in self.variables:
            return self.variables[name]
        if name == "other_loopback_leg_uuid" and self.other:
            return self.other.uuid
        return None

    # --- life cycle ---------------------------------------------------------------

    def answer(self) -> None:
        if self.answered.is_set() or self.hungup:
            return
        if self.sip is not None and not self.early_media:
            # mod_sofia answers an INVITE by setting up media first: CHANNEL_PROGRESS_MEDIA
            # right before CHANNEL_ANSWER (sipp_inbound, b2_jitterbuffer, b2_dtmf_in_conference)
            self.pre_answer()
        self.answered_us = _now_us()
        if self.direction == "outbound":
            # surprise 1: an originated leg reports the callee id once answered
            self.caller, self.callee = self.callee, self.orig_caller
        self.answered.set()
        self.variables.setdefault("endpoint_disposition", "ANSWER")
        self.fire("CHANNEL_ANSWER")
        if self.sip is not None:
            self.variables["endpoint_disposition"] = "ANSWER"  # EARLY MEDIA on the event
        if self.other is not None:
            self.other.answer()

    def pre_answer(self) -> None:
        """Early media (switch_channel_pre_answer): CHANNEL_PROGRESS_MEDIA, the loopback
        peer's first (loopback pre-answers its other leg before its own event fires)."""
        if self.answered.is_set() or self.early_media or self.hungup:
            return
        self.early_media = True
        if self.other is not None and not self.other.answered.is_set():
            self.other.early_media = True
            self.other.fire("CHANNEL_PROGRESS_MEDIA")
        if self.sip is not None:
            self.variables.update(_sip_media_variables(self.sip))
            self.progress_media_us = _now_us()
        self.fire("CHANNEL_PROGRESS_MEDIA")

    def ring_ready(self) -> None:
        """``ring_ready`` (switch_channel_ring_ready): CHANNEL_PROGRESS, the loopback peer's
        first, as for early media (errors.jsonl: A-leg then B-leg)."""
        if self.answered.is_set() or self.early_media or self.ringing or self.hungup:
            return
        self.ringing = True
        if self.other is not None and not self.other.answered.is_set() and not self.other.ringing:
            self.other.ringing = True
            self.other.fire("CHANNEL_PROGRESS")
        self.fire("CHANNEL_PROGRESS")

    def mark_hungup(self, cause: str) -> bool:
        """Take the channel down (CHANNEL_HANGUP); False when it already was."""
        if self.hungup:
            return False
        self.hungup = True
        self.hangup_cause = cause
        self.hangup_us = _now_us()
        self.variables["hangup_cause"] = cause
        if self.sip is not None:
            # FakeSwitch.hangup (the far end's BYE) sets recv_bye first
            self.variables.setdefault("sip_hangup_disposition", "send_bye")
        self.fire("CHANNEL_HANGUP", {"Hangup-Cause": cause})
        if self.parked:
            self.queue.put(None)  # wake the park loop
        return True

    def hangup(self, cause: str = "NORMAL_CLEARING", peer: bool = False,
               unpark_first: bool = False) -> None:
        if self.hungup:
            return
        current = self.variables.get("current_application")
        if peer and unpark_first and self.running and current == "playback" and self.breakables:
            # the peer was hung up by its room ending (moderated O1b): this leg hangs up
            # first, then its playback fails
            self.playback_error = True
        elif peer and self.running and current == "playback" and self.breakables:
            # the far loopback leg went away: the playback fails first (PLAYBACK ERROR),
            # then this leg hangs up (basic_two_party's talk B-legs)
            self.pending_hangup = cause
            self.playback_error = True
            self.breakables[-1].set()
            return
        if peer and self.parked and current == "park":
            # a parked loopback leg notices its peer is gone on its next media read: the park
            # ends, the dialplan is over, it hangs up NORMAL_CLEARING (hangup_causes O3b:
            # peer killed with USER_BUSY, this leg still NORMAL_CLEARING)
            self.pending_hangup = "NORMAL_CLEARING"
            self.queue.put(None)
            return
        if not self.mark_hungup(cause):
            return
        member = self.member
        if member is not None:
            member.room.hungup(member)  # leaves on the next frame (with a burst: holder last)
        for breakable in self.breakables:
            breakable.set()
        if not self.running:
            self.complete_hangup()

    def complete_hangup(self) -> None:
        if self.completed:
            return
        self.completed = True
        cause = self.hangup_cause or "NORMAL_CLEARING"
        self.fire("CHANNEL_HANGUP_COMPLETE", {"Hangup-Cause": cause})
        self.queue.put(None)
        connection = self.connection
        if connection is not None and not connection.closed:
            connection.channel_gone()
        else:
            self.destroy()
        if self.other is not None:
            self.other.hangup(cause, peer=True, unpark_first=self.ended_by_room)

    def destroy(self) -> None:
        if self.destroyed:
            return
        self.destroyed = True
        self.fire("CHANNEL_DESTROY", {"Hangup-Cause": self.hangup_cause or "NORMAL_CLEARING"})
        self.switch.channels.pop(self.uuid, None)

    # --- applications -------------------------------------------------------------

    def submit(self, message: Message) -> None:
        if self.running and not message.lock and not self.held:
            self.nested += 1
            self.idle.clear()
            gevent.spawn(self._nested, message)  # B12: nested inside the running app
        else:
            self.queue.put(message)

    def _nested(self, message: Message) -> None:
        try:
            self.execute(message)
        finally:
            self.nested -= 1
            if not self.nested:
                self.idle.set()

    def break_(self, discard: bool) -> None:
        if discard:
            while not self.queue.empty():
                self.queue.get_nowait()
        if self.breakables:
            self.breakables[-1].set()

    def _run(self) -> None:
        while True:
            message = self.queue.get()
            if message is None or self.completed:
                return
            self.execute(message)

    def execute(self, message: Message) -> None:
        if self.hungup:
            return
        app = APPS.get(message.app)
        self.running += 1
        self.held += message.held
        try:
            extra = {"Application": message.app, "Application-UUID": message.event_uuid}
            if message.arg:
                extra["Application-Data"] = message.arg
            self.variables["current_application"] = message.app
            if message.arg:
                self.variables["current_application_data"] = message.arg
            if message.app in MEDIA_APPS:
                # b2_max_members_full call-4: an app without SAF_SUPPORT_NOMEDIA on an
                # unanswered channel pre-answers it before CHANNEL_EXECUTE
                self.pre_answer()
            self.fire("CHANNEL_EXECUTE", extra)
            # B13: every app starts with no response; one that sets none reports what the
            # last app nested inside it set (a conference that ran a playback: FILE PLAYED)
            self.variables.pop("current_application_response", None)
            response = app(self, message.arg) if app is not None else "_none_"
            if response != "_none_":
                self.variables["current_application_response"] = response
            response = self.variables.get("current_application_response") or "_none_"
            extra["Application-Response"] = response
            self.fire("CHANNEL_EXECUTE_COMPLETE", extra)
        finally:
            self.running -= 1
            self.held -= message.held
        if self.pending_hangup is not None and not self.running:
            cause, self.pending_hangup = self.pending_hangup, None
            self.hangup(cause)
            return
        if self.hungup and not self.running:
            self.complete_hangup()
        elif self.hangup_when_done and not self.running and self.queue.empty():
            self.hangup("NORMAL_CLEARING")

    def release_socket(self) -> None:
        """The controlling socket went away (mod_event_socket's listener_run
        ending): CF_CONTROLLED is cleared, which ends the socket app's park once
        the app running inside it returns (a member stays in its room until it
        leaves); then the dialplan is over and the channel hangs up
        NORMAL_CLEARING. (``socket_resume`` is not modelled.)"""
        self.socket_released = True
        if self.parked:
            self.queue.put(None)  # wake the park loop; it ends after the current app
        elif not self.running:
            gevent.spawn(self.hangup, "NORMAL_CLEARING")

    def park_loop(self) -> None:
        """Run queued messages until the channel hangs up (park, socket)."""
        self.parked += 1
        try:
            while not self.hungup:
                message = self.queue.get()
                if message is None:
                    break
                self.execute(message)
            self.idle.wait()  # apps run nested inside the park end first
        finally:
            self.parked -= 1

    def wait_interruptible(self, seconds: float) -> bool:
        """Wait like a playback; True when interrupted (uuid_break/hangup)."""
        breakable = GEvent()
        self.breakables.append(breakable)
        try:
            return breakable.wait(timeout=seconds)
        finally:
            self.breakables.remove(breakable)

    def receive_dtmf(self, digits: str, source: str = "APP") -> None:
        duration = DTMF_DURATIONS.get(source, "2000")
        for digit in digits:
            self.fire("DTMF", {"DTMF-Digit": digit, "DTMF-Duration": duration,
                               "DTMF-Source": source})
            member = self.member
            if (
                digit == "*"
                and member is not None
                and self.variables.get("conference_controls") == "fsconf-hangup-on-star"
            ):
                member.room.remove(member, "star")  # B2.3: leaves, the channel stays up
            elif member is not None:
                conf.caller_control(member, digit)


# DTMF-Duration as captured (b2_dtmf_in_conference): sipp's RFC 2833 digits 2240 samples,
# uuid_recv_dtmf (APP) and loopback-relayed (UNKNOWN) digits the default 2000
DTMF_DURATIONS: dict[str, str] = {"RTP": "2240"}


def _sip_media_variables(sip: SipPeer) -> dict[str, str]:
    """What mod_sofia sets once the offer's codec is negotiated (sipp_inbound ANSWER)."""
    return {
        "rtp_use_codec_name": sip.codec, "rtp_use_codec_rate": "8000",
        "rtp_use_codec_ptime": "20", "rtp_use_codec_channels": "1",
        "rtp_last_audio_codec_string": f"{sip.codec}@8000h@20i@1c",
        "read_codec": sip.codec, "original_read_codec": sip.codec, "read_rate": "8000",
        "original_read_rate": "8000", "write_codec": sip.codec, "write_rate": "8000",
        "dtmf_type": "rfc2833", "rtp_use_pt": SIP_CODECS[sip.codec],
        "rtp_2833_send_payload": "101", "rtp_2833_recv_payload": "101",
        "endpoint_disposition": "EARLY MEDIA",
    }


def _sip_variables(peer: SipPeer, uuid: str, display: str, destination: str) -> dict[str, str]:
    """A sofia channel's variables at CHANNEL_CREATE (sipp_inbound <S1>; mod_sofia's
    internal profile on 127.0.0.1:5060, the peer authorised by the loopback ACL)."""
    sdp = (f"v=0\no=user1 53655765 2353687637 IN IP4 {peer.host}\ns=-\n"
           f"c=IN IP4 {peer.host}\nt=0 0\nm=audio 6000 RTP/AVP {SIP_CODECS[peer.codec]} 101\n")
    uri = f"{peer.user}@{peer.host}:{peer.port}"
    to_uri = f"{destination}@127.0.0.1:5060"
    return {
        "call_uuid": uuid,
        "sip_from_user": peer.user, "sip_from_port": str(peer.port), "sip_from_uri": uri,
        "sip_from_host": peer.host,
        "sip_call_id": f"{uuid[:8]}@{peer.host}", "sip_local_network_addr": "127.0.0.1",
        "sip_network_ip": peer.host, "sip_network_port": str(peer.port),
        "sip_received_ip": peer.host, "sip_received_port": str(peer.port),
        "sip_via_protocol": "udp", "sip_authorized": "true",
        "sip_acl_authed_by": "loopback.auto", "sip_from_user_stripped": peer.user,
        "sofia_profile_name": "internal", "sofia_profile_url": "sip:mod_sofia@127.0.0.1:5060",
        "recovery_profile_name": "internal",
        "sip_from_display": display, "sip_full_from": f"{display} <sip:{uri}>",
        "sip_to_display": destination, "sip_full_to": f"{destination} <sip:{to_uri}>",
        "sip_req_user": destination, "sip_req_port": "5060", "sip_req_uri": to_uri,
        "sip_req_host": "127.0.0.1", "sip_to_user": destination, "sip_to_port": "5060",
        "sip_to_uri": to_uri, "sip_to_host": "127.0.0.1",
        "sip_contact_user": peer.user, "sip_contact_port": str(peer.port),
        "sip_contact_uri": uri, "sip_contact_host": peer.host,
        "rtp_use_codec_string": SIP_CODEC_STRING, "sip_via_host": peer.host,
        "sip_via_port": str(peer.port), "max_forwards": "70",
        "presence_id": f"{peer.user}@{peer.host}", "switch_r_sdp": sdp,
        "ep_codec_string": f"CORE_PCM_MODULE.{peer.codec}@8000h@20i@64000b",
        "endpoint_disposition": "DELAYED NEGOTIATION",
    }


def _app_answer(channel: Channel, arg: str) -> str:
    channel.answer()
    return "_none_"


def _app_pre_answer(channel: Channel, arg: str) -> str:
    # Early media (switch_channel_pre_answer: a 183), not an answer.
    channel.pre_answer()
    return "_none_"


def _app_set(channel: Channel, arg: str) -> str:
    name, sep, value = arg.partition("=")
    if sep:
        if value:
            channel.variables[name] = value
        else:
            channel.variables.pop(name, None)
    return "_none_"


def _app_multiset(channel: Channel, arg: str) -> str:
    parts = arg[3:].split(arg[2]) if arg.startswith("^^") and len(arg) > 2 else arg.split(" ")
    for part in parts:
        _app_set(channel, part)
    return "_none_"


def _app_unset(channel: Channel, arg: str) -> str:
    channel.variables.pop(arg, None)
    return "_none_"


def _app_playback(channel: Channel, arg: str) -> str:
    if channel.switch.is_missing(arg):
        return "FILE NOT FOUND"
    channel.wait_interruptible(channel.switch.play_seconds(arg))
    if channel.playback_error:
        channel.playback_error = False
        return "PLAYBACK ERROR"
    return "FILE PLAYED"  # B13: a break also says FILE PLAYED


def _app_speak(channel: Channel, arg: str) -> str:
    channel.wait_interruptible(channel.switch.time_scale)
    return "_none_"


def _app_sleep(channel: Channel, arg: str) -> str:
    try:
        ms = int(arg)
    except ValueError:
        ms = 0
    channel.wait_interruptible(ms / 1000 * channel.switch.time_scale)
    return "_none_"


def _app_park(channel: Channel, arg: str) -> str:
    channel.fire("CHANNEL_PARK")
    channel.park_loop()
    channel.fire("CHANNEL_UNPARK")
    return "_none_"


def _app_socket(channel: Channel, arg: str) -> str:
    """``socket host:port async full``: connect, then park while the session runs."""
    host, _, port = arg.split()[0].rpartition(":")
    channel.variables["socket_host"] = host
    channel.switch._open_session(channel, (host, int(port)))
    channel.park_loop()
    if channel.socket_parked:
        channel.fire("CHANNEL_UNPARK")
    if channel.socket_released and not channel.hungup:
        channel.pending_hangup = "NORMAL_CLEARING"  # the dialplan ends after `socket`
    return "_none_"


def _app_jitterbuffer(channel: Channel, arg: str) -> str:
    """B18: no effect without RTP; any value but stop/debug is stored, junk included.

    A SIP-style channel has no RTP before its media is up: b2_jitterbuffer call-2's
    ``jitterbuffer 60`` before ``answer`` leaves ``jitterbuffer_msec`` at 40. (A loopback
    leg keeps storing the value: tests/surprises b18 expects it; B18 says loopback is a
    no-op too, which no capture shows through ``uuid_getvar``.)"""
    if channel.sip is not None and not (channel.early_media or channel.answered.is_set()):
        return "_none_"
    word = arg.strip()
    if word and word != "stop" and not word.startswith("debug"):
        channel.variables["jitterbuffer_msec"] = word
    return "_none_"


def _app_noop(channel: Channel, arg: str) -> str:
    return "_none_"


def _app_ring_ready(channel: Channel, arg: str) -> str:
    channel.ring_ready()
    return "_none_"


def _app_hangup(channel: Channel, arg: str) -> str:
    channel.hangup(arg.strip() or "NORMAL_CLEARING")
    return "_none_"


def _app_conference(channel: Channel, arg: str) -> str:
    switch = channel.switch
    room_name, profile, flags = conf.parse_app_arg(arg)
    channel.answer()
    channel.variables["conference_name"] = room_name
    room = switch.rooms.get(room_name)
    if room is None:
        room = conf.new_room(switch, room_name, profile, channel)
    elif room.max_members and len(room.members) >= room.max_members:
        sound = room.params.get("max-members-sound")
        if sound:  # played to the refused channel only, no conference event
            channel.wait_interruptible(switch.play_seconds(sound))
        return "_none_"  # B11: refused silently, no event, channel up
    elif room.locked and (
        channel.direction == "inbound"
        or channel.variables.get("conference_enforce_security") == "true"
    ):
        return "_none_"  # surprise 2: lock only stops inbound channels
    member_id = channel.variables.get("conference_member_id")
    member = conf.Member(
        id=int(member_id) if member_id else switch.next_member_id(),  # B14
        channel=channel,
        flags=flags,
        room=room,
        left=GEvent(),
    )
    member.speak = "mute" not in flags
    member.hear = "deaf" not in flags
    channel.variables.update(
        {
            "conference_member_id": str(member.id),
            "conference_moderator": "true" if member.moderator else "false",
            "conference_ghost": "false",
            "conference_uuid": room.uuid,
        }
    )
    others = bool(room.members)
    room.members.append(member)
    channel.member = member
    if not others and not room.wait_mod:
        room.play_alone()  # before add-member (basic_two_party); none while waiting (moderated)
    if channel.variables.get("conference_silent_entry") == "true" and not channel.variables.get(
        "conference_silent_done"
    ):
        channel.variables["conference_silent_done"] = "true"  # B4: first join only
    else:
        room.fire("add-member", member)
    enter_sound = room.sound("enter", channel)
    if others and enter_sound:
        room.enqueue(enter_sound)  # B8: only play-file-done
    if room.floor is None:
        room.set_floor(member)
    room.check_auto_record()
    if not others:
        room.play_moh()
    member.left.wait()
    channel.member = None
    if member.transfer_to and not channel.hungup:
        # `conference <room> transfer`: the app ends and a new conference app starts
        channel.queue.put(Message("conference", f"{member.transfer_to}@{room.profile}",
                                  str(uuid_module.uuid4()), True))
    return "_none_"


# Apps registered without SAF_SUPPORT_NOMEDIA that the captures show pre-answering an
# unanswered channel (mod_conference registers `conference` with SAF_NONE; errors.jsonl's
# catch-all `playback` after `ring_ready`: CHANNEL_PROGRESS_MEDIA, A-leg then B-leg).
MEDIA_APPS = frozenset({"conference", "playback"})

APPS: dict[str, Callable[[Channel, str], str]] = {
    "answer": _app_answer,
    "pre_answer": _app_pre_answer,
    "set": _app_set,
    "export": _app_set,
    "multiset": _app_multiset,
    "unset": _app_unset,
    "playback": _app_playback,
    "speak": _app_speak,
    "sleep": _app_sleep,
    "park": _app_park,
    "socket": _app_socket,
    "jitterbuffer": _app_jitterbuffer,
    "log": _app_noop,  # the log line has no ESL surface
    "acknowledge_call": _app_noop,  # a 100 Trying on SIP; nothing on a loopback leg
    "ring_ready": _app_ring_ready,
    "hangup": _app_hangup,
    "conference": _app_conference,
}


# --- connections --------------------------------------------------------------------


class Connection:
    """One ESL connection, inbound (a client connected) or outbound (a call session)."""

    def __init__(self, switch: FakeSwitch, sock: socket.socket, name: str,
                 channel: Channel | None = None) -> None:
        self.switch = switch
        self.sock = sock
        self.name = name
        self.channel = channel
        self.outbound = channel is not None
        self.authed = self.outbound
        self.connected = not self.outbound
        self.format: str | None = None
        self.events: set[str] = set()
        self.subclasses: set[str] = set()
        self.filters: list[tuple[str, str]] = []
        self.myevents: str | None = None
        self.linger: int | None = None
        self.closed = False
        self.channel_ended = False
        self.held: list[bytes] | None = None
        with contextlib.suppress(OSError):  # no Nagle: replies and events are small writes
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.out: Queue[bytes | None] = Queue()
        self.greenlets = [gevent.spawn(self._write), gevent.spawn(self._read)]

    # --- output -------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.out.put(data)

    def deliver(self, event: SwitchEvent) -> None:
        if self.closed or not self.authed or not self.connected or self.format is None:
            return
        if self.myevents is not None and event.headers.get("Unique-ID") != self.myevents:
            return
        if event.name == "CUSTOM":
            wanted = "ALL" in self.events or (event.subclass or "") in self.subclasses
        else:
            wanted = "ALL" in self.events or event.name in self.events
        if not wanted:
            return
        if self.filters and not any(event.headers.get(h) == v for h, v in self.filters):
            return
        if self.format == "json":
            data = eventsets.encode_json(event.items, event.body)
        else:
            data = eventsets.encode_plain(event.items, event.body)
        if self.held is not None:
            self.held.append(data)
        else:
            self.send(data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.out.put(None)

    def _write(self) -> None:
        try:
            while True:
                data = self.out.get()
                if data is None:
                    break
                self.sock.sendall(data)
        except OSError:
            pass
        finally:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.switch.connection_closed(self)

    # --- input ----------------------------------------------------------------------

    def _read(self) -> None:
        decoder = CommandDecoder()
        try:
            if not self.outbound:
                self.send(b"Content-Type: auth/request\n\n")
            while not self.closed:
                data = self.sock.recv(65536)
                if not data:
                    break
                decoder.feed(data)
                for command in decoder:
                    self.switch.commands.append(
                        RecordedCommand(self.name, command, time.monotonic())
                    )
                    self._handle(command)
        except (OSError, EslProtocolError):
            pass
        finally:
            self.close()

    def _handle(self, command: ClientCommand) -> None:
        self.held = []
        park = self.outbound and self.connected and self.channel is not None \
            and not self.channel.socket_parked
        try:
            reply = self._dispatch(command)
            if park and self.channel is not None and not self.channel.hungup:
                # the socket app parks the channel once the session runs
                self.channel.socket_parked = True
                self.channel.fire("CHANNEL_PARK")
        finally:
            held, self.held = self.held, None
        if reply is not None:
            self.send(reply)
        for data in held:
            self.send(data)

    def _dispatch(self, command: ClientCommand) -> bytes | None:
        verb, argument = command.verb, command.argument.strip()
        if not self.authed:
            if verb == "auth" and argument == self.switch.password:
                self.authed = True
                return encode_command_reply("+OK accepted")
            self.send(encode_command_reply("-ERR invalid"))
            self.close()
            return None
        if self.outbound and not self.connected:
            if verb != "connect":
                return encode_command_reply("-ERR command not found")
            self.connected = True
            return self.switch.channel_data_reply(self.channel)
        handler = COMMANDS.get(verb)
        if handler is None:
            return encode_command_reply("-ERR command not found")
        return handler(self, argument, command)

    def channel_gone(self) -> None:
        """The controlled channel hung up: notice, then linger until ``exit``."""
        channel = self.channel
        assert channel is not None
        self.channel_ended = True
        if self.linger is not None:
            head = (
                "Content-Type: text/disconnect-notice\n"
                f"Controlled-Session-UUID: {channel.uuid}\n"
                "Content-Disposition: linger\n"
                f"Channel-Name: {channel.name}\n"
                f"Linger-Time: {self.linger}\n"
                "Content-Length: 0\n\n"
            )
            self.send(head.encode())
            return
        self.send(self._goodbye(disposition="disconnect"))
        self.close()
        channel.destroy()

    def _goodbye(self, disposition: str | None) -> bytes:
        head = "Content-Type: text/disconnect-notice\n"
        if self.channel is not None:
            head += f"Controlled-Session-UUID: {self.channel.uuid}\n"
            if disposition:
                head += f"Content-Disposition: {disposition}\n"
        payload = GOODBYE.encode()
        return (head + f"Content-Length: {len(payload)}\n\n").encode() + payload


def _parse_event_words(words: list[str]) -> tuple[set[str], set[str]]:
    names: set[str] = set()
    subclasses: set[str] = set()
    custom = False
    for word in words:
        if custom:
            subclasses.add(word)  # B1: every word after CUSTOM is a subclass
        elif word == "CUSTOM":
            custom = True
        elif word in EVENT_NAMES:
            names.add(word)
    if custom:
        names.add("CUSTOM")
    return names, subclasses


def _cmd_event(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    words = argument.split()
    fmt = "plain"
    if words and words[0] in ("plain", "json", "xml"):
        fmt = words.pop(0)
    names, subclasses = _parse_event_words(words)
    if not names:
        return encode_command_reply("-ERR no keywords supplied")
    conn.format = fmt
    conn.events |= names
    conn.subclasses |= subclasses
    return encode_command_reply(f"+OK event listener enabled {fmt}")


def _cmd_nixevent(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    names, subclasses = _parse_event_words(argument.split())
    if not names:
        return encode_command_reply("-ERR no keywords supplied")
    conn.subclasses -= subclasses
    if subclasses:
        names.discard("CUSTOM")
    conn.events -= names
    return encode_command_reply("+OK events nixed")


def _cmd_noevents(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    conn.format = None
    conn.events.clear()
    conn.subclasses.clear()
    return encode_command_reply("+OK no longer listening for events")


def _cmd_filter(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    words = argument.split(None, 2)
    if not words:
        return encode_command_reply("-ERR command not found")
    if words[0] == "delete":
        rest = argument.split(None, 2)[1:]
        if len(rest) == 2 and (rest[0], rest[1]) in conn.filters:
            conn.filters.remove((rest[0], rest[1]))
            return encode_command_reply(f"+OK filter deleted. [{rest[0]}][{rest[1]}]")
        return encode_command_reply("-ERR invalid syntax")
    if len(words) < 2:
        return encode_command_reply("-ERR invalid syntax")
    header, value = words[0], argument.split(None, 1)[1]
    conn.filters.append((header, value))
    return encode_command_reply(f"+OK filter added. [{header}]=[{value}]")


#: What ``myevents`` subscribes to: mod_event_socket sets exactly these
#: (``event_list[...] = 1`` in its myevents branch). No CUSTOM: a session
#: gets ``conference::maintenance`` only after its own ``event ... CUSTOM
#: conference::maintenance``, as every captured call session sends one.
MYEVENTS_NAMES = frozenset({
    "CHANNEL_ANSWER", "CHANNEL_APPLICATION", "CHANNEL_BRIDGE", "CHANNEL_CREATE",
    "CHANNEL_DATA", "CHANNEL_DESTROY", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_ORIGINATE", "CHANNEL_UUID",
    "CHANNEL_OUTGOING", "CHANNEL_PARK", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_STATE", "CHANNEL_UNBRIDGE", "CHANNEL_UNPARK", "DETECTED_SPEECH", "DTMF",
    "NOTALK", "TALK",
})


def _cmd_myevents(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    target = argument.split()[0] if argument else (conn.channel.uuid if conn.channel else None)
    conn.myevents = target
    if conn.format is None:
        conn.format = "plain"
    conn.events |= MYEVENTS_NAMES
    return encode_command_reply("+OK Events Enabled")


def _cmd_linger(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    conn.linger = int(argument) if argument.isdigit() else -1
    return encode_command_reply("+OK will linger")


def _cmd_nolinger(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    conn.linger = None
    return encode_command_reply("+OK will not linger")


def _cmd_log(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    return encode_command_reply(f"+OK log level {argument or 'debug'} [63]")


def _cmd_nolog(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    return encode_command_reply("+OK no longer logging")


def _cmd_api(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    if not argument:
        return encode_command_reply("-ERR command not found")
    return encode_api_response(conn.switch.api(argument))


def _cmd_bgapi(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    if not argument:
        return encode_command_reply("-ERR command not found")
    job_uuid = command.headers.get("Job-UUID") or str(uuid_module.uuid4())
    gevent.spawn(conn.switch.run_job, argument, job_uuid)
    return encode_command_reply(f"+OK Job-UUID: {job_uuid}", {"Job-UUID": job_uuid})


def _cmd_sendmsg(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    target = argument.split()[0] if argument else None
    channel = conn.switch.channels.get(target) if target else conn.channel
    if channel is None:
        return encode_command_reply(f"-ERR invalid session id [{target or ''}]")
    headers = command.headers
    call_command = headers.get("call-command", "")
    if call_command == "execute":
        arg = headers.get("execute-app-arg")
        if arg is None:
            arg = command.body or ""
        message = Message(
            app=headers.get("execute-app-name", ""),
            arg=arg,
            event_uuid=headers.get("Event-UUID") or str(uuid_module.uuid4()),
            lock=headers.get("event-lock", "").lower() == "true",
        )
        message.held = message.lock
        channel.submit(message)
    elif call_command == "hangup":
        gevent.spawn(channel.hangup, headers.get("hangup-cause", "NORMAL_CLEARING"))
    return encode_command_reply("+OK")


def _cmd_exit(conn: Connection, argument: str, command: ClientCommand) -> bytes | None:
    conn.send(encode_command_reply("+OK bye"))
    conn.send(conn._goodbye(disposition="disconnect" if conn.channel is not None else None))
    conn.close()
    channel = conn.channel
    if channel is not None:
        if channel.hungup:
            channel.destroy()
        else:
            gevent.spawn(channel.hangup, "NORMAL_CLEARING")
    return None


def _cmd_connect(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    return encode_command_reply("-ERR command not found")


def _cmd_auth(conn: Connection, argument: str, command: ClientCommand) -> bytes:
    return encode_command_reply("-ERR command not found")


CommandHandler = Callable[[Connection, str, ClientCommand], bytes | None]
COMMANDS: dict[str, CommandHandler] = {
    "event": _cmd_event,
    "nixevent": _cmd_nixevent,
    "noevents": _cmd_noevents,
    "filter": _cmd_filter,
    "myevents": _cmd_myevents,
    "linger": _cmd_linger,
    "nolinger": _cmd_nolinger,
    "log": _cmd_log,
    "nolog": _cmd_nolog,
    "api": _cmd_api,
    "bgapi": _cmd_bgapi,
    "sendmsg": _cmd_sendmsg,
    "exit": _cmd_exit,
    "connect": _cmd_connect,
    "auth": _cmd_auth,
}


# --- the switch ------------------------------------------------------------------------


class FakeSwitch:
    """A FreeSWITCH stand-in on a loopback port. See the module docstring."""

    def __init__(
        self,
        *,
        password: str = "ClueCon",  # noqa: S107 - FreeSWITCH's default, loopback only
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_interval: float | None = None,
        time_scale: float = 1.0,
        hostname: str = "vm",
        domain: str = "127.0.0.1",
        core_uuid: str | None = None,
        profiles: str = "shipped",
    ) -> None:
        if profiles not in ("shipped", "captured"):
            raise ValueError(f"profiles must be 'shipped' or 'captured', got {profiles!r}")
        self.profiles = conf.SHIPPED_PROFILES if profiles == "shipped" else conf.CAPTURED_PROFILES
        """Conference profiles by name: fsconf's shipped configuration (the default), or the
        captured switch's, whose fsconf profile had a TTS engine (B4)."""
        self.conference_conf_xml = (
            conf.shipped_conference_conf_xml()
            if profiles == "shipped"
            else conf.CONFERENCE_CONF_XML
        )
        self.password = password
        self.host = host
        self.requested_port = port
        self.heartbeat_interval = heartbeat_interval
        self.time_scale = time_scale
        """Media and sleep durations are multiplied by this (0.05 in tests)."""
        self.hostname = hostname
        self.domain = domain
        self.core_uuid = core_uuid or str(uuid_module.uuid4())
        self.conference_help = CONFERENCE_HELP
        self.dialplan: dict[str, object] = {"talk": Talk(), "silent": Silent()}
        self.missing_files: set[str] = set()
        self.modules: set[str] = set(LOADED_MODULES)
        """Loaded modules (``module_exists``, ``load``/``unload``, ``show modules``)."""
        self.global_vars: dict[str, str] = {"default_password": "1234"}
        """``global_getvar`` values; set ``default_password`` to drive doctor's check."""
        self.wall_clock: Callable[[], time.struct_time] = time.localtime
        """The switch's local time; the vanilla catch-all's ``tod_example`` reads it."""
        self.log_level = 7
        self.channels: dict[str, Channel] = {}
        self.rooms: dict[str, conf.Room] = {}
        self.connections: list[Connection] = []
        self.commands: list[RecordedCommand] = []
        self.garbage_member_number = 1342309683
        self._sequence = 0
        self._member_id = 0
        self._session_id = 0
        self._inbound_count = 0
        self._call_count = 0
        self._plays: list[tuple[conf.Room, conf.Member | None, GEvent, str]] = []
        self._listener: socket.socket | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self.started = time.monotonic()

    # --- server -----------------------------------------------------------------------

    def start(self) -> FakeSwitch:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.requested_port))
        listener.listen(64)
        self._listener = listener
        self._greenlets.append(gevent.spawn(self._accept, listener))
        if self.heartbeat_interval:
            self._greenlets.append(gevent.spawn(self._heartbeats, self.heartbeat_interval))
        return self

    def stop(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.drop_connections()
        for channel in list(self.channels.values()):
            channel.runner.kill(block=False)

    def __enter__(self) -> FakeSwitch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "FakeSwitch not started"
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def conferences(self) -> dict[str, conf.Room]:
        return self.rooms

    @property
    def port(self) -> int:
        return self.address[1]

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            self._inbound_count += 1
            self.connections.append(Connection(self, sock, f"inbound-{self._inbound_count}"))

    def _heartbeats(self, interval: float) -> None:
        while True:
            gevent.sleep(interval)
            self.heartbeat()

    def connection_closed(self, connection: Connection) -> None:
        if connection in self.connections:
            self.connections.remove(connection)
        channel = connection.channel
        if channel is not None and connection.outbound:
            if self.channels.get(channel.uuid) is not channel:
                return  # gone with a restart()
            if channel.hungup:
                channel.destroy()
            else:
                channel.release_socket()

    # --- control API --------------------------------------------------------------------

    def drop_connections(self, kind: str | None = None) -> None:
        """Close every ESL connection abruptly (no notice); ``kind="inbound"``
        or ``"outbound"`` closes only those."""
        for connection in list(self.connections):
            if kind is not None and connection.outbound != (kind == "outbound"):
                continue
            connection.closed = True
            connection.out.put(None)
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)

    def restart(self) -> None:
        """Like a FreeSWITCH restart: connections dropped, state gone, new Core-UUID."""
        self.drop_connections()
        for channel in list(self.channels.values()):
            channel.runner.kill(block=False)
        self.channels.clear()
        self.rooms.clear()
        self.core_uuid = str(uuid_module.uuid4())
        self.started = time.monotonic()

    def write_garbage(self, data: bytes = b"this is not ESL\n\n", connection: str | None = None
                      ) -> None:
        """Send bytes that are not ESL on every (or the named) connection."""
        for conn in list(self.connections):
            if (connection is None and not conn.outbound) or conn.name == connection:
                conn.send(data)

    def heartbeat(self) -> None:
        uptime = time.monotonic() - self.started
        self.fire(
            "HEARTBEAT",
            None,
            Blocks(values={
                "Event-Info": "System Ready",
                "Up-Time": f"0 years, 0 days, 0 hours, 0 minutes, {int(uptime)} seconds, "
                "0 milliseconds, 0 microseconds",
                "Uptime-msec": str(int(uptime * 1000)),
                "Session-Count": str(len(self.channels)),
            }),
        )

    def channel(self, uuid: str) -> Channel:
        return self.channels[uuid]

    def member(self, uuid: str) -> conf.Member:
        member = self.channels[uuid].member
        if member is None:
            raise KeyError(f"{uuid} is not in a conference")
        return member

    def start_talking(self, uuid: str) -> None:
        member = self.member(uuid)
        member.talking = True
        member.last_talking = time.monotonic()
        member.room.fire("start-talking", member)
        member.room.talking_started(member)

    def stop_talking(self, uuid: str) -> None:
        member = self.member(uuid)
        member.talking = False
        member.room.fire("stop-talking", member)

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        """The far end hangs up (a SIP-style call: its BYE)."""
        channel = self.channels[uuid]
        if channel.sip is not None and not channel.hungup:
            channel.variables["sip_hangup_disposition"] = "recv_bye"
        channel.hangup(cause)

    def receive_dtmf(self, uuid: str, digits: str) -> None:
        """The channel RECEIVES digits (uuid_recv_dtmf semantics: hangup-on-star).

        On a SIP-style call they arrive as RFC 2833 events: ``DTMF-Source: RTP``."""
        channel = self.channels[uuid]
        channel.receive_dtmf(digits, "RTP" if channel.sip is not None else "APP")

    def place_call(
        self,
        outbound: tuple[str, int] | None = None,
        *,
        caller_id_number: str = "+15550000001",
        caller_id_name: str = "Caller",
        destination: str = "fsconf",
        variables: dict[str, str] | None = None,
        uuid: str | None = None,
        endpoint: str = "loopback",
        sip_from: str | None = None,
        codec: str = "PCMU",
    ) -> str:
        """A call arrives; its channel runs ``socket <outbound> async full``.

        Without ``outbound`` the channel runs ``dialplan[destination]`` (the vanilla
        catch-all when there is no such entry). With ``endpoint="loopback"`` (the
        default), like the captures' originated calls, this is a loopback pair; the
        returned uuid is the B-leg (inbound, caller id as given), the channel a session
        controls. With ``endpoint="sofia"`` it is ONE inbound SIP channel, as a call from
        sipp arrives: ``sofia/internal/<sip_from>`` (``user@host:port``, default
        ``<caller_id_number>@127.0.0.1:5070``) offering ``codec`` (PCMU or PCMA); its
        ``answer`` brings CHANNEL_PROGRESS_MEDIA before CHANNEL_ANSWER, digits it
        receives are RTP DTMF, ``hangup()`` is its BYE, and it hangs up when its
        dialplan ends. ``uuid`` is the new channel's uuid (the A-leg's for a loopback pair).
        """
        if endpoint == "sofia":
            peer = SipPeer.parse(sip_from or f"{caller_id_number}@127.0.0.1:5070", codec)
            return self._sip_call(peer, outbound, caller_id_number=caller_id_number,
                                  caller_id_name=caller_id_name, destination=destination,
                                  variables=variables or {}, uuid=uuid)
        if endpoint != "loopback":
            raise ValueError(f"endpoint must be 'loopback' or 'sofia', not {endpoint!r}")
        a_leg, b_leg = self._loopback_pair(
            destination,
            {
                "origination_uuid": uuid or str(uuid_module.uuid4()),
                "origination_caller_id_number": caller_id_number,
                "origination_caller_id_name": caller_id_name,
                "origination_callee_id_number": caller_id_number,
                "origination_callee_id_name": caller_id_name,
                **(variables or {}),
            },
        )
        target = Socket(outbound) if outbound is not None else self.dialplan_for(destination)
        b_leg.hangup_when_done = isinstance(target, VanillaCatchAll)
        self._run_dialplan(b_leg, apps_of(target))
        a_leg.submit(Message("park", "", str(uuid_module.uuid4()), True))
        return b_leg.uuid

    def _sip_call(self, peer: SipPeer, outbound: tuple[str, int] | None, *,
                  caller_id_number: str, caller_id_name: str, destination: str,
                  variables: dict[str, str], uuid: str | None) -> str:
        """One inbound sofia channel (sipp_inbound <S1>): CHANNEL_CREATE, then its dialplan."""
        channel_uuid = uuid or str(uuid_module.uuid4())
        channel = Channel(
            self, uuid=channel_uuid, name=peer.channel_name, direction="inbound",
            caller=(caller_id_name, caller_id_number), callee=("", ""),
            destination=destination,
            variables={**_sip_variables(peer, channel_uuid, caller_id_name, destination),
                       **variables},
            sip=peer,
        )
        self.channels[channel.uuid] = channel
        channel.fire("CHANNEL_CREATE")
        # the dialplan ending hangs a SIP call up NORMAL_CLEARING (sipp_inbound <S2>: its
        # `conference` refused by the lock returns, then CHANNEL_HANGUP)
        channel.hangup_when_done = True
        target = Socket(outbound) if outbound is not None else self.dialplan_for(destination)
        self._run_dialplan(channel, apps_of(target))
        return channel.uuid

    def dialplan_for(self, extension: str) -> object:
        """``dialplan[extension]``, else the vanilla catch-all at the switch's local time."""
        target = self.dialplan.get(extension)
        if target is not None:
            return target
        return VanillaCatchAll(
            office_hours=office_hours(self.wall_clock()),
            default_password=self.global_vars.get("default_password", ""),
        )

    def _run_dialplan(self, channel: Channel, apps: list[tuple[str, str]]) -> None:
        for app, arg in apps:
            channel.submit(Message(app, arg, str(uuid_module.uuid4()), True))
            if app in ("socket", "park"):
                return

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 2.0) -> None:
        """Block (cooperatively) until ``predicate()``; no sleeping loop on the caller's side."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("FakeSwitch.wait_until timed out")
            gevent.sleep(0.002)

    # --- events -----------------------------------------------------------------------

    def next_member_id(self) -> int:
        self._member_id += 1
        return self._member_id

    def next_session_id(self) -> int:
        self._session_id += 1
        return self._session_id

    def _head(self) -> dict[str, str]:
        self._sequence += 1
        now = time.time()
        return {
            "Core-UUID": self.core_uuid,
            "FreeSWITCH-Hostname": self.hostname,
            "FreeSWITCH-Switchname": self.hostname,
            "FreeSWITCH-IPv4": "127.0.0.1",
            "FreeSWITCH-IPv6": "::1",
            "Event-Date-Local": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
            "Event-Date-GMT": formatdate(now, usegmt=True),
            "Event-Date-Timestamp": str(int(now * 1_000_000)),
            "Event-Sequence": str(self._sequence),
        }

    def fire(self, key: str, subclass: str | None, blocks: Blocks, body: str | None = None) -> None:
        values = self._head()
        values.update(blocks.values)
        blocks.values = values
        items = eventsets.expand(key, blocks)
        event = SwitchEvent("CUSTOM" if subclass else key, subclass, items, body)
        for connection in list(self.connections):
            connection.deliver(event)

    def fire_custom(self, action: str, values: dict[str, str], *, channel: Channel | None,
                    confvars: Items, playvars: Items) -> None:
        blocks = Blocks(values=values, channel=channel.channel_block() if channel else None,
                        confvars=confvars, playvars=playvars)
        self.fire(action, "conference::maintenance", blocks)

    def channel_data_reply(self, channel: Channel | None) -> bytes:
        assert channel is not None
        values = self._head()
        values.update(channel.block_values())
        values.update(channel.profile_values("Channel"))
        values.update({"Event-Name": "CHANNEL_DATA", "Content-Type": "command/reply",
                       "Reply-Text": "+OK\n", "Socket-Mode": "async", "Control": "full"})
        items = eventsets.expand(
            "CHANNEL_DATA", Blocks(values=values, variables=channel.variable_items())
        )
        return eventsets.encode_items(items) + b"\n"

    # --- media -------------------------------------------------------------------------

    def is_missing(self, file: str) -> bool:
        _, bare = conf.split_vars(file)
        # B17: http:// is mod_httapi's, http_cache:// mod_http_cache's; without the module
        # the file is not found. Both read the same URLs (``missing_files`` holds 404s).
        if bare.startswith("http_cache://"):
            if "mod_http_cache" not in self.modules or bare in self.missing_files:
                return True
            bare = bare[len("http_cache://"):]
        elif bare.startswith(("http://", "https://")) and "mod_httapi" not in self.modules:
            return True
        return bare in self.missing_files or bare.startswith(
            conf.MISSING_FILE_PREFIXES + conf.UNPLAYABLE_PREFIXES
        )

    def play_seconds(self, file: str) -> float:
        if "loops=-1" in file:
            return 24 * 3600.0  # endless hold music: until stopped or broken
        match = _TONE_RE.search(file)
        length = sum(int(x) for x in match.group(1).split(",")[:2]) if match else 1000
        loops = re.search(r"loops=(\d+)", file)
        if loops:
            length *= int(loops.group(1))
        return length / 1000 * self.time_scale

    def sound_ms(self, file: str) -> str:
        """What play-file-done reports: twice the real length (B6)."""
        match = _TONE_RE.search(file)
        length = sum(int(x) for x in match.group(1).split(",")[:2]) if match else 1000
        return str(2 * length)

    def schedule_play(self, room: conf.Room, file: str, playvars: Items,
                      member: conf.Member | None) -> None:
        stop = GEvent()
        entry = (room, member, stop, file)
        self._plays.append(entry)

        def finish() -> None:
            stop.wait(timeout=self.play_seconds(file))
            if entry in self._plays:
                self._plays.remove(entry)
            if self.rooms.get(room.name) is not room:
                return
            if member is not None and member not in room.members:
                return
            room.fire_play_done(file, self.sound_ms(file), playvars, member)

        gevent.spawn(finish)

    FRAME_SECONDS = 0.02
    """One media frame (profile ``interval``): things mod_conference does on the next frame."""

    def after_frame(self, action: Callable[[], None]) -> None:
        gevent.spawn_later(self.FRAME_SECONDS, action)

    def stop_plays(self, room: conf.Room, member: conf.Member | None) -> int:
        stopped = 0
        for entry in list(self._plays):
            if entry[0] is room and entry[1] is member:
                entry[2].set()
                stopped += 1
        return stopped

    def member_left(self, member: conf.Member, reason: str) -> None:
        for entry in list(self._plays):
            if entry[1] is member:
                self._plays.remove(entry)
                entry[2].set()

    # --- api -------------------------------------------------------------------------

    def api(self, argument: str) -> str:
        name, _, rest = argument.partition(" ")
        handler = API.get(name)
        if handler is None:
            return f"-ERR {name} Command not found!\n"
        return handler(self, rest.strip())

    def run_job(self, argument: str, job_uuid: str) -> None:
        output = self.api(argument)
        name, _, rest = argument.partition(" ")
        values = {"Job-UUID": job_uuid, "Job-Command": name}
        if rest:
            values["Job-Command-Arg"] = rest
        self.fire("BACKGROUND_JOB", None, Blocks(values=values), output)

    # --- originate ---------------------------------------------------------------------

    def _loopback_pair(self, ext: str, variables: dict[str, str], originated: bool = False
                       ) -> tuple[Channel, Channel]:
        a_uuid = variables.get("origination_uuid") or str(uuid_module.uuid4())
        caller = (variables.get("origination_caller_id_name", "FreeSWITCH"),
                  variables.get("origination_caller_id_number", "0000000000"))
        callee = (variables.get("origination_callee_id_name", "Outbound Call"),
                  variables.get("origination_callee_id_number", "default"))
        a_leg = Channel(self, uuid=a_uuid, name=f"loopback/{ext}-a", direction="outbound",
                        caller=caller, callee=callee, destination=ext,
                        variables=dict(variables))
        b_leg = Channel(self, uuid=str(uuid_module.uuid4()), name=f"loopback/{ext}-b",
                        direction="inbound", caller=caller,
                        callee=callee, destination=ext,
                        variables={**variables, "other_loopback_leg_uuid": a_uuid,
                                   "loopback_leg": "B"})
        b_leg.variables["call_uuid"] = b_leg.uuid
        a_leg.other, b_leg.other = b_leg, a_leg
        self.channels[a_leg.uuid] = a_leg
        self.channels[b_leg.uuid] = b_leg
        if originated:
            a_leg.fire("CHANNEL_OUTGOING")
        a_leg.fire("CHANNEL_CREATE")
        if originated:
            a_leg.fire("CHANNEL_ORIGINATE")
        b_leg.fire("CHANNEL_CREATE")
        return a_leg, b_leg

    def _open_session(self, channel: Channel, address: tuple[str, int]) -> None:
        self._call_count += 1
        name = f"call-{self._call_count}"

        def connect() -> None:
            try:
                sock = socket.create_connection(address, timeout=5)
            except OSError:
                channel.hangup("DESTINATION_OUT_OF_ORDER")
                return
            sock.settimeout(None)
            connection = Connection(self, sock, name, channel=channel)
            channel.connection = connection
            self.connections.append(connection)

        gevent.spawn(connect)

    def originate(self, argument: str) -> str:
        match = _ORIGINATE_RE.match(argument)
        if match is None:
            return (
                "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] "
                "[<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n"
            )
        variables: dict[str, str] = {}
        for pair in (match.group("vars") or "").split(","):
            key, sep, value = pair.partition("=")
            if sep:
                variables[key] = value
        endpoint, target = match.group("endpoint"), match.group("target").strip()
        if len(target) > 1 and target[0] == target[-1] == "'":
            # originate splits on blanks outside '...' and strips the quotes
            # (switch_separate_string): '&socket(h:p async full)' is one word
            target = target[1:-1]
        tech, _, rest = endpoint.partition("/")
        if tech == "error":
            return f"-ERR {rest or 'NORMAL_CLEARING'}\n"
        if tech != "loopback":
            return "-ERR CHAN_NOT_IMPLEMENTED\n"
        ext = rest.split("/")[0]
        plan = self.dialplan_for(ext)
        app, app_arg = "park", ""
        if target.startswith("&"):
            app, _, app_arg = target[1:].partition("(")
            app_arg = app_arg.split(")", 1)[0]  # surprise 19: cut at the first ')'
        a_leg, b_leg = self._loopback_pair(ext, variables, originated=True)
        a_leg.hangup_when_done = True
        # an unknown extension runs the catch-all, whose end hangs the B-leg up, and
        # mod_loopback the A-leg with it: `-ERR NORMAL_CLEARING` (errors.jsonl)
        b_leg.hangup_when_done = isinstance(plan, VanillaCatchAll)
        self._run_dialplan(b_leg, apps_of(plan))
        timeout = float(variables.get("originate_timeout", "60"))
        with contextlib.suppress(TimeoutError):
            # a B-leg that hangs up before answering (e.g. `hangup USER_BUSY`) ends the
            # wait at once: mod_loopback hangs the A-leg up with the same cause, and
            # originate answers `-ERR <that cause>`
            self.wait_until(lambda: a_leg.answered.is_set() or a_leg.hungup, timeout=timeout)
        if a_leg.hungup or not a_leg.answered.is_set():
            cause = a_leg.hangup_cause if a_leg.hungup else "NO_ANSWER"
            a_leg.hangup("NO_ANSWER")
            return f"-ERR {cause or 'NO_ANSWER'}\n"
        a_leg.submit(Message(app, app_arg, str(uuid_module.uuid4()), True))
        return f"+OK {a_leg.uuid}\n"


# --- api commands --------------------------------------------------------------------------


def _with_channel(
    usage: str, run: Callable[[FakeSwitch, Channel, list[str]], str]
) -> Callable[[FakeSwitch, str], str]:
    def handler(switch: FakeSwitch, argument: str) -> str:
        words = argument.split()
        if not words:
            return f"-USAGE: {usage}\n"
        channel = switch.channels.get(words[0])
        if channel is None or (channel.hungup and channel.completed):
            return "-ERR No such channel!\n"
        return run(switch, channel, words[1:])

    return handler


def _api_uuid_kill(switch: FakeSwitch, channel: Channel, args: list[str]) -> str:
    gevent.spawn(channel.hangup, args[0] if args else "NORMAL_CLEARING")
    return "+OK\n"


def _api_uuid_getvar(switch: FakeSwitch, channel: Channel, args: list[str]) -> str:
    if not args:
        return "-USAGE: <uuid> <var>\n"
    value = channel.getvar(args[0])
    return "_undef_" if value is None else value


def _api_uuid_setvar(switch: FakeSwitch, channel: Channel, args: list[str]) -> str:
    if not args:
        return "-USAGE: <uuid> <var> [value]\n"
    if len(args) > 1:
        channel.variables[args[0]] = " ".join(args[1:])
    else:
        channel.variables.pop(args[0], None)
    return "+OK\n"


def _api_uuid_break(switch: FakeSwitch, channel: Channel, args: list[str]) -> str:
    channel.break_(discard=bool(args and args[0] == "all"))
    return "+OK\n"


def _api_uuid_recv_dtmf(switch: FakeSwitch, channel: Channel, args: list[str]) -> str:
    digits = args[0] if args else ""
    gevent.spawn(channel.receive_dtmf, digits, "APP")
    return f"+OK {channel.uuid} received DTMF {digits}.\n"


def _api_uuid_send_dtmf(switch: FakeSwitch, channel: Channel, args: list[str]) -> str:
    digits = args[0] if args else ""
    if channel.other is not None:
        gevent.spawn(channel.other.receive_dtmf, digits, "UNKNOWN")
    return f"+OK {channel.uuid} sent DTMF {digits}.\n"


UUID_RECORD_USAGE = "<uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]"


def _api_uuid_record(switch: FakeSwitch, channel: Channel, args: list[str]) -> str:
    """``uuid_record <uuid> start|stop <path>``: a media bug on the channel (no audio here)."""
    if len(args) < 2 or args[0] not in ("start", "stop", "mask", "unmask"):
        return f"-USAGE: {UUID_RECORD_USAGE}\n"
    if args[0] == "start":
        channel.recordings.add(args[1])
    elif args[0] == "stop":
        channel.recordings.discard(args[1])
    return "+OK Success\n"


def _api_uuid_exists(switch: FakeSwitch, argument: str) -> str:
    channel = switch.channels.get(argument.strip())
    return "true" if channel is not None and not channel.hungup else "false"


def _api_show(switch: FakeSwitch, argument: str) -> str:
    import json

    words = argument.split()
    channels = [c for c in switch.channels.values() if not c.hungup]
    if words[:1] == ["channels"] and words[1:2] == ["count"]:
        return f"\n{len(channels)} total.\n"
    if words == ["modules"]:
        return _api_show_modules(switch)
    if words[:1] == ["calls"] and words[1:3] == ["as", "json"]:
        if not channels:
            return json.dumps({"row_count": 0}, separators=(",", ":"))
        call_rows = []
        for channel in channels:
            row = {
                "uuid": channel.uuid, "direction": channel.direction,
                "created": time.strftime("%Y-%m-%d %H:%M:%S",
                                         time.localtime(channel.created_us / 1e6)),
                "created_epoch": str(int(channel.created_us / 1e6)), "name": channel.name,
                "state": "CS_EXECUTE", "cid_name": channel.orig_caller[0],
                "cid_num": channel.orig_caller[1], "ip_addr": "", "dest": channel.destination,
                "presence_id": "", "presence_data": "", "accountcode": "",
                "callstate": "ACTIVE" if channel.answered.is_set() else "RINGING",
                "callee_name": channel.callee[0], "callee_num": channel.callee[1],
                "callee_direction": "RECV" if channel.direction == "outbound" else "",
                "call_uuid": _call_uuid(channel), "hostname": switch.hostname,
                "sent_callee_name": "", "sent_callee_num": "",
            }
            for key in ("uuid", "direction", "created", "created_epoch", "name", "state",
                        "cid_name", "cid_num", "ip_addr", "dest", "presence_id",
                        "presence_data", "accountcode", "callstate", "callee_name",
                        "callee_num", "callee_direction", "sent_callee_name",
                        "sent_callee_num"):
                row[f"b_{key}"] = ""  # B20: loopback legs are never bridged
            row["call_created_epoch"] = ""
            call_rows.append(row)
        return json.dumps({"row_count": len(call_rows), "rows": call_rows},
                          separators=(",", ":"))
    if words == ["channels"] and not channels:
        return "\n0 total.\n"
    if words[:1] == ["channels"] and words[1:3] == ["as", "json"]:
        if not channels:
            return json.dumps({"row_count": 0}, separators=(",", ":"))
        rows = []
        for channel in channels:
            rows.append({
                "uuid": channel.uuid,
                "direction": channel.direction,
                "created": time.strftime("%Y-%m-%d %H:%M:%S",
                                         time.localtime(channel.created_us / 1e6)),
                "created_epoch": str(int(channel.created_us / 1e6)),
                "name": channel.name,
                "state": "CS_EXECUTE",
                "cid_name": channel.orig_caller[0],
                "cid_num": channel.orig_caller[1],
                "ip_addr": "",
                "dest": channel.destination,
                "application": channel.variables.get("current_application", ""),
                "application_data": channel.variables.get("current_application_data", ""),
                "dialplan": "xml",
                "context": "default",
                "read_codec": "L16",
                "read_rate": "8000",
                "read_bit_rate": "128000",
                "write_codec": "L16",
                "write_rate": "8000",
                "write_bit_rate": "128000",
                "secure": "",
                "hostname": switch.hostname,
                "presence_id": "",
                "presence_data": "",
                "accountcode": "",
                "callstate": "ACTIVE" if channel.answered.is_set() else "RINGING",
                "callee_name": channel.callee[0],
                "callee_num": channel.callee[1],
                "callee_direction": "RECV" if channel.direction == "outbound" else "",
                "call_uuid": _call_uuid(channel),
                "sent_callee_name": "",
                "sent_callee_num": "",
                "initial_cid_name": channel.orig_caller[0],
                "initial_cid_num": channel.orig_caller[1],
                "initial_ip_addr": "",
                "initial_dest": channel.destination,
                "initial_dialplan": "xml",
                "initial_context": "default",
            })
        return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))
    return "-USAGE: codec|endpoint|application|api|dialplan|file|timer|calls [count]|" \
        "channels [count|like <match string>]|calls|detailed_calls|bridged_calls|" \
        "detailed_bridged_calls|aliases|complete|chat|management|modules|nat_map|say|" \
        "interfaces|interface_types|tasks|limits|status\n"


def _call_uuid(channel: Channel) -> str:
    """``call_uuid`` in show channels/calls: the originated A-leg's own uuid, empty on the
    loopback B-leg (b2_reconcile_views)."""
    if channel.name.startswith("loopback/") and channel.direction == "inbound":
        return ""
    return channel.uuid


def _api_status(switch: FakeSwitch, argument: str) -> str:
    uptime = int(time.monotonic() - switch.started)
    count = len([c for c in switch.channels.values() if not c.hungup])
    return (
        f"UP 0 years, 0 days, 0 hours, {uptime // 60} minutes, {uptime % 60} seconds, "
        "0 milliseconds, 0 microseconds\n"
        "FreeSWITCH (Version 1.11.3-dev  64bit) is ready\n"
        f"{switch._session_id} session(s) since startup\n"
        f"{count} session(s) - peak {count}, last 5min {count} \n"
        "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
        "1000 session(s) max\n"
        "min idle cpu 0.00/98.43\n"
        "Current Stack Size/Max 240K/8192K\n"
    )


def _api_global_getvar(switch: FakeSwitch, argument: str) -> str:
    name = argument.strip()
    if name == "core_uuid":
        return switch.core_uuid
    value = switch.global_vars.get(name, "")
    return value or conf.NO_REPLY


def _api_xml_locate(switch: FakeSwitch, argument: str) -> str:
    words = argument.split()
    if words[:4] == ["configuration", "configuration", "name", "conference.conf"]:
        return switch.conference_conf_xml
    return "can't find anything\n"


def _api_load(switch: FakeSwitch, argument: str) -> str:
    switch.modules.add(argument.strip())
    return "+OK Reloading XML\n+OK\n"


def _api_unload(switch: FakeSwitch, argument: str) -> str:
    name = argument.strip()
    if name not in switch.modules:
        return f"-ERR unloading module [Module {name} not loaded]\n"
    switch.modules.discard(name)
    return "+OK\n"


def _api_fsctl(switch: FakeSwitch, argument: str) -> str:
    words = argument.split()
    if words[:1] == ["loglevel"]:
        levels = ["CONSOLE", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG"]
        if len(words) < 2:  # B19: no argument SETS the level to DISABLE
            switch.log_level = -1
        elif words[1].isdigit():
            switch.log_level = int(words[1])
        elif words[1].upper() in levels:
            switch.log_level = levels.index(words[1].upper())
        name = "DISABLE" if switch.log_level < 0 else levels[min(switch.log_level, 7)]
        return f"+OK log level: {name} [{switch.log_level}]\n"
    return "+OK\n"


def _api_show_modules(switch: FakeSwitch) -> str:
    rows = ["type,name,ikey,filename"]
    for module in sorted(switch.modules):
        rows.append(f"api,{module},{module},/usr/lib/freeswitch/mod/{module}.so")
        if module == "mod_flite":
            rows.append(f"speech,flite,{module},/usr/lib/freeswitch/mod/{module}.so")
    return "\n".join(rows) + f"\n\n{len(rows) - 1} total.\n"


def _api_http_get(switch: FakeSwitch, argument: str) -> str:
    suffix = argument.rsplit(".", 1)[-1] if "." in argument.rsplit("/", 1)[-1] else "bin"
    name = str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, argument.strip()))
    return f"/srv/fswitch/cache/{name[:2]}/{name[2:]}.{suffix}"


LOADED_MODULES = frozenset(
    {"mod_conference", "mod_event_socket", "mod_loopback", "mod_sofia", "mod_commands",
     "mod_dptools", "mod_http_cache", "mod_httapi", "mod_flite", "mod_tone_stream",
     "mod_sndfile", "mod_dialplan_xml"}
)

API: dict[str, Callable[[FakeSwitch, str], str]] = {
    "version": lambda switch, argument: VERSION,
    "status": _api_status,
    "module_exists": lambda switch, argument: (
        "true" if argument.strip() in switch.modules else "false"
    ),
    "global_getvar": _api_global_getvar,
    "xml_locate": _api_xml_locate,
    "load": _api_load,
    "unload": _api_unload,
    "fsctl": _api_fsctl,
    "http_get": _api_http_get,
    "uuid_kill": _with_channel("<uuid> [cause]", _api_uuid_kill),
    "uuid_getvar": _with_channel("<uuid> <var>", _api_uuid_getvar),
    "uuid_setvar": _with_channel("<uuid> <var> [value]", _api_uuid_setvar),
    "uuid_break": _with_channel("<uuid> [all]", _api_uuid_break),
    "uuid_recv_dtmf": _with_channel("<uuid> <dtmf_data>", _api_uuid_recv_dtmf),
    "uuid_send_dtmf": _with_channel("<uuid> <dtmf_data>", _api_uuid_send_dtmf),
    "uuid_exists": _api_uuid_exists,
    "uuid_record": _with_channel(UUID_RECORD_USAGE, _api_uuid_record),
    "show": _api_show,
    "originate": lambda switch, argument: switch.originate(argument),
    "conference": lambda switch, argument: conf.api(switch, argument),
}


def names(commands: Iterable[RecordedCommand], connection: str) -> list[str]:
    """The command lines one connection sent (a helper for tests)."""
    return [c.line for c in commands if c.connection == connection]
