"""Reconciliation: make fsconf's conferences agree with what FreeSWITCH shows.

Theory of operation
-------------------
:class:`Reconciler` is the ``reconcile`` hook of each inbound ESL client
(:class:`~fsconf.esl.inbound.InboundClient`). The client calls it on every
connection, after subscribing and *before* it hands out the events that
arrived meanwhile, so the rooms get the reconciliation's inputs first and the
held events after them, in their serial queues. It covers three situations
with one comparison:

* **the event socket dropped** (same Core-UUID): conferences that survived are
  left alone (no join or leave is sent again); members that left while no
  events could reach us are reported as leaving, once;
* **FreeSWITCH restarted** (new Core-UUID: every channel and room is gone):
  every participant is gone, every conference ends with its callbacks;
* **fsconf restarted** (the first connection of a new process): the active
  conferences in the database are rebuilt from their rows
  (:func:`fsconf.conference.restore.restore_conference`), so later events
  continue their SequenceNumber, then compared like the others.

The comparison reads two views, nothing else: ``show channels as json``
(which calls are up) and ``conference json_list`` (which room has which
member; the room name is our ConferenceSid, a member's ``uuid`` is the
channel, i.e. the CallSid; ``recording_node`` members have no uuid and are
skipped, B15). For each present participant (:func:`reconcile_inputs`):

====================  =========================  ==============================
placement             in the room's member list  otherwise
====================  =========================  ==============================
MIXED, confirmed      nothing to do              gone: channel up -> left the
                                                 room; channel gone -> hung up
MIXED, joining        add-member we missed       channel up: the join is still
                                                 in flight; channel gone: gone
PARKED                (never in the room)        channel gone: hung up
====================  =========================  ==============================

The gone participants of one conference go to its room as one
``MembersVanished`` (engine rule R15), which reports each leave once (a leave
already reported by del-member or CHANNEL_HANGUP is skipped by the engine)
and ends the conference if nobody is left.

An adopted conference (fsconf restarted) has no calls of ours: they lost
their outbound sockets with the old process. A real FreeSWITCH then releases
each channel from socket control (mod_event_socket clears CF_CONTROLLED,
which ends its park): a member stays in its room until it leaves, then the
dialplan ends and the channel hangs up; a parked channel hangs up once its
wait audio ends. So in an adopted conference a participant that is not a
member of the room is gone, and if its channel still lingers fsconf hangs it
up (``uuid_kill``): nobody can give it TwiML any more.

Errors: a failed ``api`` (the connection dropped again) or an unreachable
database raises; the client then drops the connection and reconnects with
backoff, and the next connection reconciles again. Nothing is half-applied:
inputs are only queued once both views and every adoption are in hand.

Limits (not done): one FreeSWITCH node hosts every room (as
``Fsconf._api`` assumes), so every room is compared with each node's views;
with several fsconf processes on one PostgreSQL a restarting process would
adopt the others' conferences (there is no owner column yet).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fsconf.conference import events as engine_events
from fsconf.conference.effects import ConferenceRow, ParticipantRow
from fsconf.conference.model import (
    ConferenceState,
    ConferenceStatus,
    EngineConfig,
    Placement,
    Recording,
    RecordingEvent,
)
from fsconf.conference.restore import restore_conference
from fsconf.esl import commands
from fsconf.esl.frames import ApiResponse
from fsconf.service.conferences import ConferenceService
from fsconf.store import models
from fsconf.store.db import transaction

logger = logging.getLogger(__name__)

RUNNING_RECORDING = ("in-progress", "paused")

_Row = TypeVar("_Row", ConferenceRow, ParticipantRow)


class ApiClient(Protocol):
    def api(
        self, text: str, *, timeout: float | None = None, check: bool = True
    ) -> ApiResponse: ...


@dataclass(frozen=True)
class SwitchView:
    """What FreeSWITCH shows: live channel uuids, and each room's members."""

    channels: frozenset[str]
    rooms: Mapping[str, Mapping[str, int]]
    """room name -> {channel uuid: member id}"""

    @staticmethod
    def parse(channels_json: str, conferences_json: str) -> SwitchView:
        return SwitchView(parse_channels(channels_json), parse_rooms(conferences_json))

    @staticmethod
    def read(client: ApiClient) -> SwitchView:
        channels = client.api("show channels as json", check=False)
        rooms = client.api("conference json_list", check=False)
        return SwitchView.parse(channels.body, rooms.body)


def parse_channels(text: str) -> frozenset[str]:
    """``show channels as json``: ``{"row_count":N,"rows":[{"uuid":...},...]}``;
    with no channel there is no ``rows`` key at all."""
    data = json.loads(text)
    return frozenset(str(row["uuid"]) for row in data.get("rows") or () if row.get("uuid"))


def parse_rooms(text: str) -> dict[str, dict[str, int]]:
    """``conference json_list``: an array of rooms (``[]`` or ``-ERR ...`` when none)."""
    stripped = text.strip()
    if not stripped.startswith("["):
        if stripped.startswith("-ERR") or stripped.startswith("+OK") or not stripped:
            return {}
        raise ValueError(f"conference json_list: not a JSON array: {stripped[:80]!r}")
    rooms: dict[str, dict[str, int]] = {}
    for room in json.loads(stripped):
        members: dict[str, int] = {}
        for member in room.get("members") or ():
            # The recording node is listed as a member with no uuid (B15).
            if member.get("type") != "caller" or not member.get("uuid"):
                continue
            members[str(member["uuid"])] = int(member["id"])
        rooms[str(room["conference_name"])] = members
    return rooms


def reconcile_inputs(
    state: ConferenceState, view: SwitchView, *, adopted: bool = False
) -> list[engine_events.ConferenceInput]:
    """The engine inputs that bring ``state`` in line with ``view`` (see the table)."""
    if state.status is ConferenceStatus.COMPLETED:
        return []
    members = view.rooms.get(state.sid, {})
    found: list[engine_events.ConferenceInput] = []
    vanished: list[tuple[str, bool]] = []
    for participant in state.participants:
        alive = participant.call_uuid in view.channels
        if participant.placement is Placement.PARKED:
            if adopted or not alive:
                vanished.append((participant.call_sid, False))
            continue
        member_id = members.get(participant.call_uuid)
        if member_id is not None:
            if participant.member_id is None:
                found.append(engine_events.MemberAdded(participant.call_sid, member_id))
            continue
        if participant.member_id is None and alive and not adopted:
            continue  # its join is still in flight
        vanished.append((participant.call_sid, alive and not adopted))
    if vanished:
        found.append(engine_events.MembersVanished(tuple(vanished)))
    return found


def lingering(state: ConferenceState, view: SwitchView) -> list[str]:
    """Channels of an adopted conference's participants that are up but not in
    the room: parked or joining calls whose controller died with the old process."""
    members = view.rooms.get(state.sid, {})
    return [
        p.call_uuid
        for p in state.participants
        if p.call_uuid in view.channels and p.call_uuid not in members
    ]


class Reconciler:
    """The ``reconcile`` hook: ``Reconciler(...)(client)``."""

    def __init__(
        self,
        *,
        conferences: ConferenceService,
        sessions: sessionmaker[Session],
        config: EngineConfig,
        on_reconciled: Callable[[SwitchView], None] | None = None,
    ) -> None:
        self.conferences = conferences
        self.sessions = sessions
        self.config = config
        self.on_reconciled = on_reconciled
        self.runs = 0

    def __call__(self, client: ApiClient) -> None:
        view = SwitchView.read(client)
        adopted = self._adopt()
        label = getattr(client, "label", "esl")
        if getattr(client, "restarted", False):
            logger.warning(
                "%s: FreeSWITCH restarted: every room and call there is gone; ending %d "
                "conference(s)",
                label,
                sum(1 for room in self.conferences.rooms.values() if _active(room.state)),
            )
        queued = 0
        for room in list(self.conferences.rooms.values()):
            is_adopted = room.sid in adopted
            if is_adopted:
                for uuid in lingering(room.state, view):
                    logger.warning("%s: hanging up %s: its controller is gone", room.sid, uuid)
                    client.api(commands.uuid_kill_cmd(uuid), check=False)
            for engine_input in reconcile_inputs(room.state, view, adopted=is_adopted):
                logger.info("%s: reconciled: %r", room.sid, engine_input)
                room.submit(engine_input)
                queued += 1
        self.runs += 1
        logger.info(
            "%s: reconciled %d conference(s) with %d channel(s) and %d room(s); %d input(s)",
            label,
            len(self.conferences.rooms),
            len(view.channels),
            len(view.rooms),
            queued,
        )
        if self.on_reconciled is not None:
            self.on_reconciled(view)

    # --- fsconf restarted: rebuild from the rows ---------------------------------

    def _adopt(self) -> set[str]:
        """Rebuild every active conference of the database that has no room here."""
        adopted: set[str] = set()
        with transaction(self.sessions) as session:
            rows = session.scalars(
                select(models.Conference)
                .where(models.Conference.status != "completed")
                .order_by(models.Conference.date_created)
            ).all()
            for row in rows:
                if row.sid in self.conferences.rooms:
                    continue
                state = self._restore(session, row)
                if state is None:
                    # Opened, and nobody entered before the old process died:
                    # no callback was ever sent for it (R8 starts at the first join).
                    row.status = "completed"
                    logger.info("%s: conference closed (nobody had entered)", row.sid)
                    continue
                self.conferences.adopt(state)
                adopted.add(row.sid)
        return adopted

    def _restore(self, session: Session, row: models.Conference) -> ConferenceState | None:
        participants = session.scalars(
            select(models.Participant)
            .where(models.Participant.conference_sid == row.sid)
            .order_by(models.Participant.date_created, models.Participant.join_sequence)
        ).all()
        if not participants:
            return None
        recording = session.scalars(
            select(models.Recording)
            .where(models.Recording.conference_sid == row.sid)
            .where(models.Recording.status.in_(RUNNING_RECORDING))
        ).first()
        return restore_conference(
            _dataclass_of(ConferenceRow, row),
            [_dataclass_of(ParticipantRow, p) for p in participants],
            config=self.config,
            recording=(
                Recording(
                    recording.sid,
                    recording.path or "",
                    recording.start_time or row.date_created,
                    RecordingEvent.IN_PROGRESS,
                )
                if recording is not None
                else None
            ),
        )


def _active(state: ConferenceState) -> bool:
    return state.status is not ConferenceStatus.COMPLETED


def _dataclass_of(kind: type[_Row], row: object) -> _Row:
    names: Iterable[str] = (f.name for f in fields(kind))
    return kind(**{name: getattr(row, name) for name in names})


__all__ = [
    "Reconciler",
    "SwitchView",
    "lingering",
    "parse_channels",
    "parse_rooms",
    "reconcile_inputs",
]
