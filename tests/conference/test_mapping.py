"""Golden join plans and sendmsg frames, per attribute combination."""

from __future__ import annotations

import pytest

from fsconf.conference.mapping import join_frames, join_plan, relate_cmds
from fsconf.conference.model import (
    Beep,
    JitterBufferSize,
    Participant,
    ParticipantSettings,
    Placement,
)
from tests.conference.support import CONFIG, SID, call_sid, settings, uuid

BASE = (
    ("hangup_after_conference", "false"),
    ("conference_controls", "fsconf-none"),
)
CREATOR = (
    ("confvar_conference_sid", SID),
    ("conference_max_members", "250"),
)


def participant(config: ParticipantSettings) -> Participant:
    return Participant(
        call_sid=call_sid(1),
        call_uuid=uuid(1),
        join_sequence=1,
        settings=config,
        placement=Placement.PARKED,
        muted=config.muted,
        beep=config.beep,
    )


def plan(creates_room: bool = False, max_participants: int = 250, **overrides: object):
    return join_plan(
        SID,
        participant(settings(**overrides)),
        creates_room=creates_room,
        max_participants=max_participants,
        config=CONFIG,
    )


def test_default_join_is_one_multiset_and_the_conference_app() -> None:
    result = plan()
    assert result.applications == (
        (
            "multiset",
            "^^|hangup_after_conference=false|conference_controls=fsconf-none"
            "|conference_enter_sound=/sounds/enter.wav|conference_exit_sound=/sounds/exit.wav"
            "|jitterbuffer_msec=60",
        ),
        ("conference", f"{SID}@fsconf"),
    )


def test_creating_join_carries_the_sid_and_max_members() -> None:
    result = plan(creates_room=True, max_participants=7, beep=Beep.FALSE)
    assert result.variables == (
        *BASE,
        ("jitterbuffer_msec", "60"),
        ("confvar_conference_sid", SID),
        ("conference_max_members", "7"),
    )


def test_a_later_join_does_not() -> None:
    names = [name for name, _ in plan(creates_room=False).variables]
    assert "confvar_conference_sid" not in names
    assert "conference_max_members" not in names


def test_muted_adds_the_mute_flag() -> None:
    result = plan(muted=True, beep=Beep.FALSE, jitter_buffer_size=JitterBufferSize.OFF)
    assert result.flags == ("mute",)
    assert result.conference_arg == f"{SID}@fsconf+flags{{mute}}"
    assert result.variables == BASE


@pytest.mark.parametrize(
    ("beep", "sounds"),
    [
        (
            Beep.TRUE,
            (
                ("conference_enter_sound", "/sounds/enter.wav"),
                ("conference_exit_sound", "/sounds/exit.wav"),
            ),
        ),
        (Beep.ON_ENTER, (("conference_enter_sound", "/sounds/enter.wav"),)),
        (Beep.ON_EXIT, (("conference_exit_sound", "/sounds/exit.wav"),)),
        (Beep.FALSE, ()),
    ],
)
def test_beep(beep: Beep, sounds: tuple[tuple[str, str], ...]) -> None:
    result = plan(beep=beep, jitter_buffer_size=JitterBufferSize.OFF)
    assert result.variables == (*BASE, *sounds)
    assert result.conference_arg == f"{SID}@fsconf"


@pytest.mark.parametrize(
    ("size", "msec"),
    [
        (JitterBufferSize.SMALL, ("20",)),
        (JitterBufferSize.MEDIUM, ("40",)),
        (JitterBufferSize.LARGE, ("60",)),
        (JitterBufferSize.OFF, ()),
    ],
)
def test_jitter_buffer(size: JitterBufferSize, msec: tuple[str, ...]) -> None:
    result = plan(beep=Beep.FALSE, jitter_buffer_size=size)
    assert result.variables == (*BASE, *(("jitterbuffer_msec", m) for m in msec))


def test_hangup_on_star_selects_its_controls_group() -> None:
    result = plan(hangup_on_star=True, beep=Beep.FALSE, jitter_buffer_size=JitterBufferSize.OFF)
    assert result.variables == (
        ("hangup_after_conference", "false"),
        ("conference_controls", "fsconf-hangup-on-star"),
    )


def test_join_frames_are_exact_bytes() -> None:
    result = plan(
        creates_room=True, muted=True, beep=Beep.FALSE, jitter_buffer_size=JitterBufferSize.SMALL
    )
    first = "11111111-1111-4111-8111-111111111111"
    second = "22222222-2222-4222-8222-222222222222"
    multiset = (
        "^^|hangup_after_conference=false|conference_controls=fsconf-none"
        f"|jitterbuffer_msec=20|confvar_conference_sid={SID}|conference_max_members=250"
    )
    app = f"{SID}@fsconf+flags{{mute}}"
    assert join_frames(result, [first, second]) == (
        (
            "sendmsg\ncall-command: execute\nexecute-app-name: multiset\n"
            f"Event-UUID: {first}\nevent-lock: true\ncontent-type: text/plain\n"
            f"content-length: {len(multiset)}\n\n{multiset}"
        ).encode(),
        (
            "sendmsg\ncall-command: execute\nexecute-app-name: conference\n"
            f"Event-UUID: {second}\nevent-lock: true\ncontent-type: text/plain\n"
            f"content-length: {len(app)}\n\n{app}"
        ).encode(),
    )


def test_join_frames_need_one_event_uuid_per_application() -> None:
    with pytest.raises(ValueError, match="need 2"):
        join_frames(plan(), ["11111111-1111-4111-8111-111111111111"])


def test_relate_groups_pairs_by_coach() -> None:
    assert relate_cmds(SID, {(9, 3), (9, 1), (4, 1)}, "nospeak") == (
        f"conference {SID} relate 4 1 nospeak",
        f"conference {SID} relate 9 1,3 nospeak",
    )
