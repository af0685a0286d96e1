"""Load: one conference of 250 plus 100 conferences of 10, in waves, end to end.

Run from the repository root::

    python -m bench.load            # issue 6 §9 size: 250 + 100 x 10 = 1 250 participants
    python -m bench.load --small    # CI size: 20 + 5 x 4

Theory of operation
-------------------
The stack is :mod:`bench.pipeline`'s: the FakeSwitch, the whole ``fsconf
serve`` pipeline (SQLite in a temporary directory unless ``--database-url``),
and the customer application in its own process recording every callback with
its arrival time (``CLOCK_MONOTONIC``, shared with this process). Every room
asks for ``start end join leave speaker``.

1. **Joins, wave 1**: every participant is placed through the FakeSwitch
   (``place_call``: outbound socket, TwiML fetch, join), ``--wave`` calls at a
   time, each wave waiting until its members are in their FreeSWITCH rooms.
   Join latency is *call placed* -> *participant-join callback received*.
2. **Speaker storm**: ``--talks`` talking events over every member, generated
   through the FakeSwitch's control API and written at once (see
   :mod:`bench.pipeline`).
3. **Leaves and joins in waves**: half of every room hangs up (wave by wave),
   then as many new callers join (join latency again), then a second storm.
4. **End**: everybody hangs up; every conference ends.

Checks: every talking event became one speech callback (no event lost); the
receiver got every callback the run implies (joins, starts, speech, leaves,
ends); per conference the SequenceNumbers arrived as 1, 2, 3, ... with no
gap, duplicate or reordering; every signature was right.

Figures: events/s (talking events committed), callbacks/s (delivered), join
latency p50/p99, event -> callback p99 (over both storms: emission of the
storm to each callback's arrival; a storm is a burst, so this is the queueing
time of a burst), and RSS per participant: ``VmRSS`` of this process (which
also holds the FakeSwitch and its two channels per call; the receiver is
another process) after the stack started and after the first wave, divided
by the participants.

The last line is exactly ``load: ok`` or ``load: FAILED (<reasons>)``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pipeline import (  # noqa: E402
    TIMEOUT,
    Stack,
    Talkers,
    check_order,
    generate,
    load_note,
    percentile,
    run_storm,
    running,
)


def rss_kib() -> int:
    """This process's resident set (``VmRSS``), KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def place_wave(stack: Stack, rooms: list[str], wave: int) -> list[str]:
    """One call per entry of ``rooms``, ``wave`` at a time; returns the CallSids."""
    call_sids: list[str] = []
    for offset in range(0, len(rooms), wave):
        # A room's first caller waits outside the FreeSWITCH room until the
        # second arrives: a wave is done when the engine holds all its calls.
        batch = [stack.call(room) for room in rooms[offset : offset + wave]]
        call_sids += batch
        stack.switch.wait_until(
            lambda batch_sids=batch: all(stack.engine_has(sid) for sid in batch_sids),
            timeout=TIMEOUT,
        )
    uuids = [uuid for members in stack.rooms.values() for uuid in members]
    stack.switch.wait_until(lambda: all(stack.in_room(u) for u in uuids), timeout=TIMEOUT)
    return call_sids


def hangup_wave(stack: Stack, uuids: list[str], wave: int) -> None:
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


def join_latencies(stack: Stack, call_sids: list[str]) -> list[float]:
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


def storm_latencies(stack: Stack, since: int, started: float) -> list[float]:
    return [
        record[0] - started
        for record in stack.receiver.records[since:]
        if str(record[3]).startswith("participant-speech")
    ]


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
        gevent.sleep(0.5)
        gc.collect()
        rss_before = rss_kib()

        # 1. joins, round robin so every room fills at the same time
        order = [name for slot in range(max(size.values())) for name in names if slot < size[name]]
        started = time.monotonic()
        first_wave = place_wave(stack, order, args.wave)
        expected = participants + len(names)  # joins + one conference-start per room
        stack.receiver.wait_count(expected)
        join_seconds = time.monotonic() - started
        gc.collect()
        rss_after = rss_kib()
        rss_per = (rss_after - rss_before) * 1024 / participants
        print(f"wave 1: {participants} joins in {join_seconds:.1f} s "
              f"({participants / join_seconds:,.0f} joins/s); RSS {rss_before / 1024:.0f} -> "
              f"{rss_after / 1024:.0f} MiB")

        # 2. storm
        talkers = Talkers(stack)
        storms = []
        storm_lat: list[float] = []
        committed_before = stack.commits.count
        received_before = len(stack.receiver.records)
        storm = generate(stack, talkers, talks)
        result = run_storm(stack, storm)
        storms.append(result)
        storm_lat += storm_latencies(stack, received_before, result.started)
        expected += talks
        print(f"storm 1: {result.talks_per_second:,.0f} talking events/s committed, "
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
        print(f"wave 2: {len(leaving)} leaves in {leave_seconds:.1f} s, "
              f"{len(rejoin)} joins in {rejoin_seconds:.1f} s")
        talkers = Talkers(stack)
        received_before = len(stack.receiver.records)
        storm = generate(stack, talkers, talks)
        result = run_storm(stack, storm)
        storms.append(result)
        storm_lat += storm_latencies(stack, received_before, result.started)
        expected += talks
        print(f"storm 2: {result.talks_per_second:,.0f} talking events/s committed, "
              f"{result.callbacks_per_second:,.0f} callbacks/s delivered")

        # 4. everybody leaves; every conference ends
        everyone = [uuid for name in names for uuid in stack.rooms[name]]
        hangup_wave(stack, everyone, args.wave)
        expected += len(everyone) + len(names)
        stack.receiver.wait_count(expected)
        gevent.sleep(0.5)  # anything beyond the expected count would be a duplicate
        stack.receiver.fetch()
        records = stack.receiver.records
        committed = stack.commits.count - committed_before
        joins = join_latencies(stack, first_wave + second_wave)

    kinds = Counter(str(record[3]) for record in records)
    speech = kinds["participant-speech-start"] + kinds["participant-speech-stop"]
    disorder, duplicates = check_order(records)
    per_conference: dict[str, int] = defaultdict(int)
    for record in records:
        per_conference[record[1]] += 1
    if speech != 2 * talks:
        failures.append(f"{speech} speech callbacks for {2 * talks} talking events")
    if len(records) != expected:
        failures.append(f"{len(records)} callbacks received, {expected} expected")
    if kinds["conference-end"] != len(names) or kinds["conference-start"] != len(names):
        failures.append(f"{kinds['conference-start']} starts / {kinds['conference-end']} ends "
                        f"for {len(names)} conferences")
    if disorder or duplicates:
        failures.append(f"SequenceNumbers: {disorder} out of order, {duplicates} duplicates")
    if stack.receiver.bad_signatures:
        failures.append(f"{stack.receiver.bad_signatures} bad signatures")
    if committed < 2 * talks:
        failures.append(f"only {committed} callback commits for {2 * talks} talking events")

    best = max(storms, key=lambda r: r.talks_per_second)
    print(f"callbacks: {len(records)} received for {len(per_conference)} conferences "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    print(f"check: events lost {2 * talks - speech}, callbacks lost {expected - len(records)}, "
          f"out of order {disorder}, duplicates {duplicates}, "
          f"bad signatures {stack.receiver.bad_signatures}")
    print(f"machine after: {load_note()}")
    print(f"events/s: {best.talks_per_second:,.0f} (talking events committed, best storm)")
    delivered = max(r.callbacks_per_second for r in storms)
    print(f"callbacks/s: {delivered:,.0f} (delivered, best storm)")
    print(f"join latency: p50 {percentile(joins, 50) * 1000:.0f} ms, "
          f"p99 {percentile(joins, 99) * 1000:.0f} ms ({len(joins)} joins, waves of {args.wave})")
    print(f"event -> callback p99 (storm bursts): {percentile(storm_lat, 99) * 1000:,.0f} ms")
    print(f"RSS per participant: {rss_per / 1024:.1f} KiB (fsconf + FakeSwitch in one process)")
    print("load: ok" if not failures else f"load: FAILED ({'; '.join(failures)})")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
