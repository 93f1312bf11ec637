"""Dead letters: a subscription event whose handler failed for good is published again.

An invocation made from a Kafka subscription record (its source is a
:class:`SubscriptionSource`) carries the :data:`~engine.egress.DEAD_LETTER_HEADER` header
when the subscription has a ``dead-letter-topic`` option. When such an invocation ends
with a terminal failure (``InvocationEnded`` with a ``Failure``: the handler threw a
terminal error, or the invoker gave up after the retry policy's last attempt), the state
machine asks, through the outbox, for an invocation of the built-in egress service that
publishes the handler's input to that topic, with the original key and the error in
headers. The egress service then publishes it exactly once (see
:mod:`engine.partition.leader.egress`).

The egress invocation's id is derived from the failed invocation's id, and it lives in
the same partition (same partition key), so a re-applied or re-delivered request names
the same invocation and publishes nothing twice.
"""

from __future__ import annotations

import base64
import binascii

from engine.egress import DEAD_LETTER_HEADER, EGRESS_TARGET, encode_request
from engine.ids import InvocationId, InvocationUuid
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.responses import send_outbox
from engine.storage.invocation_status import InvocationStatus
from engine.wal.records import Failure, Invoke, SubscriptionSource

__all__ = ["dead_letter_headers", "dead_letter_invocation_id", "send_dead_letter"]


def dead_letter_invocation_id(failed: InvocationId) -> InvocationId:
    """The egress invocation that dead-letters ``failed``; same partition key.

    NEVER CHANGE: the id is in the outbox and the WAL, and re-deriving it is what makes
    the dead letter of one failure a single record (golden-tested).
    """
    return InvocationId(failed.partition_key, InvocationUuid.derive("dead-letter", failed.to_bytes()))


def dead_letter_headers(
    invocation_id: InvocationId, source: SubscriptionSource, failure: Failure
) -> dict[str, str]:
    """The headers of the dead-letter record: why it failed and where it came from."""
    return {
        "logstrate.error.code": str(failure.code),
        "logstrate.error.message": failure.message,
        "logstrate.source.topic": source.topic,
        "logstrate.source.partition": str(source.partition),
        "logstrate.source.offset": str(source.offset),
        "logstrate.subscription.id": str(source.subscription_id),
        "logstrate.invocation.id": str(invocation_id),
    }


def _source_key(status: InvocationStatus) -> bytes | None:
    # The subscription consumer recorded the Kafka key as a header: as text when it is
    # UTF-8, else base64 (invocation headers are text).
    headers = {h.name: h.value for h in status.headers}
    if "kafka.key" in headers:
        return headers["kafka.key"].encode("utf-8")
    encoded = headers.get("kafka.key-base64")
    if encoded is not None:
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def send_dead_letter(
    ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus, failure: Failure
) -> None:
    """Dead-letter the input of ``invocation_id`` if it asked for it (module docstring)."""
    topic = next((h.value for h in status.headers if h.name == DEAD_LETTER_HEADER), None)
    source = status.source
    if not topic or not isinstance(source, SubscriptionSource):
        return
    argument = encode_request(
        topic,
        status.argument,
        key=_source_key(status),
        headers=dead_letter_headers(invocation_id, source, failure),
    )
    dead_letter_id = dead_letter_invocation_id(invocation_id)
    # Through the outbox even though the target is this partition: the row is durable
    # with this transaction and delivered (deduplicated) by the leader, like any call.
    send_outbox(
        ctx,
        dead_letter_id.partition_key,
        Invoke(invocation_id=dead_letter_id, target=EGRESS_TARGET, argument=argument),
    )
    ctx.log_for(invocation_id).info(
        "terminal failure dead-lettered",
        dead_letter_topic=topic,
        dead_letter_invocation=str(dead_letter_id),
        code=failure.code,
    )
