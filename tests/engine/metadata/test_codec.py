"""The metadata topic's record format: round trips, tombstones, versions, foreign keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from engine.ids import DeploymentId, SubscriptionId
from engine.metadata import codec, kafka
from engine.metadata.kafka import KafkaCluster, Subscription
from engine.metadata.manifest import parse_manifest
from engine.metadata.model import Deployment, ProtocolType, ServiceMetadata
from tests.engine.metadata.test_manifest import V1_SAMPLE, V3_SAMPLE, V4_SAMPLE


def _deployment() -> Deployment:
    deployment_id = DeploymentId.generate()
    definitions = [*parse_manifest(3, V3_SAMPLE).services, *parse_manifest(4, V4_SAMPLE).services]
    definitions += parse_manifest(1, V1_SAMPLE).services
    return Deployment(
        id=deployment_id,
        uri="http://svc:9080/",
        protocol_type=ProtocolType.REQUEST_RESPONSE,
        min_protocol_version=5,
        max_protocol_version=7,
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        services=tuple(ServiceMetadata(d, revision=i + 1, deployment_id=deployment_id) for i, d in enumerate(definitions)),
        use_http_11=True,
        additional_headers={"x-api-key": "k"},
        metadata={"team": "a"},
        sdk_version="restate-sdk-python/1.3.0",
    )


def test_deployment_round_trips_exactly() -> None:
    deployment = _deployment()
    key = codec.deployment_key(deployment.id)
    assert key == f"deployment/{deployment.id}".encode()
    record = codec.decode_record(key, codec.encode_deployment(deployment))
    assert record == codec.DeploymentPut(deployment)


def test_value_is_versioned_json_with_durations_in_milliseconds() -> None:
    document = json.loads(codec.encode_deployment(_deployment()))
    assert document["schema_version"] == codec.SCHEMA_VERSION
    orders = document["deployment"]["services"][0]
    assert orders["options"]["idempotency_retention_ms"] == timedelta(hours=2) // timedelta(milliseconds=1)
    assert document["deployment"]["created_at_ms"] == 1767323045678


def test_tombstone_deletes() -> None:
    deployment_id = DeploymentId.generate()
    assert codec.decode_record(codec.deployment_key(deployment_id), None) == codec.DeploymentDeleted(deployment_id)


def test_unknown_metadata_kinds_are_passed_over() -> None:
    assert codec.decode_record(b"future-kind/x", b"{}") == codec.OtherRecord("future-kind/x")


def test_kafka_clusters_and_subscriptions_round_trip() -> None:
    cluster = KafkaCluster("local", {"bootstrap.servers": "b:9092"}, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert codec.decode_record(kafka.cluster_key("local"), codec.encode_kafka_cluster(cluster)) == codec.KafkaClusterPut(cluster)
    assert codec.decode_record(kafka.cluster_key("local"), None) == codec.KafkaClusterDeleted("local")
    sub = Subscription(SubscriptionId.generate(), "kafka://local/t", "service://S/h", {"group.id": "g"},
                       datetime(2026, 1, 2, tzinfo=UTC), paused=True)
    key = kafka.subscription_key(sub.id)
    assert codec.decode_record(key, codec.encode_subscription(sub)) == codec.SubscriptionPut(sub)
    assert codec.decode_record(key, None) == codec.SubscriptionDeleted(sub.id)
    assert (sub.cluster, sub.topic, sub.service, sub.handler, sub.group_id) == ("local", "t", "S", "h", "g")
    with pytest.raises(codec.MetadataCodecError, match="invalid subscription id"):
        codec.decode_record(b"subscription/sub_1abc", b"{}")


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        (None, b"{}", "without a key"),
        (b"deployment/nonsense", b"{}", "deployment/nonsense"),
        (b"deployment/dp_10000000000000000000000", b"not json", "is not JSON"),
        (b"deployment/dp_10000000000000000000000", b'{"schema_version": 99, "deployment": {}}', "upgrade this engine"),
        (b"deployment/dp_10000000000000000000000", b'{"schema_version": 1, "deployment": {"id": 5}}', "malformed"),
    ],
)
def test_unreadable_records_raise_with_the_key(key: bytes | None, value: bytes, complaint: str) -> None:
    with pytest.raises(codec.MetadataCodecError, match=complaint):
        codec.decode_record(key, value)


def test_a_record_whose_key_and_id_disagree_is_refused() -> None:
    deployment = _deployment()
    with pytest.raises(codec.MetadataCodecError, match="holds deployment"):
        codec.decode_record(codec.deployment_key(DeploymentId.generate()), codec.encode_deployment(deployment))
