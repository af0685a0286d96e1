"""mod_conference as the captures show it: rooms, members, api sub-commands.

Theory of operation
-------------------
A :class:`Room` exists only while it has members (B9): the first member
creates it (conference-create), the last one leaving destroys it. Member ids
come from one global counter and are stored on the channel, so a channel that
rejoins any room keeps its id (B14). Every event of a room carries the
conference variables taken from the ``confvar_*`` channel variables of the
member that created it (B2.1) plus later ``setvar`` ones (surprise 12).

A member leaves for a reason (kick, hup, hangup, star, room end); the reason
decides the events (kick-member/hup-member before del-member, ``Hangup-Cause``
only when the channel was already down: surprise 14) and whether the channel
is hung up (only when the room ends under a member whose
``hangup_after_conference`` is not ``false``: B2.2). The owner of the channel
(the switch) is told through :meth:`Member.left`.

:func:`api` runs ``conference ...`` and returns the exact body FreeSWITCH
answers, including its misspellings and bare usage lines (surprises 3-8).
"""

from __future__ import annotations

import re
import time
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fsconf.testing.eventsets import cjson

if TYPE_CHECKING:
    from fsconf.testing.fakeswitch import Channel, FakeSwitch

USAGE = {
    "mute": "mute <[member_id|all]|last|non_moderator> [<quiet>]",
    "unmute": "unmute <[member_id|all]|last|non_moderator> [<quiet>]",
    "tmute": "tmute <[member_id|all]|last|non_moderator> [<quiet>]",
    "deaf": "deaf <[member_id|all]|last|non_moderator>",
    "undeaf": "undeaf <[member_id|all]|last|non_moderator>",
    "kick": "kick <[member_id|all|last|non_moderator]> [<optional sound file>]",
    "hup": "hup <[member_id|all|last|non_moderator]>",
    "hold": "hold <[member_id|all]|last|non_moderator> [file]",
    "unhold": "unhold <[member_id|all]|last|non_moderator>",
    "get": "get <parameter-name>",
    "set": "set <max_members|sound_prefix|caller_id_name|caller_id_number|endconference_grace_time>"
    " <value>",
    "record": "record <filename>",
    "play": "play <file_path> [async|<member_id> [nomux]]",
    "relate": "relate <member_id>[,<member_id>] <other_member_id>[,<other_member_id>]"
    " [nospeak|nohear|clear]",
    "dtmf": "dtmf <[member_id|all|last|non_moderator]> <digits>",
    "getvar": "getvar <name>",
    "setvar": "setvar <name> <value>",
}

NO_REPLY = "-ERR no reply\n"
"""What ESL answers for an empty api output (surprise 3)."""

MISSING_FILE_PREFIXES = ("/nonexistent", "/srv/fswitch/nonexistent")
"""Files the fake treats as absent (see :attr:`FakeSwitch.missing_files`)."""

_FLAGS_RE = re.compile(
    r"^(?P<room>[^@+]+)(?:@(?P<profile>[^+]+))?(?:\+flags\{(?P<flags>[^}]*)\})?$"
)
_VARS_RE = re.compile(r"^\{(?P<vars>[^}]*)\}(?P<file>.*)$")


@dataclass
class Member:
    id: int
    channel: Channel
    flags: set[str]
    room: Room
    hear: bool = True
    speak: bool = True
    talking: bool = False
    hold: bool = False
    energy: int = 100
    volume_in: int = 0
    volume_out: int = 0
    join_time: float = field(default_factory=time.monotonic)
    left: Any = None
    """A gevent Event, set when the member has left (the app then returns)."""

    @property
    def moderator(self) -> bool:
        return "moderator" in self.flags

    @property
    def endconf(self) -> bool:
        return "endconf" in self.flags

    def list_flags(self) -> str:
        if self.hold:
            words = ["hold"]
        else:
            words = [w for w, on in (("hear", self.hear), ("speak", self.speak)) if on]
        if self.talking:
            words.append("talking")
        if self.room.floor is self:
            words.append("floor")
        if self.moderator:
            words.append("moderator")
        return "|".join(words)

    def event_values(self) -> dict[str, str]:
        return {
            "Floor": _bool(self.room.floor is self),
            "Video": "false",
            "Hear": _bool(self.hear),
            "See": "true",
            "Speak": _bool(self.speak),
            "Talking": _bool(self.talking),
            "Mute-Detect": "false",
            "Hold": _bool(self.hold),
            "Member-ID": str(self.id),
            "Member-Type": "moderator" if self.moderator else "member",
            "Member-Ghost": "false",
            "Energy-Level": str(self.energy),
            "Current-Energy": "0",
        }


def _bool(value: bool) -> str:
    return "true" if value else "false"


@dataclass
class Recording:
    path: str
    started: float
    paused: bool = False
    auto: bool = False


@dataclass
class Room:
    name: str
    profile: str
    uuid: str
    switch: FakeSwitch
    variables: dict[str, str] = field(default_factory=dict)
    max_members: int = 0
    locked: bool = False
    members: list[Member] = field(default_factory=list)
    floor: Member | None = None
    recordings: list[Recording] = field(default_factory=list)
    relations: dict[tuple[int, int], str] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    ending: bool = False

    # --- events -----------------------------------------------------------

    def conf_values(self) -> dict[str, str]:
        return {
            "Conference-Name": self.name,
            "Conference-Domain": self.switch.domain,
            "Conference-Size": str(len(self.members)),
            "Conference-Ghosts": "0",
            "Conference-Profile-Name": self.profile,
            "Conference-Unique-ID": self.uuid,
        }

    def fire(
        self,
        action: str,
        member: Member | None = None,
        extra: dict[str, str] | None = None,
        playvars: list[tuple[str, str]] | None = None,
    ) -> None:
        values = self.conf_values()
        values["Action"] = action
        channel = None
        if member is not None:
            values.update(member.event_values())
            channel = member.channel
        if extra:
            values.update(extra)
        self.switch.fire_custom(
            action,
            values,
            channel=channel,
            confvars=list(self.variables.items()),
            playvars=playvars or [],
        )

    def set_floor(self, member: Member | None) -> None:
        old = self.floor
        if old is member:
            return
        self.floor = member
        extra = {
            "Old-ID": str(old.id) if old else "none",
            "New-ID": str(member.id) if member else "none",
        }
        self.fire("floor-change", member, extra)

    # --- membership ---------------------------------------------------------

    def find(self, member_id: int) -> Member | None:
        for member in self.members:
            if member.id == member_id:
                return member
        return None

    def remove(self, member: Member, reason: str) -> None:
        """Take ``member`` out; ``reason`` in kick|hup|hangup|star|endroom."""
        if member not in self.members:
            return
        channel = member.channel
        if reason == "kick":
            self.fire("kick-member", member)
        elif reason == "hup":
            self.fire("hup-member", member)
        if self.floor is member:
            self.set_floor(None)
        self.members.remove(member)
        if reason == "endroom" and channel.variables.get("hangup_after_conference") != "false":
            # mod_conference hangs the channel up under the member (B2.2 run 3)
            channel.mark_hungup("NORMAL_CLEARING")
        self.fire("del-member", member)
        ends_room = member.endconf and not self.ending
        exit_sound = channel.variables.get("conference_exit_sound")
        if exit_sound and (self.members or ends_room):
            ms = "0" if ends_room else self.switch.sound_ms(exit_sound)
            self.fire_play_done(exit_sound, ms, [])
        member.left.set()
        self.switch.member_left(member, reason)
        if ends_room:
            self.end()
        elif not self.members:
            self.destroy()

    def end(self) -> None:
        """The room ends under everybody still in it (endconf, B3)."""
        self.ending = True
        for other in list(reversed(self.members)):
            self.remove(other, "endroom")
        if not self.members:
            self.destroy()

    def destroy(self) -> None:
        if self.switch.rooms.get(self.name) is not self:
            return
        for recording in list(self.recordings):
            self.stop_recording(recording)
        del self.switch.rooms[self.name]
        self.fire("conference-destroy")

    def fire_play_done(self, file: str, ms: str, playvars: list[tuple[str, str]],
                       member: Member | None = None) -> None:
        seconds = str(int(ms) // 1000)
        extra = {"seconds": seconds, "milliseconds": ms, "samples": str(int(ms) * 8), "File": file}
        self.fire("play-file-member-done" if member else "play-file-done", member, extra, playvars)

    def stop_recording(self, recording: Recording) -> None:
        self.recordings.remove(recording)
        elapsed = int((time.monotonic() - recording.started) * 1000)
        self.fire(
            "stop-recording",
            extra={
                "Path": recording.path,
                "Other-Recordings": _bool(bool(self.recordings)),
                "Samples-Out": str(elapsed * 8),
                "Samplerate": "8000",
                "Milliseconds-Elapsed": str(elapsed),
                "Record-File-Size": str(elapsed * 16 + 44),
            },
        )

    # --- views ----------------------------------------------------------------

    def list_lines(self, delim: str = ";") -> str:
        lines = []
        for member in reversed(self.members):
            channel = member.channel
            name, number = channel.conference_caller_id()
            fields = [
                str(member.id), channel.name, channel.uuid, name, number, member.list_flags(),
                str(member.volume_in), str(member.volume_out), str(member.energy),
            ]
            lines.append(delim.join(fields) + "\n")
        return "".join(lines)

    def summary(self) -> str:
        count = len(self.members)
        noun = "member" if count == 1 else "members"
        return (
            f"+OK Conference {self.name} ({count} {noun} rate: 8000 flags: "
            "running|answered|enforce_min|dynamic|exit_sound|enter_sound|json_status)\n"
        )

    def json_data(self) -> dict[str, object]:
        members: list[object] = [
            {"type": "recording_node", "record_path": r.path, "join_time": int(time.time())}
            for r in reversed(self.recordings)
        ]
        now = time.monotonic()
        for member in reversed(self.members):
            name, number = member.channel.conference_caller_id()
            members.append({
                "type": "caller",
                "id": member.id,
                "flags": {
                    "can_hear": member.hear and not member.hold,
                    "can_see": not member.hold,
                    "can_speak": member.speak and not member.hold,
                    "hold": member.hold,
                    "mute_detect": False,
                    "talking": member.talking,
                    "has_video": False,
                    "video_bridge": False,
                    "has_floor": self.floor is member,
                    "is_moderator": member.moderator,
                    "end_conference": member.endconf,
                    "mandatory_member_end_conference": False,
                    "pass_digits": False,
                },
                "uuid": member.channel.uuid,
                "caller_id_name": name,
                "caller_id_number": number,
                "join_time": int(now - member.join_time),
                "last_talking": 0,
                "energy": member.energy,
                "volume_in": member.volume_in,
                "volume_out": member.volume_out,
                "output-volume": member.volume_out,
                "input-volume": member.volume_in,
            })
        return {
            "conference_name": self.name,
            "member_count": len(self.members),
            "ghost_count": 0,
            "rate": 8000,
            "run_time": int(now - self.created),
            "conference_uuid": self.uuid,
            "canvas_count": 0,
            "max_bw_in": 0,
            "force_bw_in": 0,
            "video_floor_packets": 0,
            "locked": self.locked,
            "destruct": False,
            "wait_mod": False,
            "audio_always": False,
            "running": True,
            "answered": True,
            "enforce_min": True,
            "bridge_to": False,
            "dynamic": True,
            "exit_sound": True,
            "enter_sound": True,
            "recording": bool(self.recordings),
            "video_bridge": False,
            "video_floor_only": False,
            "video_rfc4579": False,
            "variables": dict(self.variables),
            "members": members,
        }


def parse_app_arg(arg: str) -> tuple[str, str, set[str]]:
    """``room@profile+flags{a|b}`` -> (room, profile, flags)."""
    match = _FLAGS_RE.match(arg.strip())
    if match is None:
        return arg.strip(), "default", set()
    flags = {f for f in (match.group("flags") or "").split("|") if f}
    return match.group("room"), match.group("profile") or "default", flags


def split_vars(file: str) -> tuple[list[tuple[str, str]], str]:
    """``{a=1,b=2}file`` -> ([(a, 1), (b, 2)], file)."""
    match = _VARS_RE.match(file)
    if match is None:
        return [], file
    pairs = []
    for part in match.group("vars").split(","):
        name, _, value = part.partition("=")
        if name:
            pairs.append((name, value))
    return pairs, match.group("file")


def new_room(switch: FakeSwitch, name: str, profile: str, creator: Channel) -> Room:
    variables = {
        k[len("confvar_"):]: v for k, v in creator.variables.items() if k.startswith("confvar_")
    }
    try:
        max_members = int(creator.variables.get("conference_max_members", "0"))
    except ValueError:
        max_members = 0
    room = Room(name=name, profile=profile, uuid=str(uuid_module.uuid4()), switch=switch,
                variables=variables, max_members=max_members)
    switch.rooms[name] = room
    room.fire("conference-create")
    return room


# --- api -------------------------------------------------------------------------


def _targets(room: Room, word: str) -> list[Member] | None:
    if word == "all":
        return list(reversed(room.members))
    if word == "last":
        return [room.members[-1]] if room.members else []
    if word == "non_moderator":
        return [m for m in reversed(room.members) if not m.moderator]
    if word.isdigit():
        member = room.find(int(word))
        return [member] if member else []
    return None


def _member_command(
    name: str, action: Callable[[Room, Member, list[str]], str | None]
) -> Callable[[Room, list[str]], str]:
    def run(room: Room, args: list[str]) -> str:
        if not args:
            return USAGE[name]
        targets = _targets(room, args[0])
        if targets is None:
            return USAGE[name]
        if not targets:
            return f"-ERR Non-Existant ID {args[0]}\n"
        out = []
        for member in targets:
            text = action(room, member, args[1:])
            out.append(text if text is not None else f"+OK {name} {member.id}\n")
        return "".join(out)

    return run


def _mute(room: Room, member: Member, args: list[str]) -> None:
    member.speak = False
    member.talking = False
    room.fire("mute-member", member)


def _unmute(room: Room, member: Member, args: list[str]) -> None:
    member.speak = True
    room.fire("unmute-member", member)


def _tmute(room: Room, member: Member, args: list[str]) -> str:
    if member.speak:
        _mute(room, member, args)
        return f"+OK mute {member.id}\n"
    _unmute(room, member, args)
    return f"+OK unmute {member.id}\n"


def _deaf(room: Room, member: Member, args: list[str]) -> None:
    member.hear = False
    room.fire("deaf-member", member)


def _undeaf(room: Room, member: Member, args: list[str]) -> None:
    member.hear = True
    room.fire("undeaf-member", member)


def _hold(room: Room, member: Member, args: list[str]) -> None:
    member.hold = True
    member.talking = False
    room.fire("hold-member", member)


def _unhold(room: Room, member: Member, args: list[str]) -> None:
    member.hold = False
    room.fire("unhold-member", member)


def _kick(room: Room, member: Member, args: list[str]) -> str:
    room.remove(member, "kick")
    return f"+OK kicked {member.id}\n"


def _hup(room: Room, member: Member, args: list[str]) -> None:
    room.remove(member, "hup")


def _dtmf(room: Room, member: Member, args: list[str]) -> str:
    digits = args[0] if args else ""
    room.fire("dtmf-member", member, {"Digits": digits})
    return f"+OK sent {digits} to {member.id}\n"


def _list(room: Room, args: list[str]) -> str:
    if args and args[0] == "count":
        return str(len(room.members))
    if args and args[0] == "summary":
        return room.summary()
    if len(args) >= 2 and args[0] == "delim":
        return room.list_lines(args[1])
    return room.list_lines()


def _json_list(room: Room, args: list[str]) -> str:
    return json_list([room], compact=bool(args and args[0] == "compact"))


def json_list(rooms: list[Room], compact: bool) -> str:
    data = [room.json_data() for room in rooms]
    if compact:
        import json

        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return cjson(data)


def _get(room: Room, args: list[str]) -> str:
    if not args:
        return USAGE["get"]
    values = {
        "count": str(len(room.members)),
        "run_time": str(int(time.monotonic() - room.created)),
        "max_members": str(room.max_members),
        "profile_name": room.profile,
        "uuid": room.uuid,
        "is_locked": "true" if room.locked else "",
        "wait_mod": "",
    }
    if args[0] not in values:
        return USAGE["get"]
    return values[args[0]] or NO_REPLY


def _set(room: Room, args: list[str]) -> str:
    if len(args) < 2 or args[0] != "max_members" or not args[1].lstrip("-").isdigit():
        return USAGE["set"]
    old = room.max_members
    room.max_members = int(args[1])
    return str(old)


def _lock(room: Room, args: list[str]) -> str:
    room.locked = True
    room.fire("lock")
    return f"+OK {room.name} locked\n"


def _unlock(room: Room, args: list[str]) -> str:
    room.locked = False
    room.fire("unlock")
    return f"+OK {room.name} unlocked\n"


def _getvar(room: Room, args: list[str]) -> str:
    if not args:
        return USAGE["getvar"]
    return room.variables.get(args[0], "") or NO_REPLY


def _setvar(room: Room, args: list[str]) -> str:
    if len(args) < 2:
        return USAGE["setvar"]
    room.variables[args[0]] = " ".join(args[1:])
    return "+OK\n"


def _count(room: Room, args: list[str]) -> str:
    return str(len(room.members))


def _get_uuid(room: Room, args: list[str]) -> str:
    member = room.find(int(args[0])) if args and args[0].isdigit() else None
    if member is None:
        return f"-ERR Non-Existant ID {args[0] if args else ''}\n"
    return member.channel.uuid


def _play(room: Room, args: list[str]) -> str:
    if not args:
        return USAGE["play"]
    raw = args[0]
    playvars, file = split_vars(raw)
    target = args[1] if len(args) > 1 else None
    member = None
    if target is not None and target != "async":
        member = room.find(int(target)) if target.isdigit() else None
        if member is None:
            # FreeSWITCH prints the id from a pointer here (B7)
            return f"-ERR Member: {room.switch.garbage_member_number} not found.\n" + USAGE["play"]
    if room.switch.is_missing(file):
        if member is None:
            room.fire("play-file", extra={"File": raw, "Async": "false",
                                          "Error": "File could not be played"})
        return f"-ERR (play) File: {raw} not found.\n"
    if member is not None:
        room.fire("play-file-member", member, {"File": raw}, playvars)
        room.switch.schedule_play(room, raw, playvars, member)
        return f"+OK (play) Playing file {raw} to member {member.id}\n"
    is_async = target == "async"
    room.fire("play-file", extra={"File": raw, "Async": _bool(is_async)},
              playvars=[] if is_async else playvars)
    room.switch.schedule_play(room, raw, playvars, None)
    return f"+OK (play) Playing file {raw}\n"


def _stop(room: Room, args: list[str]) -> str:
    member = None
    if len(args) > 1 and args[1].isdigit():
        member = room.find(int(args[1]))
    stopped = room.switch.stop_plays(room, member)
    return f"+OK Stopped {stopped} files.\n"


def _say(room: Room, args: list[str]) -> str:
    if not args:
        return "-ERR (say) Error!\nsay <text>"
    room.fire("speak-text", extra={"Text": " ".join(args)})
    return "+OK (say) OK\n"


def _saymember(room: Room, args: list[str]) -> str:
    member = room.find(int(args[0])) if args and args[0].isdigit() else None
    if member is None or len(args) < 2:
        return "-ERR (saymember) Error!\n"
    room.fire("speak-text-member", member, {"Text": " ".join(args[1:])})
    return "+OK (saymember) OK\n"


def _record(room: Room, args: list[str]) -> str:
    if not args:
        return USAGE["record"]
    path = args[0]
    room.recordings.append(Recording(path, time.monotonic()))
    room.fire("start-recording", extra={"Path": path})
    return f"+OK Record file {path}\n"


def _check_recording(room: Room) -> str:
    if not room.recordings:
        return "-ERR Conference is not being recorded.\n"
    lines = []
    for recording in reversed(room.recordings):
        suffix = " (Auto)" if recording.auto else ""
        lines.append(f"+OK Record file {recording.path}{suffix}\n")
    return "".join(lines)


def _find_recording(room: Room, path: str) -> Recording | None:
    for recording in room.recordings:
        if recording.path == path:
            return recording
    return None


def _norecord(room: Room, args: list[str]) -> str:
    if not args:
        return "norecord <[filename | all]>"
    if args[0] == "all":
        out = []
        for recording in list(reversed(room.recordings)):
            out.append(f"Stopped recording file {recording.path}\n")
            room.stop_recording(recording)
        return "".join(out) + "+OK Stopped recording 0 files\n"
    recording = _find_recording(room, args[0])
    if recording is None:
        return f"-ERR non-existant recording '{args[0]}'\n+OK Stopped recording 0 files\n"
    room.stop_recording(recording)
    return f"Stopped recording file {args[0]}\n+OK Stopped recording 0 files\n"


def _pause_resume(room: Room, verb: str, path: str) -> str:
    head = f"+OK {'Pause' if verb == 'pause' else 'Resume'} recording file {path}\n"
    recording = _find_recording(room, path)
    if recording is None:
        return head + f"-ERR non-existant recording '{path}'\n"
    recording.paused = verb == "pause"
    room.fire(f"{verb}-recording", extra={"Path": path, "Other-Recordings": "true"})
    return head


def _recording(room: Room, args: list[str]) -> str:
    if not args:
        return "recording [start|stop|check|pause|resume] <filename>"
    verb = args[0]
    if verb == "check":
        return _check_recording(room)
    if verb == "start" and len(args) > 1:
        return _record(room, args[1:])
    if verb == "stop" and len(args) > 1:
        return _norecord(room, args[1:])
    if verb in ("pause", "resume") and len(args) > 1:
        return _pause_resume(room, verb, args[1])
    # surprise 7: anything else is "record <anything>"
    return _record(room, args)


def _relate(room: Room, args: list[str]) -> str:
    if len(args) < 2:
        ids = [int(x) for x in args[0].split(",") if x.isdigit()] if args else None
        lines = [
            f"{a} -> {b} {what.upper()} HEAR NOSENDVIDEO \n"
            for (a, b), what in sorted(room.relations.items(), key=lambda kv: -kv[0][1])
            if ids is None or a in ids
        ]
        if not room.relations:
            return "+OK No relationships\n"
        if ids is None:
            return NO_REPLY
        return "".join(lines) or "+OK No relationships\n"
    if len(args) < 3 or args[2] not in ("nospeak", "nohear", "clear", "sendvideo"):
        return USAGE["relate"]
    out = []
    for a in args[0].split(","):
        for b in args[1].split(","):
            if not a.isdigit() or room.find(int(a)) is None:
                out.append(f"-ERR relationship {a}->{b} not found.\n")
                continue
            if not b.isdigit() or room.find(int(b)) is None:
                out.append(f"-ERR relationship {a}->{b} not found.\n")
                continue
            key = (int(a), int(b))
            if args[2] == "clear":
                room.relations.pop(key, None)
                out.append(f"+OK relationship {a}->{b} cleared.\n")
            else:
                room.relations[key] = args[2]
                out.append(f"+OK {a}->{b} {args[2]} set\n")
    return "".join(out)


def _energy(room: Room, member: Member, args: list[str]) -> str:
    if args and args[0].lstrip("-").isdigit():
        member.energy = int(args[0])
        room.fire("energy-level-member", member, {"Energy-Level": str(member.energy)})
    return f"Energy {member.id} = {member.energy}\n"


def _volume(direction: str) -> Callable[[Room, Member, list[str]], str]:
    def run(room: Room, member: Member, args: list[str]) -> str:
        attr = "volume_in" if direction == "IN" else "volume_out"
        if args and args[0].lstrip("-").isdigit():
            setattr(member, attr, max(-4, min(4, int(args[0]))))
            action = "volume-in-member" if direction == "IN" else "volume-out-member"
            room.fire(action, member, {"Volume-Level": str(getattr(member, attr))})
        return f"+OK Volume {direction} {member.id} = {getattr(member, attr)}\n"

    return run


SUBCOMMANDS: dict[str, Callable[[Room, list[str]], str]] = {
    "list": _list,
    "count": _count,
    "json_list": _json_list,
    "get": _get,
    "set": _set,
    "mute": _member_command("mute", _mute),
    "unmute": _member_command("unmute", _unmute),
    "tmute": _member_command("tmute", _tmute),
    "deaf": _member_command("deaf", _deaf),
    "undeaf": _member_command("undeaf", _undeaf),
    "hold": _member_command("hold", _hold),
    "unhold": _member_command("unhold", _unhold),
    "kick": _member_command("kick", _kick),
    "hup": _member_command("hup", _hup),
    "dtmf": _member_command("dtmf", _dtmf),
    "energy": _member_command("energy", _energy),
    "volume_in": _member_command("volume_in", _volume("IN")),
    "volume_out": _member_command("volume_out", _volume("OUT")),
    "get-uuid": _get_uuid,
    "play": _play,
    "stop": _stop,
    "say": _say,
    "saymember": _saymember,
    "record": _record,
    "norecord": _norecord,
    "recording": _recording,
    "chkrecord": lambda room, args: _check_recording(room),
    "pause": lambda room, args: _pause_resume(room, "pause", args[0]) if args else USAGE["record"],
    "resume": lambda room, args: (
        _pause_resume(room, "resume", args[0]) if args else USAGE["record"]
    ),
    "relate": _relate,
    "lock": _lock,
    "unlock": _unlock,
    "getvar": _getvar,
    "setvar": _setvar,
}
for _name in ("energy", "volume_in", "volume_out"):
    USAGE.setdefault(_name, f"{_name} <[member_id|all]|last|non_moderator> [<newval>]")


def api(switch: FakeSwitch, argument: str) -> str:
    """The body of ``api conference <argument>``."""
    words = argument.split()
    if not words:
        return switch.conference_help
    rooms = list(reversed(switch.rooms.values()))
    if words[0] == "list":
        if not rooms:
            return "+OK No active conferences.\n"
        summary_only = words[1:2] == ["summary"]
        return "".join(r.summary() + ("" if summary_only else r.list_lines()) for r in rooms)
    if words[0] == "count":
        return str(len(rooms))
    if words[0] == "json_list":
        return json_list(rooms, compact=words[1:2] == ["compact"])
    room = switch.rooms.get(words[0])
    if room is None:
        return f"-ERR Conference {words[0]} not found\n"
    if len(words) < 2:
        return "Conference command, not specified.\nTry 'help'\n"
    handler = SUBCOMMANDS.get(words[1])
    if handler is None:
        return f"-ERR Conference command '{words[1]}' not found.\n"
    # say/saymember keep the raw text after the member id
    if words[1] in ("say", "saymember"):
        rest = argument.split(None, 2)[2] if len(argument.split(None, 2)) > 2 else ""
        return handler(room, rest.split(" ") if rest else [])
    return handler(room, words[2:])
