"""Exactly-once, in-order ingestion: 10,000 events over 200 keys on a 4-partition topic.

A virtual object appends each event's per-key sequence number to its state; after each
run every key's list must be exactly 0..49 — no gap (lost event), no duplicate (event
applied twice), no reordering — while the engine is killed with -9, while the
subscription is paused and resumed, deleted and recreated with the same consumer
group, and (5,000 events over 100 keys) while one of two engine processes dies and
the other takes over.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import SUBSCRIPTION_APP, OrderingRun, add_cluster, start_engine, subscribe

SINK = "service://SeqLog/append"
DEADLINE_S = 600.0


@pytest.mark.timeout(900)
def test_in_order_exactly_once_through_three_kill_9(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str, tmp_path: Path,
) -> None:
    data_dir = tmp_path / "engine-data"
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP), data_dir=data_dir)
    run = OrderingRun(kafka, f"{topic_prefix}.seq")
    run.create_topic(4)
    add_cluster(engine, kafka)
    subscribe(engine, run.topic, SINK)
    run.publish()

    for kill, threshold in enumerate((1_500, 4_500, 7_500), start=1):
        wait_until(lambda: run.applied(engine) >= threshold, DEADLINE_S, f"{threshold} events before kill {kill}",
                   interval=0.3)
        engine.kill()
        engine = engine_factory(data_dir=data_dir, ingress_port=engine.ingress_port, admin_port=engine.admin_port)
        engine.start_and_wait()

    wait_until(lambda: run.applied(engine) >= run.events, DEADLINE_S, "all events after the kills", interval=0.5)
    run.assert_exact(engine)
    assert engine.terminate() == 0


@pytest.mark.timeout(900)
def test_in_order_exactly_once_through_pause_resume_delete_recreate(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP))
    admin = engine.admin_url
    run = OrderingRun(kafka, f"{topic_prefix}.seq")
    run.create_topic(4)
    add_cluster(engine, kafka)
    group = {"group.id": f"{topic_prefix}.group"}
    sub_id = subscribe(engine, run.topic, SINK, group)
    run.publish(0, 5_000)

    wait_until(lambda: run.applied(engine) >= 1_500, DEADLINE_S, "1500 events before the pause", interval=0.3)
    assert http("PATCH", f"{admin}/subscriptions/{sub_id}/pause")[1]["paused"] is True
    run.publish(5_000, 7_000)
    # Paused: what was ingested before the pause finishes, then nothing moves.
    settled = wait_until(_settles(run, engine), DEADLINE_S, "processing to settle while paused", interval=1.0)
    assert settled < 7_000
    status, body = http("GET", f"{admin}/subscriptions/{sub_id}")
    committed = sum(p["committed"] or 0 for p in body["status"]["partitions"])
    assert committed == settled, (committed, settled)  # every committed event was applied, no more
    assert http("PATCH", f"{admin}/subscriptions/{sub_id}/resume")[1]["paused"] is False

    wait_until(lambda: run.applied(engine) >= 6_000, DEADLINE_S, "6000 events after the resume", interval=0.3)
    assert http("DELETE", f"{admin}/subscriptions/{sub_id}")[0] == 202
    run.publish(7_000, run.events)
    subscribe(engine, run.topic, SINK, group)  # same group: continues from its committed position

    wait_until(lambda: run.applied(engine) >= run.events, DEADLINE_S, "all events after the recreate", interval=0.5)
    run.assert_exact(engine)


@pytest.mark.timeout(900)
def test_two_engines_share_partitions_and_one_takes_over(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    endpoint = service_endpoints.get(SUBSCRIPTION_APP)
    first = start_engine(engine_factory, endpoint)
    second = start_engine(engine_factory)
    # Smaller than the single-engine runs: the survivor replays the dead engine's WAL
    # partitions before it leads them, and two engines share this machine's cores.
    run = OrderingRun(kafka, f"{topic_prefix}.seq", keys=100, events=5_000)
    run.create_topic(4)
    add_cluster(first, kafka)
    sub_id = subscribe(first, run.topic, SINK)

    def consumers_on_both() -> bool:
        owned = [http("GET", f"{e.admin_url}/subscriptions/{sub_id}")[1]["status"].get("this_process", {})
                 for e in (first, second)]
        return all(o.get("assigned") for o in owned)

    wait_until(consumers_on_both, 120, "both engines to own source partitions", interval=0.5)
    run.publish()

    wait_until(lambda: sum(map(len, run.lists(first, second).values())) >= 1_500, DEADLINE_S, "1500 events on the two engines", interval=0.5)
    first.kill()
    wait_until(lambda: run.applied(second) >= run.events, DEADLINE_S, "the survivor to apply all events", interval=0.5)
    run.assert_exact(second)


def _settles(run: OrderingRun, engine: EngineProcess) -> Callable[[], int | None]:
    """A condition that holds once two reads a second apart agree (returns that count)."""
    previous: list[int] = []

    def check() -> int | None:
        current = run.applied(engine)
        stable = bool(previous) and previous[-1] == current
        previous.append(current)
        return current if stable else None

    return check
