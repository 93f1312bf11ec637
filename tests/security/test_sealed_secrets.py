"""Kafka credentials sealed at rest (AES-256-GCM) and redacted in every answer and log.

Unit tests of the sealing (round trip, binding to the record and property, wrong key,
key formats, old clear-text records), then real engines on the real broker: without a
secrets key a credential is refused with a 400 that says how to configure one; with a
key, what the metadata topic holds is ciphertext, answers and logs show ``***``, a
fresh process with the same key reads the cluster and one with another key skips it
saying why; a clear-text record written before sealing existed still loads.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, Producer

from engine.metadata.kafka import KafkaCluster, cluster_from_json, cluster_to_json, subscription_from_json, \
    subscription_to_json, Subscription
from engine.metadata.kafka_properties import is_secret_property
from engine.metadata.sealing import SealingError, configure_secrets_key, parse_secrets_key, require_sealing
from engine.metadata.errors import InvalidRequest
from engine.ids import DeploymentId, SubscriptionId
from engine.metadata import codec
from engine.metadata.model import Deployment, ProtocolType
from tests.fixtures.engine import SEALING, TEST_SECRETS_KEY, EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import SUBSCRIPTION_APP, add_cluster, start_engine

PASSWORD = "pw-9d1e7c55"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIK3y-unique-4b1f\n-----END PRIVATE KEY-----"
CLIENT_SECRET = "oidc-secret-2a6f0d"
CREDENTIALS = {
    "sasl.password": PASSWORD, "ssl.key.pem": PRIVATE_KEY, "ssl.key.password": "kp-77c1e2",
    "sasl.oauthbearer.client.secret": CLIENT_SECRET,
}
CLEAR_TEXTS = [PASSWORD, "MC4CAQAwBQYDK2VwBCIEIK3y-unique-4b1f", CLIENT_SECRET, "kp-77c1e2"]


@pytest.fixture
def sealing_key() -> Iterator[bytes]:
    key = parse_secrets_key(TEST_SECRETS_KEY)
    configure_secrets_key(key)
    yield key
    configure_secrets_key(None)


@pytest.mark.parametrize("name", [
    "sasl.password", "ssl.key.password", "ssl.key.pem", "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.client.credentials.client.secret", "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.assertion.private.key.passphrase", "sasl.jaas.config", "sasl.oauthbearer.config",
    "schema.registry.basic.auth.user.info", "SASL.PASSWORD",
])
def test_credential_properties(name: str) -> None:
    assert is_secret_property(name)


@pytest.mark.parametrize("name", ["bootstrap.servers", "sasl.username", "ssl.certificate.pem", "ssl.ca.pem",
                                  "security.protocol", "sasl.oauthbearer.client.id"])
def test_not_credentials(name: str) -> None:
    assert not is_secret_property(name)


def test_redacted_properties_hide_every_credential() -> None:
    cluster = KafkaCluster("c", {"bootstrap.servers": "b:9092", **CREDENTIALS})
    shown = json.dumps(cluster.redacted_properties())
    assert all(text not in shown for text in CLEAR_TEXTS), shown


def test_key_formats() -> None:
    raw = bytes(range(32))
    for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex(),
                 f"  {raw.hex()}\n"):
        assert parse_secrets_key(text) == raw
    for bad in ("short", base64.b64encode(bytes(16)).decode(), "z" * 64):
        with pytest.raises(ValueError, match="openssl rand -base64 32"):
            parse_secrets_key(bad)


def test_sealed_round_trip_and_binding(sealing_key: bytes) -> None:
    cluster = KafkaCluster("c", {"bootstrap.servers": "b:9092", "sasl.username": "app", **CREDENTIALS})
    document = cluster_to_json(cluster)
    assert all(text not in json.dumps(document) for text in CLEAR_TEXTS), document
    assert set(document["sealed_properties"]) == set(CREDENTIALS)
    assert document["properties"] == {"bootstrap.servers": "b:9092", "sasl.username": "app"}
    assert cluster_from_json("c", json.loads(json.dumps(document))).properties == cluster.properties
    # Fresh nonces: the same value never seals to the same text.
    assert cluster_to_json(cluster)["sealed_properties"] != document["sealed_properties"]

    # A sealed value is bound to its record and property: moved, it does not open.
    moved = {**document, "name": "other"}
    with pytest.raises(SealingError, match="does not open"):
        cluster_from_json("other", moved)
    swapped = json.loads(json.dumps(document))
    sealed = swapped["sealed_properties"]
    sealed["sasl.password"], sealed["ssl.key.password"] = sealed["ssl.key.password"], sealed["sasl.password"]
    with pytest.raises(SealingError, match="does not open"):
        cluster_from_json("c", swapped)

    sub = Subscription(SubscriptionId.generate(), "kafka://c/t", "service://S/h",
                       {"schema.registry.basic.auth.user.info": "u:p-5e5e", "group.id": "g"})
    sub_document = subscription_to_json(sub)
    assert "p-5e5e" not in json.dumps(sub_document) and sub_document["options"] == {"group.id": "g"}
    assert subscription_from_json(sub.id, sub_document).options == sub.options

    configure_secrets_key(bytes(32))
    with pytest.raises(SealingError, match="every engine process sharing the metadata topic needs the key"):
        cluster_from_json("c", document)
    configure_secrets_key(None)
    with pytest.raises(SealingError, match="LOGSTRATE_SECRETS_KEY"):
        cluster_from_json("c", document)


def test_clear_text_records_still_load() -> None:
    old = {"name": "c", "properties": {"bootstrap.servers": "b:9092", "sasl.password": PASSWORD}, "created_at_ms": 5}
    assert cluster_from_json("c", old).properties["sasl.password"] == PASSWORD


def test_without_a_key_credentials_are_refused() -> None:
    with pytest.raises(InvalidRequest) as err:
        require_sealing({"bootstrap.servers": "b", "sasl.password": "x"}, "property")
    message = str(err.value)
    for fix in ("'sasl.password' is a credential", "LOGSTRATE_SECRETS_KEY", "secrets_key_file",
                "openssl rand -base64 32", "[kafka_clusters.<name>]"):
        assert fix in message, message
    require_sealing({"bootstrap.servers": "b", "sasl.username": "u"}, "property")


def _metadata_records(kafka: KafkaBroker, topic: str, key: bytes) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": f"peek-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    found: list[bytes] = []
    try:
        def drained() -> bool:
            message = consumer.poll(1.0)
            if message is None:
                return bool(found)
            if message.error() is None and message.key() == key and message.value() is not None:
                found.append(message.value())
            return False

        wait_until(drained, 30, f"the record {key!r} in {topic}", interval=0)
    finally:
        consumer.close()
    return found


def test_engines_seal_credentials_in_the_metadata_topic(
    engine_factory: Callable[..., EngineProcess], kafka: KafkaBroker, topic_prefix: str,
    service_endpoints: ServiceEndpoints,
) -> None:
    props = {"bootstrap.servers": kafka.bootstrap_servers, "security.protocol": "PLAINTEXT", **CREDENTIALS}
    unkeyed = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP))
    status, body = http("POST", f"{unkeyed.admin_url}/kafka-clusters", {"name": "c1", "properties": props})
    assert status == 400 and "LOGSTRATE_SECRETS_KEY" in body["message"], body
    add_cluster(unkeyed, kafka, "plain")
    status, body = http("POST", f"{unkeyed.admin_url}/subscriptions", {
        "source": f"kafka://plain/{topic_prefix}.none", "sink": "service://SeqLog/append",
        "options": {"schema.registry.basic.auth.user.info": "u:p"}})
    assert status == 400 and "secrets key" in body["message"], body
    unkeyed.kill()

    engine = engine_factory(env=dict(SEALING))
    engine.start_and_wait()
    status, body = http("POST", f"{engine.admin_url}/kafka-clusters", {"name": "c1", "properties": props})
    assert status == 201, body
    answers = [body, http("GET", f"{engine.admin_url}/kafka-clusters")[1],
               http("GET", f"{engine.admin_url}/kafka-clusters/c1")[1]]
    for answer in answers:
        assert all(text not in json.dumps(answer) for text in CLEAR_TEXTS), answer
    assert answers[2]["properties"]["ssl.key.pem"] == "***"

    (record,) = _metadata_records(kafka, f"{topic_prefix}.metadata", b"kafka-cluster/c1")
    assert all(text.encode() not in record for text in CLEAR_TEXTS), record
    stored = json.loads(record)["kafka_cluster"]
    assert set(stored["sealed_properties"]) == set(CREDENTIALS)
    assert not any(name in stored["properties"] for name in CREDENTIALS)

    # Another process with the same key reads it; one with another key skips it and says why.
    same = engine_factory(env=dict(SEALING))
    same.start_and_wait()
    assert [c["name"] for c in http("GET", f"{same.admin_url}/kafka-clusters")[1]["clusters"]] == ["c1", "plain"]
    other_key = base64.b64encode(bytes(range(32))).decode()
    other = engine_factory(env={"LOGSTRATE_SECRETS_KEY": other_key})
    other.start_and_wait()
    assert [c["name"] for c in http("GET", f"{other.admin_url}/kafka-clusters")[1]["clusters"]] == ["plain"]
    assert "does not open with this engine's secrets key" in other.output()

    for proc in (engine, same, other):
        assert all(text not in proc.output() for text in CLEAR_TEXTS)


def test_clear_text_records_from_before_sealing_still_load(
    engine_factory: Callable[..., EngineProcess], kafka: KafkaBroker, topic_prefix: str,
) -> None:
    engine = engine_factory()
    engine.start_and_wait()
    old = {"schema_version": 1, "kafka_cluster": {
        "name": "legacy", "properties": {"bootstrap.servers": kafka.bootstrap_servers, "sasl.password": PASSWORD},
        "created_at_ms": 1}}
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    producer.produce(f"{topic_prefix}.metadata", key=b"kafka-cluster/legacy", value=json.dumps(old).encode())
    assert producer.flush(30) == 0

    def listed() -> list[dict[str, object]] | None:
        clusters: list[dict[str, object]] = http("GET", f"{engine.admin_url}/kafka-clusters")[1]["clusters"]
        return clusters or None

    clusters = wait_until(listed, 30, "the clear-text cluster record to load")
    assert clusters[0]["name"] == "legacy" and clusters[0]["properties"] == {  # type: ignore[comparison-overlap]
        "bootstrap.servers": kafka.bootstrap_servers, "sasl.password": "***"}
    assert PASSWORD not in engine.output()


def test_deployment_credentials_are_sealed_when_a_key_is_configured(sealing_key: bytes) -> None:
    deployment = Deployment(
        id=DeploymentId.generate(), uri="http://svc:9080/", protocol_type=ProtocolType.REQUEST_RESPONSE,
        min_protocol_version=5, max_protocol_version=7, created_at=datetime(2026, 1, 2, tzinfo=UTC), services=(),
        additional_headers={"authorization": f"Bearer {PASSWORD}", "x-trace": "on"},
    )
    value = codec.encode_deployment(deployment)
    assert PASSWORD.encode() not in value and b"sealed_additional_headers" in value
    assert codec.decode_record(codec.deployment_key(deployment.id), value) == codec.DeploymentPut(deployment)
    configure_secrets_key(None)
    assert PASSWORD.encode() in codec.encode_deployment(deployment)  # no key: in clear (docs/SECURITY.md)


def test_deployment_credentials_are_not_shown(
    engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = engine_factory(env=dict(SEALING))
    engine.start_and_wait()
    status, body = http("POST", f"{engine.admin_url}/deployments", {
        "uri": greeter_endpoint.url, "additional_headers": {"Authorization": f"Bearer {PASSWORD}", "x-trace": "on"}})
    assert status == 201, body
    answers = [body, *(http("GET", f"{engine.admin_url}{path}")[1]
                       for path in ("/deployments", f"/deployments/{body['id']}"))]
    for answer in answers:
        assert PASSWORD not in json.dumps(answer), answer
    listed = answers[1]["deployments"][0]["additional_headers"]
    assert listed == {"authorization": "<redacted>", "x-trace": "on"}, listed
    (record,) = _metadata_records(kafka, f"{topic_prefix}.metadata", f"deployment/{body['id']}".encode())
    assert PASSWORD.encode() not in record
    # What the engine calls the endpoint with was opened again: invocations work.
    status, greeting = http("POST", f"{engine.ingress_url}/Greeter/greet", "Ada")
    assert status == 200, greeting
    assert PASSWORD not in engine.output()
