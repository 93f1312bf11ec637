"""Kafka clusters and subscriptions as cluster metadata: the model and its record format.

Both live in the metadata topic next to deployments, so every engine process runs the
same subscriptions and creating or deleting one takes effect everywhere without a
restart::

    key    kafka-cluster/<name>        value {"schema_version": 1, "kafka_cluster": {...}}
    key    subscription/<sub_1...>     value {"schema_version": 1, "subscription": {...}}

A tombstone (no value) deletes. Clusters may also be declared in the engine's TOML
config (``[kafka_clusters.<name>]``); those are read-only through the admin API.

A subscription's ``source`` is ``kafka://<cluster>/<topic>`` and its ``sink``
``service://<Service>/<handler>``, Restate's URI forms. ``options`` are strings: some
are ours (see :data:`ENGINE_OPTIONS`), the rest are librdkafka consumer properties.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import unquote

from engine.egress import engine_topic_reason
from engine.ids import IdParseError, SubscriptionId
from engine.metadata.errors import InvalidRequest
from engine.metadata.kafka_properties import RefusedProperty, check_api_properties, is_secret_property
from engine.metadata.sealing import require_sealing, seal_properties, unseal_properties
from engine.tailing import TAIL_FETCH_WAIT_MS

__all__ = [
    "CLUSTER_KEY_PREFIX",
    "ENGINE_OPTIONS",
    "ORDERINGS",
    "ORDERING_NONE",
    "ORDERING_PARTITION",
    "SUBSCRIPTION_KEY_PREFIX",
    "KafkaCluster",
    "Subscription",
    "cluster_from_json",
    "cluster_key",
    "cluster_to_json",
    "consumer_properties",
    "is_secret_property",
    "parse_sink",
    "parse_source",
    "subscription_from_json",
    "subscription_key",
    "subscription_to_json",
    "validate_cluster_name",
    "validate_cluster_properties",
    "validate_subscription_properties",
]

CLUSTER_KEY_PREFIX: Final = "kafka-cluster/"
SUBSCRIPTION_KEY_PREFIX: Final = "subscription/"

ENGINE_OPTIONS: Final = frozenset(
    {
        "payload.format",
        "payload.avro.schema",
        "schema.registry.url",
        "schema.registry.basic.auth.user.info",
        "key.format",
        "key.avro.schema",
        "key.mapper",
        "dead-letter-topic",
        "batch.size",
        "ordering",
    }
)
"""Subscription options the engine interprets; every other option goes to librdkafka."""

ORDERING_NONE: Final = "none"
"""``ordering`` option default: a plain-service sink's events run concurrently."""
ORDERING_PARTITION: Final = "partition"
"""``ordering`` option: a plain-service sink's events of one source partition run one at
a time, in offset order (keyed sinks are always ordered per key)."""
ORDERINGS: Final = frozenset({ORDERING_NONE, ORDERING_PARTITION})

_CONSUMER_DEFAULTS: Final = {
    # A dead engine process's partitions move to the others within seconds, not 45 s.
    "session.timeout.ms": "10000",
    "heartbeat.interval.ms": "1000",
    # The broker answers a fetch as soon as a record arrives, so a long wait costs no
    # latency; it keeps an idle subscription at 2 empty fetches a second (engine.tailing).
    "fetch.wait.max.ms": str(TAIL_FETCH_WAIT_MS),
}
_FORCED_CONSUMER: Final = {"enable.auto.commit": "false", "enable.auto.offset.store": "false"}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_HOSTNAME: Final = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
REDACTED: Final = "***"


@dataclass(frozen=True)
class KafkaCluster:
    """A Kafka cluster subscriptions can read from: librdkafka client properties by name."""

    name: str
    properties: Mapping[str, str]
    """librdkafka properties; ``bootstrap.servers`` (or ``metadata.broker.list``) is required."""
    created_at: datetime = _EPOCH
    declared_in_config: bool = False
    """Declared in the engine's TOML config: visible through the API, not changeable there."""

    def redacted_properties(self) -> dict[str, str]:
        """The properties with credentials masked, for API answers and logs."""
        return {k: (REDACTED if is_secret_property(k) else v) for k, v in sorted(self.properties.items())}


INGEST_VERSION: Final = 2
"""The ingest formula version new subscriptions get (``Subscription.ingest_version``)."""


@dataclass(frozen=True)
class Subscription:
    """Kafka records of ``source`` become invocations of ``sink``."""

    id: SubscriptionId
    source: str
    sink: str
    options: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime = _EPOCH
    paused: bool = False
    """Paused through the admin API: no consumer runs; the committed position is kept."""
    ingest_version: int = 1
    """Which frozen invocation-id and dedup formulas its records get
    (``subscriptions.ingest``): 1 for subscriptions created before version 2 existed
    (their records keep their ids), 2 for new ones (cluster and topic incarnation too)."""

    @property
    def cluster(self) -> str:
        return parse_source(self.source)[0]

    @property
    def topic(self) -> str:
        return parse_source(self.source)[1]

    @property
    def service(self) -> str:
        return parse_sink(self.sink)[0]

    @property
    def handler(self) -> str:
        return parse_sink(self.sink)[1]

    @property
    def group_id(self) -> str:
        """The consumer group: option ``group.id``, else the subscription id (as Restate does)."""
        return self.options.get("group.id") or str(self.id)


def parse_source(uri: str) -> tuple[str, str]:
    """``kafka://<cluster>/<topic>`` → (cluster, topic); raises :class:`InvalidRequest`."""
    scheme, sep, rest = uri.partition("://")
    cluster, slash, topic = rest.partition("/")
    if scheme != "kafka" or not sep or not slash or not cluster or not topic or "/" in topic:
        raise InvalidRequest(f"source must be kafka://<cluster>/<topic>, e.g. kafka://my-cluster/orders; got {uri!r}")
    return cluster, unquote(topic)


def parse_sink(uri: str) -> tuple[str, str]:
    """``service://<Service>/<handler>`` → (service, handler); raises :class:`InvalidRequest`."""
    scheme, sep, rest = uri.partition("://")
    service, slash, handler = rest.partition("/")
    if scheme != "service" or not sep or not slash or not service or not handler or "/" in handler:
        raise InvalidRequest(f"sink must be service://<Service>/<handler>, e.g. service://Counter/add; got {uri!r}")
    return service, handler


def validate_cluster_name(name: object) -> str:
    """Cluster names are hostnames (Restate's rule); raises :class:`InvalidRequest`."""
    if not isinstance(name, str) or not _HOSTNAME.match(name):
        raise InvalidRequest(f"kafka cluster name must be a valid hostname (letters, digits, '-', '.'), got {name!r}")
    return name


def validate_cluster_properties(properties: object) -> dict[str, str]:
    """A JSON object of string properties with a broker list, every one of them on the
    API's allowlist (:mod:`engine.metadata.kafka_properties`: nothing that loads code,
    runs commands or names files on the engine host); raises :class:`InvalidRequest`."""
    if not isinstance(properties, Mapping) or not all(isinstance(k, str) for k in properties):
        raise InvalidRequest("properties must be a JSON object of librdkafka properties")
    clean: dict[str, str] = {}
    for key, value in properties.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise InvalidRequest(f"property {key!r} must be a string, got {value!r}")
        clean[key] = str(value)
    if not (clean.get("bootstrap.servers") or clean.get("metadata.broker.list")):
        raise InvalidRequest("properties must contain 'bootstrap.servers' (or 'metadata.broker.list'), e.g. \"localhost:9092\"")
    check_api_properties(clean, consumer=True, what="property")
    require_sealing(clean, "property")
    return clean


def validate_subscription_properties(options: Mapping[str, str]) -> None:
    """The librdkafka consumer properties among a subscription's options (every option
    that is not one of :data:`ENGINE_OPTIONS`) must be on the API's allowlist."""
    check_api_properties((k for k in options if k not in ENGINE_OPTIONS), consumer=True, what="option")


def check_runnable(cluster: KafkaCluster, subscription: Subscription) -> None:
    """Refuse (:class:`~engine.metadata.kafka_properties.RefusedProperty`) to build clients from properties the API would refuse today, unless the cluster is
    declared in the engine config: a record written before the allowlist existed, or
    by hand, must not load code either."""
    if not cluster.declared_in_config:
        check_api_properties(cluster.properties, consumer=True, what=f"property of Kafka cluster {cluster.name!r}")
    validate_subscription_properties(subscription.options)
    dead_letter_topic = subscription.options.get("dead-letter-topic")
    reserved = None if not dead_letter_topic else engine_topic_reason(dead_letter_topic)
    if reserved is not None:
        raise RefusedProperty(f"option dead-letter-topic: {reserved}")


def consumer_properties(cluster: KafkaCluster, subscription: Subscription) -> dict[str, str]:
    """The librdkafka consumer config of a subscription: cluster, then its own, then ours.

    Offsets are committed by the engine after the WAL append is acknowledged, never
    automatically, so auto-commit settings cannot be overridden. Properties outside the
    API's allowlist (of clusters not declared in the engine config) raise
    :class:`~engine.metadata.kafka_properties.RefusedProperty` instead of reaching librdkafka.
    """
    check_runnable(cluster, subscription)
    conf = {**_CONSUMER_DEFAULTS, **cluster.properties}
    conf.update({k: v for k, v in subscription.options.items() if k not in ENGINE_OPTIONS})
    conf["group.id"] = subscription.group_id
    conf.update(_FORCED_CONSUMER)
    return conf


# --- record format ------------------------------------------------------------------------


def cluster_key(name: str) -> bytes:
    """The metadata record key of a Kafka cluster."""
    return f"{CLUSTER_KEY_PREFIX}{name}".encode()


def subscription_key(subscription_id: SubscriptionId) -> bytes:
    """The metadata record key of a subscription."""
    return f"{SUBSCRIPTION_KEY_PREFIX}{subscription_id}".encode()


def cluster_to_json(cluster: KafkaCluster) -> dict[str, Any]:
    """The record document; credentials sealed (:mod:`engine.metadata.sealing`)."""
    clear, sealed = seal_properties(cluster.properties, cluster_key(cluster.name).decode())
    document: dict[str, Any] = {"name": cluster.name, "properties": clear, "created_at_ms": _ms(cluster.created_at)}
    if sealed:
        document["sealed_properties"] = sealed
    return document


def cluster_from_json(name: str, j: Mapping[str, Any]) -> KafkaCluster:
    if j.get("name") != name:
        raise ValueError(f"record holds cluster {j.get('name')!r}")
    return KafkaCluster(
        name=name,
        properties=unseal_properties(
            _strings(j["properties"]), _strings(j.get("sealed_properties") or {}), cluster_key(name).decode()
        ),
        created_at=_EPOCH + timedelta(milliseconds=int(j.get("created_at_ms", 0))),
    )


def _strings(table: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(table).items()}


def subscription_to_json(s: Subscription) -> dict[str, Any]:
    """The record document; credentials among the options sealed."""
    clear, sealed = seal_properties(s.options, subscription_key(s.id).decode())
    document: dict[str, Any] = {
        "id": str(s.id),
        "source": s.source,
        "sink": s.sink,
        "options": clear,
        "created_at_ms": _ms(s.created_at),
        "paused": s.paused,
        "ingest_version": s.ingest_version,
    }
    if sealed:
        document["sealed_options"] = sealed
    return document


def subscription_from_json(subscription_id: SubscriptionId, j: Mapping[str, Any]) -> Subscription:
    try:
        parsed = SubscriptionId.parse(str(j["id"]))
    except IdParseError as exc:
        raise ValueError(str(exc)) from None
    if parsed != subscription_id:
        raise ValueError(f"record holds subscription {parsed}")
    return Subscription(
        id=subscription_id,
        source=str(j["source"]),
        sink=str(j["sink"]),
        options=unseal_properties(
            _strings(j.get("options") or {}), _strings(j.get("sealed_options") or {}),
            subscription_key(subscription_id).decode(),
        ),
        created_at=_EPOCH + timedelta(milliseconds=int(j.get("created_at_ms", 0))),
        paused=bool(j.get("paused", False)),
        ingest_version=int(j.get("ingest_version", 1)),
    )


def encode_value(kind: str, document: Mapping[str, Any], schema_version: int) -> bytes:
    """A record value: ``{"schema_version": n, kind: document}`` as compact UTF-8 JSON."""
    return json.dumps({"schema_version": schema_version, kind: document}, separators=(",", ":"), ensure_ascii=False).encode()


def _ms(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(milliseconds=1)
