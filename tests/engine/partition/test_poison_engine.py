"""A poison record in a real WAL: its invocation fails, the engine stays up, and a second
replica rebuilding from the log reaches the same outcome.

The record is what an SDK with a ``sleep(Long.MAX_VALUE)`` bug makes an engine without
the invoker's range check write: a ``SleepCommand`` whose wake-up time is 2^63 ms,
appended for a running invocation (the official-SDK ``FarFuture/block``, held in a
``ctx.run`` step). On the code before containment applying it raised ``struct.error``
out of the WAL consumer: the process exited, and so did every process that took the
partition over.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from engine.ids import InvocationId
from engine.wal import codec
from engine.wal import records as r
from engine.wal.partitioning import partition_for
from restate_protocol import MessageType, pb
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http

PARTITIONS = 4
APP = "tests.fixtures.official_sdk_far_future:app"


def _status(engine: EngineProcess, invocation_id: str) -> dict[str, Any] | None:
    status, body = http("GET", f"{engine.admin_url}/invocations/{invocation_id}?journal=false")
    return body if status == 200 and isinstance(body, dict) else None


def _failed(engine: EngineProcess, invocation_id: str) -> dict[str, Any]:
    def completed() -> dict[str, Any] | None:
        body = _status(engine, invocation_id)
        return body if body is not None and body["status"] == "completed" else None

    body: dict[str, Any] = wait_until(completed, 60, "the invocation to complete")
    failure: dict[str, Any] = body["completion_failure"]
    return failure


def test_a_poison_record_fails_its_invocation_on_every_replica(
    engine_factory: Callable[..., EngineProcess], kafka: KafkaBroker, service_endpoints: ServiceEndpoints,
    tmp_path: Path,
) -> None:
    first = engine_factory(partitions=PARTITIONS)
    first.start_and_wait()
    first.wait_leading_all()
    url = service_endpoints.get(APP, "poison").url
    assert http("POST", f"{first.admin_url}/deployments", {"uri": url, "use_http_11": True, "force": True})[0] in (
        200, 201)
    marker = tmp_path / "release"
    try:
        status, sent = http("POST", f"{first.ingress_url}/FarFuture/block/send", str(marker))
        assert status == 202, sent
        iid = sent["invocationId"]
        wait_until(lambda: (_status(first, iid) or {}).get("status") == "invoked", 30, "the attempt to run")

        invocation_id = InvocationId.parse(iid)
        partition = partition_for(invocation_id.partition_key, PARTITIONS)
        sleep = pb.SleepCommandMessage(wake_up_time=2**63, result_completion_id=1)
        record = r.JournalAppend(invocation_id, 1, MessageType.SLEEP_COMMAND, sleep.SerializeToString(),
                                 command_index=1)
        producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True})
        producer.produce(f"{first.topic_prefix}.wal", codec.encode(record), partition=partition)
        assert producer.flush(30) == 0

        failure = _failed(first, iid)
        assert failure["code"] == 500
        assert "struct.error" in failure["message"] and "JournalAppend" in failure["message"]
        # The engine is up and the partition goes on.
        assert first.proc is not None and first.proc.poll() is None
        assert first.led_partitions() == set(range(PARTITIONS))
        assert http("POST", f"{first.ingress_url}/FarFuture/ok", "still here") == (200, "still here")
        with urllib.request.urlopen(f"{first.admin_url}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert re.search(rf'logstrate_wal_poison_records_total\{{partition="{partition}"\}} 1\.0', metrics)
    finally:
        marker.write_text("go")
    assert first.terminate() == 0

    # Another replica of the partitions, rebuilt from the WAL alone (a fresh data dir).
    replica = engine_factory(partitions=PARTITIONS)
    replica.start_and_wait()
    replica.wait_leading_all()
    assert _failed(replica, iid) == failure
