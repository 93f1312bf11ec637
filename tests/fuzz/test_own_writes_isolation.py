"""A record the leader cannot encode fails only its own waiter (real Kafka).

Found by the hostile-endpoint fuzzer: an endpoint's ``next_retry_delay`` of 2^64-1 ms
made a failed-attempt record unencodable, the whole batch of the leader's own writes
raised in its flush callback, and every record of the batch was left unwritten and
unsettled. The session now caps the delay; this checks the batch itself.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from engine.config import KafkaConfig
from engine.ids import InvocationUuid
from engine.partition.leader.own_writes import OwnWrites
from engine.wal import codec
from engine.wal.appender import WalAppender
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import InvocationFailedAttempt
from engine.wal.topics import ensure_topics
from tests.fixtures.kafka import KafkaBroker


def test_unencodable_record_fails_alone(kafka: KafkaBroker) -> None:
    config = KafkaConfig(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t-ownw-{uuid.uuid4().hex[:8]}",
                         partitions=1)
    ensure_topics(config)
    appender = WalAppender(config)

    def failed(retry_at_ms: int) -> InvocationFailedAttempt:
        invocation_id = invocation_id_for("Svc", None, InvocationUuid.generate())
        return InvocationFailedAttempt(invocation_id, 500, "boom", retry_at_ms, 1)

    async def main() -> None:
        writes = OwnWrites(appender, 0, epoch=1)
        good_before = writes.submit(failed(1))
        bad = writes.submit(failed(2**64))
        good_after = writes.submit(failed(2))
        offsets = await asyncio.wait_for(asyncio.gather(good_before, good_after), 30)
        assert all(offset >= 0 for offset in offsets)
        with pytest.raises(codec.WalCodecError):
            await asyncio.wait_for(bad, 5)

    try:
        asyncio.run(main())
    finally:
        appender.close()
