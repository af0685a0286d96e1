"""Per-key serial event dispatch: order within a key, no head-of-line blocking.

Theory of operation
-------------------
The socket reader hands every event to :meth:`KeyedDispatcher.submit`, which
only appends to a queue and returns: the reader never waits for a handler.
Events are grouped by a key (by default the conference for
``conference::maintenance`` events, else the channel's ``Unique-ID``, else one
global key). Each key with work has exactly one worker greenlet, created on
demand and ended as soon as its queue is empty, so:

* events of one key are handled one at a time, in arrival order;
* a slow (or stuck) handler delays only its own key, never another key or the
  reader;
* idle keys cost nothing.

Back-pressure: nothing is ever dropped and ``submit`` never blocks. When the
total backlog crosses ``warn_at`` (and each doubling after it) we log an
error, because a backlog that keeps growing means a handler is stuck.

Inline handling: an owner may also give ``inline``, a handler for events it
can handle without ever blocking (an event that only goes onto a conference's
own queue, say). ``submit`` calls it on the reader itself when the event's key
has nothing queued (so order within the key holds); when it returns False the
event goes to the key's worker as usual. In a speaker storm this spares every
event a queue and a greenlet switch, and every few events a worker's spawn
(keys empty and refill all the time).

Holding: :meth:`hold` makes ``submit`` park events in arrival order without
starting any worker; :meth:`release` submits them. The inbound client holds
while it reconciles state after a reconnect, so no handler sees an event of
the new connection before the reconcile hook has finished.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Hashable

import gevent
import gevent.event

from fsconf.esl.frames import Event

logger = logging.getLogger(__name__)

GLOBAL_KEY = "*global*"
"""The key of events that belong to no conference and no channel."""

CONFERENCE_SUBCLASS = "conference::maintenance"

DEFAULT_WARN_AT = 10_000

EventHandler = Callable[[Event], None]
InlineHandler = Callable[[Event], bool]
"""Handles an event without blocking and returns True, or returns False at once."""
KeyFunction = Callable[[Event], Hashable]


def default_key(event: Event) -> Hashable:
    """The conference for conference events, else the channel, else global."""
    # Event-Name is the first line (a cheap lookup); only CUSTOM events have a
    # subclass, so the others skip that search.
    if event.name == "CUSTOM" and event.subclass == CONFERENCE_SUBCLASS:
        room = event.get("conference_sid") or event.get("Conference-Name")
        if room:
            return room
    return event.unique_id or GLOBAL_KEY


class KeyedDispatcher:
    """Run ``handler(event)`` serially per key, in parallel across keys."""

    def __init__(
        self,
        handler: EventHandler,
        *,
        key_for: KeyFunction = default_key,
        warn_at: int = DEFAULT_WARN_AT,
        label: str = "esl",
        inline: InlineHandler | None = None,
    ) -> None:
        self._handler = handler
        self._inline = inline
        self._key_for = key_for
        self._warn_at = warn_at
        self._next_warning = warn_at
        self._label = label
        self._queues: dict[Hashable, deque[Event]] = {}
        self._workers: dict[Hashable, gevent.Greenlet] = {}
        self._held: list[Event] | None = None
        self._backlog = 0
        self._idle = gevent.event.Event()
        self._idle.set()
        self._stopped = False

    @property
    def backlog(self) -> int:
        """Events submitted and not yet handled (held ones not included)."""
        return self._backlog

    @property
    def held(self) -> int:
        return len(self._held) if self._held is not None else 0

    def submit(self, event: Event) -> None:
        """Queue ``event`` for its key; never blocks, never drops."""
        if self._stopped:
            logger.warning("%s: dispatcher stopped, ignoring %s", self._label, event.name)
            return
        if self._held is not None:
            self._held.append(event)
            return
        try:
            key = self._key_for(event)
        except Exception:  # a buggy key function must not kill the reader
            logger.exception(
                "%s: key_for failed on %s; using the global key", self._label, event.name
            )
            key = GLOBAL_KEY
        queue = self._queues.get(key)
        if queue is None:
            if self._inline is not None and self._handled_inline(self._inline, key, event):
                return
            queue = self._queues[key] = deque()
            # A new queue has no worker yet (a worker removes its queue when
            # it ends, with no yield in between).
            self._workers[key] = gevent.spawn(self._drain, key)
        queue.append(event)
        if not self._backlog:
            self._idle.clear()
        self._backlog += 1
        if self._backlog >= self._next_warning:
            self._check_backlog()

    def hold(self) -> None:
        """Park new events (in order) until :meth:`release`."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Submit the parked events in arrival order and stop holding."""
        held, self._held = self._held, None
        for event in held or ():
            self.submit(event)

    def discard_held(self) -> int:
        """Forget the parked events (their connection failed before reconcile)."""
        count = self.held
        if count:
            logger.warning(
                "%s: discarding %d events received before a failed reconcile; "
                "the next reconcile replaces them",
                self._label,
                count,
            )
        self._held = None
        return count

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted event has been handled."""
        return bool(self._idle.wait(timeout))

    def stop(self) -> None:
        """Drop the backlog and end every worker (stuck handlers included)."""
        self._stopped = True
        if self._backlog:
            logger.warning("%s: stopping with %d events unhandled", self._label, self._backlog)
        workers = list(self._workers.values())
        self._queues.clear()
        self._workers.clear()
        self._held = None
        self._backlog = 0
        self._idle.set()
        gevent.killall(workers, block=False)

    def _drain(self, key: Hashable) -> None:
        queue = self._queues[key]
        try:
            while queue:
                event = queue.popleft()
                self._backlog -= 1
                self._run_handler(key, event)
        finally:
            # No yield between the last popleft and here, so a submit for this
            # key either landed in the queue above or will spawn a new worker.
            if self._workers.get(key) is gevent.getcurrent():
                del self._workers[key]
                del self._queues[key]
            if not self._backlog:
                self._next_warning = self._warn_at
                self._idle.set()

    def _handled_inline(self, inline: InlineHandler, key: Hashable, event: Event) -> bool:
        try:
            return bool(inline(event))
        except Exception:  # as in a worker: logged, and the reader goes on
            logger.exception(
                "%s: inline handler failed on %s (key %s)", self._label, event.name, key
            )
            return True

    def _run_handler(self, key: Hashable, event: Event) -> None:
        try:
            self._handler(event)
        except Exception:  # one bad event must not stop its key's queue
            logger.exception("%s: handler failed on %s (key %s)", self._label, event.name, key)

    def _check_backlog(self) -> None:
        if self._backlog < self._next_warning:
            return
        busiest = max(self._queues.items(), key=lambda item: len(item[1]))
        logger.error(
            "%s: %d events waiting for handlers (busiest key %s with %d); "
            "a handler is slow or stuck, nothing is dropped",
            self._label,
            self._backlog,
            busiest[0],
            len(busiest[1]),
        )
        self._next_warning *= 2
