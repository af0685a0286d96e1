"""``bench.delivery`` at a tiny size: it completes, checks everything, ends with its line.

A smoke test, not a measurement (the figures live in ``bench/README.md``).  It
runs as documented (``python -m bench.delivery``), so the receiver process and
its signature check are exercised too.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_delivery_bench_tiny() -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.delivery",
            "--callbacks", "150", "--conferences", "5", "--rounds", "1",
            "--paced-rate", "100", "--paced-seconds", "0.5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    lines = done.stdout.strip().splitlines()
    text = "\n".join(lines)
    assert re.fullmatch(r"ratio delivery/target: \d+\.\d\d", lines[-1]), text
    assert "checked 200 callbacks: 0 out of order, 0 duplicates, 0 bad signatures" in text, text
    assert re.search(r"backlog of 150 over 5 conferences: [\d,]+ callbacks/s", text), text
    assert re.search(r"commit -> POST p50 [\d.]+ ms, p99 [\d.]+ ms", text), text
