"""Publish Kafka records exactly once from a handler (logstrate's built-in egress).

``publish`` is a journaled call of the engine's built-in service
``logstrate.KafkaEgress/publish``: the engine publishes the record and completes the
call in one Kafka transaction, and a replayed handler gets the recorded result instead
of publishing again. So a record is published once per ``publish`` in the handler's
code path, whatever crashes or retries happen::

    import sdk

    @orders.handler()
    async def place(ctx: sdk.Context, order: dict) -> str:
        order_id = await ctx.run("reserve", lambda: reserve(order))
        await sdk.kafka.publish(ctx, "orders.placed", {"id": order_id}, key=order_id)
        return order_id

The record lands on the engine's own Kafka cluster; consumers that should see only
committed records read with ``isolation.level=read_committed``. With the official
``restate-sdk`` the same call is
``await ctx.generic_call("logstrate.KafkaEgress", "publish", arg=json_bytes)`` with the
argument format of ``docs/subscriptions.md``. Only logstrate serves this service; on
restate-server the call fails with "service not found".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sdk.errors import TerminalError

if TYPE_CHECKING:
    from sdk.context import Context
    from sdk.futures import DurableCallFuture

__all__ = ["EGRESS_HANDLER", "EGRESS_SERVICE", "PublishResult", "publish", "publish_request"]

EGRESS_SERVICE = "logstrate.KafkaEgress"
"""The engine's built-in egress service."""
EGRESS_HANDLER = "publish"


@dataclass(frozen=True)
class PublishResult:
    """Where the record was published."""

    topic: str
    partition: int
    offset: int


class _ResultSerde:
    """Decodes the egress service's JSON answer into a :class:`PublishResult`."""

    content_type = "application/json"

    def serialize(self, value: PublishResult) -> bytes:
        return json.dumps({"topic": value.topic, "partition": value.partition, "offset": value.offset}).encode()

    def deserialize(self, data: bytes) -> PublishResult:
        try:
            doc = json.loads(data)
            return PublishResult(str(doc["topic"]), int(doc["partition"]), int(doc["offset"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise TerminalError(f"unexpected answer from the egress service: {data[:200]!r}", 500) from exc

    def json_schema(self) -> dict[str, Any] | bool | None:
        return None


def _as_bytes(value: bytes | bytearray | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def publish_request(
    topic: str,
    value: Any,
    *,
    key: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    partition: int | None = None,
) -> bytes:
    """The JSON argument of an egress call.

    ``value``: ``bytes`` are published as they are, ``str`` as UTF-8 text, ``None`` as
    a null value (a tombstone), anything else as JSON (``json.dumps``).
    """
    doc: dict[str, Any] = {"topic": topic}
    if isinstance(value, (bytes, bytearray, str)):
        doc["value"] = base64.b64encode(_as_bytes(value)).decode("ascii")
    elif value is not None:
        doc["value_json"] = value
    if key is not None:
        doc["key"] = base64.b64encode(_as_bytes(key)).decode("ascii")
    if headers:
        doc["headers"] = dict(headers)
    if partition is not None:
        doc["partition"] = partition
    return json.dumps(doc, separators=(",", ":")).encode()


def publish(
    ctx: Context,
    topic: str,
    value: Any,
    key: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    partition: int | None = None,
) -> DurableCallFuture[PublishResult]:
    """Publish one record to ``topic`` exactly once; ``await`` it for a :class:`PublishResult`.

    The returned future works with :func:`sdk.gather` and friends, so independent
    publishes can run together. A malformed request fails with a
    :class:`TerminalError` (400); a topic that does not exist yet is retried by the
    engine until it does.
    """
    argument = publish_request(topic, value, key=key, headers=headers, partition=partition)
    return ctx._call(None, EGRESS_SERVICE, EGRESS_HANDLER, None, argument, _ResultSerde(), None, None)
