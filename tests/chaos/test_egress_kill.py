"""kill -9 of the engine while a handler publishes to Kafka through the built-in egress.

``EgressSdk/publish_steps`` (``tests/fixtures/egress_services.py``) runs 30 rounds of a
journaled ``ctx.run`` step followed by an egress publish of ``{"i": i}``. The engine is
killed with SIGKILL three times while the records come out and restarted on the same
data dir. A read_committed consumer of the output topic must then see exactly 30
records, ``i`` = 0..29, each once, in publish order per key: a kill between a publish's
transaction commit and the end being applied must not publish again, and a kill inside
an open transaction must leave nothing visible (the next leader aborts it and publishes
anew).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer

from engine.ids import InvocationId, InvocationUuid
from engine.partition.leader.egress import transactional_id
from engine.wal import codec
from engine.wal.records import InvocationEnded, Value
from tests.engine.test_egress import EGRESS_APP, invocation, read_all
from tests.engine.test_invocations import call, register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints

ROUNDS = 30
KILL_AT = (4, 13, 22)  # kill once the read_committed consumer has seen this many records


def test_egress_publishes_exactly_once_through_repeated_kill_9(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str, tmp_path: Path,
) -> None:
    endpoint = service_endpoints.get(EGRESS_APP)
    data_dir = tmp_path / "engine-data"
    engine = engine_factory(data_dir=data_dir, partitions=4)
    engine.start_and_wait()
    register(engine, endpoint)
    topic = f"{topic_prefix}.out"
    create_topic(kafka.bootstrap_servers, topic, 3)

    status, body, _ = call(f"{engine.ingress_url}/EgressSdk/publish_steps/send", {"topic": topic, "count": ROUNDS})
    assert status == 202, body
    invocation_id = body["invocationId"]
    for kills, threshold in enumerate(KILL_AT, start=1):
        wait_until(lambda: len(read_all(kafka.bootstrap_servers, topic)) >= threshold, 60,
                   f"{threshold} records before kill {kills}")
        engine.kill()
        engine = engine_factory(data_dir=data_dir, partitions=4, ingress_port=engine.ingress_port,
                                admin_port=engine.admin_port)
        engine.start_and_wait()

    wait_until(lambda: invocation(engine, invocation_id)["status"] == "completed", 120,
               "the handler to finish after the restarts")
    assert invocation(engine, invocation_id)["completion_value"] == {"utf8": str(ROUNDS)}

    records = read_all(kafka.bootstrap_servers, topic)
    seen = [json.loads(m.value())["i"] for m in records]
    duplicates = {i: n for i, n in Counter(seen).items() if n > 1}
    assert not duplicates, f"published more than once: {duplicates}"
    assert sorted(seen) == list(range(ROUNDS)), f"missing: {sorted(set(range(ROUNDS)) - set(seen))}"
    for m in records:
        i = json.loads(m.value())["i"]
        assert m.key() == f"k{i % 3}".encode() and dict(m.headers() or []) == {"round": str(i).encode()}
    # Per key (one partition each), records are in the order the handler published them.
    by_key: dict[bytes, list[int]] = {}
    for m in sorted(records, key=lambda m: (m.partition(), m.offset())):
        by_key.setdefault(m.key(), []).append(json.loads(m.value())["i"])
    for key, values in by_key.items():
        assert values == sorted(values), f"{key!r} out of order: {values}"
    # Aborted transactions (kills inside one) may show up to a read_uncommitted reader only.
    uncommitted = len(read_all(kafka.bootstrap_servers, topic, committed_only=False))
    assert uncommitted >= ROUNDS
    assert engine.terminate() == 0


def test_open_transaction_of_a_dead_leader_is_aborted_and_its_producer_fenced(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str, tmp_path: Path,
) -> None:
    """A leader that dies inside an egress transaction: the next leader fences it in.

    The dead leader is played by a producer with the partition's transactional id that
    commits one WAL record, then publishes a record and a WAL record and never commits,
    with a transaction timeout far beyond the test. The restarted engine must lead the
    partition at once (its catch-up sees past the commit marker, and its read_committed
    WAL consumer is not held back by the open transaction, which its
    ``init_transactions`` aborts), publish normally, and the "dead" producer must be
    unable to commit afterwards.
    """
    endpoint = service_endpoints.get(EGRESS_APP)
    data_dir = tmp_path / "engine-data"
    engine = engine_factory(data_dir=data_dir, partitions=1)
    engine.start_and_wait()
    register(engine, endpoint)
    topic = f"{topic_prefix}.out"
    create_topic(kafka.bootstrap_servers, topic, 1)
    assert call(f"{engine.ingress_url}/EgressSdk/publish", {"topic": topic, "value": "before"})[0] == 200
    engine.kill()

    zombie = Producer({
        "bootstrap.servers": kafka.bootstrap_servers, "transactional.id": transactional_id(topic_prefix, 0),
        "transaction.timeout.ms": 900_000,
    })
    zombie.init_transactions(30)
    stray = InvocationId(0, InvocationUuid.derive("test", "zombie"))
    stray_end = codec.encode(InvocationEnded(stray, Value(b"")), epoch=1)  # an unknown invocation: ignored
    # A committed transaction first: the WAL then ends in a commit marker, an offset no
    # consumer ever receives, which the restarted engine's catch-up must see past.
    zombie.begin_transaction()
    zombie.produce(f"{topic_prefix}.wal", value=stray_end, partition=0)
    zombie.commit_transaction(30)
    # Then the transaction the "leader" dies in.
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie")
    zombie.produce(f"{topic_prefix}.wal", value=stray_end, partition=0)
    assert zombie.flush(30) == 0

    engine = engine_factory(data_dir=data_dir, partitions=1, ingress_port=engine.ingress_port,
                            admin_port=engine.admin_port)
    engine.start_and_wait()
    status, body, _ = call(f"{engine.ingress_url}/EgressSdk/publish", {"topic": topic, "value": "after"}, timeout=60)
    assert status == 200, body
    with pytest.raises(KafkaException) as raised:
        zombie.commit_transaction(30)
    assert raised.value.args[0].fatal(), raised.value
    assert [m.value() for m in read_all(kafka.bootstrap_servers, topic)] == [b"before", b"after"]
    assert engine.terminate() == 0
