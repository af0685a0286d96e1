"""RealSwitch: a real FreeSWITCH behind the FakeSwitch control API the scenarios use.

Theory of operation
-------------------
The end-to-end scenarios drive the switch with a handful of calls: place a
call that the dialplan hands to fsconf, hang it up, make it receive DTMF, wait
until something shows. On the FakeSwitch those act on its model. On a real
FreeSWITCH, :class:`RealSwitch` does the same over its own inbound ESL
connection, as an operator would, with the test extensions of
``freeswitch/test/``:

* **A call** is ``originate {origination_uuid=<A>,...,fsconf_voice_url=<url>}
  loopback/fsconf_sock_<port>/default &park``. The loopback A-leg (the uuid we
  chose) is the far end and parks; the B-leg, whose uuid FreeSWITCH chooses,
  runs ``fsconf_sock_<port>`` -> ``socket <host>:<port> async full`` and is
  the inbound call fsconf controls: the CallSid is ``CA`` + the **B-leg's**
  uuid. mod_loopback copies every originate ``{variable}`` onto the B-leg
  (``channel_outgoing_channel`` keeps the originate's variables as
  ``__loopback_vars__``; ``channel_on_init`` sets each of them on the B-leg),
  which is how ``fsconf_voice_url`` reaches fsconf; the captures show it
  (``variable_origination_caller_id_number`` in the B-leg's CHANNEL_DATA). The
  same ``channel_on_init`` sets ``other_loopback_leg_uuid`` on both legs before
  either fires CHANNEL_CREATE, so the B-leg's uuid is read from its
  CHANNEL_CREATE (``uuid_getvar <A> other_loopback_leg_uuid`` as a fallback).
* **A talking caller** (real audio): its A-leg runs the extension
  ``storm_<on>_<off>_<hz>`` (answer + an endless tone cadence) instead of
  ``park``; the B-leg, a conference member, hears that tone as its caller's
  voice, and mod_conference's talk detection does the rest.
* **Hanging up** a call kills its A-leg: the far end hangs up, as a caller would.
* **DTMF the caller presses** is ``uuid_recv_dtmf <B> <digits>`` (B2.3: hangup-on-star
  acts when the member *receives* ``*``).
* **What a real switch cannot give** is the list of commands fsconf sent
  (``FakeSwitch.commands``). The scenarios assert what a switch shows: the
  events recorded here (CHANNEL_EXECUTE ``Application``/``Application-Data``,
  conference::maintenance actions, DTMF), api replies (``conference <sid>
  list``), the callbacks and the rows.

Events are kept in arrival order (one serial dispatch key). Every wait is on
an event arriving, bounded by a timeout sized for a real switch (seconds).

The end of this module also serves a FakeSwitch **as if it were a real
switch** (``python -m fsconf.testing.realswitch fake``): its dialplan answers
the test extensions by pattern, like the XML dialplan, and a talking caller's
tone is turned into talk events. That proves the real-switch suite runs
without a FreeSWITCH at hand.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import secrets
import socket
import sys
import tempfile
import time
import uuid as uuid_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import gevent.event

from fsconf.conference.model import EngineConfig
from fsconf.config import EslNode, Settings, parse_esl_nodes
from fsconf.demo import CustomerApp
from fsconf.esl import commands
from fsconf.esl.frames import Event
from fsconf.esl.inbound import InboundClient
from fsconf.service.app import Fsconf, Tuning
from fsconf.testing.fakeswitch import FakeSwitch

logger = logging.getLogger(__name__)

ENV_ESL = "FSCONF_TEST_ESL"
ENV_OUTBOUND_HOST = "FSCONF_TEST_OUTBOUND_HOST"
ENV_OUTBOUND_PORT = "FSCONF_TEST_OUTBOUND_PORT"
ENV_RECORDINGS_DIR = "FSCONF_TEST_RECORDINGS_DIR"
ENV_TIMEOUT = "FSCONF_TEST_TIMEOUT"
ENV_CONTEXT = "FSCONF_TEST_CONTEXT"

SOCKET_EXTENSION = "fsconf_sock_{port}"
TALKER = "storm_1000_1500_440"
"""The suite's talking caller: 1 s of 440 Hz, 1.5 s of silence (stop-talking
needs more than 800 ms of silence, captures 2.9)."""

OBSERVED = (
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP_COMPLETE",
    "DTMF",
    "BACKGROUND_JOB",
    "HEARTBEAT",
    "CUSTOM conference::maintenance",
)
"""What the adapter's own connection follows (CUSTOM last: captures B1)."""

_EXTENSION = re.compile(r"storm_\d+_\d+_\d+")
_NOT_FOUND = "Command not found"


class SwitchNotReady(AssertionError):
    """The switch under test lacks something the suite needs (says what to install)."""


@dataclass(frozen=True)
class Target:
    """``FSCONF_TEST_ESL`` and its companions, read once."""

    node: EslNode
    outbound_host: str = "127.0.0.1"
    outbound_port: int = 0
    recordings_dir: str = "/tmp"  # noqa: S108 - a directory on the switch, not ours
    timeout: float = 20.0
    context: str = "default"

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Target | None:
        env = dict(os.environ if environ is None else environ)
        value = env.get(ENV_ESL, "").strip()
        if not value:
            return None
        (node,) = parse_esl_nodes(value)[:1]
        return cls(
            node=node,
            outbound_host=env.get(ENV_OUTBOUND_HOST) or "127.0.0.1",
            outbound_port=int(env.get(ENV_OUTBOUND_PORT) or 0),
            recordings_dir=env.get(ENV_RECORDINGS_DIR) or "/tmp",  # noqa: S108
            timeout=float(env.get(ENV_TIMEOUT) or 20.0),
            context=commands.check_profile(env.get(ENV_CONTEXT) or "default"),
        )


@dataclass(frozen=True)
class ListedMember:
    """One line of ``conference <room> list``:
    ``id;channel;uuid;caller name;caller number;flags;vol in;vol out;energy``."""

    member_id: int
    channel_name: str
    uuid: str
    flags: frozenset[str]

    @classmethod
    def parse(cls, line: str) -> ListedMember | None:
        fields = line.split(";")
        if len(fields) < 6 or not fields[0].isdigit():
            return None
        return cls(int(fields[0]), fields[1], fields[2], frozenset(fields[5].split("|")))


@dataclass
class PlacedCall:
    a_leg: str
    b_leg: str | None = None
    job: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)


class RealSwitch:
    """The FakeSwitch control API, done over ESL on a real FreeSWITCH."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        outbound_host: str = "127.0.0.1",
        timeout: float = 20.0,
        context: str = "default",
    ) -> None:
        self.host = host
        self.context = context
        self.port = port
        self._password = password
        self.outbound_host = outbound_host
        self.timeout = timeout
        self.events: list[Event] = []
        self._arrived = gevent.event.Event()
        self._calls: dict[str, PlacedCall] = {}
        """Placed calls by A-leg uuid."""
        self._b_to_a: dict[str, str] = {}
        self._client = InboundClient(
            host,
            port,
            password,
            subscriptions=OBSERVED,
            on_event=self._record,
            # One key: the events stay in arrival order across channels.
            key_for=lambda event: 0,
        )

    @classmethod
    def for_target(cls, target: Target) -> RealSwitch:
        node = target.node
        return cls(
            node.host,
            node.port,
            node.password,
            outbound_host=target.outbound_host,
            timeout=target.timeout,
            context=target.context,
        )

    # --- the FakeSwitch contract's names ------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def password(self) -> str:
        return self._password

    @property
    def commands(self) -> list[object]:
        raise AttributeError(
            "a real FreeSWITCH does not tell which commands fsconf sent: assert on "
            "RealSwitch.events (CHANNEL_EXECUTE, conference::maintenance), api replies, "
            "callbacks and rows instead"
        )

    def start(self) -> RealSwitch:
        self._client.start()
        if not self._client.wait_connected(self.timeout):
            self._client.stop(timeout=1)
            raise SwitchNotReady(
                f"cannot log in to the Event Socket at {self.host}:{self.port} "
                f"({ENV_ESL}=host:port:password; event_socket.conf.xml listen-ip, "
                "listen-port, password and apply-inbound-acl)"
            )
        return self

    def stop(self) -> None:
        self._client.stop(timeout=2)

    # --- requests ----------------------------------------------------------------------

    def api(self, text: str) -> str:
        """The body of ``api <text>`` (``-ERR ...`` is returned, not raised)."""
        return self._client.api(text, check=False, timeout=self.timeout).body

    def bgapi(self, text: str, *, job_uuid: str | None = None) -> Event:
        """``bgapi <text>`` with our Job-UUID; its BACKGROUND_JOB event."""
        event: Event = self._client.bgapi(text, job_uuid=job_uuid).get(timeout=self.timeout)
        return event

    def exists(self, uuid: str) -> bool:
        return self.api(commands.uuid_exists_cmd(uuid)).strip() == "true"

    def getvar(self, uuid: str, name: str) -> str | None:
        value = self.api(commands.uuid_getvar_cmd(uuid, name)).strip()
        return None if value in ("_undef_", "") or value.startswith("-ERR") else value

    # --- calls -------------------------------------------------------------------------

    def place_call(
        self,
        outbound: tuple[str, int] | None = None,
        *,
        caller_id_number: str = "+15550000001",
        caller_id_name: str = "Caller",
        destination: str | None = None,
        variables: dict[str, str] | None = None,
        uuid: str | None = None,
        a_leg_extension: str | None = None,
    ) -> str:
        """A call handed to fsconf's outbound server at ``outbound``; the B-leg's uuid.

        ``uuid`` names the A-leg (FreeSWITCH chooses the B-leg's). The
        destination number is always the test extension ``fsconf_sock_<port>``
        (``destination`` is accepted for the FakeSwitch's signature only).
        ``a_leg_extension`` (e.g. :data:`TALKER`) makes the caller talk.
        """
        if outbound is None:
            raise ValueError("a real switch needs fsconf's outbound address")
        del destination
        host, port = outbound
        a_leg = uuid or str(uuid_module.uuid4())
        call = PlacedCall(a_leg)
        self._calls[a_leg] = call
        merged = {
            "origination_caller_id_number": caller_id_number,
            "origination_caller_id_name": caller_id_name,
            "origination_callee_id_number": caller_id_number,
            "origination_callee_id_name": caller_id_name,
            # Read by freeswitch/test's fsconf_sock_<port> (127.0.0.1 without it).
            "fsconf_test_outbound_host": host if host not in ("0.0.0.0", "") else "127.0.0.1",
            **(variables or {}),
        }
        line = commands.originate_cmd(
            origination_uuid=a_leg,
            endpoint=f"loopback/{SOCKET_EXTENSION.format(port=port)}/{self.context}",
            variables=merged,
            app="park",
        )
        if a_leg_extension is not None:
            if not _EXTENSION.fullmatch(a_leg_extension):
                raise ValueError(f"not a test extension: {a_leg_extension!r}")
            line = line.rsplit(" ", 1)[0] + f" {a_leg_extension} XML {self.context}"
        job = self._client.bgapi(line)
        job.rawlink(lambda result: self._job_done(call, result))
        return self._b_leg_of(call)

    def originate_member(self, room: str, *, extension: str = TALKER) -> str:
        """A member fsconf does not control: ``loopback/<extension> &conference(<room>@fsconf)``.

        The A-leg (uuid returned) is the member; its B-leg runs ``extension``.
        """
        a_leg = str(uuid_module.uuid4())
        self._calls[a_leg] = PlacedCall(a_leg)
        line = commands.originate_cmd(
            origination_uuid=a_leg,
            endpoint=f"loopback/{extension}/{self.context}",
            variables={"origination_caller_id_name": "Intruder",
                       "origination_callee_id_name": "Intruder"},
            app="conference",
            app_arg=f"{commands.check_room(room)}@fsconf",
        )
        self._client.bgapi(line)
        return a_leg

    def a_leg_of(self, uuid: str) -> str:
        return self._b_to_a.get(uuid, uuid)

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        """The far end hangs up: kill the call's A-leg (the uuid itself if not ours)."""
        self.api(commands.uuid_kill_cmd(self.a_leg_of(uuid), cause))

    def receive_dtmf(self, uuid: str, digits: str) -> None:
        """The channel RECEIVES ``digits`` (what the caller pressed)."""
        if not re.fullmatch(r"[0-9*#A-D]{1,32}", digits):
            raise ValueError(f"not DTMF: {digits!r}")
        reply = self.api(f"uuid_recv_dtmf {commands.check_uuid(uuid)} {digits}")
        if not reply.startswith("+OK"):
            raise AssertionError(f"uuid_recv_dtmf {uuid} {digits}: {reply.strip()}")

    def hangup_all(self) -> None:
        """Kill every leg this adapter originated that is still up, and wait for them."""
        alive = [a for a in self._calls if self.exists(a)]
        for a_leg in alive:
            self.api(commands.uuid_kill_cmd(a_leg))
        for a_leg in alive:
            with contextlib.suppress(TimeoutError):
                self.wait_event(_hangup_of(a_leg), what=f"hangup of {a_leg}")

    def _job_done(self, call: PlacedCall, result: gevent.event.AsyncResult) -> None:
        call.job.set(result.value if result.successful() else result.exception)
        self._arrived.set()

    def _b_leg_of(self, call: PlacedCall) -> str:
        a_leg = call.a_leg

        def created(event: Event) -> bool:
            return (
                event.name == "CHANNEL_CREATE"
                and event.get("variable_other_loopback_leg_uuid") == a_leg
                and event.unique_id != a_leg
            )

        deadline = time.monotonic() + self.timeout
        while call.b_leg is None:
            found = self.find(created)
            if found:
                call.b_leg = found[0].unique_id
                break
            if call.job.ready():
                outcome = call.job.value
                body = outcome.body if isinstance(outcome, Event) else str(outcome)
                if not (body or "").startswith("+OK"):
                    raise SwitchNotReady(
                        f"originate {a_leg} failed: {(body or '').strip()} (is the "
                        "fsconf_sock_<port> extension of freeswitch/test/ installed?)"
                    )
            # CHANNEL_CREATE of a B-leg always carries other_loopback_leg_uuid on the
            # captured switch; ask the A-leg too, in case a build fires it earlier.
            value = self.getvar(a_leg, "other_loopback_leg_uuid")
            if value:
                call.b_leg = value
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"no B-leg for the loopback call {a_leg}")
            self._wait_any(0.2)
        assert call.b_leg is not None
        self._b_to_a[call.b_leg] = a_leg
        return call.b_leg

    # --- what the switch showed ----------------------------------------------------------

    def _record(self, event: Event) -> None:
        self.events.append(event)
        self._arrived.set()

    def _wait_any(self, timeout: float) -> None:
        self._arrived.clear()
        self._arrived.wait(timeout)

    def find(self, predicate: Callable[[Event], bool]) -> list[Event]:
        return [event for event in list(self.events) if predicate(event)]

    def wait_event(
        self, predicate: Callable[[Event], bool], *, timeout: float | None = None, what: str = ""
    ) -> Event:
        """The first recorded event (past or future) that satisfies ``predicate``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            found = self.find(predicate)
            if found:
                return found[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no event for {what or predicate}")
            self._wait_any(min(remaining, 1.0))

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Re-check ``predicate`` on every event (and each second); TimeoutError at the end."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("RealSwitch.wait_until timed out")
            self._wait_any(min(remaining, 1.0))

    def executions(self, uuid: str, name: str = "CHANNEL_EXECUTE") -> list[tuple[str, str]]:
        """``(Application, Application-Data)`` of each CHANNEL_EXECUTE on one channel."""
        return [
            (event.get("Application") or "", event.get("Application-Data") or "")
            for event in self.find(lambda e: e.name == name and e.unique_id == uuid)
        ]

    def conference_events(self, action: str, *, uuid: str | None = None) -> list[Event]:
        return self.find(
            lambda e: e.subclass == "conference::maintenance"
            and e.action == action
            and (uuid is None or e.unique_id == uuid)
        )

    def members(self, room: str) -> list[ListedMember]:
        """``conference <room> list``, parsed (empty when the room does not exist)."""
        body = self.api(commands.conference_list_cmd(room))
        return [m for m in map(ListedMember.parse, body.splitlines()) if m is not None]


def _hangup_of(uuid: str) -> Callable[[Event], bool]:
    return lambda event: event.name == "CHANNEL_HANGUP_COMPLETE" and event.unique_id == uuid


# --- preflight -----------------------------------------------------------------------

REQUIRED_MODULES = {
    "mod_conference": "the conference application",
    "mod_loopback": "the loopback/ endpoint the suite places its calls with",
    "mod_commands": "uuid_kill, uuid_getvar, uuid_recv_dtmf, xml_locate",
    "mod_tone_stream": "tone_stream:// of the storm_* talkers",
}

SLOW_ROUTING = 5.0
"""Seconds: a socket extension slower than this is the 10 s warning (DESIGN)."""

INSTALL = (
    "install freeswitch/test/ on the switch "
    "(freeswitch/README.md, 'Running the real-switch suite')"
)


def preflight(switch: RealSwitch, target: Target) -> tuple[list[str], list[str]]:
    """``(problems, notes)``: what the switch lacks (each says what to install), and
    checks that could not be made."""
    from fsconf.ops.doctor import Status, check_conference_config

    problems: list[str] = []
    notes: list[str] = []
    for module, why in REQUIRED_MODULES.items():
        answer = switch.api(f"module_exists {module}").strip()
        if answer != "true":
            problems.append(f"{module} is not loaded ({why}): add it to modules.conf.xml")
    located = switch.api("xml_locate configuration configuration name conference.conf")
    if _NOT_FOUND in located:
        notes.append("xml_locate is not available: the fsconf profile was not checked")
    else:
        for check in check_conference_config(f"{switch.host}:{switch.port}", located):
            if check.status is Status.FAIL:
                problems.append(f"conference.conf: {check.name} {check.detail}: {check.fix}")
    problem = _check_socket_extension(switch, target)
    if problem:
        problems.append(problem)
    problem = _check_talker(switch)
    if problem:
        problems.append(problem)
    return problems, notes


def _check_socket_extension(switch: RealSwitch, target: Target) -> str | None:
    """Originate into ``fsconf_sock_<port>`` and see the switch connect back to us."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((target.outbound_host, 0))
    except OSError as error:
        listener.close()
        return f"cannot listen on {ENV_OUTBOUND_HOST}={target.outbound_host}: {error}"
    listener.listen(1)
    listener.settimeout(target.timeout)
    port = listener.getsockname()[1]
    a_leg = str(uuid_module.uuid4())
    extension = SOCKET_EXTENSION.format(port=port)
    line = commands.originate_cmd(
        origination_uuid=a_leg,
        endpoint=f"loopback/{extension}/{target.context}",
        variables={"fsconf_test_outbound_host": target.outbound_host},
        timeout=int(max(5, target.timeout)),
    )
    job = switch._client.bgapi(line)
    accepting = gevent.spawn(listener.accept)
    sent = time.monotonic()
    try:
        gevent.wait([accepting, job], count=1, timeout=target.timeout)
        if accepting.successful() and accepting.value:
            accepting.value[0].close()
            took = time.monotonic() - sent
            if took > SLOW_ROUTING:
                return (
                    f"the switch took {took:.1f}s to route {extension} to us: with "
                    "default_password=1234 the vanilla default context sleeps 10 s before "
                    "later extensions; include freeswitch/test/dialplan/00_fsconf_test.xml "
                    "first, change default_password in vars.xml, or use a context of its own "
                    f"({ENV_CONTEXT})"
                )
            return None
        if job.ready():
            outcome = job.value
            body = outcome.body if isinstance(outcome, Event) else str(outcome)
            return (
                f"originate loopback/{extension}/{target.context} failed "
                f"({(body or '').strip()}): "
                f"the extension fsconf_sock_<port> is missing: {INSTALL}"
            )
        return (
            f"the switch ran {extension} but never connected to "
            f"{target.outbound_host}:{port}: set {ENV_OUTBOUND_HOST} to an address of "
            "this machine that the switch can reach (and open the port)"
        )
    finally:
        accepting.kill(block=False)
        listener.close()
        switch.api(commands.uuid_kill_cmd(a_leg))


def _check_talker(switch: RealSwitch) -> str | None:
    a_leg = str(uuid_module.uuid4())
    line = commands.originate_cmd(
        origination_uuid=a_leg,
        endpoint=f"loopback/{TALKER}/{switch.context}",
        timeout=int(max(5, switch.timeout)),
    )
    try:
        body = switch.bgapi(line).body or ""
    finally:
        switch.api(commands.uuid_kill_cmd(a_leg))
    if body.startswith("+OK"):
        return None
    return (
        f"originate loopback/{TALKER}/{switch.context} failed ({body.strip()}): "
        f"the storm_<on>_<off>_<hz> talker is missing: {INSTALL}"
    )


# --- fsconf pointed at the switch -------------------------------------------------------


@dataclass
class RealStack:
    """fsconf + the customer application, driving the switch under test."""

    switch: RealSwitch
    app: Fsconf
    customer: CustomerApp
    account_sid: str
    auth_token: str

    def call(self, voice_path: str, *, caller: str, name: str, talking: bool = False) -> str:
        """An inbound call that fsconf runs with ``voice_path``'s TwiML; its CallSid."""
        uuid = self.switch.place_call(
            self.app.outbound.address,
            caller_id_number=caller,
            caller_id_name=name,
            variables={"fsconf_voice_url": self.customer.url(voice_path)},
            a_leg_extension=TALKER if talking else None,
        )
        return "CA" + uuid.replace("-", "")

    def hangup(self, call_sid: str) -> None:
        self.switch.hangup(uuid_of(call_sid))


def uuid_of(call_sid: str) -> str:
    return str(uuid_module.UUID(call_sid[2:]))


@contextlib.contextmanager
def running_real_stack(target: Target, database_url: str | None = None) -> Iterator[RealStack]:
    """fsconf (``Fsconf``, what ``fsconf serve`` runs) on the switch of ``target``."""
    account_sid = "AC" + secrets.token_hex(16)
    auth_token = secrets.token_hex(16)
    node = target.node
    with tempfile.TemporaryDirectory(prefix="fsconf-realswitch-") as workdir:
        switch = RealSwitch.for_target(target).start()
        customer = CustomerApp(auth_token).start()
        settings = Settings(
            database_url=database_url or f"sqlite:///{Path(workdir) / 'real.db'}",
            esl_nodes=(EslNode(node.host, node.port, node.password),),
            outbound_listen=(target.outbound_host, target.outbound_port),
            http_listen=("127.0.0.1", 0),
            public_url="http://127.0.0.1:8080",
            account_sid=account_sid,
            auth_token=auth_token,
            voice_url="",
            voice_method="POST",
            # The switch under test connects back from its ESL host unless told
            # otherwise (a second interface, NAT): FSCONF_OUTBOUND_ALLOW.
            outbound_allow=tuple(
                item.strip()
                for item in os.environ.get("FSCONF_OUTBOUND_ALLOW", "").split(",")
                if item.strip()
            ),
        )
        tuning = Tuning(
            delivery_base_delay=0.2,
            delivery_poll_interval=0.1,
            # The recording is written by FreeSWITCH, on its machine.
            engine=EngineConfig(
                public_url=settings.public_url, recordings_dir=target.recordings_dir
            ),
            # local_stream://moh fails silently on a switch without that stream (B10);
            # the scenarios want a wait that plays for sure.
            call_settings={"default_hold": "silence_stream://-1"},
        )
        app = Fsconf(settings, tuning=tuning)
        app.start()
        try:
            for fsconf_node in app.nodes:
                if not fsconf_node.wait_connected(target.timeout):
                    raise SwitchNotReady(f"fsconf could not connect to {node.name}")
            yield RealStack(switch, app, customer, account_sid, auth_token)
        finally:
            try:
                switch.hangup_all()
            finally:
                app.stop(grace=2)
                customer.stop()
                switch.stop()


# --- a FakeSwitch served as if it were a real switch ------------------------------------


class PatternDialplan(dict[str, object]):
    """The test extensions by pattern, as the XML dialplan matches them."""

    def __init__(self, outbound_host: str = "127.0.0.1") -> None:
        from fsconf.testing.dialplan import Silent, Talk

        super().__init__({"talk": Talk(), "silent": Silent()})
        self.outbound_host = outbound_host

    def _match(self, key: str) -> object | None:
        from fsconf.testing.dialplan import Socket

        socket_match = re.fullmatch(r"fsconf_sock_(\d+)", key)
        if socket_match:
            return Socket((self.outbound_host, int(socket_match.group(1))))
        storm = re.fullmatch(r"storm_(\d+)_(\d+)_(\d+)", key)
        if storm:
            on, off, hz = storm.groups()
            return [("answer", ""), ("playback", f"tone_stream://%({on},{off},{hz});loops=-1")]
        return None

    def get(self, key: str, default: object = None) -> object:
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        found = self._match(key)
        return default if found is None else found

    def __getitem__(self, key: str) -> object:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None


_STORM_TARGET = re.compile(
    r"origination_uuid=(?P<uuid>[0-9a-f-]{36}).*\s(?P<ext>storm_(?P<on>\d+)_(?P<off>\d+)_\d+) XML"
)


def serve_fake_as_real(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    password: str = "ClueCon",  # noqa: S107 - FreeSWITCH's default, loopback only
    time_scale: float = 0.2,
) -> FakeSwitch:
    """A started FakeSwitch with the test extensions, talking callers included.

    A caller whose A-leg runs ``storm_<on>_<off>_<hz>`` (``originate ...
    storm_... XML default``; the FakeSwitch parks it) gets start/stop-talking on
    the cadence while its B-leg is a member: what real audio would cause.
    """
    switch = FakeSwitch(password=password, host=host, port=port, time_scale=time_scale)
    switch.dialplan = PatternDialplan()
    switch.start()
    gevent.spawn(_emulate_talkers, switch)
    return switch


def _emulate_talkers(switch: FakeSwitch) -> None:
    seen = 0
    while True:
        recorded = switch.commands
        for command in recorded[seen:]:
            match = _STORM_TARGET.search(command.command.line)
            if match and " originate " in f" {command.command.line}":
                gevent.spawn(
                    _talk, switch, match.group("uuid"), int(match.group("on")),
                    int(match.group("off")),
                )
        seen = len(recorded)
        gevent.sleep(0.05)


def _talk(switch: FakeSwitch, a_leg: str, on_ms: int, off_ms: int) -> None:
    scale = switch.time_scale
    channels = switch.channels
    while True:
        channel = channels.get(a_leg)
        other = channel.other if channel is not None else None
        if channel is None:
            gevent.sleep(0.05)
            continue
        if channel.hungup or other is None or other.hungup:
            return
        if other.member is None:
            gevent.sleep(0.05)
            continue
        with contextlib.suppress(KeyError):
            switch.start_talking(other.uuid)
        gevent.sleep(on_ms / 1000 * scale)
        with contextlib.suppress(KeyError):
            switch.stop_talking(other.uuid)
        gevent.sleep(off_ms / 1000 * scale)


def main(argv: list[str] | None = None) -> int:
    """``python -m fsconf.testing.realswitch fake [--port N]``: serve until interrupted."""
    from gevent import monkey

    monkey.patch_all()
    parser = argparse.ArgumentParser(prog="python -m fsconf.testing.realswitch")
    sub = parser.add_subparsers(dest="command", required=True)
    fake = sub.add_parser("fake", help="serve a FakeSwitch as if it were a real switch")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8021)
    fake.add_argument("--password", default="ClueCon")
    fake.add_argument("--time-scale", type=float, default=0.2)
    args = parser.parse_args(argv)
    switch = serve_fake_as_real(
        host=args.host, port=args.port, password=args.password, time_scale=args.time_scale
    )
    host, port = switch.address
    print(f"{ENV_ESL}={host}:{port}:{args.password}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        gevent.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
