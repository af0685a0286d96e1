"""The garbage collector as ``fsconf serve`` sets it up.

Why: CPython's cyclic collector runs a young collection every 700 net
allocations of container objects, and a full one when the objects promoted
since the last full one reach a quarter of the old ones. A talking storm
allocates a few dozen short-lived objects per event (frames, header views,
engine states, callback rows), so at the default threshold the young
collections run every few events and the in-flight ones get promoted; the
full collections that follow walk the whole heap, including everything
imported at start-up (SQLAlchemy's mappers, lxml, gevent, the REST API),
which never becomes garbage. Measured with ``python -m bench.pipeline`` on
100 rooms x 10 members: a quarter of the storm's time went to the collector,
one full collection alone took 0.2 s (bench/README.md has the figures).

What: start-up's survivors go to the permanent generation (``gc.freeze``;
they are never scanned again, and they are process-lifetime objects), and a
young collection waits for :data:`YOUNG_THRESHOLD` allocations. Garbage
without cycles is still freed at once by reference counting; only cyclic
garbage waits a little longer, bounded by the threshold.

Why that threshold: the count is *net* (an object freed gives its allocation
back), and a young collection walks every live young object. A burst that
fsconf works through (a speaker storm; the backlog after a stall) keeps its
events, engine steps and outbox rows alive until they are committed: about
ten tracked objects per event, so a 10 000-event burst holds ~100 000. At a
threshold of 50 000 that backlog was walked twice or three times per burst,
26-220 ms of every 0.7 s burst (measured with ``python -m bench.pipeline``,
bench/README.md); at 250 000 a burst of that size is freed before any young
collection starts. The cost: cyclic garbage may wait longer (RSS per
participant 42.4 -> 45.5 KiB in ``python -m bench.load``), and a young
collection, when one runs, walks about the threshold's number of live objects:
130-180 ms here, against 15-60 ms at 50 000, a fifth as often. Nothing fsconf
does is timed that finely (ESL heartbeats are seconds; FreeSWITCH mixes the
audio), and the paced bench's p99 stayed under its 50 ms target on SQLite.

Process-wide, so only ``fsconf serve`` (and the benchmarks that measure what
it runs) call :func:`tune`: a library must not change its host's collector.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: Allocations between young collections (CPython's default is 700).
YOUNG_THRESHOLD = 250_000


@dataclass(frozen=True)
class CollectorSetup:
    frozen_objects: int
    thresholds: tuple[int, int, int]


def tune(young_threshold: int = YOUNG_THRESHOLD) -> CollectorSetup:
    """Freeze what start-up left alive and raise the young threshold."""
    if young_threshold < 1:
        raise ValueError(f"young_threshold must be positive, not {young_threshold}")
    # Collect first: cyclic garbage frozen now could never be freed.
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
    setup = CollectorSetup(gc.get_freeze_count(), gc.get_threshold())
    logger.info(
        "garbage collector: %d start-up objects frozen, thresholds %s",
        setup.frozen_objects,
        setup.thresholds,
    )
    return setup
