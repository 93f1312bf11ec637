"""Turning one Kafka record into the WAL ``Invoke`` that runs its handler (pure).

Exactly-once ingestion rests on two frozen formulas here, in two versions (a
subscription keeps the version it was created with, ``Subscription.ingest_version``;
old keys are never recomputed differently):

* the invocation id: version 1, :meth:`InvocationUuid.for_subscription_event` of
  (subscription, topic, partition, offset); version 2 (:func:`invocation_uuid_v2`) adds
  the topic's incarnation (its Kafka topic id) — or, for a workflow's ``run``, the
  workflow key's id, since a workflow runs once per key — so re-reading a record yields
  the same invocation;
* the dedup id: producer :func:`dedup_producer` (consumer group, topic, partition),
  version 2 :func:`dedup_producer_v2` (cluster, topic id, consumer group, topic,
  partition), and sequence = the record's offset.

Version 1 names neither the cluster nor the topic's incarnation: a topic deleted and
created again restarts its offsets at 0, and its records were dropped as duplicates of
the old topic's (as were those of a same-named topic on another cluster read by the
same group). Version 2, the one new subscriptions get, tells them apart.

The target WAL partition keeps the highest sequence per producer and drops anything
at or below it, so a record appended twice (the engine crashed between the WAL append
and the offset commit, or a rebalance handed the partition to another process) is
applied once. The producer name uses the consumer group, not the subscription id, so
deleting a subscription and recreating it with the same ``group.id`` deduplicates too
(between subscriptions of the same version: one created before version 2 existed and
recreated now may see the records it had appended but not committed once more).

With the ``ordering=partition`` option, a plain-service sink's invocations carry the
source partition's :func:`ordering_key` (also frozen) and run one at a time in offset
order, as a virtual object's do per key.

Per source partition the consumer appends records in offset order, and Kafka's
idempotent producer keeps that order per WAL partition, which is what makes "at or
below the highest offset" mean "already applied".
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from engine.ids import InvocationId, InvocationUuid, SubscriptionId
from engine.metadata.kafka import INGEST_VERSION
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import (
    DedupId,
    HandlerKind,
    Header,
    InvocationTarget,
    Invoke,
    ServiceKind,
    SubscriptionSource,
)

__all__ = [
    "DEAD_LETTER_HEADER",
    "INGEST_VERSION",
    "SinkTarget",
    "SourceIdentity",
    "SourceRecord",
    "build_invoke",
    "dedup_id",
    "dedup_producer",
    "dedup_producer_v2",
    "invocation_uuid_v2",
    "invocation_headers",
    "invocation_id",
    "ordering_key",
    "source_header_name",
]

DEAD_LETTER_HEADER: Final = "x-logstrate-dead-letter-topic"
"""Invocation header naming the dead-letter topic; the state machine reads it on terminal failure."""

RESERVED_HEADER_PREFIXES: Final = ("x-logstrate-", "logstrate.")
"""Header names the engine uses for itself (compared in lower case)."""
ENGINE_HEADERS: Final = frozenset(
    {"kafka.topic", "kafka.partition", "kafka.offset", "kafka.timestamp", "kafka.key", "kafka.key-base64",
     "restate.subscription.id"}
)
"""The record coordinates the engine adds to every invocation."""
RENAMED_PREFIX: Final = "kafka.header."
"""A source header with a reserved name reaches the handler under this prefix instead."""


def source_header_name(name: str) -> str:
    """The invocation header name of a source record's header ``name``.

    Names the engine uses itself (:data:`RESERVED_HEADER_PREFIXES`, :data:`ENGINE_HEADERS`)
    are renamed to ``kafka.header.<name>``, so a record's producer can neither set nor
    shadow them — in particular not :data:`DEAD_LETTER_HEADER`, which would otherwise
    choose where the engine republishes the payload — while a handler (say, one
    reprocessing a dead-letter topic, whose records carry ``logstrate.error.*``) still
    sees them. Names already under the prefix are renamed too, so every renamed header
    maps back to one original.
    """
    lower = name.lower()
    if lower.startswith(RESERVED_HEADER_PREFIXES) or lower in ENGINE_HEADERS or lower.startswith(RENAMED_PREFIX):
        return RENAMED_PREFIX + name
    return name


@dataclass(frozen=True)
class SourceRecord:
    """The parts of a consumed Kafka record ingestion needs (decoupled from librdkafka)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: Sequence[tuple[str, bytes | None]] = ()


@dataclass(frozen=True)
class SourceIdentity:
    """What a topic name alone does not say: the cluster, and the topic's incarnation
    (its Kafka topic id, a UUID that changes when the topic is deleted and created again)."""

    cluster: str
    topic_id: str


@dataclass(frozen=True)
class SinkTarget:
    """The sink handler as the WAL names it (resolved from the metadata)."""

    service: str
    handler: str
    service_kind: ServiceKind
    handler_kind: HandlerKind | None

    @property
    def keyed(self) -> bool:
        """Whether the record key becomes the object/workflow key."""
        return self.service_kind is not ServiceKind.SERVICE


def dedup_producer(group_id: str, topic: str, partition: int) -> str:
    """The dedup producer of one source partition. NEVER CHANGE: WAL partitions store it."""
    return f"kafka/{group_id}/{topic}/{partition}"


def dedup_producer_v2(cluster: str, topic_id: str, group_id: str, topic: str, partition: int) -> str:
    """Version 2 of the dedup producer: also the cluster and the topic's incarnation.
    NEVER CHANGE: WAL partitions store it."""
    return f"kafka2/{cluster}/{topic_id}/{group_id}/{topic}/{partition}"


def dedup_id(group_id: str, record: SourceRecord, source: SourceIdentity | None = None) -> DedupId:
    """The record's dedup id: its source partition's producer, its offset as the sequence
    (version 2 with ``source``, version 1 without)."""
    if source is None:
        return DedupId(dedup_producer(group_id, record.topic, record.partition), record.offset)
    return DedupId(
        dedup_producer_v2(source.cluster, source.topic_id, group_id, record.topic, record.partition), record.offset
    )


def invocation_uuid_v2(subscription: SubscriptionId, source: SourceIdentity, record: SourceRecord) -> InvocationUuid:
    """Version 2 of a record's invocation uuid: also the topic's incarnation (the
    subscription id already names the cluster). NEVER CHANGE: ids are in the WAL."""
    return InvocationUuid.derive(
        "subscription/v2",
        subscription.to_bytes(),
        source.topic_id,
        record.topic,
        record.partition.to_bytes(4, "big", signed=True),
        record.offset.to_bytes(8, "big", signed=True),
    )


def ordering_key(group_id: str, record: SourceRecord) -> str:
    """The ordering key of a record's source partition (``ordering=partition``).

    NEVER CHANGE: it places the record's invocation (see :func:`invocation_id`), so a
    record re-read after a crash must get the same one. It is the dedup producer's name:
    one source partition, one consumer group, one queue.
    """
    return dedup_producer(group_id, record.topic, record.partition)


def invocation_id(
    subscription: SubscriptionId,
    sink: SinkTarget,
    object_key: str | None,
    record: SourceRecord,
    ordering: str | None = None,
    source: SourceIdentity | None = None,
) -> InvocationId:
    """The invocation a record becomes; deterministic, so re-ingestion finds it again.

    A plain-service record with an ordering key is placed by that key, like an object
    call by its object key, so a source partition's invocations share one WAL partition
    (which runs them one at a time, see ``Invoke.ordering_key``).
    """
    if sink.handler_kind is HandlerKind.WORKFLOW:
        assert object_key is not None
        uuid = InvocationUuid.for_workflow_run(sink.service, object_key)
    elif source is not None:
        uuid = invocation_uuid_v2(subscription, source, record)
    else:
        uuid = InvocationUuid.for_subscription_event(subscription, record.topic, record.partition, record.offset)
    placed_by = object_key if sink.keyed else ordering
    return invocation_id_for(sink.service, placed_by, uuid)


def invocation_headers(
    subscription: SubscriptionId, record: SourceRecord, *, dead_letter_topic: str | None = None
) -> tuple[Header, ...]:
    """What the handler sees as request headers: the record's headers, then its coordinates.

    Kafka headers whose value is not UTF-8 are left out (invocation headers are text);
    headers with the engine's reserved names are renamed (:func:`source_header_name`).
    Restate exposes the same coordinates under the same ``kafka.*`` names.
    """
    headers: list[Header] = []
    for name, value in record.headers:
        if value is None:
            continue
        try:
            headers.append(Header(source_header_name(name), value.decode("utf-8")))
        except UnicodeDecodeError:
            continue
    headers += [
        Header("kafka.topic", record.topic),
        Header("kafka.partition", str(record.partition)),
        Header("kafka.offset", str(record.offset)),
    ]
    if record.timestamp_ms is not None:
        headers.append(Header("kafka.timestamp", str(record.timestamp_ms)))
    if record.key is not None:
        try:
            headers.append(Header("kafka.key", record.key.decode("utf-8")))
        except UnicodeDecodeError:
            headers.append(Header("kafka.key-base64", base64.b64encode(record.key).decode("ascii")))
    headers.append(Header("restate.subscription.id", str(subscription)))
    if dead_letter_topic:
        headers.append(Header(DEAD_LETTER_HEADER, dead_letter_topic))
    return tuple(headers)


def build_invoke(
    subscription: SubscriptionId,
    sink: SinkTarget,
    record: SourceRecord,
    *,
    argument: bytes,
    object_key: str | None,
    dead_letter_topic: str | None = None,
    ordering: str | None = None,
    source: SourceIdentity | None = None,
) -> Invoke:
    """The ``Invoke`` of ``record``; ``object_key`` must be given exactly for keyed sinks,
    ``ordering`` (an :func:`ordering_key`) only for plain-service sinks; ``source`` for
    a version 2 subscription (:data:`INGEST_VERSION`)."""
    if sink.keyed != (object_key is not None):
        raise ValueError(f"object key {object_key!r} does not fit sink {sink.service}/{sink.handler}")
    if sink.keyed and ordering is not None:
        raise ValueError(f"sink {sink.service}/{sink.handler} is keyed; it takes no ordering key")
    return Invoke(
        invocation_id=invocation_id(subscription, sink, object_key, record, ordering, source),
        target=InvocationTarget(sink.service, sink.handler, object_key, sink.service_kind, sink.handler_kind),
        argument=argument,
        headers=invocation_headers(subscription, record, dead_letter_topic=dead_letter_topic),
        source=SubscriptionSource(subscription, record.topic, record.partition, record.offset),
        ordering_key=ordering,
    )
