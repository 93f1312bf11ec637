"""The engine's Kafka topics: reachability check, safe creation and the checks of existing ones.

**Created with safe settings.** Replication factor ``min(3, brokers)`` (or
``kafka.replication_factor`` when set), ``min.insync.replicas = max(1, RF - 1)`` (an
``acks=all`` append survives the loss of one replica and still needs two copies where
there are three), and ``unclean.leader.election.enable=false`` (an out-of-sync replica
never becomes leader and truncates acknowledged records away).

**An existing WAL is checked before anything reads it.** The WAL is the source of
truth: state is rebuilt by replaying it, and each replica resumes at the offset after
the one it applied. So the engine refuses to start (with the command that fixes it) when

* its retention is finite (``retention.ms``/``retention.bytes`` not ``-1``) or its
  cleanup policy is not plain ``delete`` (compaction removes records too): the broker
  would delete records some replica still needs;
* a partition's earliest offset lies above the offset this process's LMDB needs next
  (records it has not applied were deleted): replaying past the gap would silently
  diverge from every replica that applied them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._listoffsets import OffsetSpec
from confluent_kafka.cimpl import NewTopic

from engine.config import KafkaConfig
from engine.errors import StartupError
from engine.ingress.response_channel import RESPONSE_PARTITIONS
from engine.kafka import clients
from engine.logs import get_logger

log = get_logger(__name__)

MAX_REPLICATION: Final = 3
WAL_RETENTION: Final = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
"""What the WAL must keep: everything, for ever (until state snapshots exist)."""
_LEADER_MOVING: Final = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART,
})
"""Errors of a partition whose leader is not elected yet or is moving: asked again."""
_EARLIEST: Final[OffsetSpec] = OffsetSpec.earliest()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class TopicSpec:
    """A topic the engine needs, with the settings it must be created with."""

    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class Replication:
    """Replication settings of the engine's topics on a cluster of ``brokers`` brokers."""

    factor: int
    min_insync: int

    @classmethod
    def for_cluster(cls, brokers: int, configured: int = -1) -> Replication:
        """``configured`` (``kafka.replication_factor``; -1: ``min(3, brokers)``)."""
        factor = configured if configured > 0 else max(1, min(MAX_REPLICATION, brokers))
        return cls(factor, max(1, factor - 1))

    def topic_config(self) -> dict[str, str]:
        return {"min.insync.replicas": str(self.min_insync), "unclean.leader.election.enable": "false"}


def engine_topics(kafka: KafkaConfig) -> list[TopicSpec]:
    """The WAL, metadata and responses topics for this configuration."""
    return [
        # The WAL is the source of truth until state snapshots exist: state is rebuilt by
        # replaying it, so it must never be truncated by time or size.
        TopicSpec(kafka.wal_topic, kafka.partitions, dict(WAL_RETENTION)),
        # Cluster metadata is keyed (one record per deployment/subscription/...), so
        # compaction keeps exactly the latest version of each.
        TopicSpec(kafka.metadata_topic, 1, {"cleanup.policy": "compact", "retention.ms": "-1"}),
        # Answers for requests waiting on another engine process: only read live, so an
        # hour is plenty (engine/ingress/response_channel.py).
        TopicSpec(kafka.responses_topic, RESPONSE_PARTITIONS, {"cleanup.policy": "delete", "retention.ms": "3600000"}),
    ]


def admin_client(kafka: KafkaConfig) -> AdminClient:
    """An AdminClient whose librdkafka logs go through the engine's logging."""
    return clients.admin_client(kafka.client_config(), client="topics-admin")


def ensure_topics(kafka: KafkaConfig, next_offsets: Mapping[int, int] | None = None) -> None:
    """Check Kafka is reachable, then create missing engine topics and verify existing ones.

    ``next_offsets``: per WAL partition, the offset this process's state needs next
    (applied + 1, or 0 before the first record); checked against the earliest offset
    Kafka still has.

    Raises :class:`StartupError` when Kafka cannot be reached within
    ``kafka.connect_timeout_s``, an existing topic has a conflicting partition count,
    the WAL's retention could delete records, or records this process needs are gone.
    """
    admin = admin_client(kafka)
    try:
        metadata = admin.list_topics(timeout=kafka.connect_timeout_s)
    except KafkaException as exc:
        raise StartupError(
            f"cannot reach Kafka at {kafka.bootstrap_servers} within {kafka.connect_timeout_s:g}s "
            f"({exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else exc}); "
            "start a broker (python compose/kafka_local.py start) or set --kafka-bootstrap-servers"
        ) from None
    replication = Replication.for_cluster(len(metadata.brokers), kafka.replication_factor)
    missing = []
    for spec in engine_topics(kafka):
        existing = metadata.topics.get(spec.name)
        if existing is None or existing.error is not None:
            missing.append(spec)
            continue
        if len(existing.partitions) != spec.partitions:
            raise StartupError(
                f"topic {spec.name} has {len(existing.partitions)} partitions but the engine is configured "
                f"for {spec.partitions}; the partition count is fixed when the topic is created, so set "
                f"kafka.partitions = {len(existing.partitions)} or use another kafka.topic_prefix"
            )
    if kafka.wal_topic not in {s.name for s in missing}:
        check_wal_retention(admin, kafka)
        if next_offsets:
            check_no_gap(admin, kafka, next_offsets)
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, replication.factor, config={**s.config, **replication.topic_config()})
         for s in missing],
        operation_timeout=kafka.connect_timeout_s,
        request_timeout=kafka.connect_timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result()
            log.info("topic created", topic=name, replication_factor=replication.factor,
                     min_insync_replicas=replication.min_insync)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            # Another engine process created it between our listing and our request.
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise StartupError(f"cannot create topic {name}: {exc}") from None


def check_wal_retention(admin: AdminClient, kafka: KafkaConfig) -> None:
    """Refuse a WAL whose broker settings could delete records (module docstring)."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, kafka.wal_topic)
    try:
        entries = admin.describe_configs([resource], request_timeout=kafka.connect_timeout_s)[resource].result()
    except KafkaException as exc:
        raise StartupError(f"cannot read the settings of the WAL topic {kafka.wal_topic}: {exc}") from None
    wrong = {
        name: entries[name].value if name in entries else None
        for name, wanted in WAL_RETENTION.items()
        if (entries[name].value if name in entries else None) != wanted
    }
    if not wrong:
        return
    found = ", ".join(f"{name}={value}" for name, value in sorted(wrong.items()))
    fix = ",".join(f"{name}={value}" for name, value in WAL_RETENTION.items())
    raise StartupError(
        f"the WAL topic {kafka.wal_topic} has {found}: Kafka would delete records the engine's state is "
        f"rebuilt from (the WAL is the source of truth and must keep everything). Fix it with: "
        f"kafka-configs.sh --bootstrap-server {kafka.bootstrap_servers} --alter --entity-type topics "
        f"--entity-name {kafka.wal_topic} --add-config {fix}"
    )


def check_no_gap(admin: AdminClient, kafka: KafkaConfig, next_offsets: Mapping[int, int]) -> None:
    """Refuse to start when a WAL partition no longer has the record this process needs next."""
    request = {TopicPartition(kafka.wal_topic, p): _EARLIEST for p in sorted(next_offsets)}
    deadline = time.monotonic() + kafka.connect_timeout_s
    while True:
        try:
            futures = admin.list_offsets(request, request_timeout=kafka.connect_timeout_s)
            earliest = {tp.partition: future.result().offset for tp, future in futures.items()}
            break
        except KafkaException as exc:
            # A WAL another process created a moment ago has no partition leaders yet
            # (NOT_LEADER_FOR_PARTITION), and a broker restart moves leaders: retriable.
            err = exc.args[0] if exc.args else None
            retriable = isinstance(err, KafkaError) and (err.retriable() or err.code() in _LEADER_MOVING)
            if not retriable or time.monotonic() >= deadline:
                raise StartupError(
                    f"cannot read the earliest offsets of the WAL topic {kafka.wal_topic}: {exc}"
                ) from None
            time.sleep(0.2)
    gaps = {p: (next_offsets[p], first) for p, first in sorted(earliest.items()) if first > next_offsets[p]}
    if not gaps:
        return
    described = "; ".join(
        f"partition {p} needs offset {needed} next but starts at {first}" for p, (needed, first) in gaps.items()
    )
    raise StartupError(
        f"records of the WAL topic {kafka.wal_topic} that this process has not applied were deleted ({described}). "
        "Continuing would skip them and diverge from the other replicas. Restore the records, or, if another "
        "engine process applied them and its state is intact, start this one on a copy of that process's "
        "data dir (stopped first); never delete WAL records (retention must stay infinite)"
    )
