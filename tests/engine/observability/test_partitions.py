"""Partition metrics computed at scrape time: inbox depth, pending timers, apply lag."""

from __future__ import annotations

from collections.abc import Callable

from tests.engine.observability.metrics_scrape import scrape, total, value
from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http

APP = "tests.fixtures.official_sdk_tracing:app"


def test_inbox_depth_timers_and_apply_lag(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints
) -> None:
    engine = engine_factory(partitions=2)
    engine.start_and_wait()
    engine.wait_leading_all()
    families, samples = scrape(engine.admin_url)
    for name in ("logstrate_wal_apply_lag_records", "logstrate_wal_apply_lag_seconds",
                 "logstrate_inbox_depth", "logstrate_timers_pending"):
        assert families[name] == "gauge", name
    assert total(samples, "logstrate_inbox_depth") == 0
    assert total(samples, "logstrate_timers_pending") == 0

    register(engine, service_endpoints.get(APP))
    ingress = engine.ingress_url
    # block sleeps an hour holding key k1: the next two calls to k1 wait in its inbox.
    assert http("POST", f"{ingress}/TraceBack/k1/block/send", "x")[0] == 202
    wait_until(lambda: total(scrape(engine.admin_url)[1], "logstrate_timers_pending", kind="sleep") == 1, 30,
               "the sleep timer")
    for text in ("a", "b"):
        assert http("POST", f"{ingress}/TraceBack/k1/echo/send", text)[0] == 202
    assert http("POST", f"{ingress}/TraceFront/hello/send?delay=1h", "later")[0] == 202

    def expected() -> bool:
        _, now = scrape(engine.admin_url)
        return (
            total(now, "logstrate_inbox_depth") == 2
            and total(now, "logstrate_timers_pending", kind="sleep") == 1
            and total(now, "logstrate_timers_pending", kind="delayed_invoke") == 1
            and total(now, "logstrate_timers_pending", kind="retry") == 0
        )

    wait_until(expected, 30, "inbox depth 2, one sleep and one delayed-invoke timer")

    def caught_up() -> bool:
        _, now = scrape(engine.admin_url)
        return all(
            value(now, "logstrate_wal_apply_lag_records", partition=str(p)) == 0
            and value(now, "logstrate_wal_apply_lag_seconds", partition=str(p)) == 0
            for p in range(2)
        )

    # Every partition reports its lag (the consumer notes watermarks once a second).
    wait_until(caught_up, 30, "both partitions caught up, with lag 0")
