"""The cluster metadata, materialized from the metadata topic in every engine process.

``<prefix>.metadata`` has one partition and is log-compacted, so it holds the latest
record of every key (record format: :mod:`engine.metadata.codec`). Every engine process
reads it the same way:

1. :meth:`MetadataStore.start` assigns partition 0 directly (no consumer group: every
   process needs every record, and offsets are never committed), reads from the
   beginning until the end of the partition as it was at start, and only then returns,
   so the admin API and the ingress never answer from a half-read view;
2. a daemon thread keeps tailing the partition and publishes a new immutable
   :class:`~engine.metadata.view.MetadataView` after each batch of records, so records
   written by any process show up in all of them.

Writes go through :meth:`MetadataStore.modify`: it runs a pure planning function on the
current view, produces the resulting record (idempotent producer, ``acks=all``) and
returns once this process's own view has applied that record's offset. A caller that
gets an answer therefore reads its own write on this node immediately; other nodes see
it as soon as their tail thread gets to it. Writes from one process are serialized; two
processes writing at the same instant both succeed, the later record winning per key.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from engine.config import KafkaConfig
from engine.errors import StartupError
from engine.ids import DeploymentId, SubscriptionId
from engine.kafka import clients
from engine.logs import get_logger
from engine.metadata import codec
from engine.metadata import kafka as kafka_codec
from engine.metadata.errors import MetadataError, MetadataUnavailable
from engine.metadata.kafka import KafkaCluster, Subscription
from engine.metadata.model import Deployment, HandlerMetadata, ResolvedHandler, ServiceMetadata
from engine.metadata.nodes import NodeAdvert, node_key
from engine.metadata.view import MetadataView
from engine.tailing import TAIL_FETCH_WAIT_MS, TAIL_POLL_S

__all__ = [
    "DeleteDeployment",
    "DeleteKafkaCluster",
    "DeleteNode",
    "DeleteSubscription",
    "MetadataStore",
    "MetadataWrite",
    "PutDeployment",
    "PutKafkaCluster",
    "PutNode",
    "PutSubscription",
    "consumer_config",
]

log = get_logger(__name__)

_T = TypeVar("_T")
_PARTITION = 0
_BATCH = 500
_NOT_READY = frozenset(
    (
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        # librdkafka's local view of a topic created a moment ago may lag the broker's.
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    )
)


@dataclass(frozen=True)
class PutDeployment:
    """Register or replace a deployment."""

    deployment: Deployment


@dataclass(frozen=True)
class DeleteDeployment:
    """Remove a deployment (a tombstone for its key)."""

    deployment_id: DeploymentId


@dataclass(frozen=True)
class PutKafkaCluster:
    """Create or replace a Kafka cluster."""

    cluster: KafkaCluster


@dataclass(frozen=True)
class DeleteKafkaCluster:
    name: str


@dataclass(frozen=True)
class PutSubscription:
    """Create or change (pause, resume) a subscription."""

    subscription: Subscription


@dataclass(frozen=True)
class DeleteSubscription:
    subscription_id: SubscriptionId


@dataclass(frozen=True)
class PutNode:
    """Advertise this engine process (its admin URL, the partitions it leads)."""

    node: NodeAdvert


@dataclass(frozen=True)
class DeleteNode:
    instance: str


MetadataWrite = (
    PutDeployment | DeleteDeployment | PutKafkaCluster | DeleteKafkaCluster | PutSubscription | DeleteSubscription
    | PutNode | DeleteNode
)


class MetadataStore:
    """Reads and writes the metadata topic; see the module docstring for the guarantees."""

    def __init__(
        self,
        kafka: KafkaConfig,
        *,
        node_name: str,
        write_timeout_s: float = 30.0,
        declared_clusters: Mapping[str, KafkaCluster] | None = None,
    ) -> None:
        """``declared_clusters`` come from the engine config; records of the same name win over them."""
        self.topic = kafka.metadata_topic
        self._kafka = kafka
        self._node_name = node_name
        self._write_timeout_s = write_timeout_s
        self._log = log.bind(topic=self.topic)
        self._declared_clusters = dict(declared_clusters or {})
        self._view = MetadataView(kafka_clusters=self._declared_clusters)
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiters_lock = threading.Lock()
        # wait_changed() callers, woken when the tail thread publishes a new view.
        self._watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._write_lock = asyncio.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: Producer | None = None
        self._failure: str | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self, timeout_s: float | None = None) -> None:
        """Read the whole topic, then keep tailing it; returns once the view is complete.

        Raises:
            StartupError: the topic could not be read to its end within ``timeout_s``
                (default ``kafka.connect_timeout_s``).
        """
        if self._thread is not None:
            raise RuntimeError("MetadataStore.start() called twice")
        timeout_s = self._kafka.connect_timeout_s if timeout_s is None else timeout_s
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        consumer = clients.consumer(consumer_config(self._kafka, self._node_name), client="metadata-tail")
        self._producer = clients.producer(
            self._kafka.client_config(
                **{
                    "client.id": f"logstrate-{self._node_name}-metadata",
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 0,
                    "delivery.timeout.ms": int(self._write_timeout_s * 1000),
                }
            ),
            client="metadata-producer",
        )
        self._thread = threading.Thread(
            target=self._run, args=(consumer, loop, ready, timeout_s), name="metadata-view", daemon=True
        )
        self._thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(ready), timeout_s)
        except TimeoutError:
            await self.stop()
            raise StartupError(
                f"could not read the metadata topic {self.topic} to its end within {timeout_s:g}s; "
                "check that Kafka is healthy (kafka.connect_timeout_s sets this limit)"
            ) from None
        except MetadataError as exc:
            await self.stop()
            raise StartupError(f"cannot load the cluster metadata from {self.topic}: {exc}") from None
        except Exception:
            await self.stop()
            raise
        view = self._view
        self._log.info(
            "metadata loaded", deployments=len(view.deployments), services=len(view.list_services()),
            offset=view.applied_offset,
        )

    async def stop(self) -> None:
        """Stop tailing and fail pending writes (idempotent)."""
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, 5.0)
            self._producer = None
        self._fail_waiters("the engine is shutting down")

    # --- queries (on the current view) -------------------------------------------------

    @property
    def view(self) -> MetadataView:
        """The current immutable snapshot; keep it to answer several queries consistently."""
        return self._view

    def list_deployments(self) -> list[Deployment]:
        """All deployments, newest first."""
        return self._view.list_deployments()

    def get_deployment(self, deployment_id: DeploymentId) -> Deployment:
        """Raises :class:`~engine.metadata.errors.DeploymentNotFound`."""
        return self._view.get_deployment(deployment_id)

    def list_services(self) -> list[ServiceMetadata]:
        """The latest revision of every service, by name."""
        return self._view.list_services()

    def get_service(self, name: str) -> ServiceMetadata:
        """The latest revision; raises :class:`~engine.metadata.errors.ServiceNotFound`."""
        return self._view.get_service(name)

    def get_handler(self, service: str, handler: str) -> HandlerMetadata:
        """Raises ``ServiceNotFound`` or ``HandlerNotFound``."""
        return self._view.get_handler(service, handler)

    def resolve(self, service: str, handler: str) -> ResolvedHandler:
        """Service, handler and deployment a new invocation goes to; raises the not-found errors."""
        return self._view.resolve(service, handler)

    async def wait_changed(self, seen: MetadataView | None, timeout_s: float) -> MetadataView:
        """The current view as soon as it is not ``seen``, or after ``timeout_s`` at the latest.

        For watchers that react to metadata changes (the subscription manager) without
        polling the view: returns at once if the view already changed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._waiters_lock:
            if self._view is not seen:
                return self._view
            self._watchers.append(entry)
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            pass
        finally:
            with self._waiters_lock:
                if entry in self._watchers:
                    self._watchers.remove(entry)
        return self._view

    # --- writes ------------------------------------------------------------------------

    async def modify(self, plan: Callable[[MetadataView], tuple[MetadataWrite | None, _T]]) -> _T:
        """Run ``plan`` on the current view, write what it returns, answer once applied here.

        ``plan`` returns ``(write, result)``; ``write`` may be ``None`` (nothing to change,
        e.g. a dry run). Exceptions from ``plan`` propagate and nothing is written. Plans
        of one process run one at a time, each on a view that includes all earlier writes.

        Raises:
            MetadataUnavailable: the record could not be written or read back in time.
        """
        async with self._write_lock:
            self._check_running()
            write, result = plan(self._view)
            if write is not None:
                offset = await asyncio.to_thread(self._produce, write)
                await self._wait_applied(offset)
            return result

    async def put_deployment(self, deployment: Deployment) -> None:
        """Write ``deployment`` (new or replacing the one with its id)."""
        await self.modify(lambda _view: (PutDeployment(deployment), None))

    async def delete_deployment(self, deployment_id: DeploymentId) -> Deployment:
        """Delete a deployment; returns what was deleted. Raises ``DeploymentNotFound``."""

        def plan(view: MetadataView) -> tuple[MetadataWrite, Deployment]:
            return DeleteDeployment(deployment_id), view.get_deployment(deployment_id)

        return await self.modify(plan)

    def _check_running(self) -> None:
        if self._producer is None or self._stopping.is_set():
            raise MetadataUnavailable("the metadata store is not running (the engine is starting or stopping)")
        if self._failure is not None:
            raise MetadataUnavailable(f"the metadata view stopped updating: {self._failure}; restart the engine")

    def _produce(self, write: MetadataWrite) -> int:
        # Runs in a worker thread: flush() blocks until the broker acknowledged the record.
        assert self._producer is not None
        key, value = _record_of(write)
        outcome: list[tuple[KafkaError | None, int]] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            outcome.append((err, -1 if err is not None else _offset(msg)))

        try:
            clients.produce(self._producer, self.topic, wait_s=self._write_timeout_s, key=key, value=value,
                            partition=_PARTITION, on_delivery=delivered)
        except (KafkaException, clients.KafkaQueueFull) as exc:
            raise MetadataUnavailable(f"cannot write to the metadata topic {self.topic}: {exc}; nothing was changed") from None
        self._producer.flush(self._write_timeout_s + 5.0)
        if not outcome:
            raise MetadataUnavailable(
                f"Kafka did not acknowledge the write to {self.topic} within {self._write_timeout_s:g}s; "
                "the change may or may not have been applied, so check and retry"
            )
        err, offset = outcome[0]
        if err is not None:
            raise MetadataUnavailable(
                f"writing to the metadata topic {self.topic} failed: {err.str()}; the change was not applied"
            )
        self._log.debug("metadata record written", key=key.decode(), offset=offset, tombstone=value is None)
        return offset

    async def _wait_applied(self, offset: int) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._waiters_lock:
            if self._view.applied_offset >= offset:
                return
            self._waiters.append((offset, loop, future))
        try:
            await asyncio.wait_for(future, self._write_timeout_s)
        except TimeoutError:
            raise MetadataUnavailable(
                f"the change was written to {self.topic} at offset {offset} but this engine did not read it "
                f"back within {self._write_timeout_s:g}s; it will show up once the metadata view catches up"
            ) from None

    def _settle_waiters(self, applied: int) -> None:
        with self._waiters_lock:
            due = [w for w in self._waiters if w[0] <= applied]
            self._waiters = [w for w in self._waiters if w[0] > applied]
        for _, loop, future in due:
            loop.call_soon_threadsafe(_resolve, future, None)

    def _notify_watchers(self) -> None:
        # Called after self._view was replaced; wait_changed() checks the view under the
        # same lock, so a watcher either sees the new view or is woken here.
        with self._waiters_lock:
            due, self._watchers = self._watchers, []
        for loop, future in due:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future, None)

    def _fail_waiters(self, reason: str) -> None:
        with self._waiters_lock:
            due, self._waiters = self._waiters, []
        for _, loop, future in due:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future, MetadataUnavailable(reason))

    # --- the tail thread ---------------------------------------------------------------

    def _run(
        self, consumer: Consumer, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None], timeout_s: float
    ) -> None:
        try:
            self._tail(consumer, loop, ready, timeout_s)
        except Exception as exc:  # noqa: BLE001 - the thread must report, not vanish
            self._failure = str(exc)
            self._log.exception("metadata view stopped updating")
            loop.call_soon_threadsafe(_resolve, ready, exc)
            self._fail_waiters(f"the metadata view stopped updating: {exc}")
        finally:
            consumer.close()

    def _tail(
        self, consumer: Consumer, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None], timeout_s: float
    ) -> None:
        start, end_at_start = self._watermarks(consumer, timeout_s)
        consumer.assign([TopicPartition(self.topic, _PARTITION, OFFSET_BEGINNING)])
        state = _Folded(
            dict(self._view.deployments), dict(self._view.kafka_clusters), dict(self._view.subscriptions),
            dict(self._view.nodes),
        )
        applied = self._view.applied_offset
        # Caught up once the last record that existed at start-up is applied; an empty
        # topic is caught up at once.
        caught_up = start >= end_at_start
        while not self._stopping.is_set():
            if caught_up and not ready.done():
                # Before polling: an empty topic is caught up without reading anything.
                loop.call_soon_threadsafe(_resolve, ready, None)
            changed = False
            for message in _next_batch(consumer):
                err = message.error()
                if err is None:
                    self._apply(message, state)
                    applied = _offset(message)
                    changed = True
                    caught_up = caught_up or applied >= end_at_start - 1
                elif err.code() == KafkaError._PARTITION_EOF:
                    # The end as it was at start-up is reached. Needed when compaction removed
                    # the last records, so that no record ever has the last offset.
                    caught_up = caught_up or _offset(message) >= end_at_start
                else:
                    self._log.warning("metadata topic read error", error=err.str(), fatal=err.fatal())
                    if err.fatal():
                        raise MetadataUnavailable(f"fatal Kafka error reading {self.topic}: {err.str()}")
            if changed:
                self._view = MetadataView(
                    dict(state.deployments), applied, dict(state.clusters), dict(state.subscriptions),
                    dict(state.nodes),
                )
                self._settle_waiters(applied)
                self._notify_watchers()

    def _watermarks(self, consumer: Consumer, timeout_s: float) -> tuple[int, int]:
        partition = TopicPartition(self.topic, _PARTITION)
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                low, high = consumer.get_watermark_offsets(partition, timeout=max(remaining, 0.1), cached=False)
                return int(low), int(high)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                # A topic created a moment ago may not have a leader yet: wait for one.
                retriable = isinstance(err, KafkaError) and err.code() in _NOT_READY
                if not retriable or remaining <= 0 or self._stopping.is_set():
                    raise MetadataUnavailable(f"cannot read the end offset of {self.topic}: {exc}") from None
            self._stopping.wait(0.1)

    def _apply(self, message: Message, state: _Folded) -> None:
        try:
            record = codec.decode_record(message.key(), message.value())
        except codec.MetadataCodecError as exc:
            # One unreadable record must not stop the engine; it is skipped loudly.
            self._log.error("skipping unreadable metadata record", offset=message.offset(), error=str(exc))
            return
        if isinstance(record, codec.DeploymentPut):
            state.deployments[record.deployment.id] = record.deployment
        elif isinstance(record, codec.DeploymentDeleted):
            state.deployments.pop(record.deployment_id, None)
        elif isinstance(record, codec.KafkaClusterPut):
            state.clusters[record.cluster.name] = record.cluster
        elif isinstance(record, codec.KafkaClusterDeleted):
            state.clusters.pop(record.name, None)
            if record.name in self._declared_clusters:
                state.clusters[record.name] = self._declared_clusters[record.name]
        elif isinstance(record, codec.SubscriptionPut):
            state.subscriptions[record.subscription.id] = record.subscription
        elif isinstance(record, codec.SubscriptionDeleted):
            state.subscriptions.pop(record.subscription_id, None)
        elif isinstance(record, codec.NodePut):
            state.nodes[record.node.instance] = record.node
        elif isinstance(record, codec.NodeDeleted):
            state.nodes.pop(record.instance, None)


@dataclass
class _Folded:
    """What the tail thread has folded so far (mutable; views are snapshots of it)."""

    deployments: dict[DeploymentId, Deployment]
    clusters: dict[str, KafkaCluster]
    subscriptions: dict[SubscriptionId, Subscription]
    nodes: dict[str, NodeAdvert]


def consumer_config(kafka: KafkaConfig, node_name: str) -> dict[str, Any]:
    """The librdkafka configuration of the metadata tail consumer."""
    return kafka.client_config(
        **{
            # librdkafka insists on a group id, but partitions are assigned by hand and
            # no offset is ever committed, so the group is never joined.
            "group.id": f"{kafka.topic_prefix}.metadata-view",
            "client.id": f"logstrate-{node_name}-metadata",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            # Metadata changes are rare: an idle tail costs the broker 2 empty fetches a
            # second, and a write is still read back the moment it lands (engine.tailing).
            # Only a start-up whose last records were compacted away waits for EOF.
            "fetch.wait.max.ms": TAIL_FETCH_WAIT_MS,
        }
    )


def _record_of(write: MetadataWrite) -> tuple[bytes, bytes | None]:
    """The (key, value) of a write; ``None`` value is a tombstone."""
    if isinstance(write, PutDeployment):
        return codec.deployment_key(write.deployment.id), codec.encode_deployment(write.deployment)
    if isinstance(write, DeleteDeployment):
        return codec.deployment_key(write.deployment_id), None
    if isinstance(write, PutKafkaCluster):
        return kafka_codec.cluster_key(write.cluster.name), codec.encode_kafka_cluster(write.cluster)
    if isinstance(write, DeleteKafkaCluster):
        return kafka_codec.cluster_key(write.name), None
    if isinstance(write, PutSubscription):
        return kafka_codec.subscription_key(write.subscription.id), codec.encode_subscription(write.subscription)
    if isinstance(write, PutNode):
        return node_key(write.node.instance), codec.encode_node(write.node)
    if isinstance(write, DeleteNode):
        return node_key(write.instance), None
    return kafka_codec.subscription_key(write.subscription_id), None


def _resolve(future: asyncio.Future[Any], outcome: BaseException | None) -> None:
    if future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)


def _next_batch(consumer: Consumer) -> list[Message]:
    # poll() returns as soon as one record arrives (consume() would wait out its timeout
    # to fill the batch, delaying every write's read-back); what else is already
    # fetched is then taken without waiting.
    first = consumer.poll(TAIL_POLL_S)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=_BATCH, timeout=0)]


def _offset(message: Message) -> int:
    offset = message.offset()
    return -1 if offset is None else offset
