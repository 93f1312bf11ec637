"""MetadataStore against the real broker: read-your-writes, catch-up, tailing, tombstones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from confluent_kafka import Producer

from engine.config import KafkaConfig
from engine.errors import StartupError
from engine.ids import DeploymentId
from engine.metadata import codec
from engine.metadata.errors import DeploymentNotFound, HandlerNotFound, MetadataUnavailable
from engine.metadata.manifest import parse_manifest
from engine.metadata.model import Deployment, ProtocolType, ServiceMetadata
from engine.metadata.store import MetadataStore, PutDeployment
from engine.metadata.view import MetadataView
from engine.wal.topics import ensure_topics
from tests.engine.metadata.test_manifest import V1_SAMPLE
from tests.fixtures.kafka import KafkaBroker

T = TypeVar("T")


@pytest.fixture
def kafka_config(kafka: KafkaBroker, topic_prefix: str) -> KafkaConfig:
    config = KafkaConfig(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=topic_prefix, partitions=1)
    ensure_topics(config)
    return config


def _deployment(uri: str = "http://svc:9080/") -> Deployment:
    deployment_id = DeploymentId.generate()
    services = tuple(
        ServiceMetadata(definition, revision=1, deployment_id=deployment_id)
        for definition in parse_manifest(1, V1_SAMPLE).services
    )
    return Deployment(
        id=deployment_id, uri=uri, protocol_type=ProtocolType.REQUEST_RESPONSE, min_protocol_version=5,
        max_protocol_version=7, created_at=datetime.now(UTC).replace(microsecond=0), services=services,
    )


def run_with_stores(config: KafkaConfig, body: Callable[[Callable[[str], Awaitable[MetadataStore]]], Awaitable[T]]) -> T:
    """Run ``body`` with a factory of started stores; all are stopped afterwards."""

    async def main() -> T:
        stores: list[MetadataStore] = []

        async def started(node: str) -> MetadataStore:
            store = MetadataStore(config, node_name=node, write_timeout_s=10)
            stores.append(store)
            await store.start(timeout_s=20)
            return store

        try:
            return await body(started)
        finally:
            for store in stores:
                await store.stop()

    return asyncio.run(main())


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_writes_are_read_back_here_and_reach_every_other_process(kafka_config: KafkaConfig) -> None:
    deployment = _deployment()

    async def body(started: Callable[[str], Awaitable[MetadataStore]]) -> None:
        writer = await started("a")
        tailing = await started("b")
        assert writer.list_deployments() == []
        await writer.put_deployment(deployment)
        # Read-your-writes: the write returned, so this process's view already has it.
        assert writer.get_deployment(deployment.id) == deployment
        resolved = writer.resolve("cart.Cart", "add")
        assert (resolved.deployment.id, resolved.service.revision, resolved.handler.name) == (deployment.id, 1, "add")
        with pytest.raises(HandlerNotFound):
            writer.resolve("cart.Cart", "nope")
        # A process that was already running picks it up from the tail.
        await eventually(lambda: tailing.view.find_deployment(deployment.id) is not None, "the tailing store")
        # A process started afterwards reads it while catching up, before start() returns.
        late = await started("c")
        assert late.get_deployment(deployment.id) == deployment
        assert [s.name for s in late.list_services()] == ["Echo", "cart.Cart"]

        deleted = await writer.delete_deployment(deployment.id)
        assert deleted == deployment
        assert writer.list_deployments() == []
        await eventually(lambda: not tailing.view.deployments and not late.view.deployments, "the tombstone")
        with pytest.raises(DeploymentNotFound):
            await writer.delete_deployment(deployment.id)

    run_with_stores(kafka_config, body)


def test_watchers_wake_when_another_process_writes_and_not_before(kafka_config: KafkaConfig) -> None:
    deployment = _deployment()

    async def body(started: Callable[[str], Awaitable[MetadataStore]]) -> None:
        writer = await started("a")
        watcher = await started("b")
        seen = watcher.view
        # Nothing changes: the wait ends at its timeout, on the same view.
        assert await watcher.wait_changed(seen, 0.2) is seen
        # A write elsewhere wakes the watcher with the view that has it (well before 30 s).
        waiting = asyncio.ensure_future(watcher.wait_changed(seen, 30.0))
        await writer.put_deployment(deployment)
        changed = await asyncio.wait_for(waiting, 10.0)
        assert changed.find_deployment(deployment.id) is not None
        # A view that changed already is returned at once.
        assert await watcher.wait_changed(seen, 30.0) is watcher.view

    run_with_stores(kafka_config, body)


def test_a_failing_plan_writes_nothing(kafka_config: KafkaConfig) -> None:
    async def body(started: Callable[[str], Awaitable[MetadataStore]]) -> None:
        store = await started("a")

        def plan(view: MetadataView) -> tuple[PutDeployment, None]:
            raise ValueError("refused")

        with pytest.raises(ValueError, match="refused"):
            await store.modify(plan)
        assert await store.modify(lambda view: (None, "dry run")) == "dry run"
        assert store.view.applied_offset == -1
        assert (await started("b")).view.applied_offset == -1

    run_with_stores(kafka_config, body)


def test_an_unreadable_record_is_skipped_and_later_ones_applied(kafka_config: KafkaConfig) -> None:
    deployment = _deployment()
    producer = Producer(kafka_config.client_config())
    producer.produce(kafka_config.metadata_topic, key=b"deployment/garbage", value=b"{")
    producer.produce(kafka_config.metadata_topic, key=b"subscription/sub_1x", value=b"{}")
    producer.produce(
        kafka_config.metadata_topic, key=codec.deployment_key(deployment.id), value=codec.encode_deployment(deployment)
    )
    assert producer.flush(10) == 0

    async def body(started: Callable[[str], Awaitable[MetadataStore]]) -> None:
        store = await started("a")
        assert store.view.applied_offset == 2
        assert list(store.view.deployments) == [deployment.id]

    run_with_stores(kafka_config, body)


def test_a_stopped_store_refuses_writes(kafka_config: KafkaConfig) -> None:
    async def body(started: Callable[[str], Awaitable[MetadataStore]]) -> None:
        store = await started("a")
        await store.stop()
        with pytest.raises(MetadataUnavailable, match="not running"):
            await store.put_deployment(_deployment())

    run_with_stores(kafka_config, body)


def test_start_fails_clearly_when_the_topic_cannot_be_read(kafka: KafkaBroker, topic_prefix: str) -> None:
    # No ensure_topics: the metadata topic does not exist.
    config = KafkaConfig(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=topic_prefix, partitions=1)

    async def main() -> None:
        store = MetadataStore(config, node_name="a")
        await store.start(timeout_s=1.0)

    started = time.monotonic()
    with pytest.raises(StartupError, match=f"{topic_prefix}.metadata"):
        asyncio.run(main())
    assert time.monotonic() - started < 5
