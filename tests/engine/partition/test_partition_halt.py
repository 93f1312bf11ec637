"""A WAL record of a newer schema halts its partition; the others go on; an upgraded
engine applies it.

Real broker, real engine processes, the official-SDK Counter. The record is written to
the WAL topic as a newer engine would write it (this engine's encoding under the next
schema version number). The "upgraded" engine is the same engine started with that
version added to its readers (the new version's schema being the current one), which is
what an upgrade that adds a schema version does. On the code before halting existed
the record was logged and marked applied: the count stayed 0 after the upgrade.
"""

from __future__ import annotations

import re
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Producer

from engine.ids import InvocationUuid
from engine.wal import codec
from engine.wal import records as r
from engine.wal.partitioning import invocation_id_for, partition_for, partition_key_for_key
from engine.wal.schema import CURRENT_VERSION
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint
from tests.fixtures.systems import http

PARTITIONS = 4
NEWER = CURRENT_VERSION + 1

_UPGRADED = (
    "import sys; import engine.wal.codec as c; "
    f"c._PARSED[{NEWER}] = c._PARSED[{CURRENT_VERSION}]; "
    "from engine.cli import main; sys.argv = ['logstrate', *sys.argv[1:]]; main()"
)


@dataclass
class UpgradedEngine(EngineProcess):
    """The engine with WAL schema version ``NEWER`` among the versions it reads."""

    def command(self) -> list[str]:
        base = super().command()
        assert base[:3] == [sys.executable, "-m", "engine"]
        return [sys.executable, "-c", _UPGRADED, *base[3:]]


def _key_on(partition: int, prefix: str) -> str:
    for n in range(10_000):
        key = f"{prefix}{n}"
        if partition_for(partition_key_for_key("Counter", key), PARTITIONS) == partition:
            return key
    raise AssertionError("no key found")


def _metrics(engine: EngineProcess) -> str:
    with urllib.request.urlopen(f"{engine.admin_url}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def _halted(engine: EngineProcess) -> set[tuple[str, str]]:
    return set(re.findall(r'logstrate_partition_halted\{partition="(\d+)",reason="(\w+)"\} 1\.0', _metrics(engine)))


def test_newer_schema_halts_the_partition_until_the_engine_is_upgraded(
    engine_factory: Callable[..., EngineProcess], kafka: KafkaBroker, greeter_endpoint: ServiceEndpoint,
) -> None:
    old = engine_factory(partitions=PARTITIONS)
    old.start_and_wait()
    old.wait_leading_all()
    status, body = http("POST", f"{old.admin_url}/deployments", {"uri": greeter_endpoint.url, "use_http_11": True, "force": True})
    assert status in (200, 201), body
    halted_key, other_key = _key_on(0, "halted-"), _key_on(1, "other-")
    assert http("POST", f"{old.ingress_url}/Counter/{halted_key}/add", 1)[0] == 200

    # A newer engine's one-way "add 5" on the key, in the next schema version.
    invoke = r.Invoke(
        invocation_id=invocation_id_for("Counter", halted_key, InvocationUuid.derive("test", "newer-schema")),
        target=r.InvocationTarget("Counter", "add", halted_key, r.ServiceKind.VIRTUAL_OBJECT, r.HandlerKind.EXCLUSIVE),
        argument=b"5",
    )
    value = bytearray(codec.encode(invoke))
    value[1] = NEWER
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True})
    producer.produce(f"{old.topic_prefix}.wal", bytes(value), partition=0)
    assert producer.flush(30) == 0

    wait_until(lambda: ("0", "wal_schema_too_new") in _halted(old), 60, "partition 0 to halt")
    output = old.output()
    assert "WAL partition halted" in output and f"schema version {NEWER}" in output and "upgrade the engine" in output
    wait_until(lambda: 0 not in old.led_partitions(), 30, "partition 0 to be led no more")
    # Every other partition goes on, and the process serves its admin API.
    assert http("POST", f"{old.ingress_url}/Counter/{other_key}/add", 2, timeout=30) == (200, 2)
    assert old.led_partitions() == {1, 2, 3}
    assert http("GET", f"{old.admin_url}/health")[0] == 200
    assert old.proc is not None and old.proc.poll() is None
    assert old.terminate() == 0

    # The same data dir under an engine that reads the newer version: the record was not
    # marked applied, so it is applied now (1 + 5), and the partition is led again.
    upgraded = UpgradedEngine(
        bootstrap_servers=kafka.bootstrap_servers, topic_prefix=old.topic_prefix, data_dir=old.data_dir,
        partitions=PARTITIONS,
    )
    try:
        upgraded.start_and_wait()
        upgraded.wait_leading_all()

        def counted() -> bool:
            status, count = http("POST", f"{upgraded.ingress_url}/Counter/{halted_key}/get", timeout=30)
            return status == 200 and count == 6

        wait_until(counted, 60, "the newer record to be applied")
        assert _halted(upgraded) == set()
    finally:
        upgraded.kill()
