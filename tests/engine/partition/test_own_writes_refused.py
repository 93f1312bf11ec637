"""A leader's write the WAL cannot take fails its waiter and those queued after it, and
never hangs them (real WalAppender on the session broker).

``OwnWrites`` encodes and hands over what one loop turn queued at the end of the turn,
in a loop callback. A record that could not be encoded (an integer beyond 64 bits) used
to raise inside that callback: every waiter of the batch hung, and so did the attempt
that wrote it — its invocation stayed "invoked" for good.
"""

from __future__ import annotations

import asyncio

import pytest

from engine.config import KafkaConfig
from engine.partition.leader.own_writes import OwnWrites
from engine.wal.appender import WalAppender
from engine.wal.codec import WalCodecError
from engine.wal.records import OutboxTruncate
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic

pytestmark = pytest.mark.kafka


def test_an_unencodable_record_fails_itself_and_what_follows_it(kafka: KafkaBroker, topic_prefix: str) -> None:
    config = KafkaConfig(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=topic_prefix, partitions=1)
    create_topic(kafka.bootstrap_servers, config.wal_topic, partitions=1)
    appender = WalAppender(config)

    async def scenario() -> None:
        writes = OwnWrites(appender, 0, epoch=1)
        before = writes.submit(OutboxTruncate(1))
        bad = writes.submit(OutboxTruncate(2**64))  # beyond Avro's long
        after = writes.submit(OutboxTruncate(3))
        done = await asyncio.wait_for(asyncio.gather(before, bad, after, return_exceptions=True), 30)
        assert isinstance(done[0], int), done
        assert isinstance(done[1], WalCodecError) and isinstance(done[2], WalCodecError), done
        # The next turn's writes go through as usual.
        assert isinstance(await asyncio.wait_for(writes.submit(OutboxTruncate(4)), 30), int)

    try:
        asyncio.run(scenario())
    finally:
        appender.close()
