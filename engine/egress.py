"""The built-in Kafka egress service: its name, and the JSON it takes and returns (pure).

A handler publishes a Kafka record exactly once by *calling* the built-in service
``logstrate.KafkaEgress``, handler ``publish``. The call is a journaled command like any
other, so a replayed handler gets the recorded result instead of publishing again; the
partition leader that runs the egress invocation publishes the record and completes the
invocation in ONE Kafka transaction (:mod:`engine.partition.leader.egress`).

Request (the call's argument), a JSON object::

    {
      "topic": "orders",                   required; on the engine's own Kafka cluster
      "value": "<base64>",                 the record value as bytes, or
      "value_json": <any JSON>,            the value as JSON text (UTF-8), or neither:
                                           a null value (a tombstone)
      "key": "<base64>",                   optional record key
      "headers": {"name": "text"},         optional record headers (UTF-8 values)
      "partition": 3                       optional; the producer's partitioner otherwise
    }

Unknown fields, both ``value`` and ``value_json``, bad base64 and wrong types are refused
(terminal failure 400), so a typo never publishes something unintended. So is a topic of
the engine's own (:func:`engine_topic_reason`: ``<prefix>.wal``, ``.metadata``,
``.responses`` and the other reserved names, and Kafka's internal ``__*`` topics): a
record a handler (or a dead letter) wrote there would be read by the engine as its own
WAL or metadata, so whoever can run a handler could rewrite deployments or invocations.

Result (the call's output)::

    {"topic": "orders", "partition": 3, "offset": 1042}

Nothing here touches Kafka: the state machine builds dead-letter requests with
:func:`encode_request`, the leader parses calls with :func:`parse_request`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from engine.wal.records import InvocationTarget, ServiceKind

__all__ = [
    "DEAD_LETTER_HEADER",
    "ENGINE_TOPIC_NAMES",
    "engine_topic_reason",
    "reserve_engine_topics",
    "EGRESS_HANDLER",
    "EGRESS_SERVICE",
    "EGRESS_TARGET",
    "EgressRequest",
    "EgressRequestError",
    "encode_request",
    "encode_result",
    "is_egress",
    "parse_request",
]

EGRESS_SERVICE: Final = "logstrate.KafkaEgress"
"""The built-in service's name (the ``logstrate.`` prefix keeps it apart from user services)."""
EGRESS_HANDLER: Final = "publish"
"""Its only handler."""
EGRESS_TARGET: Final = InvocationTarget(EGRESS_SERVICE, EGRESS_HANDLER, None, ServiceKind.SERVICE, None)
"""The target of an egress invocation, as the WAL records it (a plain service)."""

DEAD_LETTER_HEADER: Final = "x-logstrate-dead-letter-topic"
"""Invocation header set by Kafka subscriptions with a ``dead-letter-topic`` option; on a
terminal failure the state machine publishes the input there. NEVER CHANGE (in the WAL);
``subscriptions.ingest`` writes the same name."""

_FIELDS: Final = frozenset({"topic", "value", "value_json", "key", "headers", "partition"})

ENGINE_TOPIC_NAMES: Final = ("wal", "metadata", "responses", "egress", "snapshots", "internal")
"""``<prefix>.<name>`` and ``<prefix>.<name>.*`` are the engine's topics (those it has and
names kept for it); nothing the API or a handler names may be published there."""

_engine_prefix: str | None = None


def reserve_engine_topics(prefix: str | None) -> None:
    """Set the engine's topic prefix (``kafka.topic_prefix``); called once at start-up.
    ``None`` (the default, for in-process tests) reserves only Kafka's ``__*`` topics."""
    global _engine_prefix
    _engine_prefix = prefix


def engine_topic_reason(topic: str) -> str | None:
    """Why ``topic`` may not be written to from outside the engine, or ``None``.

    Kafka treats ``.`` and ``_`` in topic names as colliding, so they compare equal here.
    """
    if topic.startswith("__"):
        return f"topic '{topic}' is internal to Kafka"
    if _engine_prefix is None:
        return None
    normalized, prefix = topic.replace("_", "."), _engine_prefix.replace("_", ".")
    for name in ENGINE_TOPIC_NAMES:
        own = f"{prefix}.{name}"
        if normalized == own or normalized.startswith(f"{own}."):
            return (
                f"topic '{topic}' is reserved for the engine (its {name} topics, {_engine_prefix}.{name}*); "
                "publish to a topic of your own"
            )
    return None


class EgressRequestError(ValueError):
    """The argument is not a valid egress request; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class EgressRequest:
    """One record to publish; ``value is None`` publishes a null value (tombstone)."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())
    partition: int | None = None


def is_egress(service: str) -> bool:
    """Whether ``service`` names the built-in egress service."""
    return service == EGRESS_SERVICE


def _b64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise EgressRequestError(f"'{name}' must be a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EgressRequestError(f"'{name}' is not valid base64: {exc}") from None


def parse_request(raw: bytes) -> EgressRequest:
    """The request in an egress call's argument.

    Raises:
        EgressRequestError: not JSON, not an object, or a field is missing or wrong.
    """
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EgressRequestError(f"the argument is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise EgressRequestError(f"the argument must be a JSON object, got {type(doc).__name__}")
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise EgressRequestError(f"unknown fields {unknown}; allowed: {sorted(_FIELDS)}")
    topic = doc.get("topic")
    if not isinstance(topic, str) or not topic:
        raise EgressRequestError("'topic' is required and must be a non-empty string")
    reserved = engine_topic_reason(topic)
    if reserved is not None:
        raise EgressRequestError(reserved)
    if "value" in doc and "value_json" in doc:
        raise EgressRequestError("give either 'value' (base64) or 'value_json', not both")
    value: bytes | None = None
    if "value" in doc and doc["value"] is not None:
        value = _b64(doc["value"], "value")
    elif "value_json" in doc:
        value = json.dumps(doc["value_json"], separators=(",", ":"), ensure_ascii=False).encode()
    key = _b64(doc["key"], "key") if doc.get("key") is not None else None
    headers_doc = doc.get("headers") or {}
    if not isinstance(headers_doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers_doc.items()
    ):
        raise EgressRequestError("'headers' must be an object of string names to string values")
    partition = doc.get("partition")
    if partition is not None and (isinstance(partition, bool) or not isinstance(partition, int) or partition < 0):
        raise EgressRequestError("'partition' must be a non-negative integer")
    return EgressRequest(topic, value, key, tuple(headers_doc.items()), partition)


def encode_request(
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    partition: int | None = None,
) -> bytes:
    """The JSON argument of an egress call (sorted keys: deterministic bytes for the WAL)."""
    doc: dict[str, Any] = {"topic": topic}
    if value is not None:
        doc["value"] = base64.b64encode(value).decode("ascii")
    if key is not None:
        doc["key"] = base64.b64encode(key).decode("ascii")
    if headers:
        doc["headers"] = dict(headers)
    if partition is not None:
        doc["partition"] = partition
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def encode_result(topic: str, partition: int, offset: int) -> bytes:
    """The output of a successful publish."""
    return json.dumps({"topic": topic, "partition": partition, "offset": offset}, separators=(",", ":")).encode()
