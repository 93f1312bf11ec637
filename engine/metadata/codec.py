"""The record format of the metadata topic (``<prefix>.metadata``, one partition, compacted).

Each record's key names one piece of metadata; compaction keeps the latest record per
key, so the topic always holds the current cluster metadata::

    key    deployment/<deployment id>          (UTF-8)
    value  {"schema_version": 1, "deployment": {...}}   (UTF-8 JSON)
           or no value at all (a tombstone): the deployment was deleted

``schema_version`` is the format of the value. A reader refuses a value written with a
newer version (its engine is older than the writer's; upgrade it) and reads every older
one. Adding an optional field does not need a new version: readers ignore fields they do
not know and fill in defaults for missing ones. Durations are integers of milliseconds,
instants milliseconds since the Unix epoch, ids their ``dp_1...`` text.

Kafka clusters (``kafka-cluster/<name>``) and subscriptions (``subscription/<id>``) use
the same envelope; their documents are defined in :mod:`engine.metadata.kafka`. Engine
processes advertise themselves under ``node/<instance>`` (:mod:`engine.metadata.nodes`). Keys
with unknown prefixes (written by a newer engine) decode to :class:`OtherRecord`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Final, TypeVar

from engine.errors import EngineError
from engine.ids import DeploymentId, IdParseError, SubscriptionId
from engine.metadata.sealing import seal_properties, unseal_properties
from engine.sensitive_headers import is_sensitive_header
from engine.metadata import kafka, nodes
from engine.metadata.kafka import KafkaCluster, Subscription
from engine.metadata.model import (
    Deployment,
    HandlerMetadata,
    HandlerType,
    InputPayload,
    OnMaxAttempts,
    Options,
    OutputPayload,
    ProtocolType,
    RetryPolicy,
    ServiceDefinition,
    ServiceMetadata,
    ServiceType,
)

__all__ = [
    "DEPLOYMENT_KEY_PREFIX",
    "SCHEMA_VERSION",
    "DeploymentDeleted",
    "DeploymentPut",
    "KafkaClusterDeleted",
    "KafkaClusterPut",
    "NodeDeleted",
    "NodePut",
    "encode_node",
    "SubscriptionDeleted",
    "SubscriptionPut",
    "encode_kafka_cluster",
    "encode_subscription",
    "MetadataCodecError",
    "MetadataRecord",
    "OtherRecord",
    "decode_record",
    "deployment_key",
    "encode_deployment",
]

SCHEMA_VERSION: Final = 1
DEPLOYMENT_KEY_PREFIX: Final = "deployment/"

_E = TypeVar("_E", bound=Enum)
_R = TypeVar("_R")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class MetadataCodecError(EngineError):
    """A metadata record cannot be read (corrupt, or written by a newer engine)."""


@dataclass(frozen=True)
class DeploymentPut:
    """A deployment was registered or changed."""

    deployment: Deployment


@dataclass(frozen=True)
class DeploymentDeleted:
    """A deployment was deleted (a tombstone)."""

    deployment_id: DeploymentId


@dataclass(frozen=True)
class KafkaClusterPut:
    """A Kafka cluster was created or changed."""

    cluster: KafkaCluster


@dataclass(frozen=True)
class KafkaClusterDeleted:
    """A Kafka cluster was deleted (a tombstone)."""

    name: str


@dataclass(frozen=True)
class SubscriptionPut:
    """A subscription was created or changed (paused, resumed)."""

    subscription: Subscription


@dataclass(frozen=True)
class SubscriptionDeleted:
    """A subscription was deleted (a tombstone)."""

    subscription_id: SubscriptionId


@dataclass(frozen=True)
class NodePut:
    """An engine process advertised itself (:mod:`engine.metadata.nodes`)."""

    node: nodes.NodeAdvert


@dataclass(frozen=True)
class NodeDeleted:
    """An engine process stopped (a tombstone)."""

    instance: str


@dataclass(frozen=True)
class OtherRecord:
    """A record of a metadata kind this codec does not handle."""

    key: str


MetadataRecord = (
    DeploymentPut | DeploymentDeleted | KafkaClusterPut | KafkaClusterDeleted | SubscriptionPut | SubscriptionDeleted
    | NodePut | NodeDeleted | OtherRecord
)


def deployment_key(deployment_id: DeploymentId) -> bytes:
    """The record key of a deployment."""
    return f"{DEPLOYMENT_KEY_PREFIX}{deployment_id}".encode()


def encode_deployment(deployment: Deployment) -> bytes:
    """The record value of a deployment (compact UTF-8 JSON)."""
    document = {"schema_version": SCHEMA_VERSION, "deployment": _deployment_to_json(deployment)}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def decode_record(key: bytes | None, value: bytes | None) -> MetadataRecord:
    """Decode one record of the metadata topic.

    Raises:
        MetadataCodecError: the key or value is malformed, or the value was written with a
            newer schema version than this engine reads.
    """
    if key is None:
        raise MetadataCodecError("metadata record without a key")
    try:
        text_key = key.decode()
    except UnicodeDecodeError:
        raise MetadataCodecError(f"metadata record key {key!r} is not UTF-8") from None
    if text_key.startswith(DEPLOYMENT_KEY_PREFIX):
        return _decode_deployment(text_key, value)
    if text_key.startswith(kafka.CLUSTER_KEY_PREFIX):
        name = text_key[len(kafka.CLUSTER_KEY_PREFIX) :]
        if value is None:
            return KafkaClusterDeleted(name)
        return KafkaClusterPut(_decode(text_key, value, "kafka_cluster", lambda j: kafka.cluster_from_json(name, j)))
    if text_key.startswith(kafka.SUBSCRIPTION_KEY_PREFIX):
        try:
            subscription_id = SubscriptionId.parse(text_key[len(kafka.SUBSCRIPTION_KEY_PREFIX) :])
        except IdParseError as exc:
            raise MetadataCodecError(f"metadata record key {text_key!r}: {exc}") from None
        if value is None:
            return SubscriptionDeleted(subscription_id)
        return SubscriptionPut(
            _decode(text_key, value, "subscription", lambda j: kafka.subscription_from_json(subscription_id, j))
        )
    if text_key.startswith(nodes.NODE_KEY_PREFIX):
        instance = text_key[len(nodes.NODE_KEY_PREFIX) :]
        if value is None:
            return NodeDeleted(instance)
        return NodePut(_decode(text_key, value, "node", lambda j: nodes.decode_node(instance, j)))
    return OtherRecord(text_key)


def _decode_deployment(text_key: str, value: bytes | None) -> MetadataRecord:
    try:
        deployment_id = DeploymentId.parse(text_key[len(DEPLOYMENT_KEY_PREFIX) :])
    except IdParseError as exc:
        raise MetadataCodecError(f"metadata record key {text_key!r}: {exc}") from None
    if value is None:
        return DeploymentDeleted(deployment_id)
    deployment = _decode(text_key, value, "deployment", _deployment_from_json)
    if deployment.id != deployment_id:
        raise MetadataCodecError(f"metadata record {text_key!r} holds deployment {deployment.id}")
    return DeploymentPut(deployment)


def _decode(text_key: str, value: bytes, kind: str, build: Callable[[Mapping[str, Any]], _R]) -> _R:
    """Parse the JSON document of a record, check its schema version, build the object."""
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataCodecError(f"metadata record {text_key!r} is not JSON: {exc}") from None
    try:
        version = document["schema_version"]
        if not isinstance(version, int) or version < 1:
            raise MetadataCodecError(f"metadata record {text_key!r} has no valid schema_version")
        if version > SCHEMA_VERSION:
            raise MetadataCodecError(
                f"metadata record {text_key!r} has schema version {version}, but this engine reads up to "
                f"{SCHEMA_VERSION}; a newer engine wrote it, so upgrade this engine"
            )
        return build(document[kind])
    except MetadataCodecError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MetadataCodecError(f"metadata record {text_key!r} is malformed: {exc!r}") from None


def encode_node(node: nodes.NodeAdvert) -> bytes:
    """The record value of an engine process's advert."""
    return nodes.encode_node(node, SCHEMA_VERSION)


def encode_kafka_cluster(cluster: KafkaCluster) -> bytes:
    """The record value of a Kafka cluster."""
    return kafka.encode_value("kafka_cluster", kafka.cluster_to_json(cluster), SCHEMA_VERSION)


def encode_subscription(subscription: Subscription) -> bytes:
    """The record value of a subscription."""
    return kafka.encode_value("subscription", kafka.subscription_to_json(subscription), SCHEMA_VERSION)


# --- to JSON ------------------------------------------------------------------------------


def _deployment_to_json(d: Deployment) -> dict[str, Any]:
    # Credentials among the headers (Authorization, API keys...) are sealed when the
    # engine has a secrets key (engine.metadata.sealing).
    headers, sealed_headers = seal_properties(d.additional_headers, deployment_key(d.id).decode(), is_sensitive_header)
    return _compact(
        {
            "id": str(d.id),
            "uri": d.uri,
            "protocol_type": d.protocol_type.value,
            "http_version": d.http_version,
            "use_http_11": d.use_http_11,
            "min_protocol_version": d.min_protocol_version,
            "max_protocol_version": d.max_protocol_version,
            "created_at_ms": (d.created_at - _EPOCH) // timedelta(milliseconds=1),
            "additional_headers": headers,
            "sealed_additional_headers": sealed_headers,
            "metadata": dict(d.metadata),
            "sdk_version": d.sdk_version,
            "services": [_service_to_json(s) for s in d.services],
        }
    )


def _service_to_json(s: ServiceMetadata) -> dict[str, Any]:
    return _compact(
        {
            "name": s.name,
            "ty": s.ty.value,
            "revision": s.revision,
            "documentation": s.definition.documentation,
            "metadata": dict(s.definition.metadata),
            "options": _options_to_json(s.options),
            "handlers": [_handler_to_json(h) for h in s.handlers],
        }
    )


def _handler_to_json(h: HandlerMetadata) -> dict[str, Any]:
    payload_in: dict[str, Any] = {"content_type": h.input.content_type, "required": h.input.required}
    if h.input.json_schema is not None:
        payload_in["json_schema"] = h.input.json_schema
    payload_out: dict[str, Any] = {
        "content_type": h.output.content_type,
        "set_content_type_if_empty": h.output.set_content_type_if_empty,
    }
    if h.output.json_schema is not None:
        payload_out["json_schema"] = h.output.json_schema
    return _compact(
        {
            "name": h.name,
            "ty": h.ty.value if h.ty else None,
            "input": payload_in,
            "output": payload_out,
            "documentation": h.documentation,
            "metadata": dict(h.metadata),
            "options": _options_to_json(h.options),
        }
    )


def _options_to_json(o: Options) -> dict[str, Any]:
    r = o.retry_policy
    return _compact(
        {
            "inactivity_timeout_ms": _ms(o.inactivity_timeout),
            "abort_timeout_ms": _ms(o.abort_timeout),
            "idempotency_retention_ms": _ms(o.idempotency_retention),
            "journal_retention_ms": _ms(o.journal_retention),
            "workflow_completion_retention_ms": _ms(o.workflow_completion_retention),
            "enable_lazy_state": o.enable_lazy_state,
            "ingress_private": o.ingress_private,
            "retry_policy": _compact(
                {
                    "initial_interval_ms": _ms(r.initial_interval),
                    "exponentiation_factor": r.exponentiation_factor,
                    "max_attempts": r.max_attempts,
                    "max_interval_ms": _ms(r.max_interval),
                    "on_max_attempts": r.on_max_attempts.value if r.on_max_attempts else None,
                }
            ),
        }
    )


def _ms(value: timedelta | None) -> int | None:
    return None if value is None else value // timedelta(milliseconds=1)


def _compact(document: dict[str, Any]) -> dict[str, Any]:
    # Absent and null mean the same; leaving them out keeps records small.
    return {k: v for k, v in document.items() if v is not None and v != {}}


# --- from JSON ----------------------------------------------------------------------------


def _deployment_from_json(j: Mapping[str, Any]) -> Deployment:
    deployment_id = DeploymentId.parse(j["id"])
    return Deployment(
        id=deployment_id,
        uri=str(j["uri"]),
        protocol_type=ProtocolType(j["protocol_type"]),
        http_version=str(j.get("http_version", "HTTP/1.1")),
        use_http_11=bool(j.get("use_http_11", False)),
        min_protocol_version=int(j["min_protocol_version"]),
        max_protocol_version=int(j["max_protocol_version"]),
        created_at=_EPOCH + timedelta(milliseconds=int(j["created_at_ms"])),
        additional_headers=unseal_properties(
            _strings(j.get("additional_headers")), _strings(j.get("sealed_additional_headers")),
            deployment_key(deployment_id).decode(),
        ),
        metadata=_strings(j.get("metadata")),
        sdk_version=j.get("sdk_version"),
        services=tuple(_service_from_json(s, deployment_id) for s in j.get("services", ())),
    )


def _service_from_json(j: Mapping[str, Any], deployment_id: DeploymentId) -> ServiceMetadata:
    definition = ServiceDefinition(
        name=str(j["name"]),
        ty=ServiceType(j["ty"]),
        handlers=tuple(_handler_from_json(h) for h in j.get("handlers", ())),
        documentation=j.get("documentation"),
        metadata=_strings(j.get("metadata")),
        options=_options_from_json(j.get("options", {})),
    )
    return ServiceMetadata(definition=definition, revision=int(j["revision"]), deployment_id=deployment_id)


def _handler_from_json(j: Mapping[str, Any]) -> HandlerMetadata:
    payload_in = j.get("input", {})
    payload_out = j.get("output", {})
    return HandlerMetadata(
        name=str(j["name"]),
        ty=_enum(HandlerType, j.get("ty")),
        input=InputPayload(
            content_type=payload_in.get("content_type"),
            required=bool(payload_in.get("required", False)),
            json_schema=payload_in.get("json_schema"),
        ),
        output=OutputPayload(
            content_type=payload_out.get("content_type"),
            set_content_type_if_empty=bool(payload_out.get("set_content_type_if_empty", False)),
            json_schema=payload_out.get("json_schema"),
        ),
        documentation=j.get("documentation"),
        metadata=_strings(j.get("metadata")),
        options=_options_from_json(j.get("options", {})),
    )


def _options_from_json(j: Mapping[str, Any]) -> Options:
    r = j.get("retry_policy", {})
    factor = r.get("exponentiation_factor")
    attempts = r.get("max_attempts")
    return Options(
        inactivity_timeout=_duration(j.get("inactivity_timeout_ms")),
        abort_timeout=_duration(j.get("abort_timeout_ms")),
        idempotency_retention=_duration(j.get("idempotency_retention_ms")),
        journal_retention=_duration(j.get("journal_retention_ms")),
        workflow_completion_retention=_duration(j.get("workflow_completion_retention_ms")),
        enable_lazy_state=j.get("enable_lazy_state"),
        ingress_private=j.get("ingress_private"),
        retry_policy=RetryPolicy(
            initial_interval=_duration(r.get("initial_interval_ms")),
            exponentiation_factor=None if factor is None else float(factor),
            max_attempts=None if attempts is None else int(attempts),
            max_interval=_duration(r.get("max_interval_ms")),
            on_max_attempts=_enum(OnMaxAttempts, r.get("on_max_attempts")),
        ),
    )


def _duration(ms: Any) -> timedelta | None:
    return None if ms is None else timedelta(milliseconds=int(ms))


def _enum(enum: type[_E], value: Any) -> _E | None:
    return None if value is None else enum(value)


def _strings(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    return {str(k): str(v) for k, v in value.items()}
