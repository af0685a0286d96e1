"""Load: one conference of 250 plus 100 conferences of 10, in waves, end to end.

Run from the repository root::

    python -m bench.load            # issue 6 §9 size: 250 + 100 x 10 = 1 250 participants
    python -m bench.load --small    # CI size: 20 + 5 x 4

Theory of operation
-------------------
Three processes, as in production:

* **fsconf** is the real ``fsconf serve`` (``fsconf.entry``), configured only
  by ``FSCONF_*`` variables: SQLite in a temporary directory unless
  ``--database-url``, the FakeSwitch as its one ESL node, ephemeral ports.
  Nothing is asked of it in-process: what the bench knows about fsconf comes
  from the receiver's callbacks, the REST API, the database file (read-only,
  after the fact) and ``/proc/<pid>/status``.
* **The FakeSwitch** (and this driver) run in this process.
* **The customer application** (:class:`bench.pipeline.Receiver`) runs in its
  own, recording every callback with its arrival time (``CLOCK_MONOTONIC``,
  shared with this process) and checking every signature. Every room asks
  for ``start end join leave speaker``.

Steps:

1. **Joins, wave 1**: every participant is placed through the FakeSwitch
   (``place_call``: outbound socket, TwiML fetch, join), ``--wave`` calls at a
   time, each wave waiting for its ``participant-join`` callbacks. Join
   latency is *call placed* -> *participant-join callback received*. The REST
   API must then list every member of the big conference.
2. **Speaker storm**: ``--talks`` talking events over every member, generated
   through the FakeSwitch's control API and written at once (see
   :mod:`bench.pipeline`).
3. **Leaves and joins in waves**: half of every room hangs up (wave by wave),
   then as many new callers join (join latency again), then a second storm.
4. **End**: everybody hangs up; every conference ends.

Checks: every talking event became one speech callback row and one delivered
callback (no event lost); the receiver got every callback the run implies
(joins, starts, speech, leaves, ends); per conference the SequenceNumbers
arrived as 1, 2, 3, ... with no gap, duplicate or reordering; every signature
was right.

Figures: events/s (talking events stored: storm size / (write -> the
``created`` time of the storm's last callback row, which the room's
transaction stamps when it applies the event; wall clocks of one machine),
callbacks/s (delivered: write -> last arrival), join latency p50/p99, event ->
callback p99 (over both storms: a storm is a burst, so this is the queueing
time of a burst), and **RSS per participant of the fsconf process**:
(``VmRSS`` with every participant of wave 1 joined and its callbacks
delivered - ``VmRSS`` after start, before any call) / participants. The same
figure for this process (FakeSwitch + driver, two channels per call) is
printed for context, labelled.

The last line is exactly ``load: ok`` or ``load: FAILED (<reasons>)``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import create_engine, func, select  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pipeline import (  # noqa: E402
    TIMEOUT,
    Receiver,
    Storm,
    SwitchDriver,
    Talkers,
    check_order,
    database_for,
    generate,
    hang_up_everything,
    load_note,
    percentile,
)
from fsconf.store import models  # noqa: E402
from fsconf.testing import FakeSwitch  # noqa: E402

SERVE = [sys.executable, "-c", "from fsconf.entry import main; main()", "serve"]
SPEECH_PARAM = '"StatusCallbackEvent", "participant-speech-'
"""How a speech callback's row reads: ``params`` is JSON of ``[name, value]`` pairs."""


def rss_kib(pid: int | str = "self") -> int:
    """The resident set (``VmRSS``) of process ``pid``, KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServeProcess:
    """``fsconf serve`` as an operator starts it; its output goes to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                [*SERVE, "--log-level", "WARNING"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.pid = self.process.pid

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"fsconf serve exited ({self.process.returncode}):\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)


def serve_environment(database_url: str, switch: FakeSwitch, account_sid: str,
                      auth_token: str) -> tuple[dict[str, str], tuple[str, int], str]:
    """``FSCONF_*`` for the serve process; its outbound address and HTTP base URL."""
    host, port = switch.address
    outbound = ("127.0.0.1", free_port())
    http_port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("FSCONF_")}
    env.update(
        {
            "FSCONF_DATABASE_URL": database_url,
            "FSCONF_ESL": f"{host}:{port}:{switch.password}",
            "FSCONF_OUTBOUND_LISTEN": f"{outbound[0]}:{outbound[1]}",
            "FSCONF_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "FSCONF_ACCOUNT_SID": account_sid,
            "FSCONF_AUTH_TOKEN": auth_token,
        }
    )
    return env, outbound, f"http://127.0.0.1:{http_port}"


@dataclass
class LoadStack(SwitchDriver):
    """The FakeSwitch here, fsconf serve and the receiver in their own processes.

    Shares :class:`bench.pipeline.SwitchDriver` with :class:`bench.pipeline.Stack`, which is
    what :func:`bench.pipeline.generate` and :class:`bench.pipeline.Talkers` use.
    """

    switch: FakeSwitch
    serve: ServeProcess
    receiver: Receiver
    database_url: str
    outbound: tuple[str, int]
    http_base: str
    account_sid: str
    auth_token: str
    rooms: dict[str, list[str]] = field(default_factory=dict)
    """FriendlyName -> the B-leg uuids of its members, in join order."""
    placed: dict[str, float] = field(default_factory=dict)
    """CallSid -> time.monotonic() when the call was placed."""
    room_of: dict[str, str] = field(default_factory=dict)
    """CallSid -> FriendlyName."""
    joined: set[str] = field(default_factory=set)
    """CallSids whose participant-join callback the receiver got."""
    _seen: int = 0

    def call(self, room: str) -> str:
        call_sid = super().call(room)
        self.room_of[call_sid] = room
        return call_sid

    def refresh_joined(self) -> None:
        """Learn the new participant-join callbacks from the receiver."""
        self.receiver.fetch()
        for record in self.receiver.records[self._seen :]:
            if record[3] == "participant-join":
                self.joined.add(record[4])
        self._seen = len(self.receiver.records)

    def wait_joined(self, call_sids: list[str], timeout: float = TIMEOUT) -> None:
        """Until fsconf sent participant-join for each of ``call_sids``."""
        deadline = time.monotonic() + timeout
        while True:
            self.refresh_joined()
            if self.joined.issuperset(call_sids):
                return
            self.serve.check_alive()
            if time.monotonic() > deadline:
                missing = len(set(call_sids) - self.joined)
                raise RuntimeError(f"{missing} participant-join callbacks missing after {timeout}s")
            gevent.sleep(0.02)

    def api_participants(self, conference_sid: str) -> list[dict[str, Any]]:
        """The REST API's list of the conference's participants (every page)."""
        url: str | None = (
            f"{self.http_base}/2010-04-01/Accounts/{self.account_sid}/Conferences/"
            f"{conference_sid}/Participants.json?PageSize=1000"
        )
        found: list[dict[str, Any]] = []
        while url:
            reply = requests.get(url, auth=(self.account_sid, self.auth_token), timeout=30)
            reply.raise_for_status()
            body = reply.json()
            found += body["participants"]
            following = body.get("next_page_uri")
            url = f"{self.http_base}{following}" if following else None
        return found


class Outbox:
    """The database, read from this process, read-only, between phases."""

    def __init__(self, url: str) -> None:
        # A plain engine, not fsconf's (whose transactions begin IMMEDIATE):
        # these reads must never take SQLite's write lock.
        self.engine = create_engine(url, poolclass=NullPool)

    def last_id(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.scalar(select(func.max(models.Callback.id))) or 0)

    def speech_since(self, after_id: int) -> tuple[int, float]:
        """(speech callback rows with id > ``after_id``, epoch seconds of the last one)."""
        table = models.Callback.__table__
        with self.engine.connect() as connection:
            count = connection.scalar(
                select(func.count()).select_from(table)
                .where(table.c.id > after_id)
                .where(table.c.params.contains(SPEECH_PARAM))
            )
            row = connection.execute(
                select(table.c.created).where(table.c.id > after_id)
                .order_by(table.c.id.desc()).limit(1)
            ).first()
        return int(count or 0), (row[0].timestamp() if row is not None else float("nan"))

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def running(database_url: str | None) -> Iterator[LoadStack]:
    """FakeSwitch here + ``fsconf serve`` + the receiver process."""
    account_sid = "AC" + secrets.token_hex(16)
    auth_token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="fsconf-load-") as workdir:
        url, drop = database_for(database_url, workdir)
        switch = FakeSwitch(time_scale=0.05, heartbeat_interval=20.0).start()
        receiver = Receiver(auth_token)
        env, outbound, http_base = serve_environment(url, switch, account_sid, auth_token)
        serve = ServeProcess(env, Path(workdir) / "serve.log")
        stack = LoadStack(switch, serve, receiver, url, outbound, http_base, account_sid,
                          auth_token)
        try:
            wait_ready(stack)
            yield stack
        finally:
            hang_up_everything(switch)
            code = serve.stop()
            if code:
                print(f"fsconf serve exited {code}:\n{serve.tail()}", file=sys.stderr)
            receiver.stop()
            switch.stop()
            drop()


def wait_ready(stack: LoadStack, timeout: float = 60.0) -> None:
    """Until serve answers ``/healthz`` and its inbound ESL connection subscribed."""
    deadline = time.monotonic() + timeout
    while True:
        stack.serve.check_alive()
        try:
            if requests.get(stack.http_base + "/healthz", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"fsconf serve not ready after {timeout}s:\n{stack.serve.tail()}")
        gevent.sleep(0.05)
    stack.switch.wait_until(
        lambda: any(not c.outbound and c.format for c in stack.switch.connections),
        timeout=max(1.0, deadline - time.monotonic()),
    )


def place_wave(stack: LoadStack, rooms: list[str], wave: int) -> list[str]:
    """One call per entry of ``rooms``, ``wave`` at a time; returns the CallSids."""
    call_sids: list[str] = []
    for offset in range(0, len(rooms), wave):
        # A room's first caller waits outside the FreeSWITCH room until the
        # second arrives: a wave is done when fsconf reported all its joins.
        batch = [stack.call(room) for room in rooms[offset : offset + wave]]
        call_sids += batch
        stack.wait_joined(batch)
    uuids = [uuid for members in stack.rooms.values() for uuid in members]
    stack.switch.wait_until(lambda: all(stack.in_room(u) for u in uuids), timeout=TIMEOUT)
    return call_sids


def hangup_wave(stack: LoadStack, uuids: list[str], wave: int) -> None:
    for offset in range(0, len(uuids), wave):
        batch = uuids[offset : offset + wave]
        for uuid in batch:
            stack.switch.hangup(uuid)
        stack.switch.wait_until(
            lambda batch_uuids=batch: not any(stack.in_room(u) for u in batch_uuids),
            timeout=TIMEOUT,
        )
        for uuid in batch:
            for members in stack.rooms.values():
                if uuid in members:
                    members.remove(uuid)


@dataclass
class StormResult:
    talks: int
    stored: int
    """Speech callback rows the storm left in the outbox."""
    store_seconds: float
    delivery_seconds: float
    started: float
    """time.monotonic() when the storm was written."""

    @property
    def talks_per_second(self) -> float:
        return self.talks / self.store_seconds

    @property
    def callbacks_per_second(self) -> float:
        return self.talks / self.delivery_seconds


def run_storm(stack: LoadStack, outbox: Outbox, storm: Storm) -> StormResult:
    """Write the storm at once; wait for its last callback; date its last row."""
    inbound = stack.inbound()
    delivered = stack.receiver.count()
    first_id = outbox.last_id()
    blob = storm.blob
    started_wall, started = time.time(), time.monotonic()
    inbound.send(blob)
    for connection, frames in storm.sessions.items():
        connection.send(b"".join(frames))
    last_delivery = stack.receiver.wait_count(delivered + storm.talks)
    stored, last_created = outbox.speech_since(first_id)
    return StormResult(storm.talks, stored, last_created - started_wall,
                       last_delivery - started, started)


def join_latencies(stack: LoadStack, call_sids: list[str]) -> list[float]:
    wanted = set(call_sids)
    joined = {
        record[4]: record[0]
        for record in stack.receiver.records
        if record[3] == "participant-join" and record[4] in wanted
    }
    missing = wanted - set(joined)
    if missing:
        raise RuntimeError(f"{len(missing)} participant-join callbacks missing")
    return [joined[sid] - stack.placed[sid] for sid in call_sids]


def storm_latencies(stack: LoadStack, since: int, started: float) -> list[float]:
    return [
        record[0] - started
        for record in stack.receiver.records[since:]
        if str(record[3]).startswith("participant-speech")
    ]


def conference_of(stack: LoadStack, room: str) -> str:
    """The ConferenceSid of ``room``, from its members' join callbacks."""
    for record in stack.receiver.records:
        if record[3] == "participant-join" and stack.room_of.get(record[4]) == room:
            return str(record[1])
    raise RuntimeError(f"no participant-join callback for {room}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI size: 20 + 5 x 4")
    parser.add_argument("--big", type=int, help="participants of the big conference (250)")
    parser.add_argument("--rooms", type=int, help="small conferences (100)")
    parser.add_argument("--members", type=int, help="participants per small conference (10)")
    parser.add_argument("--talks", type=int, help="talking events per storm (10 000)")
    parser.add_argument("--wave", type=int, default=50, help="calls placed or hung up at once")
    parser.add_argument("--database-url", default=os.environ.get("FSCONF_BENCH_DATABASE_URL"))
    args = parser.parse_args(argv)
    big = args.big if args.big is not None else (20 if args.small else 250)
    rooms = args.rooms if args.rooms is not None else (5 if args.small else 100)
    members = args.members if args.members is not None else (4 if args.small else 10)
    talks = args.talks if args.talks is not None else (400 if args.small else 10_000)
    logging.basicConfig(level=logging.WARNING)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]

    names = ["big-room"] + [f"room-{index:04d}" for index in range(rooms)]
    size = {"big-room": big, **dict.fromkeys(names[1:], members)}
    participants = sum(size.values())
    print(f"machine: {load_note()}")
    print(f"size: 1 conference of {big} + {rooms} conferences of {members} = "
          f"{participants} participants, {talks} talking events per storm, waves of {args.wave}")

    failures: list[str] = []
    with running(args.database_url) as stack:
        outbox = Outbox(stack.database_url)
        # Idle after start: the first heartbeat and any start-up work are over.
        gevent.sleep(0.5)
        gc.collect()
        serve_before, bench_before = stack.serve.rss_kib(), rss_kib()
        print(f"fsconf serve: pid {stack.serve.pid}, RSS after start {serve_before / 1024:.1f} MiB")

        # 1. joins, round robin so every room fills at the same time
        order = [name for slot in range(max(size.values())) for name in names if slot < size[name]]
        started = time.monotonic()
        first_wave = place_wave(stack, order, args.wave)
        expected = participants + len(names)  # joins + one conference-start per room
        stack.receiver.wait_count(expected)
        join_seconds = time.monotonic() - started
        gc.collect()
        serve_after, bench_after = stack.serve.rss_kib(), rss_kib()
        rss_per = (serve_after - serve_before) * 1024 / participants
        bench_per = (bench_after - bench_before) * 1024 / participants
        print(f"wave 1: {participants} joins in {join_seconds:.1f} s "
              f"({participants / join_seconds:,.0f} joins/s); fsconf RSS "
              f"{serve_before / 1024:.1f} -> {serve_after / 1024:.1f} MiB, FakeSwitch process "
              f"{bench_before / 1024:.1f} -> {bench_after / 1024:.1f} MiB")
        listed = len(stack.api_participants(conference_of(stack, "big-room")))
        if listed != big:
            failures.append(f"REST API lists {listed} participants of the big room, not {big}")

        # 2. storm
        talkers = Talkers(stack)  # type: ignore[arg-type]
        storms: list[StormResult] = []
        storm_lat: list[float] = []
        received_before = len(stack.receiver.records)
        result = run_storm(stack, outbox, generate(stack, talkers, talks))  # type: ignore[arg-type]
        storms.append(result)
        storm_lat += storm_latencies(stack, received_before, result.started)
        expected += talks
        print(f"storm 1: {result.talks_per_second:,.0f} talking events/s stored, "
              f"{result.callbacks_per_second:,.0f} callbacks/s delivered")

        # 3. half of every room leaves, wave by wave; as many new callers join
        leaving = [uuid for name in names for uuid in stack.rooms[name][: size[name] // 2]]
        started = time.monotonic()
        hangup_wave(stack, leaving, args.wave)
        expected += len(leaving)
        stack.receiver.wait_count(expected)
        leave_seconds = time.monotonic() - started
        rejoin = [name for slot in range(max(size.values())) for name in names
                  if slot < size[name] // 2]
        started = time.monotonic()
        second_wave = place_wave(stack, rejoin, args.wave)
        expected += len(rejoin)
        stack.receiver.wait_count(expected)
        rejoin_seconds = time.monotonic() - started
        serve_churned = stack.serve.rss_kib()
        print(f"wave 2: {len(leaving)} leaves in {leave_seconds:.1f} s, "
              f"{len(rejoin)} joins in {rejoin_seconds:.1f} s; fsconf RSS "
              f"{serve_churned / 1024:.1f} MiB")
        talkers = Talkers(stack)  # type: ignore[arg-type]
        received_before = len(stack.receiver.records)
        result = run_storm(stack, outbox, generate(stack, talkers, talks))  # type: ignore[arg-type]
        storms.append(result)
        storm_lat += storm_latencies(stack, received_before, result.started)
        expected += talks
        print(f"storm 2: {result.talks_per_second:,.0f} talking events/s stored, "
              f"{result.callbacks_per_second:,.0f} callbacks/s delivered")

        # 4. everybody leaves; every conference ends
        everyone = [uuid for name in names for uuid in stack.rooms[name]]
        hangup_wave(stack, everyone, args.wave)
        expected += len(everyone) + len(names)
        stack.receiver.wait_count(expected)
        gevent.sleep(0.5)  # anything beyond the expected count would be a duplicate
        stack.receiver.fetch()
        records = stack.receiver.records
        joins = join_latencies(stack, first_wave + second_wave)
        outbox.close()

    kinds = Counter(str(record[3]) for record in records)
    speech = kinds["participant-speech-start"] + kinds["participant-speech-stop"]
    stored = sum(r.stored for r in storms)
    disorder, duplicates = check_order(records)
    per_conference: dict[str, int] = defaultdict(int)
    for record in records:
        per_conference[record[1]] += 1
    if speech != 2 * talks:
        failures.append(f"{speech} speech callbacks for {2 * talks} talking events")
    if stored != 2 * talks:
        failures.append(f"{stored} speech callback rows stored for {2 * talks} talking events")
    if len(records) != expected:
        failures.append(f"{len(records)} callbacks received, {expected} expected")
    if kinds["conference-end"] != len(names) or kinds["conference-start"] != len(names):
        failures.append(f"{kinds['conference-start']} starts / {kinds['conference-end']} ends "
                        f"for {len(names)} conferences")
    if disorder or duplicates:
        failures.append(f"SequenceNumbers: {disorder} out of order, {duplicates} duplicates")
    if stack.receiver.bad_signatures:
        failures.append(f"{stack.receiver.bad_signatures} bad signatures")

    best = max(storms, key=lambda r: r.talks_per_second)
    print(f"callbacks: {len(records)} received for {len(per_conference)} conferences "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    print(f"check: events lost {2 * talks - speech}, callbacks lost {expected - len(records)}, "
          f"out of order {disorder}, duplicates {duplicates}, "
          f"bad signatures {stack.receiver.bad_signatures}")
    print(f"machine after: {load_note()}")
    print(f"events/s: {best.talks_per_second:,.0f} (talking events stored, best storm)")
    delivered = max(r.callbacks_per_second for r in storms)
    print(f"callbacks/s: {delivered:,.0f} (delivered, best storm)")
    print(f"join latency: p50 {percentile(joins, 50) * 1000:.0f} ms, "
          f"p99 {percentile(joins, 99) * 1000:.0f} ms ({len(joins)} joins, waves of {args.wave})")
    print(f"event -> callback p99 (storm bursts): {percentile(storm_lat, 99) * 1000:,.0f} ms")
    print(f"FakeSwitch process (context, not fsconf): {bench_per / 1024:.1f} KiB per participant")
    print(f"RSS per participant: {rss_per / 1024:.1f} KiB (fsconf serve process alone, "
          f"{participants} participants)")
    print("load: ok" if not failures else f"load: FAILED ({'; '.join(failures)})")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
