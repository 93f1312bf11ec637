"""The lock-free counters and histograms export what Prometheus expects."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.observability.loop_metrics import LoopCounter, LoopHistogram


def test_counter_and_histogram_are_exported_in_the_text_format() -> None:
    counter = LoopCounter("logstrate_test_things", "Things.", ["kind"])
    histogram = LoopHistogram("logstrate_test_seconds", "Seconds.", ["kind"], buckets=(0.01, 0.1, 1.0))
    try:
        counter.labels("a").inc()
        counter.labels("a").inc(2)
        child = histogram.labels("a")
        for v in (0.005, 0.01, 0.05, 0.5, 7.0):
            child.observe(v)
        families = {f.name: f for f in text_string_to_metric_families(generate_latest(REGISTRY).decode())}
        things = families["logstrate_test_things"]
        assert things.type == "counter"
        assert [(s.name, s.labels, s.value) for s in things.samples] == [("logstrate_test_things_total", {"kind": "a"}, 3.0)]
        seconds = families["logstrate_test_seconds"]
        assert seconds.type == "histogram"
        got = {(s.name, s.labels.get("le")): s.value for s in seconds.samples}
        # le=0.01 includes 0.01 itself; buckets are cumulative.
        assert got[("logstrate_test_seconds_bucket", "0.01")] == 2
        assert got[("logstrate_test_seconds_bucket", "0.1")] == 3
        assert got[("logstrate_test_seconds_bucket", "1.0")] == 4
        assert got[("logstrate_test_seconds_bucket", "+Inf")] == 5
        assert got[("logstrate_test_seconds_count", None)] == 5
        assert abs(got[("logstrate_test_seconds_sum", None)] - 7.565) < 1e-9
    finally:
        REGISTRY.unregister(counter)
        REGISTRY.unregister(histogram)


def test_labels_must_match() -> None:
    counter = LoopCounter("logstrate_test_labels", "Labels.", ["a", "b"])
    try:
        try:
            counter.labels("x")
        except ValueError as exc:
            assert "takes labels" in str(exc)
        else:
            raise AssertionError("one label value for two label names was accepted")
    finally:
        REGISTRY.unregister(counter)
