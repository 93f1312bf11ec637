"""The egress executor against the real broker: one transaction, once per invocation, fencing.

The executor's seams to the partition (the snapshot of status + applied offset, and
``append_own``) are plain functions here, so a test can hold an invocation "Invoked,
end not applied yet" and ask to run it again, the window a restarted attempt loop or a
new leader's start could hit. Kafka is real: records are read back read_committed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from engine.config import KafkaConfig
from engine.egress import EGRESS_TARGET, encode_request
from engine.ids import InvocationId, InvocationUuid
from restate_protocol import MessageType, pb
from engine.partition.leader.egress import EgressExecutor, EgressProducers
from engine.partition.state_reader import InvocationTaskData
from restate_protocol import JournalEntry
from engine.wal import codec
from engine.wal.records import Failure, InvocationEnded, Record, Value
from tests.engine.test_egress import read_all
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic


def task(n: int, argument: bytes) -> InvocationTaskData:
    invocation_id = InvocationId(0, InvocationUuid.derive("egress-test", str(n)))
    input_command = pb.InputCommandMessage(value=pb.Value(content=argument))
    return InvocationTaskData(
        invocation_id=invocation_id, target=EGRESS_TARGET, headers=(), idempotency_key=None,
        deployment_id=None, protocol_version=None,
        journal=(JournalEntry(MessageType.INPUT_COMMAND, input_command.SerializeToString()),),
        commands=1, state=(), partial_state=False, attempt=0, retries_since_last_entry=0,
        last_failure=None, modified_at_ms=0,
    )


class FakePartition:
    """Stands in for LMDB: every task stays Invoked until the test says it was applied."""

    def __init__(self) -> None:
        self.tasks: dict[InvocationId, InvocationTaskData] = {}
        self.applied: int | None = None
        self.appended: list[Record] = []

    def snapshot(self, invocation_id: InvocationId) -> tuple[InvocationTaskData | None, int | None]:
        return self.tasks.get(invocation_id), self.applied

    async def append_own(self, record: Record) -> int:
        self.appended.append(record)
        return 0


def wal_ends(bootstrap: str, wal_topic: str) -> list[tuple[int, Any]]:
    return [(m.offset(), codec.decode(m.value())) for m in read_all(bootstrap, wal_topic)]


def test_publishes_once_commits_the_end_and_is_fenced_by_a_newer_leader(kafka: KafkaBroker, topic_prefix: str) -> None:
    bootstrap = kafka.bootstrap_servers
    config = KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=topic_prefix, partitions=1)
    out = f"{topic_prefix}.out"
    create_topic(bootstrap, config.wal_topic, 1)
    create_topic(bootstrap, out, 2)
    partition = FakePartition()

    async def main() -> None:
        producers = EgressProducers(config)
        await producers.fence(0)
        executor = EgressExecutor(partition=0, epoch=7, wal_topic=config.wal_topic, producer=producers.producer(0),
                                  snapshot=partition.snapshot, append_own=partition.append_own)
        executor.start()
        try:
            first = task(1, encode_request(out, b"one", key=b"k1", headers={"h": "v"}))
            partition.tasks[first.invocation_id] = first
            assert await executor.run(first.invocation_id) is None
            # The end is committed but not applied: running it again publishes nothing.
            assert await executor.run(first.invocation_id) is None

            # Requests that arrive together share one transaction; each gets its own end.
            many = [task(10 + i, encode_request(out, f"m{i}".encode(), key=b"m")) for i in range(5)]
            for t in many:
                partition.tasks[t.invocation_id] = t
            assert await asyncio.gather(*(executor.run(t.invocation_id) for t in many)) == [None] * 5

            # An attempt cancelled mid-publish (kill, leadership wobble) and started again
            # joins the transaction in flight instead of publishing a second time.
            again = task(20, encode_request(out, b"joined"))
            partition.tasks[again.invocation_id] = again
            attempt = asyncio.create_task(executor.run(again.invocation_id))
            await asyncio.sleep(0)
            attempt.cancel()
            assert await executor.run(again.invocation_id) is None

            # A malformed request ends the invocation with 400 outside any transaction.
            bad = task(30, b'{"topic": 1}')
            partition.tasks[bad.invocation_id] = bad
            assert await executor.run(bad.invocation_id) is None
            [ended] = partition.appended
            assert isinstance(ended, InvocationEnded) and isinstance(ended.result, Failure)
            assert ended.result.code == 400 and "'topic' is required" in ended.result.message

            # A missing topic is a retryable attempt failure, and publishes nothing.
            missing = task(40, encode_request(f"{topic_prefix}.nope", b"x"))
            partition.tasks[missing.invocation_id] = missing
            failure = await executor.run(missing.invocation_id)
            assert failure is not None and failure.code == 404 and "does not exist" in failure.message

            # Once the ends are applied (the snapshot says so), nothing is remembered.
            partition.applied = 10_000
            for done in (first, *many, again):
                del partition.tasks[done.invocation_id]
                assert await executor.run(done.invocation_id) is None

            # A newer leader of the partition fences this one in: its next publish is refused
            # by Kafka, nothing becomes visible, and the executor stops publishing (it has
            # no way to fence in again here; a leader gives it one).
            await producers.fence(0)
            late = task(50, encode_request(out, b"late"))
            partition.tasks[late.invocation_id] = late
            for _ in range(2):
                failure = await executor.run(late.invocation_id)
                assert failure is not None and failure.code == 503, failure
        finally:
            await executor.stop()

    asyncio.run(main())

    records = read_all(bootstrap, out)
    values = sorted(m.value() for m in records)
    assert values == sorted([b"one", b"joined", *(f"m{i}".encode() for i in range(5))]), values
    ends = {env.record.invocation_id: (offset, env) for offset, env in wal_ends(bootstrap, config.wal_topic)}
    assert len(ends) == 7  # one committed end per published record, none for the late one
    for m in records:
        [(_, env)] = [(o, e) for o, e in ends.values()
                      if isinstance(e.record.result, Value)
                      and json.loads(e.record.result.content) == {"topic": out, "partition": m.partition(),
                                                                   "offset": m.offset()}]
        assert env.epoch == 7
    one = next(m for m in records if m.value() == b"one")
    assert one.key() == b"k1" and one.headers() == [("h", b"v")]


def test_a_late_fence_from_a_process_that_lost_the_partition_does_not_disable_egress_for_good(
    kafka: KafkaBroker, topic_prefix: str,
) -> None:
    bootstrap = kafka.bootstrap_servers
    config = KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=topic_prefix, partitions=1)
    out = f"{topic_prefix}.out"
    create_topic(bootstrap, config.wal_topic, 1)
    create_topic(bootstrap, out, 1)
    partition = FakePartition()

    async def main() -> None:
        ours = EgressProducers(config)
        await ours.fence(0)
        executor = EgressExecutor(partition=0, epoch=3, wal_topic=config.wal_topic, producer=ours.producer(0),
                                  snapshot=partition.snapshot, append_own=partition.append_own,
                                  refence=lambda: ours.new_producer(0))
        executor.start()
        try:
            # A process that lost the partition finishes its init_transactions late.
            await EgressProducers(config).fence(0)
            first = task(1, encode_request(out, b"refused"))
            partition.tasks[first.invocation_id] = first
            failure = await executor.run(first.invocation_id)
            assert failure is not None and failure.code == 503 and "fenc" in failure.message, failure
            # The live leader fences in again and publishes: the retried attempt succeeds.
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                failure = await executor.run(first.invocation_id)
                if failure is None:
                    break
                assert failure.code == 503, failure
                assert asyncio.get_running_loop().time() < deadline, "egress stayed disabled"
                await asyncio.sleep(0.1)
        finally:
            await executor.stop()

    asyncio.run(main())
    assert [m.value() for m in read_all(bootstrap, out)] == [b"refused"]
