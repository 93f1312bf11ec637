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
  diverge from every replica that applied them;
* ``unclean.leader.election.enable`` is ``true``: an out-of-sync replica could become
  leader and truncate acknowledged WAL records away.

A ``min.insync.replicas`` below ``max(1, RF - 1)`` of the WAL's actual replication
factor is logged as a warning with the command that fixes it (the engine still works;
an acknowledged append is just on fewer copies than it could be).

A topic another process created a moment ago may not have partition leaders yet
(``NOT_LEADER_FOR_PARTITION``, ``LEADER_NOT_AVAILABLE``): those reads are retried until
``kafka.connect_timeout_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

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

T = TypeVar("T")

MAX_REPLICATION: Final = 3
WAL_RETENTION: Final = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
"""What the WAL must keep: everything, for ever (until state snapshots exist)."""
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
        wal = metadata.topics[kafka.wal_topic]
        factor = min((len(p.replicas) for p in wal.partitions.values()), default=1)
        check_wal_retention(admin, kafka, factor)
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


# Longest one attempt of a start-up read may take before it is retried with fresh metadata.
_ATTEMPT_S: Final = 10.0


def _retrying(kafka: KafkaConfig, admin: AdminClient, read: Callable[[float], T]) -> T:
    """``read(timeout_s)``, retried until ``kafka.connect_timeout_s`` while Kafka answers
    that a partition has no leader yet or a request timed out.

    Each attempt gets a bounded share of the time, and the cluster metadata is refreshed
    between attempts: right after a broker dies, the metadata librdkafka holds may still
    name it as the controller that DescribeConfigs is sent to, and librdkafka would wait
    for that broker for the whole request timeout instead of asking a live one.
    """
    deadline = time.monotonic() + kafka.connect_timeout_s
    delay = 0.05

    def attempt_s() -> float:
        return max(0.5, min(_ATTEMPT_S, deadline - time.monotonic()))

    while True:
        try:
            return read(attempt_s())
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            transient = isinstance(err, KafkaError) and (err.retriable() or err.code() in _NO_LEADER_YET)
            if not transient or time.monotonic() + delay > deadline:
                raise
            log.info("kafka has no partition leader yet or did not answer in time; retrying", error=str(exc), retry_in_s=delay)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                admin.list_topics(timeout=attempt_s())
            except KafkaException:
                pass  # the next attempt reports what is wrong


_NO_LEADER_YET: Final = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.REQUEST_TIMED_OUT, KafkaError._TIMED_OUT,
})


def _configs_command(kafka: KafkaConfig, fix: str) -> str:
    return (f"kafka-configs.sh --bootstrap-server {kafka.bootstrap_servers} --alter --entity-type topics "
            f"--entity-name {kafka.wal_topic} --add-config {fix}")


def check_wal_retention(admin: AdminClient, kafka: KafkaConfig, replication_factor: int = 1) -> None:
    """Refuse a WAL whose broker settings could delete records or lose acknowledged ones,
    warn about a low ``min.insync.replicas`` (module docstring)."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, kafka.wal_topic)
    try:
        entries = _retrying(
            kafka, admin, lambda timeout_s: admin.describe_configs([resource], request_timeout=timeout_s)[resource].result()
        )
    except KafkaException as exc:
        raise StartupError(f"cannot read the settings of the WAL topic {kafka.wal_topic}: {exc}") from None

    def value(name: str) -> str | None:
        return entries[name].value if name in entries else None

    wrong = {name: value(name) for name, wanted in WAL_RETENTION.items() if value(name) != wanted}
    if wrong:
        found = ", ".join(f"{name}={found}" for name, found in sorted(wrong.items()))
        fix = ",".join(f"{name}={wanted}" for name, wanted in WAL_RETENTION.items())
        raise StartupError(
            f"the WAL topic {kafka.wal_topic} has {found}: Kafka would delete records the engine's state is "
            f"rebuilt from (the WAL is the source of truth and must keep everything). Fix it with: "
            f"{_configs_command(kafka, fix)}"
        )
    if value("unclean.leader.election.enable") == "true":
        raise StartupError(
            f"the WAL topic {kafka.wal_topic} has unclean.leader.election.enable=true: an out-of-sync replica "
            "could become leader and truncate acknowledged WAL records, and the engine's state would diverge "
            f"from the log. Fix it with: {_configs_command(kafka, 'unclean.leader.election.enable=false')}"
        )
    wanted_insync = Replication.for_cluster(replication_factor, replication_factor).min_insync
    insync = value("min.insync.replicas")
    if insync is not None and insync.isdigit() and int(insync) < wanted_insync:
        log.warning(
            "the WAL topic's min.insync.replicas is lower than the engine creates it with: an acknowledged "
            "append may be on a single replica; fix it with the command given",
            topic=kafka.wal_topic, min_insync_replicas=int(insync), replication_factor=replication_factor,
            wanted=wanted_insync, fix=_configs_command(kafka, f"min.insync.replicas={wanted_insync}"),
        )


def check_no_gap(admin: AdminClient, kafka: KafkaConfig, next_offsets: Mapping[int, int]) -> None:
    """Refuse to start when a WAL partition no longer has the record this process needs next."""
    request = {TopicPartition(kafka.wal_topic, p): _EARLIEST for p in sorted(next_offsets)}

    def read(timeout_s: float) -> dict[int, int]:
        futures = admin.list_offsets(request, request_timeout=timeout_s)
        return {tp.partition: future.result().offset for tp, future in futures.items()}

    try:
        earliest = _retrying(kafka, admin, read)
    except KafkaException as exc:
        raise StartupError(f"cannot read the earliest offsets of the WAL topic {kafka.wal_topic}: {exc}") from None
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
