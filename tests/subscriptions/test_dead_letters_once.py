"""Dead letters are published exactly once, even when the process dies before the commit.

A subscription consumer (subscriptions/consumer.py) runs in a child process against the
real broker; an undecodable record in its batch goes to the dead-letter topic. The
child dies (``os._exit``, no clean-up) at the moment the batch's offsets are to be
committed, after its dead letter was handed to Kafka. A second consumer (same static
member, as an engine restarted on its data dir) reads the batch again. A
``read_committed`` reader of the dead-letter topic must see the dead letter once: the
dead letters and the offsets are one transaction (subscriptions/dead_letters.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from typing import Any

from engine.ids import InvocationId, SubscriptionId
from engine.metadata.kafka import KafkaCluster, Subscription
from engine.wal.records import DedupId, HandlerKind, Record, ServiceKind
from subscriptions.consumer import SubscriptionConsumer
from subscriptions.ingest import SinkTarget
from tests.engine.test_egress import read_all
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import wait_until

SINK = SinkTarget("SeqLog", "append", ServiceKind.VIRTUAL_OBJECT, HandlerKind.EXCLUSIVE)

_CHILD = textwrap.dedent('''
    import os, sys
    from engine.ids import SubscriptionId
    from engine.metadata.kafka import KafkaCluster, Subscription
    from subscriptions import consumer as consumer_module, dead_letters
    from tests.subscriptions.test_dead_letters_once import SINK, RecordingWal, subscription

    def crash(*args, **kwargs):
        sys.stdout.write("crashing at the commit\\n")
        sys.stdout.flush()
        os._exit(3)

    # The commit of a batch, however it is done: plain, or the dead letters' transaction.
    consumer_module.SubscriptionConsumer._commit = crash
    if hasattr(dead_letters, "DeadLetters"):
        dead_letters.DeadLetters._commit = crash
    bootstrap, topic, dlq, group, sub_id = sys.argv[1:]
    sub = subscription(topic, dlq, group, SubscriptionId.parse(sub_id))
    cluster = KafkaCluster(name="local", properties={"bootstrap.servers": bootstrap})
    c = consumer_module.SubscriptionConsumer(sub, cluster, resolve_sink=lambda: SINK, wal=RecordingWal(),
                                             node_name="child", member_id="member-1")
    c.start()
    c._thread.join(120)
    os._exit(0)
''')


class RecordingWal:
    """The WAL port of the consumer: records what it appends (the WAL is not under test)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, Record, DedupId | None]] = []
        self.lock = threading.Lock()

    def partition_of(self, invocation_id: InvocationId) -> int:
        return 0

    def append_many(self, items: Sequence[tuple[int, Record, DedupId | None]]) -> None:
        with self.lock:
            self.items.extend(items)

    def queued(self) -> int:
        return 0


def subscription(topic: str, dlq: str, group: str, sub_id: SubscriptionId) -> Subscription:
    return Subscription(
        id=sub_id, source=f"kafka://local/{topic}", sink="service://SeqLog/append",
        options={"payload.format": "json", "dead-letter-topic": dlq, "auto.offset.reset": "earliest",
                 "group.id": group},
        **({"ingest_version": 2} if "ingest_version" in Subscription.__dataclass_fields__ else {}),
    )


def test_a_dead_letter_is_published_once_when_the_process_dies_before_the_commit(
    kafka: KafkaBroker, topic_prefix: str,
) -> None:
    bootstrap = kafka.bootstrap_servers
    topic, dlq, group = f"{topic_prefix}.src", f"{topic_prefix}.dlq", f"{topic_prefix}.g"
    create_topic(bootstrap, topic, 1)
    create_topic(bootstrap, dlq, 1)
    events: list[tuple[bytes | None, Any]] = [(b"a", {"seq": 0}), (b"b", b"{not json"), (b"c", {"seq": 1})]
    publish(bootstrap, topic, events)
    sub_id = SubscriptionId.generate()

    child = subprocess.run([sys.executable, "-c", _CHILD, bootstrap, topic, dlq, group, str(sub_id)],
                           capture_output=True, text=True, timeout=180)
    assert child.returncode == 3 and "crashing at the commit" in child.stdout, (child.returncode, child.stdout,
                                                                                 child.stderr[-3000:])

    wal = RecordingWal()
    cluster = KafkaCluster(name="local", properties={"bootstrap.servers": bootstrap})
    again = SubscriptionConsumer(subscription(topic, dlq, group, sub_id), cluster, resolve_sink=lambda: SINK,
                                 wal=wal, node_name="again", member_id="member-1")
    again.start()
    try:
        wait_until(lambda: again.status.failed >= 1 and len(wal.items) == 2 and not again.status.assigned == [], 60,
                   "the batch to be read again")
        wait_until(lambda: _committed(bootstrap, topic, group) == 3, 60, "the batch's offsets to be committed")
    finally:
        again.stop()
    dead = read_all(bootstrap, dlq)
    assert [m.key() for m in dead] == [b"b"], f"{len(dead)} dead letters for one undecodable record"
    headers = dict(dead[0].headers())
    assert headers["logstrate.error.kind"] == b"decode" and headers["logstrate.source.offset"] == b"1"


def _committed(bootstrap: str, topic: str, group: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        [tp] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()
