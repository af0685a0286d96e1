"""A room's timers (a participant's time limit): restart replaces, cancel stops.

The timers are bare loop timers (no greenlet each, for memory per
participant); these tests hold them to what the greenlet timers did. Real
room, real database, real timers of a fraction of a second; the tests wait
for the room's state (a kick is pending), never for time: a later timer's
kick proves that an earlier one did not fire.
"""

from __future__ import annotations

import gevent

from fsconf.conference.effects import CancelTimer, StartTimer
from fsconf.esl.commands import conference_kick_cmd
from tests.service.test_room_batching import WAIT, Conference, call_sid
from tests.service.test_room_batching import conferences as conferences  # fixture


def kicked(conference: Conference, n: int) -> bool:
    participant = conference.room.state.find(call_sid(n))
    return participant is not None and participant.pending_leave is not None


def wait_kicked(conference: Conference, n: int) -> None:
    with gevent.Timeout(WAIT):
        while not kicked(conference, n):
            conference.room.changed.wait()


def timer_of(conference: Conference, n: int) -> str:
    participant = conference.room.state.find(call_sid(n))
    assert participant is not None
    return participant.timer_id


def kicks(conference: Conference, n: int) -> int:
    participant = conference.room.state.find(call_sid(n))
    assert participant is not None and participant.member_id is not None
    command = conference_kick_cmd(conference.sid, participant.member_id)
    return conference.commands.count(command)


def test_a_cancelled_timer_never_fires(session_factory, conferences):
    conference = Conference(session_factory, "cancel")
    conferences.append(conference)
    room = conference.room
    room.start_timer(StartTimer(timer_of(conference, 2), 0.05))
    room.cancel_timer(CancelTimer(timer_of(conference, 2)))
    room.start_timer(StartTimer(timer_of(conference, 1), 0.3))

    wait_kicked(conference, 1)

    assert kicks(conference, 1) == 1
    assert not kicked(conference, 2) and kicks(conference, 2) == 0
    assert timer_of(conference, 1) not in room.timers
    assert timer_of(conference, 2) not in room.timers


def test_a_restarted_timer_fires_once_at_its_new_time(session_factory, conferences):
    conference = Conference(session_factory, "restart")
    conferences.append(conference)
    room = conference.room
    room.start_timer(StartTimer(timer_of(conference, 3), 0.05))
    room.start_timer(StartTimer(timer_of(conference, 3), 0.6))  # replaces the first
    room.start_timer(StartTimer(timer_of(conference, 1), 0.3))

    wait_kicked(conference, 1)
    assert not kicked(conference, 3)  # the 0.05 s timer was replaced
    assert timer_of(conference, 3) in room.timers

    wait_kicked(conference, 3)
    assert kicks(conference, 3) == 1
    # Fired timers are dropped: only member 2's (its arrival's time limit) is left.
    assert set(room.timers) == {timer_of(conference, 2)}


def test_stopping_the_service_stops_pending_timers(session_factory, conferences):
    conference = Conference(session_factory, "stop")
    room = conference.room
    room.start_timer(StartTimer(timer_of(conference, 1), 0.05))
    timers = list(room.timers.values())
    conference.close()

    assert len(timers) == 3  # the arrivals' time limits, member 1's restarted
    assert not any(timer.active for timer in timers)
