"""The engine's Kafka topics: reachability check and idempotent creation at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from engine.config import KafkaConfig
from engine.kafka import clients
from engine.ingress.response_channel import RESPONSE_PARTITIONS
from engine.errors import StartupError
from engine.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic the engine needs, with the settings it must be created with."""

    name: str
    partitions: int
    config: dict[str, str]


def engine_topics(kafka: KafkaConfig) -> list[TopicSpec]:
    """The WAL, metadata and responses topics for this configuration."""
    return [
        # The WAL is the source of truth until state snapshots exist: state is rebuilt by
        # replaying it, so it must never be truncated by time or size.
        TopicSpec(kafka.wal_topic, kafka.partitions, {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}),
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


def ensure_topics(kafka: KafkaConfig) -> None:
    """Check Kafka is reachable, then create missing engine topics and verify existing ones.

    Raises :class:`StartupError` when Kafka cannot be reached within
    ``kafka.connect_timeout_s`` or an existing topic has a conflicting partition count.
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
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, kafka.replication_factor, config=s.config) for s in missing],
        operation_timeout=kafka.connect_timeout_s,
        request_timeout=kafka.connect_timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result()
            log.info("topic created", topic=name)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            # Another engine process created it between our listing and our request.
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise StartupError(f"cannot create topic {name}: {exc}") from None
