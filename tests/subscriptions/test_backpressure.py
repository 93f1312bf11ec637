"""Backpressure: consumers pause while the engine's WAL producer is saturated, lose nothing.

Before each fetch the consumer reads ``WalPort.queued()``: the length of the engine's one
WAL producer queue (``len(Producer)`` in ``engine/wal/appender.py``), i.e. WAL records of
*every* writer in the process handed to librdkafka and not yet acknowledged (or whose
delivery report is not served yet). A consumer's own batch is acknowledged before its
next check (append, await, commit, loop), so a check sees the other writers' records in
flight — above all the running invocations: each ``SeqLog/append`` attempt hands over
its journal (``JournalAppend`` for the state change and the output, then
``InvocationEnded``, ``engine/invoker/session.py``), batched with the other attempts'
records of the same loop turn (``RecordBatch``; ``queued`` counts the records inside a
batch one by one), and one invocation per object key runs at a time. The integration test
backlogs three topics with 100 keys each, so about 300 invocations are running and
appending at once, and sets the pause level to 10 queued records (resume at 2): the
consumers' checks between batches and while idle find the queue above it again and again
(a hundred pauses on a 2-core machine). It waits for pauses before publishing the second
half of the events, so consumers that paused and resumed must still fetch from the right
positions, and fails if no pause ever happens; then every key's list must be exactly its
publish order, each event once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.config import EngineConfig, load_config
from engine.errors import ConfigError
from subscriptions.consumer import Backpressure
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import SUBSCRIPTION_APP, OrderingRun, add_cluster, start_engine, subscribe

PAUSE_AT = 10
RESUME_AT = 2
PAUSES_METRIC = "logstrate_subscription_backpressure_pauses"

# --- the threshold logic (pure) ---------------------------------------------------------------


def test_pause_and_resume_levels_form_a_hysteresis_band() -> None:
    levels = Backpressure(pause_at=100, resume_at=20)
    assert not levels.should_pause(99) and levels.should_pause(100) and levels.should_pause(5_000)
    assert levels.may_resume(20) and levels.may_resume(0) and not levels.may_resume(21)
    # Between the levels neither happens: a running consumer keeps running and a paused
    # one stays paused, so a queue hovering around one level does not flap.
    assert not levels.should_pause(60) and not levels.may_resume(60)


def test_walk_through_a_queue_that_rises_and_drains() -> None:
    levels = Backpressure(pause_at=100, resume_at=20)
    paused, pauses = False, 0
    for queued in (0, 50, 99, 100, 80, 40, 21, 20, 60, 99, 150, 10, 0):
        if not paused and levels.should_pause(queued):
            paused, pauses = True, pauses + 1
        elif paused and levels.may_resume(queued):
            paused = False
    assert (paused, pauses) == (False, 2)


@pytest.mark.parametrize(("pause_at", "resume_at"), [(10, 10), (10, 11), (10, 0), (0, -1)])
def test_backpressure_refuses_levels_that_could_never_resume(pause_at: int, resume_at: int) -> None:
    with pytest.raises(ValueError, match="0 < resume_at < pause_at"):
        Backpressure(pause_at=pause_at, resume_at=resume_at)


def test_config_defaults_are_the_consumers_defaults() -> None:
    config = EngineConfig()
    assert (config.subscription_pause_at_queued, config.subscription_resume_at_queued) == (20_000, 5_000)
    assert Backpressure() == Backpressure(config.subscription_pause_at_queued, config.subscription_resume_at_queued)


def test_config_levels_from_toml_env_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "logstrate.toml"
    toml.write_text("subscription_pause_at_queued = 800\nsubscription_resume_at_queued = 100\n")
    config = load_config(config_file=toml, env={})
    assert (config.subscription_pause_at_queued, config.subscription_resume_at_queued) == (800, 100)
    env = {"LOGSTRATE_SUBSCRIPTION_PAUSE_AT_QUEUED": "600"}
    config = load_config(config_file=toml, env=env)
    assert (config.subscription_pause_at_queued, config.subscription_resume_at_queued) == (600, 100)
    config = load_config(config_file=toml, env=env, overrides={"subscription_resume_at_queued": 300})
    assert (config.subscription_pause_at_queued, config.subscription_resume_at_queued) == (600, 300)


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"LOGSTRATE_SUBSCRIPTION_RESUME_AT_QUEUED": "20000"}, r"subscription_resume_at_queued \(20000\) must be below"),
        ({"LOGSTRATE_SUBSCRIPTION_PAUSE_AT_QUEUED": "100"}, r"subscription_resume_at_queued \(5000\) must be below"),
        ({"LOGSTRATE_SUBSCRIPTION_PAUSE_AT_QUEUED": "10", "LOGSTRATE_SUBSCRIPTION_RESUME_AT_QUEUED": "0"},
         "must be at least 1"),
        ({"LOGSTRATE_SUBSCRIPTION_PAUSE_AT_QUEUED": "many"}, "subscription_pause_at_queued must be a int"),
    ],
)
def test_config_refuses_bad_levels(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_config(env=env)


# --- a real engine driven past the pause level ------------------------------------------------


@dataclass
class _Run(OrderingRun):
    """An ordering run whose keys carry a prefix, so several runs share ``SeqLog``."""

    prefix: str = "a"

    def key(self, index: int) -> str:
        return f"{self.prefix}-{index:03d}"


def _pauses(engine: EngineProcess) -> dict[str, float]:
    """``logstrate_subscription_backpressure_pauses_total`` per subscription, from /metrics."""
    status, text = http("GET", f"{engine.admin_url}/metrics")
    assert status == 200
    pauses: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == PAUSES_METRIC:
            for sample in family.samples:
                if sample.name == f"{PAUSES_METRIC}_total":
                    pauses[sample.labels["subscription"]] = sample.value
    return pauses


@pytest.mark.timeout(900)
def test_saturated_wal_pauses_consumers_and_every_event_still_arrives_once_in_order(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP), env={
        "LOGSTRATE_SUBSCRIPTION_PAUSE_AT_QUEUED": str(PAUSE_AT),
        "LOGSTRATE_SUBSCRIPTION_RESUME_AT_QUEUED": str(RESUME_AT),
    })
    add_cluster(engine, kafka)
    runs = [_Run(kafka, f"{topic_prefix}.{name}", keys=100, events=2_000, prefix=name) for name in ("a", "b", "c")]
    half = 1_000
    for run in runs:
        run.create_topic(2)
        run.publish(0, half)  # a backlog first, so ~300 keys have invocations to run at once
    subs = [subscribe(engine, run.topic, "service://SeqLog/append", {"batch.size": "2000"}) for run in runs]

    def paused_at_least_once() -> bool:
        return sum(_pauses(engine).get(sub, 0.0) for sub in subs) >= 1

    wait_until(paused_at_least_once, 180, f"a consumer to pause for backpressure (pause_at={PAUSE_AT}); "
               "the backpressure path was never taken", interval=0.2)
    for run in runs:
        run.publish(half, run.events)  # consumed after pauses and resumes

    def all_applied() -> bool:
        return all(run.applied(engine) >= run.events for run in runs)

    wait_until(all_applied, 600, "every event of the three topics", interval=1.0)
    for run in runs:
        run.assert_exact(engine)

    def settled() -> dict[str, dict[str, Any]] | None:
        # The last invocations may still append (and a consumer pause) for a moment after
        # the state lists are complete: compare once nothing is paused any more.
        local = {sub: http("GET", f"{engine.admin_url}/subscriptions/{sub}")[1]["status"]["this_process"] for sub in subs}
        pauses = _pauses(engine)
        if any(one["backpressured"] or one["backpressure_pauses"] != pauses.get(sub, 0.0) for sub, one in local.items()):
            return None
        return local

    # The API and the metric count the same pauses, and every paused consumer resumed.
    local = wait_until(settled, 60, "the consumers to resume with the API and /metrics agreeing")
    assert sum(one["backpressure_pauses"] for one in local.values()) >= 1, local
    for one in local.values():
        assert one["halted"] is None and one["ingested"] >= 2_000, one
