"""The Grafana dashboard (compose/grafana/logstrate.json) uses only metrics the engine exports.

Loaded as JSON, checked for the dashboard model's structure, and every PromQL
expression's metric names looked up in a scrape of a real engine's ``/metrics``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from tests.engine.observability.metrics_scrape import scrape
from tests.fixtures.engine import EngineProcess

DASHBOARD = Path(__file__).resolve().parents[3] / "compose" / "grafana" / "logstrate.json"

# Identifiers in PromQL that are not metric names.
_NOT_METRICS = {
    "sum", "max", "min", "avg", "by", "without", "rate", "irate", "increase", "histogram_quantile",
    "label_values", "le", "instance",
}


def _sample_names(families: dict[str, str]) -> set[str]:
    """The series names a query can use, from the families' names and types."""
    names: set[str] = set()
    for name, kind in families.items():
        if kind == "counter":
            names |= {f"{name}_total", f"{name}_created"}
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
        else:
            names.add(name)
    return names


def _metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_ranges)
    return {
        word for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings)
        if word not in _NOT_METRICS
    }


def _expressions(dashboard: dict[str, object]) -> list[str]:
    exprs: list[str] = []
    panels = dashboard["panels"]
    assert isinstance(panels, list)
    for panel in panels:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    templating = dashboard["templating"]
    assert isinstance(templating, dict)
    for variable in templating["list"]:
        query = variable["query"]
        exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_dashboard_is_valid_and_every_expression_names_an_exported_metric(
    engine_factory: Callable[..., EngineProcess],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "logstrate" and dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert {"type", "title", "gridPos", "id"} <= panel.keys(), panel
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"

    engine = engine_factory(partitions=2)
    engine.start_and_wait()
    engine.wait_leading_all()
    families, _ = scrape(engine.admin_url)
    exported = _sample_names(families)

    used: set[str] = set()
    for expr in _expressions(dashboard):
        names = _metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - exported
        assert not unknown, f"{expr!r} names metrics the engine does not export: {sorted(unknown)}"
        used |= names
    # Every metric of issue 16 this dashboard is about is on it.
    for name in (
        "logstrate_invocations_started_total", "logstrate_invocations_completed_total",
        "logstrate_invocations_failed_total", "logstrate_invocation_duration_seconds_bucket",
        "logstrate_invocation_attempt_duration_seconds_bucket", "logstrate_wal_produce_latency_seconds_bucket",
        "logstrate_wal_apply_lag_records", "logstrate_wal_apply_lag_seconds", "logstrate_inbox_depth",
        "logstrate_timers_pending", "logstrate_subscription_lag", "logstrate_subscription_events_ingested_total",
    ):
        assert name in used, name


def test_the_expression_parser_finds_metric_names() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, service) '
            '(rate(logstrate_x_bucket{instance=~"$instance"}[$__rate_interval])))')
    assert _metric_names(expr) == {"logstrate_x_bucket"}
    assert _metric_names("label_values(logstrate_partition_leader, instance)") == {"logstrate_partition_leader"}
