"""Speaker storm: FakeSwitch events through the whole ``fsconf serve`` pipeline.

Run from the repository root::

    python -m bench.pipeline [--rooms 100] [--members 10] [--events 10000]
                             [--rounds 5] [--paced-rate 1000] [--paced-seconds 3]
                             [--database-url URL]

Theory of operation
-------------------
* **The stack** is what ``fsconf serve`` runs (:class:`fsconf.service.app.Fsconf`:
  inbound ESL, conference service and engine, SQL, outbox, delivery worker),
  against the FakeSwitch, on SQLite in a temporary directory unless
  ``--database-url`` names another database (PostgreSQL: an empty schema).
* **The receiver** is the customer application, in a *separate process* (as in
  production, its CPU is not fsconf's): a gevent WSGI server on loopback that
  serves the TwiML of every room, checks each ``X-Twilio-Signature`` and
  records ``(time.monotonic(), ConferenceSid, SequenceNumber, event, CallSid)``
  for every status callback. ``CLOCK_MONOTONIC`` is system-wide, so its times
  compare with this process's.
* **Set-up**: ``--rooms`` x ``--members`` calls placed through the FakeSwitch
  (``place_call``, the outbound socket, the TwiML fetch, the join), all with
  ``statusCallbackEvent="start end join leave speaker"``. The storm starts
  once every join callback is delivered.
* **Storm emission**: the FakeSwitch's own per-event path (``start_talking``:
  its model, header templates and encoder) costs more than fsconf's ingest,
  so the talking events are *generated* through the control API in a tight
  loop while every ESL connection holds its output (the FakeSwitch's own
  ``held`` mechanism, used while a command runs), and then *written at once*:
  the inbound connection's frames as one blob, and anything a call session
  would get as another per session (nothing since fsconf's sessions stopped
  subscribing to ``conference::maintenance``; myevents alone carries no
  CUSTOM events). The clock starts when the blob is queued on the inbound
  connection's writer. The generation rate is printed too (``fakeswitch
  emission``).
* **The collector** is set up as ``fsconf serve`` sets it
  (:func:`fsconf.service.collector.tune`, after ``start``).
* **End to end** (``pipeline events/s``): frames of the inbound stream divided
  by the time from the write to the commit of the transaction that holds the
  last talking event's callback (the conference service calls
  ``notify_callbacks`` right after each such commit; the bench counts those
  calls). Each talking event is one callback, so commits == talking events.
  The stream also carries the ``floor-change`` events the FakeSwitch fires
  when the floor moves; they are in the numerator of both sides.
* **Delivery** (``callbacks delivered/s``): storm callbacks divided by the time
  from the write to the last one's arrival at the receiver.
* **greenswitch, empty loop**: the same inbound blob (byte for byte) replayed by
  :mod:`bench.esl_ingest`'s flood server to ``greenswitch.InboundESL`` with a
  counting handler. Rounds alternate with the pipeline's, while the stack is
  idle; the best round of each is kept.
* **Paced latency**: ``--paced-rate`` talking events/s for ``--paced-seconds``,
  each event's frames written at its own time; latency is receiver arrival
  minus emission, matched per conference in order (callbacks of a conference
  arrive in SequenceNumber order, which the bench checks).

The last line is exactly ``ratio pipeline/greenswitch-empty: <number>``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid as uuid_module  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import parse_qsl  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import requests  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fsconf.config import EslNode, Settings  # noqa: E402
from fsconf.service import collector  # noqa: E402
from fsconf.service.app import Fsconf, Tuning  # noqa: E402
from fsconf.store import native  # noqa: E402
from fsconf.testing import FakeSwitch  # noqa: E402

TIMEOUT = 300.0
SPEAKER_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Dial>'
    '<Conference startConferenceOnEnter="true" waitUrl="" beep="false" '
    'statusCallback="@EVENTS@" statusCallbackEvent="start end join leave speaker">'
    "@ROOM@</Conference></Dial></Response>"
)


# --- the customer application, in its own process ---------------------------------------


def serve_receiver(auth_token: str, template: str) -> None:
    """Child process: TwiML at ``/voice/<room>``, callbacks recorded at ``/events``.

    Prints its port on stdout, then serves until stdin closes.
    """
    from gevent.pywsgi import WSGIServer

    from fsconf.webhooks.signing import compute_signature

    records: list[list[Any]] = []
    bad_signatures = 0
    port_box: list[int] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        nonlocal bad_signatures
        arrived = time.monotonic()
        path = environ.get("PATH_INFO", "/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode() if length else ""
        base = f"http://127.0.0.1:{port_box[0]}"
        if path == "/events":
            params = parse_qsl(body, keep_blank_values=True)
            expected = compute_signature(auth_token, base + path, params)
            if environ.get("HTTP_X_TWILIO_SIGNATURE") != expected:
                bad_signatures += 1
            values = dict(params)
            records.append(
                [
                    arrived,
                    values.get("ConferenceSid"),
                    int(values.get("SequenceNumber") or 0),
                    values.get("StatusCallbackEvent"),
                    values.get("CallSid"),
                ]
            )
            start_response("204 No Content", [])
            return [b""]
        if path.startswith("/voice/"):
            room = path[len("/voice/") :]
            document = template.replace("@EVENTS@", base + "/events").replace("@ROOM@", room)
            start_response("200 OK", [("Content-Type", "text/xml")])
            return [document.encode()]
        if path == "/stats":
            since = int(dict(parse_qsl(environ.get("QUERY_STRING", ""))).get("since", 0))
            data = json.dumps({"bad_signatures": bad_signatures, "records": records[since:]})
            start_response("200 OK", [("Content-Type", "application/json")])
            return [data.encode()]
        if path == "/count":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [str(len(records)).encode()]
        start_response("404 Not Found", [])
        return [b""]

    server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
    server.start()
    port_box.append(server.address[1])
    print(port_box[0], flush=True)
    gevent.get_hub().threadpool.spawn(sys.stdin.read).get()
    server.stop(timeout=1)


class Receiver:
    """The parent's handle on the receiver process."""

    def __init__(self, auth_token: str, template: str = SPEAKER_TWIML) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.pipeline", "--serve-receiver", auth_token, template],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.records: list[list[Any]] = []
        self.bad_signatures = 0

    def voice_url(self, room: str) -> str:
        return f"{self.base}/voice/{room}"

    def count(self) -> int:
        return int(self.http.get(self.base + "/count", timeout=10).text)

    def fetch(self) -> list[list[Any]]:
        """Every record so far (appended to :attr:`records`); returns the new ones."""
        data = self.http.get(
            self.base + "/stats", params={"since": len(self.records)}, timeout=30
        ).json()
        self.bad_signatures = data["bad_signatures"]
        self.records.extend(data["records"])
        return data["records"]

    def fetch_since(self, index: int) -> list[list[Any]]:
        self.fetch()
        return self.records[index:]

    def wait_count(self, count: int, timeout: float = TIMEOUT, poll: float = 0.02) -> float:
        """Block until ``count`` callbacks arrived; the arrival time of the last one."""
        deadline = time.monotonic() + timeout
        while self.count() < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"receiver: {self.count()}/{count} callbacks after {timeout}s")
            gevent.sleep(poll)
        self.fetch()
        return float(self.records[count - 1][0])

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --- the stack ---------------------------------------------------------------------------


class CommitCounter:
    """Wraps the service's ``notify_callbacks``: one call per committed transaction
    that holds callbacks (``Room._store``), timestamped."""

    def __init__(self, inner: Callable[[], None]) -> None:
        self.inner = inner
        self.count = 0
        self.last = 0.0
        self.last_cpu = 0.0
        """time.process_time() at the call that reached the target: CPU is what
        a busy machine cannot steal from a measurement (wall time it can)."""
        self.target = 0
        self.reached = gevent.event.Event()

    def __call__(self) -> None:
        self.count += 1
        self.last = time.monotonic()
        if self.target and self.count >= self.target:
            # Only here: process_time is a system call (no vDSO), and taking
            # it on every commit cost the storm ~1 us per event of its own.
            if not self.reached.is_set():
                self.last_cpu = time.process_time()
            self.reached.set()
        self.inner()

    def wait(self, target: int, timeout: float = TIMEOUT) -> float:
        self.target = target
        if self.count < target:
            self.reached.clear()
            if not self.reached.wait(timeout):
                raise RuntimeError(f"engine committed {self.count}/{target} after {timeout}s")
        else:  # reached before anyone waited: its CPU counts until now
            self.last_cpu = time.process_time()
        return self.last


class SwitchDriver:
    """Calls placed and rooms watched through the FakeSwitch (shared by the benches'
    stacks, which provide ``switch``, ``receiver``, ``outbound``, ``placed`` and ``rooms``)."""

    switch: FakeSwitch
    receiver: Receiver
    outbound: tuple[str, int]
    placed: dict[str, float]
    rooms: dict[str, list[str]]

    def call(self, room: str) -> str:
        placed = time.monotonic()
        # The returned uuid is the B-leg, the channel fsconf controls (CallSid).
        uuid = self.switch.place_call(
            self.outbound,
            caller_id_number=f"+1555{len(self.placed) + 1:07d}",
            caller_id_name="Bench",
            destination="+15550100",
            variables={"fsconf_voice_url": self.receiver.voice_url(room)},
            uuid=str(uuid_module.uuid4()),
        )
        call_sid = "CA" + uuid.replace("-", "")
        self.placed[call_sid] = placed
        self.rooms.setdefault(room, []).append(uuid)
        return call_sid

    def inbound(self) -> Any:
        """The FakeSwitch side of fsconf's inbound ESL connection."""
        found = [c for c in self.switch.connections if not c.outbound and c.format]
        if len(found) != 1:
            raise RuntimeError(f"expected one subscribed inbound connection, got {len(found)}")
        return found[0]

    def in_room(self, uuid: str) -> bool:
        channel = self.switch.channels.get(uuid)
        return channel is not None and channel.member is not None


@dataclass
class Stack(SwitchDriver):
    switch: FakeSwitch
    app: Fsconf
    receiver: Receiver
    commits: CommitCounter
    account_sid: str
    rooms: dict[str, list[str]] = field(default_factory=dict)
    """FriendlyName -> the B-leg uuids of its members, in join order."""
    placed: dict[str, float] = field(default_factory=dict)
    """CallSid -> time.monotonic() when the call was placed."""

    @property
    def outbound(self) -> tuple[str, int]:
        return self.app.outbound.address

    def engine_has(self, call_sid: str) -> bool:
        """fsconf's engine holds the participant (parked or in the room)."""
        return any(
            room.state.find(call_sid) is not None for room in self.app.conferences.rooms.values()
        )

    def conference_sids(self) -> dict[str, str]:
        """FriendlyName -> ConferenceSid, from the engine's rooms."""
        return {room.state.friendly_name: sid for sid, room in self.app.conferences.rooms.items()}


def database_for(url: str | None, workdir: str) -> tuple[str, Callable[[], None]]:
    """The database to run on and how to drop it: SQLite in ``workdir``, or a fresh
    schema on the PostgreSQL server ``url`` names."""
    if not url:
        return f"sqlite:///{Path(workdir) / 'bench.db'}", lambda: None
    if not url.startswith("postgresql"):
        return url, lambda: None
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    schema = f"fsconf_bench_{secrets.token_hex(6)}"
    admin = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()

    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False), drop


@contextmanager
def running(
    database_url: str | None,
    template: str = SPEAKER_TWIML,
    *,
    sqlite_synchronous: str | None = None,
) -> Iterator[Stack]:
    """FakeSwitch + Fsconf (what ``fsconf serve`` runs) + the receiver process."""
    account_sid = "AC" + secrets.token_hex(16)
    auth_token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="fsconf-bench-") as workdir:
        url, drop = database_for(database_url, workdir)
        switch = FakeSwitch(time_scale=0.05, heartbeat_interval=20.0).start()
        receiver = Receiver(auth_token, template)
        host, port = switch.address
        settings = Settings(
            database_url=url,
            esl_nodes=(EslNode(host, port, switch.password),),
            outbound_listen=("127.0.0.1", 0),
            http_listen=("127.0.0.1", 0),
            public_url="http://127.0.0.1:8080",
            account_sid=account_sid,
            auth_token=auth_token,
            voice_url="",
            voice_method="POST",
        )
        # Production delivery settings, except a short poll (notify wakes it anyway).
        app = Fsconf(settings, tuning=Tuning(delivery_poll_interval=0.05))
        if sqlite_synchronous and url.startswith("sqlite"):
            _what_if_synchronous(app, sqlite_synchronous)
        commits = CommitCounter(app.conferences.notify_callbacks)
        app.conferences.notify_callbacks = commits
        app.start()
        setup = collector.tune()  # as ``fsconf serve`` does after start()
        native.tune()
        print(f"garbage collector: thresholds {setup.thresholds}, {setup.frozen_objects} frozen")
        try:
            for node in app.nodes:
                node.wait_connected(10)
            yield Stack(switch, app, receiver, commits, account_sid)
        finally:
            hang_up_everything(switch)
            app.stop(grace=2)
            receiver.stop()
            switch.stop()
            drop()


def hang_up_everything(switch: FakeSwitch) -> None:
    """End of a bench: every call still up is hung up.

    Tearing a thousand calls down at once is not what is measured: its log
    noise (sessions lingering past ``exit``) stays out of the output.
    """
    logging.getLogger("fsconf").setLevel(logging.CRITICAL)
    for channel_uuid in list(switch.channels):
        channel = switch.channels.get(channel_uuid)
        if channel is not None and not channel.hungup:
            switch.hangup(channel_uuid)


def _what_if_synchronous(app: Fsconf, level: str) -> None:
    """What-if, never the default: ``PRAGMA synchronous`` on fsconf's SQLite engine.

    fsconf ships SQLite's default (FULL: an fsync per commit in WAL mode).
    NORMAL syncs the WAL only at checkpoints: a power cut may lose the last
    commits, an application crash loses nothing.
    """
    from sqlalchemy import event

    if level.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise SystemExit(f"--sqlite-synchronous: bad level {level!r}")

    @event.listens_for(app.db, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA synchronous={level.upper()}")
        finally:
            cursor.close()


def join_all(stack: Stack, rooms: int, members: int, *, wave: int = 50) -> float:
    """Place ``rooms`` x ``members`` calls, ``wave`` at a time; wait until every
    member is in its FreeSWITCH room and every join callback is delivered.

    Returns the seconds it took.
    """
    started = time.monotonic()
    names = [f"room-{index:04d}" for index in range(rooms)]
    order = [name for _ in range(members) for name in names]
    expected = stack.receiver.count()
    call_sids: list[str] = []
    for offset in range(0, len(order), wave):
        # A room's first caller waits outside the FreeSWITCH room until the
        # second arrives: a wave is done when the engine holds all its calls.
        batch = [stack.call(name) for name in order[offset : offset + wave]]
        call_sids += batch
        stack.switch.wait_until(
            lambda batch_sids=batch: all(stack.engine_has(sid) for sid in batch_sids),
            timeout=TIMEOUT,
        )
    uuids = [uuid for members_of in stack.rooms.values() for uuid in members_of]
    stack.switch.wait_until(lambda: all(stack.in_room(u) for u in uuids), timeout=TIMEOUT)
    # join + conference-start per room (start on the second join)
    expected += len(order) + rooms * (1 if members >= 2 else 0)
    stack.receiver.wait_count(expected)
    return time.monotonic() - started


# --- the storm ---------------------------------------------------------------------------


@dataclass
class Storm:
    """Frames for ``talks`` talking events, generated with output held."""

    inbound: list[bytes]
    """Every frame the inbound connection would have sent, in order."""
    sessions: dict[Any, list[bytes]]
    """Call session connection -> its own frames."""
    talks: int
    per_event: list[tuple[str, int, int, Any, int, int]]
    """Per talking event: FriendlyName, its inbound frames ``[first:end]``, and its
    call session with that session's frames ``[first:end]``."""
    seconds: float
    """Generation time through the FakeSwitch's control API."""

    @property
    def blob(self) -> bytes:
        return b"".join(self.inbound)


class Talkers:
    """Who talks next: round robin over rooms, then members; start, then stop."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        rooms = list(stack.rooms)
        width = max(len(u) for u in stack.rooms.values())
        self.order = [
            (room, stack.rooms[room][member])
            for member in range(width)
            for room in rooms
            if member < len(stack.rooms[room])
        ]
        self.position = 0
        self.talking: set[str] = set()

    def next(self) -> tuple[str, str, bool]:
        room, uuid = self.order[self.position % len(self.order)]
        self.position += 1
        start = uuid not in self.talking
        if start:
            self.talking.add(uuid)
        else:
            self.talking.discard(uuid)
        return room, uuid, start


def generate(stack: Stack, talkers: Talkers, talks: int) -> Storm:
    """Drive ``talks`` talking events through the FakeSwitch with every connection held.

    Nothing yields in here, so no command or other event interleaves.
    """
    switch = stack.switch
    inbound = stack.inbound()
    connections = [c for c in switch.connections if not c.closed]
    for connection in connections:
        if connection.held is not None:
            raise RuntimeError(f"{connection.name} is busy")
        connection.held = []
    per_event: list[tuple[str, int, int, Any, int, int]] = []
    started = time.perf_counter()
    try:
        for _ in range(talks):
            room, uuid, start = talkers.next()
            session = switch.channels[uuid].connection
            first = len(inbound.held)
            own = len(session.held) if session is not None and session.held is not None else 0
            if start:
                switch.start_talking(uuid)
            else:
                switch.stop_talking(uuid)
            own_end = len(session.held) if session is not None and session.held is not None else 0
            per_event.append((room, first, len(inbound.held), session, own, own_end))
        seconds = time.perf_counter() - started
        sessions = {c: c.held for c in connections if c is not inbound and c.held}
        frames = inbound.held
    finally:
        for connection in connections:
            connection.held = None
    return Storm(frames, sessions, talks, per_event, seconds)


@dataclass
class StormResult:
    frames: int
    talks: int
    commit_seconds: float
    delivery_seconds: float
    started: float = 0.0
    """time.monotonic() when the storm was written."""
    cpu_seconds: float = 0.0
    """This process's CPU time (fsconf and the FakeSwitch, not the receiver)
    from the write to the last commit."""

    @property
    def cpu_per_event_us(self) -> float:
        return self.cpu_seconds / self.frames * 1e6

    @property
    def events_per_second(self) -> float:
        return self.frames / self.commit_seconds

    @property
    def talks_per_second(self) -> float:
        return self.talks / self.commit_seconds

    @property
    def callbacks_per_second(self) -> float:
        return self.talks / self.delivery_seconds


def run_storm(stack: Stack, storm: Storm) -> StormResult:
    """Write the storm, measure until the last commit and the last delivery."""
    inbound = stack.inbound()
    committed = stack.commits.count
    delivered = stack.receiver.count()
    blob = storm.blob
    # Joined before the clock starts, as the inbound blob is: building the
    # bench's own bytes is not the pipeline's work.
    session_blobs = [(c, b"".join(frames)) for c, frames in storm.sessions.items()]
    started = time.monotonic()
    cpu_started = time.process_time()
    inbound.send(blob)
    for connection, session_blob in session_blobs:
        connection.send(session_blob)
    last_commit = stack.commits.wait(committed + storm.talks)
    cpu = stack.commits.last_cpu - cpu_started
    last_delivery = stack.receiver.wait_count(delivered + storm.talks)
    return StormResult(
        len(storm.inbound),
        storm.talks,
        last_commit - started,
        last_delivery - started,
        started,
        cpu,
    )


def run_paced(stack: Stack, talkers: Talkers, rate: float, seconds: float) -> dict[str, float]:
    """``rate`` talking events/s, each written at its time; latency to the receiver."""
    talks = max(1, int(rate * seconds))
    storm = generate(stack, talkers, talks)
    sids = stack.conference_sids()
    inbound = stack.inbound()
    emitted: dict[str, list[float]] = defaultdict(list)
    before = stack.receiver.count()
    before_records = len(stack.receiver.records)
    started = time.monotonic()
    for index, (room, first, end, session, own, own_end) in enumerate(storm.per_event):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        now = time.monotonic()
        inbound.send(b"".join(storm.inbound[first:end]))
        if session is not None and own_end > own:
            session.send(b"".join(storm.sessions[session][own:own_end]))
        emitted[sids[room]].append(now)
    elapsed = time.monotonic() - started
    stack.receiver.wait_count(before + talks)
    records = stack.receiver.fetch_since(before_records)
    latencies = latencies_by_conference(records, emitted)
    return {
        "talks": talks,
        "rate": talks / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


def latencies_by_conference(
    records: list[list[Any]], emitted: dict[str, list[float]]
) -> list[float]:
    """Match the k-th speech callback of a conference to its k-th emitted event."""
    arrived: dict[str, list[list[Any]]] = defaultdict(list)
    for record in records:
        if str(record[3]).startswith("participant-speech"):
            arrived[record[1]].append(record)
    latencies = []
    for sid, times in emitted.items():
        got = sorted(arrived[sid], key=lambda r: r[2])
        if len(got) != len(times):
            raise RuntimeError(f"{sid}: {len(got)} speech callbacks for {len(times)} events")
        latencies.extend(r[0] - t for r, t in zip(got, times, strict=True))
    return latencies


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def check_order(records: list[list[Any]]) -> tuple[int, int]:
    """(gaps or reorders, duplicates) in SequenceNumbers per conference, in arrival order."""
    last: dict[str, int] = {}
    seen: dict[str, set[int]] = defaultdict(set)
    disorder = duplicates = 0
    for record in records:
        sid, sequence = record[1], record[2]
        if sequence in seen[sid]:
            duplicates += 1
            continue
        seen[sid].add(sequence)
        if sequence != last.get(sid, 0) + 1:
            disorder += 1
        last[sid] = sequence
    return disorder, duplicates


def run_greenswitch(blob: bytes, count: int) -> float:
    from bench import esl_ingest

    return esl_ingest.run_greenswitch(blob, count)


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} (5 min), {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--events", type=int, default=10_000, help="talking events per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--paced-rate", type=float, default=1000.0)
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--database-url", default=os.environ.get("FSCONF_BENCH_DATABASE_URL"))
    parser.add_argument(
        "--sqlite-synchronous",
        help="what-if: PRAGMA synchronous for fsconf's SQLite (default: as shipped, FULL)",
    )
    parser.add_argument("--serve-receiver", nargs=2, metavar=("TOKEN", "TEMPLATE"))
    args = parser.parse_args(argv)
    if args.serve_receiver:
        serve_receiver(*args.serve_receiver)
        return 0
    logging.basicConfig(level=logging.WARNING)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]

    print(f"machine: {load_note()}")
    backend = (args.database_url or "sqlite").split(":")[0]
    if args.sqlite_synchronous:
        print(f"WHAT-IF: SQLite PRAGMA synchronous={args.sqlite_synchronous.upper()}")
    with running(args.database_url, sqlite_synchronous=args.sqlite_synchronous) as stack:
        joined = join_all(stack, args.rooms, args.members)
        print(
            f"set-up: {args.rooms} rooms x {args.members} members joined through the "
            f"FakeSwitch in {joined:.1f} s ({backend})"
        )
        talkers = Talkers(stack)
        pipeline: list[StormResult] = []
        greenswitch: list[float] = []
        emission: list[float] = []
        for round_number in range(1, args.rounds + 1):
            storm = generate(stack, talkers, args.events)
            emission.append(storm.talks / storm.seconds)
            blob = storm.blob
            order = ("pipeline", "greenswitch") if round_number % 2 else ("greenswitch", "pipeline")
            for name in order:
                if name == "pipeline":
                    result = run_storm(stack, storm)
                    pipeline.append(result)
                    print(
                        f"round {round_number} pipeline: {result.events_per_second:,.0f} "
                        f"events/s ({result.talks_per_second:,.0f} talking events/s committed), "
                        f"{result.callbacks_per_second:,.0f} callbacks/s delivered; "
                        f"{result.cpu_per_event_us:.0f} us of process CPU per event"
                    )
                else:
                    rate = run_greenswitch(blob, len(storm.inbound))
                    greenswitch.append(rate)
                    print(f"round {round_number} greenswitch-empty: {rate:,.0f} events/s")
        paced = run_paced(stack, talkers, args.paced_rate, args.paced_seconds)
        stack.receiver.fetch()
        disorder, duplicates = check_order(stack.receiver.records)
        bad = stack.receiver.bad_signatures

    best = max(pipeline, key=lambda r: r.events_per_second)
    best_delivery = max(r.callbacks_per_second for r in pipeline)
    frames_per_talk = best.frames / best.talks
    print(f"stream: {best.frames} inbound frames per round ({frames_per_talk:.2f} per talking "
          f"event: start/stop-talking + floor-change)")
    print(f"fakeswitch emission (control API): {max(emission):,.0f} talking events/s")
    print(f"callbacks: {len(stack.receiver.records)} received, out of order {disorder}, "
          f"duplicates {duplicates}, bad signatures {bad}")
    print(
        f"paced {paced['rate']:,.0f} events/s for {paced['talks']:.0f} events: event -> POST "
        f"p50 {paced['p50_ms']:.1f} ms, p99 {paced['p99_ms']:.1f} ms, max {paced['max_ms']:.1f} ms"
    )
    print(f"machine after: {load_note()}")
    print(f"callbacks delivered/s: {best_delivery:,.0f}")
    print(f"process CPU per event until committed: {min(r.cpu_per_event_us for r in pipeline):.0f} "
          f"us (fsconf + FakeSwitch; best round)")
    print(f"pipeline events/s: {best.events_per_second:,.0f} "
          f"({best.talks_per_second:,.0f} talking events/s)")
    print(f"greenswitch-empty events/s: {max(greenswitch):,.0f}")
    print(f"ratio pipeline/greenswitch-empty: {best.events_per_second / max(greenswitch):.2f}")
    return 0 if not (disorder or duplicates or bad) else 1


if __name__ == "__main__":
    sys.exit(main())
