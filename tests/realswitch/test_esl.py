"""Real switch: fsconf's Event Socket handshake, subscription and bgapi correlation.

What the design rests on, checked on the switch under test: the subscription
fsconf sends (CUSTOM last, captures B1) really delivers plain events, custom
events and BACKGROUND_JOB; the Job-UUID we choose comes back on the job's event.
"""

from __future__ import annotations

import secrets
import uuid as uuid_module

import gevent.event

from fsconf.esl import commands
from fsconf.esl.frames import CommandReply, Event, Frame
from fsconf.esl.inbound import split_subscriptions
from fsconf.esl.transport import EslConnection
from fsconf.service.app import SUBSCRIPTIONS
from fsconf.testing.realswitch import RealStack


class Collector:
    """The events of one raw ESL connection, with an event-driven wait."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._arrived = gevent.event.Event()

    def __call__(self, frame: Frame) -> None:
        if isinstance(frame, Event):
            self.events.append(frame)
            self._arrived.set()

    def wait_for(self, predicate, timeout: float, what: str) -> Event:
        with gevent.Timeout(timeout, TimeoutError(f"no event: {what}")):
            while True:
                found = [event for event in self.events if predicate(event)]
                if found:
                    return found[0]
                self._arrived.clear()
                self._arrived.wait()


def test_fsconf_subscription_lists_custom_last_and_the_switch_delivers_every_kind(
    real_stack: RealStack,
) -> None:
    switch = real_stack.switch
    plain, subclasses = split_subscriptions(SUBSCRIPTIONS)
    line = commands.event(plain, "plain", subclasses)
    assert line.rstrip(b"\n").endswith(b" CUSTOM conference::maintenance")

    collector = Collector()
    connection = EslConnection.open(
        switch.host, switch.port, connect_timeout=switch.timeout, on_frame=collector
    )
    try:
        connection.authenticate(switch.password, timeout=switch.timeout)
        reply = connection.request(line, timeout=switch.timeout)
        assert isinstance(reply, CommandReply) and reply.ok, reply

        job = str(uuid_module.uuid4())
        reply = connection.request(commands.bgapi("status", job), timeout=switch.timeout)
        assert isinstance(reply, CommandReply) and reply.ok and reply.job_uuid == job
        # B1: with CUSTOM anywhere but last, this never arrives.
        collector.wait_for(
            lambda e: e.name == "BACKGROUND_JOB" and e.job_uuid == job,
            switch.timeout,
            "BACKGROUND_JOB of our job",
        )

        room = "CF" + uuid_module.uuid4().hex
        member = switch.originate_member(room)
        added = collector.wait_for(
            lambda e: e.action == "add-member" and e.get("Conference-Name") == room,
            switch.timeout,
            "add-member (CUSTOM conference::maintenance)",
        )
        assert added.unique_id == member
        switch.hangup(member)
        collector.wait_for(
            lambda e: e.name == "CHANNEL_HANGUP_COMPLETE" and e.unique_id == member,
            switch.timeout,
            "CHANNEL_HANGUP_COMPLETE",
        )
    finally:
        connection.close()

    # fsconf's own connection is up and follows the same switch.
    node = real_stack.app.nodes[0]
    assert node.connected
    cores = {event.core_uuid for event in switch.events if event.core_uuid}
    assert node.core_uuid in cores


def test_bgapi_job_uuid_is_ours_on_the_reply_and_the_event(real_stack: RealStack) -> None:
    switch = real_stack.switch
    node = real_stack.app.nodes[0]
    # A uuid, and (B2.12) any id FreeSWITCH accepts as it is.
    for job in (str(uuid_module.uuid4()), "fsconf-job-" + secrets.token_hex(8)):
        event = node.bgapi("status", job_uuid=job).get(timeout=switch.timeout)
        assert event.job_uuid == job
        assert event.get("Job-Command") == "status"
        assert (event.body or "").startswith("UP ")
        # BACKGROUND_JOB goes to every listener: the adapter's connection saw it too.
        switch.wait_event(
            lambda e, job=job: e.name == "BACKGROUND_JOB" and e.job_uuid == job,
            what=f"BACKGROUND_JOB {job} on a second connection",
        )
