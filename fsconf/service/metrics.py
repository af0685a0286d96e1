"""``/metrics``: Prometheus text for fsconf serve.

Theory of operation
-------------------
A private registry (never the global one, so two apps in one test process do
not collide). Counters and the latency histogram are updated as things happen;
gauges (conferences, participants, parked participants, outbox depth and dead
letters, ESL connection per node) are computed at scrape time from a callable
the app gives, so they can never drift from the truth. Nothing here reads or
prints a secret: label values are node names and statuses only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

GaugeSample = tuple[str, float, dict[str, str]]

GAUGE_HELP = {
    "fsconf_conferences_active": "Conferences not completed, held by this process",
    "fsconf_participants": "Participants present in active conferences",
    "fsconf_participants_parked": "Participants waiting outside the room (waitUrl)",
    "fsconf_outbox_callbacks": "Callbacks in the outbox by status (failed = dead letters)",
    "fsconf_esl_connected": "1 when the inbound ESL connection to the node is up",
}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Gauges(Collector):
    def __init__(self, source: Callable[[], Iterable[GaugeSample]]) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for name, value, labels in self._source():
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(
                    name, GAUGE_HELP.get(name, name), labels=sorted(labels)
                )
            family.add_metric([labels[key] for key in sorted(labels)], value)
        yield from families.values()


class _EventCount(Collector):
    """``fsconf_esl_events_total``, read from a plain int at scrape time.

    Counted once per event on the socket reader: prometheus_client's Counter
    takes a lock per ``inc`` (a gevent lock once threading is patched), ~1 µs
    of a storm's ~40 per event; an int needs none (one thread counts)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "fsconf_esl_events",
            "ESL events received from FreeSWITCH",
            value=self._metrics.events_received,
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_received = 0
        self.registry.register(_EventCount(self))
        self.callback_latency = Histogram(
            "fsconf_callback_latency_seconds",
            "From the event that caused a callback to its delivery",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )

    def event(self) -> None:
        self.events_received += 1

    def delivered(self, seconds: float) -> None:
        self.callback_latency.observe(seconds)

    def render(self, gauges: Callable[[], Iterable[GaugeSample]]) -> bytes:
        collector = _Gauges(gauges)
        self.registry.register(collector)
        try:
            return generate_latest(self.registry)
        finally:
            self.registry.unregister(collector)

    def wrap(self, app: WSGIApp, gauges: Callable[[], Iterable[GaugeSample]]) -> WSGIApp:
        """Serve ``GET /metrics`` in front of ``app``."""

        def metrics_app(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != "/metrics":
                return app(environ, start_response)
            body = self.render(gauges)
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]

        return metrics_app
