"""Idle means idle: the engine's tailing consumers wait long at the end of their topics.

Each consumer that tails a topic with a short ``fetch.wait.max.ms`` makes the broker
answer ``1000 / fetch.wait.max.ms`` empty fetches a second while nothing happens (the
responses reader at 10 ms was most of the dev broker's idle CPU). A long wait costs no
latency: the broker answers a fetch as soon as a record arrives (engine.tailing). These
checks are on the configurations, so they need no broker and time nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from compose.kafka_local import LocalKafka
from engine.config import KafkaConfig
from engine.ids import SubscriptionId
from engine.ingress import response_channel
from engine.metadata import store
from engine.metadata.kafka import KafkaCluster, Subscription, consumer_properties
from engine.metadata.view import MetadataView
from engine.tailing import TAIL_FETCH_WAIT_MS, TAIL_POLL_S
from subscriptions.manager import SubscriptionManager

KAFKA = KafkaConfig(bootstrap_servers="127.0.0.1:1", topic_prefix="idle")


def test_the_tail_settings_keep_an_idle_engine_quiet() -> None:
    # At most 2 empty fetches and 2 wake-ups a second per tailing consumer.
    assert TAIL_FETCH_WAIT_MS >= 500
    assert TAIL_POLL_S >= 0.5


def test_the_responses_reader_waits_long_for_an_empty_fetch() -> None:
    conf = response_channel.consumer_config(KAFKA, "host.1a2b3c4d")
    assert conf["fetch.wait.max.ms"] == TAIL_FETCH_WAIT_MS
    assert conf.get("fetch.min.bytes", 1) == 1  # answered at the first record: no added latency


def test_the_metadata_tail_waits_long_for_an_empty_fetch() -> None:
    conf = store.consumer_config(KAFKA, "node")
    assert conf["fetch.wait.max.ms"] == TAIL_FETCH_WAIT_MS
    assert conf.get("fetch.min.bytes", 1) == 1


def test_subscription_consumers_wait_long_by_default_and_options_still_win() -> None:
    cluster = KafkaCluster(name="local", properties={"bootstrap.servers": "127.0.0.1:1"})
    sub = Subscription(id=SubscriptionId.generate(), source="kafka://local/orders", sink="service://Counter/add")
    assert int(consumer_properties(cluster, sub)["fetch.wait.max.ms"]) == TAIL_FETCH_WAIT_MS
    tuned = Subscription(id=sub.id, source=sub.source, sink=sub.sink, options={"fetch.wait.max.ms": "5"})
    assert consumer_properties(cluster, tuned)["fetch.wait.max.ms"] == "5"


def test_the_dev_broker_writes_controller_no_ops_rarely(tmp_path: Path) -> None:
    kafka = LocalKafka(workdir=tmp_path, port=1, controller_port=2)
    props = dict(line.split("=", 1) for line in kafka._write_config().read_text().splitlines())
    assert int(props["metadata.max.idle.interval.ms"]) >= 5000


class _Store:
    """A metadata store whose view changes only when the test says so."""

    def __init__(self) -> None:
        self.view = MetadataView()
        self.waits: list[float] = []
        self._changed = asyncio.Event()

    def publish(self) -> None:
        self.view = MetadataView()
        self._changed.set()

    async def wait_changed(self, seen: MetadataView | None, timeout_s: float) -> MetadataView:
        self.waits.append(timeout_s)
        if self.view is seen:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout_s)
            except TimeoutError:
                pass
        self._changed.clear()
        return self.view


class _Wal:
    def partition_of(self, invocation_id: object) -> int:
        return 0

    def append_many(self, items: object) -> None:
        raise AssertionError("no subscription, nothing to append")

    def queued(self) -> int:
        return 0


def test_the_subscription_manager_sleeps_until_the_metadata_changes() -> None:
    async def main() -> None:
        fake = _Store()
        manager = SubscriptionManager(fake, _Wal(), node_name="n")  # type: ignore[arg-type]
        manager.start()
        for _ in range(20):
            await asyncio.sleep(0)
        # Idle: one long wait (a safety net of many seconds), not a poll every 0.2 s.
        assert len(fake.waits) == 1 and fake.waits[0] >= 10
        # A new view wakes it at once; then it sleeps again.
        reads_before = len(fake.waits)
        fake.publish()
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(fake.waits) == reads_before + 1
        await manager.stop()

    asyncio.run(main())
