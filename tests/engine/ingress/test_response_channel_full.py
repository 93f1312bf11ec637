"""An answer for another process is not lost when the responses producer's queue is full.

Two real response channels on the session broker: process A sends answers to requests
waiting on process B. A's producer holds one record at most (``queue.buffering.max.messages
= 1``) and lingers, so the second and third answers find its queue full; they used to be
dropped ("answer dropped") and their callers waited for good. Now they are sent again
from A's reader thread, and every waiting request on B is answered.
"""

from __future__ import annotations

import asyncio

import pytest

from engine.config import KafkaConfig
from engine.ids import InvocationUuid
from engine.ingress.pending import PendingResponses
from engine.ingress.response_channel import RESPONSE_PARTITIONS, ResponseChannel
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import Value
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic

pytestmark = pytest.mark.kafka


def test_answers_that_find_the_queue_full_are_sent_again(kafka: KafkaBroker, topic_prefix: str) -> None:
    config = KafkaConfig(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=topic_prefix, partitions=1)
    create_topic(kafka.bootstrap_servers, config.responses_topic, partitions=RESPONSE_PARTITIONS)

    async def scenario() -> None:
        waiting_b, pending_a = PendingResponses(), PendingResponses()
        b = ResponseChannel(config, "node-b.0001", waiting_b)
        a = ResponseChannel(config, "node-a.0001", pending_a,
                            producer_overrides={"queue.buffering.max.messages": 1, "linger.ms": 300})
        await b.start()
        await a.start()
        try:
            requests = [waiting_b.register() for _ in range(3)]
            for n, (request_id, _) in enumerate(requests):
                iid = invocation_id_for("Svc", None, InvocationUuid.derive("answer", str(n)))
                a.send("node-b.0001", request_id, iid, Value(f"answer {n}".encode()))
            results = await asyncio.wait_for(asyncio.gather(*(f for _, f in requests)), 30)
            assert [r.content for r in results if isinstance(r, Value)] == [b"answer 0", b"answer 1", b"answer 2"]
            assert len(waiting_b) == 0
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())
