"""Twilio ``<Conference>`` attributes -> FreeSWITCH: the join plan.

Theory of operation
-------------------
A join is two ``sendmsg`` on the call's socket, nothing more (DESIGN, "The join
path is the hot path"):

1. ``multiset`` with every channel variable at once;
2. ``conference <ConferenceSid>@<profile>[+flags{mute}]``.

The variables, in this order:

* ``hangup_after_conference=false``, always: kick, hup, hangup-on-star and the
  room ending must return from the app with the call up, so it goes on to its
  Dial action or next verb (B2, B2.2 run 3).
* ``conference_controls``: ``fsconf-hangup-on-star`` for Dial hangupOnStar,
  else ``fsconf-none``. Always set: the vanilla group maps ``#``, ``0``, ``*``.
* ``conference_enter_sound`` / ``conference_exit_sound`` from ``beep``; the
  profile has no sounds, so an absent variable is silence. The exit sound is
  read when the member leaves, so BeepOnExit can change it later with
  ``uuid_setvar``.
* ``jitterbuffer_msec`` 20/40/60 for small/medium/large, nothing for off:
  the ``jitterbuffer`` app is a silent no-op before answer and on loopback
  (B18), the variable is read when the media starts.
* ``confvar_conference_sid`` and ``conference_max_members`` on a join that may
  create the room: FreeSWITCH reads both only from the creating channel. While
  no add-member has confirmed the room, every join carries them, because
  whichever arrives first creates it; on other channels they do nothing.

Nothing here emits ``endconf``: fsconf ends the conference itself, member by
member, so that every other call continues (DESIGN, endConferenceOnExit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from fsconf.conference.model import EngineConfig, JitterBufferSize, Participant
from fsconf.esl import commands

CONTROLS_NONE = "fsconf-none"
CONTROLS_HANGUP_ON_STAR = "fsconf-hangup-on-star"

_JITTER_SIZES: dict[JitterBufferSize, Literal["small", "medium", "large"]] = {
    JitterBufferSize.SMALL: "small",
    JitterBufferSize.MEDIUM: "medium",
    JitterBufferSize.LARGE: "large",
}

# The channel variable announcements carry back on play-file(-member)-done (B5).
ANNOUNCE_VAR = "fsconf_announce"


@dataclass(frozen=True, slots=True)
class JoinPlan:
    """Everything one join sends, already validated by the builders."""

    variables: tuple[tuple[str, str], ...]
    flags: tuple[str, ...]
    conference_arg: str

    @property
    def multiset_arg(self) -> str:
        return commands.multiset_arg(dict(self.variables))

    @property
    def applications(self) -> tuple[tuple[str, str], ...]:
        """(app, arg) pairs in the order they must run."""
        return (("multiset", self.multiset_arg), ("conference", self.conference_arg))


def join_variables(
    conference_sid: str,
    participant: Participant,
    *,
    creates_room: bool,
    max_participants: int,
    config: EngineConfig,
) -> tuple[tuple[str, str], ...]:
    settings = participant.settings
    controls = CONTROLS_HANGUP_ON_STAR if settings.hangup_on_star else CONTROLS_NONE
    variables = [("hangup_after_conference", "false"), ("conference_controls", controls)]
    if participant.beep.on_enter:
        variables.append(("conference_enter_sound", config.enter_sound))
    if participant.beep.on_exit:
        variables.append(("conference_exit_sound", config.exit_sound))
    if settings.jitter_buffer_size is not JitterBufferSize.OFF:
        size = _JITTER_SIZES[settings.jitter_buffer_size]
        variables.append(("jitterbuffer_msec", commands.jitterbuffer_arg(size)))
    if creates_room:
        variables.append(("confvar_conference_sid", conference_sid))
        variables.append(("conference_max_members", str(max_participants)))
    return tuple(variables)


def join_plan(
    conference_sid: str,
    participant: Participant,
    *,
    creates_room: bool,
    max_participants: int,
    config: EngineConfig,
) -> JoinPlan:
    variables = join_variables(
        conference_sid,
        participant,
        creates_room=creates_room,
        max_participants=max_participants,
        config=config,
    )
    flags = ("mute",) if participant.muted else ()
    plan = JoinPlan(
        variables=variables,
        flags=flags,
        conference_arg=commands.conference_app_arg(conference_sid, config.profile, flags),
    )
    plan.multiset_arg  # noqa: B018 - validate every value now, not when the shell sends it
    return plan


def join_frames(plan: JoinPlan, event_uuids: Sequence[str]) -> tuple[bytes, ...]:
    """The exact ``sendmsg`` frames of a join, one Event-UUID per application
    (it comes back as Application-UUID on CHANNEL_EXECUTE_COMPLETE)."""
    if len(event_uuids) != len(plan.applications):
        raise ValueError(f"need {len(plan.applications)} event uuids, got {len(event_uuids)}")
    return tuple(
        commands.sendmsg_execute(app, arg, event_uuid=event_uuid)
        for (app, arg), event_uuid in zip(plan.applications, event_uuids, strict=True)
    )


# --- api command texts the engine emits, in Twilio terms -----------------------------------


def exit_sound_cmd(call_uuid: str, beep_on_exit: bool, config: EngineConfig) -> str:
    """BeepOnExit at runtime: the exit sound is read when the member leaves.

    An empty value unsets the variable (``uuid_setvar`` without a value), and
    the profile has no exit sound, so leaving is then silent.
    """
    value = config.exit_sound if beep_on_exit else ""
    return commands.uuid_setvar_cmd(call_uuid, "conference_exit_sound", value)


def record_path(conference_sid: str, config: EngineConfig) -> str:
    return f"{config.recordings_dir}/{conference_sid}.wav"


def relate_cmds(
    conference_sid: str, pairs: Iterable[tuple[int, int]], action: commands.RelateAction
) -> tuple[str, ...]:
    """One ``relate <coach> <other,other,...> <action>`` per coach member id."""
    by_coach: dict[int, list[int]] = {}
    for coach, other in sorted(pairs):
        by_coach.setdefault(coach, []).append(other)
    return tuple(
        commands.conference_relate_cmd(conference_sid, coach, others, action)
        for coach, others in by_coach.items()
    )
