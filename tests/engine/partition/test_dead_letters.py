"""Dead letters: a subscription invocation's terminal failure publishes its input through egress."""

from __future__ import annotations

import base64
import json

from engine.egress import DEAD_LETTER_HEADER, EGRESS_TARGET, parse_request
from engine.ids import InvocationId, InvocationUuid, SubscriptionId
from engine.partition.actions import InvokeAction, RegisterTimer, SendOutbox
from engine.partition.state_machine.dead_letters import dead_letter_invocation_id
from engine.storage.invocation_status import StatusKind
from engine.wal import records as r
from subscriptions.ingest import DEAD_LETTER_HEADER as INGEST_DEAD_LETTER_HEADER
from tests.engine.partition.harness import Partition, new_id, object_target

SUBSCRIPTION = SubscriptionId(0x0190_0000_0000_0000_0000_0000_0000_0001)


def subscription_invoke(
    n: int,
    *,
    dead_letter_topic: str | None = "orders.dlq",
    key_headers: tuple[r.Header, ...] = (r.Header("kafka.key", "k1"),),
    source: r.Source | None = None,
) -> r.Invoke:
    """An Invoke as the subscription consumer builds it (one-way, headers, SubscriptionSource)."""
    target = object_target("k1", handler="handle", service="Orders")
    headers = (
        r.Header("trace", "abc"),
        r.Header("kafka.topic", "orders"),
        r.Header("kafka.partition", "2"),
        r.Header("kafka.offset", "41"),
        *key_headers,
        r.Header("restate.subscription.id", str(SUBSCRIPTION)),
    )
    if dead_letter_topic is not None:
        headers += (r.Header(DEAD_LETTER_HEADER, dead_letter_topic),)
    return r.Invoke(
        invocation_id=new_id(target, n),
        target=target,
        argument=b'{"order": 7}',
        headers=headers,
        source=source if source is not None else r.SubscriptionSource(SUBSCRIPTION, "orders", 2, 41),
    )


def outbox_invokes(actions: list[object]) -> list[r.Invoke]:
    return [a.record for a in actions if isinstance(a, SendOutbox) and isinstance(a.record, r.Invoke)]


def test_header_name_matches_the_subscription_consumer() -> None:
    assert DEAD_LETTER_HEADER == INGEST_DEAD_LETTER_HEADER


def test_dead_letter_id_is_frozen() -> None:
    """Golden: changing the derivation would publish a second dead letter after an upgrade."""
    failed = InvocationId(0x0123_4567_89AB_CDEF, InvocationUuid(0x0F0E_0D0C_0B0A_0908_0706_0504_0302_0100))
    derived = dead_letter_invocation_id(failed)
    assert derived.partition_key == failed.partition_key
    assert derived.uuid == InvocationUuid.derive("dead-letter", failed.to_bytes())
    assert str(derived) == str(dead_letter_invocation_id(failed))
    assert derived.uuid.value == 0x97EE855BF6383B5BF24391ABC7E603E0


def test_terminal_failure_sends_the_input_to_the_dead_letter_topic(part: Partition) -> None:
    record = subscription_invoke(1)
    part.apply(record)
    failed = record.invocation_id
    actions = part.apply(r.InvocationEnded(failed, r.Failure(422, "bad order")))
    [dead] = outbox_invokes(actions)
    assert dead.invocation_id == dead_letter_invocation_id(failed)
    assert dead.target == EGRESS_TARGET and dead.response_sink is None
    request = parse_request(dead.argument)
    assert request.topic == "orders.dlq"
    assert request.value == b'{"order": 7}'
    assert request.key == b"k1"
    assert dict(request.headers) == {
        "logstrate.error.code": "422",
        "logstrate.error.message": "bad order",
        "logstrate.source.topic": "orders",
        "logstrate.source.partition": "2",
        "logstrate.source.offset": "41",
        "logstrate.subscription.id": str(SUBSCRIPTION),
        "logstrate.invocation.id": str(failed),
    }
    # The failed invocation itself keeps its failure, as without a dead-letter topic.
    status = part.status(failed)
    assert status is not None and status.kind is StatusKind.COMPLETED
    assert status.result == r.Failure(422, "bad order")
    # Delivered to this same partition, the dead letter is an ordinary egress invocation.
    started = part.apply(dead, dedup_id=r.DedupId("outbox/0", 1))
    assert started == [InvokeAction(dead.invocation_id)]
    dl_status = part.status(dead.invocation_id)
    assert dl_status is not None and dl_status.kind is StatusKind.INVOKED
    assert dl_status.target == EGRESS_TARGET


def test_binary_keys_are_restored_from_base64(part: Partition) -> None:
    raw_key = b"\xff\x00key"
    record = subscription_invoke(2, key_headers=(r.Header("kafka.key-base64", base64.b64encode(raw_key).decode()),))
    part.apply(record)
    [dead] = outbox_invokes(part.apply(r.InvocationEnded(record.invocation_id, r.Failure(500, "x"))))
    assert parse_request(dead.argument).key == raw_key


def test_records_without_key_publish_without_key(part: Partition) -> None:
    record = subscription_invoke(3, key_headers=())
    part.apply(record)
    [dead] = outbox_invokes(part.apply(r.InvocationEnded(record.invocation_id, r.Failure(500, "x"))))
    assert "key" not in json.loads(dead.argument)


def test_success_sends_no_dead_letter(part: Partition) -> None:
    record = subscription_invoke(4)
    part.apply(record)
    actions = part.apply(r.InvocationEnded(record.invocation_id, r.Value(b"ok")))
    assert outbox_invokes(actions) == []
    assert [a for a in actions if not isinstance(a, RegisterTimer)] == []


def test_no_dead_letter_without_the_option(part: Partition) -> None:
    record = subscription_invoke(5, dead_letter_topic=None)
    part.apply(record)
    assert outbox_invokes(part.apply(r.InvocationEnded(record.invocation_id, r.Failure(500, "x")))) == []


def test_no_dead_letter_for_invocations_not_from_a_subscription(part: Partition) -> None:
    # The header alone (e.g. forged on an ingress request) does not make a dead letter.
    record = subscription_invoke(6, source=r.IngressSource("node-1", "req"))
    part.apply(record)
    assert outbox_invokes(part.apply(r.InvocationEnded(record.invocation_id, r.Failure(500, "x")))) == []


def test_a_replayed_end_sends_nothing_more(part: Partition) -> None:
    record = subscription_invoke(7)
    part.apply(record)
    assert len(outbox_invokes(part.apply(r.InvocationEnded(record.invocation_id, r.Failure(500, "x"))))) == 1
    # A second end (an attempt that finished twice) finds the invocation completed.
    assert part.apply(r.InvocationEnded(record.invocation_id, r.Failure(500, "x"))) == []
