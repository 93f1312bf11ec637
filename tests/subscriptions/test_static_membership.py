"""Static group membership: a process restarted on its data dir is the same group member.

The WAL consumer and every subscription consumer join their groups with a
``group.instance.id`` derived from the data dir (``MEMBER_ID``), so after a kill -9 the
restarted process takes its partitions back at once instead of waiting out the dead
process's session. Checked on the real broker's view of the groups, before and after
a kill -9 and restart.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.admin import AdminClient

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.subscriptions.scenario import SUBSCRIPTION_APP, add_cluster, start_engine, subscribe


def _instance_ids(kafka: KafkaBroker, group: str) -> list[str]:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return sorted(str(m.group_instance_id) for m in description.members)


def test_a_restarted_engine_rejoins_its_groups_as_the_same_static_member(
    kafka: KafkaBroker, engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints,
    topic_prefix: str, tmp_path: Path,
) -> None:
    data_dir = tmp_path / "engine-data"
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP), data_dir=data_dir)
    member = (data_dir / "MEMBER_ID").read_text().strip()
    topic = f"{topic_prefix}.orders"
    create_topic(kafka.bootstrap_servers, topic)
    add_cluster(engine, kafka)
    subscription = subscribe(engine, topic, "service://SeqLog/append")
    wal_group = f"{topic_prefix}.partition-processors"

    expected_wal = [f"{_node(engine)}-{member}"]
    expected_sub = [f"{_node(engine)}-{member}.{subscription}"]
    wait_until(lambda: _instance_ids(kafka, wal_group) == expected_wal, 60, "the WAL consumer's static member")
    wait_until(lambda: _instance_ids(kafka, subscription) == expected_sub, 60, "the subscription's static member")

    engine.kill()
    engine = engine_factory(data_dir=data_dir, ingress_port=engine.ingress_port, admin_port=engine.admin_port)
    engine.start_and_wait()
    # The same members again, never a second one beside the dead process's.
    assert (data_dir / "MEMBER_ID").read_text().strip() == member
    wait_until(lambda: _instance_ids(kafka, subscription) == expected_sub, 60, "the subscription's member back")
    assert _instance_ids(kafka, wal_group) == expected_wal
    assert engine.terminate() == 0


def _node(engine: EngineProcess) -> str:
    """The engine's node name (its default: the host name)."""
    return socket.gethostname()
