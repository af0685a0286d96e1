"""Each benchmark at a tiny size: it completes, loses nothing, and ends with its line.

These are smoke tests, not measurements: the figures live in ``bench/README.md``.
The benchmarks run as subprocesses, exactly as documented (``python -m bench...``),
so their own monkey-patching and the receiver process are exercised too.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str, timeout: float = 240.0) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    assert lines, done.stderr[-3000:]
    return lines


def test_pipeline_speaker_storm_tiny():
    lines = run_bench(
        "bench.pipeline",
        "--rooms", "3",
        "--members", "3",
        "--events", "150",
        "--rounds", "1",
        "--paced-rate", "100",
        "--paced-seconds", "0.5",
    )
    assert re.fullmatch(r"ratio pipeline/greenswitch-empty: \d+\.\d\d", lines[-1]), lines[-1]
    text = "\n".join(lines)
    assert re.search(r"out of order 0, duplicates 0, bad signatures 0", text), text
    assert re.search(r"^callbacks delivered/s: [\d,]+$", text, re.MULTILINE), text
    assert re.search(r"p99 [\d.]+ ms", text), text
    # The CPU is read once per round, at the commit that completes it.
    cpu = re.search(r"^process CPU per event until committed: (\d+) us", text, re.MULTILINE)
    assert cpu is not None and 0 < int(cpu.group(1)) < 100_000, text


def test_load_small_loses_nothing():
    lines = run_bench("bench.load", "--small", "--big", "6", "--rooms", "2", "--members", "3",
                      "--talks", "60")
    assert lines[-1] == "load: ok", "\n".join(lines)
    text = "\n".join(lines)
    assert "check: events lost 0, callbacks lost 0, out of order 0, duplicates 0" in text, text
    # fsconf runs as its own ``fsconf serve`` process: its figure is its own
    assert re.search(
        r"^RSS per participant: -?[\d.]+ KiB \(fsconf serve process alone", text, re.MULTILINE
    ), text
    assert re.search(r"^FakeSwitch process \(context, not fsconf\): -?[\d.]+ KiB", text,
                     re.MULTILINE), text
    assert re.search(r"^join latency: p50 \d+ ms, p99 \d+ ms", text, re.MULTILINE), text
