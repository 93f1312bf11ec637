"""Partition metrics computed at scrape time: inbox depth, pending timers, apply lag."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lmdb
from prometheus_client import CollectorRegistry

from engine.ids import InvocationId, InvocationUuid
from engine.observability.partitions import PartitionCollector, PartitionSource
from engine.storage.tables import PartitionTables, TableHandles
from engine.wal.records import TimerKey, TimerKind

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


def test_the_collector_reads_lmdb_and_the_noted_watermarks(tmp_path: Path) -> None:
    # Real LMDB tables, the collector's own arithmetic: behind by 4 records whose last
    # applied one is 2.5 s old; partition 1 has nothing applied and no watermark yet.
    env = lmdb.open(str(tmp_path / "state.lmdb"), map_size=64 << 20, max_dbs=64)
    handles = TableHandles.open(env)
    first = InvocationId(1, InvocationUuid(1))
    with env.begin(write=True) as txn:
        tables = PartitionTables(txn, handles, 0)
        tables.fsm.set_applied_offset(5)
        tables.inbox.push("Obj", "k", 1, first)
        tables.inbox.push("Obj", "k", 2, InvocationId(1, InvocationUuid(2)))
        tables.timers.put(TimerKey(10, first, TimerKind.SLEEP, 3))
        tables.timers.put(TimerKey(20, first, TimerKind.CLEANUP, None))
        tables.timers.put(TimerKey(30, InvocationId(1, InvocationUuid(2)), TimerKind.CLEANUP, None))
        # Another partition's rows are not partition 0's.
        PartitionTables(txn, handles, 1).inbox.push("Obj", "k", 1, first)
    source = PartitionSource(
        env, handles, assigned=lambda: {0, 1}, high_watermark={0: 10}.get, last_applied_ms={0: 500}.get,
    )
    registry = CollectorRegistry()
    registry.register(PartitionCollector(source, clock=lambda: 3.0))
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in registry.collect() for s in f.samples}
    env.close()
    assert got[("logstrate_wal_apply_lag_records", (("partition", "0"),))] == 4
    assert got[("logstrate_wal_apply_lag_seconds", (("partition", "0"),))] == 2.5
    assert ("logstrate_wal_apply_lag_records", (("partition", "1"),)) not in got
    assert got[("logstrate_inbox_depth", (("partition", "0"),))] == 2
    assert got[("logstrate_inbox_depth", (("partition", "1"),))] == 1
    timers = {dict(labels)["kind"]: v for (name, labels), v in got.items()
              if name == "logstrate_timers_pending" and dict(labels)["partition"] == "0"}
    assert timers == {"sleep": 1, "cleanup": 2, "retry": 0, "delayed_invoke": 0}
