"""fsconf.service.metrics: what /metrics says, read the way Prometheus reads it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from fsconf.service.metrics import Metrics


def samples(metrics: Metrics) -> dict[str, float]:
    text = metrics.render(lambda: [("fsconf_conferences_active", 2.0, {})]).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_events_received_are_a_counter_that_counts_each_event():
    metrics = Metrics()
    assert samples(metrics)["fsconf_esl_events_total"] == 0.0
    for _ in range(3):
        metrics.event()
    read = samples(metrics)
    assert read["fsconf_esl_events_total"] == 3.0
    assert read["fsconf_conferences_active"] == 2.0
    metrics.event()
    assert samples(metrics)["fsconf_esl_events_total"] == 4.0


def test_the_events_counter_is_typed_counter_with_its_help():
    text = Metrics().render(lambda: []).decode()
    assert "# HELP fsconf_esl_events_total ESL events received from FreeSWITCH" in text
    assert "# TYPE fsconf_esl_events_total counter" in text
