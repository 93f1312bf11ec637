"""librdkafka properties from the API: an allowlist; nothing that loads code or runs commands.

Unit tests of the list, then a real engine refusing such cluster properties and
subscription options with a 400 naming the property, and still accepting security
settings.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.metadata.errors import InvalidRequest
from engine.metadata.kafka import KafkaCluster, Subscription, consumer_properties, validate_cluster_properties
from engine.metadata.kafka_properties import RefusedProperty, check_api_properties
from engine.ids import SubscriptionId
from engine.metadata.sealing import configure_secrets_key, parse_secrets_key
from tests.fixtures.engine import TEST_SECRETS_KEY, EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import SUBSCRIPTION_APP, start_engine

DANGEROUS = {
    "plugin.library.paths": "loads shared libraries",
    "interceptors": "interceptors run code",
    "ssl.engine.location": "OpenSSL engine",
    "ssl.engine.id": "OpenSSL engine",
    "ssl.providers": "OpenSSL providers",
    "sasl.kerberos.kinit.cmd": "shell command",
    "sasl.kerberos.principal": "kinit shell command",
    "sasl.kerberos.keytab": "kinit shell command",
    "ssl.key.location": "names a file",
    "ssl.ca.location": "names a file",
    "ssl.keystore.location": "names a file",
    "sasl.oauthbearer.assertion.private.key.file": "names a file",
    "offset.store.path": "names a file",
    "error_cb": "callbacks run code",
    "PLUGIN.LIBRARY.PATHS": "not one of the connection, security and tuning properties",
    "default_topic_conf": "not one of",
}


@pytest.mark.parametrize(("name", "reason"), sorted(DANGEROUS.items()))
def test_dangerous_properties_are_refused_naming_them(name: str, reason: str) -> None:
    with pytest.raises(RefusedProperty) as err:
        validate_cluster_properties({"bootstrap.servers": "b:9092", name: "x"})
    assert f"property {name!r} is refused" in str(err.value) and reason in str(err.value)
    assert "[kafka_clusters.<name>]" in str(err.value)
    assert isinstance(err.value, InvalidRequest) and isinstance(err.value, ValueError)


def test_security_and_tuning_properties_are_accepted() -> None:
    props = {
        "bootstrap.servers": "b:9092", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u", "sasl.password": "p", "ssl.ca.pem": "-----BEGIN CERTIFICATE-----",
        "ssl.certificate.pem": "x", "ssl.key.pem": "x", "ssl.key.password": "x", "client.id": "c",
        "ssl.endpoint.identification.algorithm": "https", "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.client.id": "i", "sasl.oauthbearer.client.secret": "s",
        "sasl.oauthbearer.token.endpoint.url": "https://idp/token", "session.timeout.ms": "6000",
        "fetch.min.bytes": "1", "socket.keepalive.enable": "true", "acks": "all",
    }
    configure_secrets_key(parse_secrets_key(TEST_SECRETS_KEY))  # credentials are accepted only to be sealed
    try:
        assert validate_cluster_properties(props) == props
    finally:
        configure_secrets_key(None)


def test_subscription_options_use_the_consumer_list() -> None:
    check_api_properties(["group.id", "auto.offset.reset", "max.poll.interval.ms"], consumer=True, what="option")
    with pytest.raises(RefusedProperty, match="option 'plugin.library.paths' is refused"):
        check_api_properties(["group.id", "plugin.library.paths"], consumer=True, what="option")


def test_stored_records_from_before_the_allowlist_build_no_client() -> None:
    sub = Subscription(SubscriptionId.generate(), "kafka://c/t", "service://S/h")
    bad = KafkaCluster("c", {"bootstrap.servers": "b:9092", "plugin.library.paths": "/tmp/evil.so"})
    with pytest.raises(RefusedProperty, match="property of Kafka cluster 'c' 'plugin.library.paths'"):
        consumer_properties(bad, sub)
    declared = KafkaCluster("c", {"bootstrap.servers": "b:9092", "ssl.ca.location": "/etc/ca.pem"}, declared_in_config=True)
    assert consumer_properties(declared, sub)["ssl.ca.location"] == "/etc/ca.pem"  # the operator's config is trusted
    forged = Subscription(SubscriptionId.generate(), "kafka://c/t", "service://S/h", {"sasl.kerberos.kinit.cmd": "id"})
    with pytest.raises(RefusedProperty, match="option 'sasl.kerberos.kinit.cmd'"):
        consumer_properties(declared, forged)


def test_the_admin_api_refuses_them(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP))
    admin = engine.admin_url
    for name, value in (("plugin.library.paths", "/tmp/evil.so"), ("sasl.kerberos.kinit.cmd", "touch /tmp/pwned"),
                        ("ssl.engine.location", "/tmp/evil.so"), ("ssl.providers", "evil")):
        status, body = http("POST", f"{admin}/kafka-clusters",
                            {"name": "c1", "properties": {"bootstrap.servers": kafka.bootstrap_servers, name: value}})
        assert status == 400 and f"property '{name}' is refused" in body["message"], body
    assert http("GET", f"{admin}/kafka-clusters")[1]["clusters"] == []

    props = {"bootstrap.servers": kafka.bootstrap_servers, "security.protocol": "PLAINTEXT", "client.id": "sec-test"}
    status, body = http("POST", f"{admin}/kafka-clusters", {"name": "c1", "properties": props})
    assert status == 201, body
    status, body = http("PATCH", f"{admin}/kafka-clusters/c1",
                        {"properties": {**props, "plugin.library.paths": "/tmp/evil.so"}})
    assert status == 400 and "property 'plugin.library.paths' is refused" in body["message"], body
    assert "plugin.library.paths" not in http("GET", f"{admin}/kafka-clusters/c1")[1]["properties"]

    topic = f"{topic_prefix}.props"
    create_topic(kafka.bootstrap_servers, topic, 1)
    for name in ("plugin.library.paths", "sasl.kerberos.kinit.cmd", "ssl.key.location"):
        status, body = http("POST", f"{admin}/subscriptions", {
            "source": f"kafka://c1/{topic}", "sink": "service://SeqLog/append", "options": {name: "x"},
        })
        assert status == 400 and f"option '{name}' is refused" in body["message"], body
    status, body = http("POST", f"{admin}/subscriptions", {
        "source": f"kafka://c1/{topic}", "sink": "service://SeqLog/append",
        "options": {"auto.offset.reset": "earliest", "session.timeout.ms": "6000", "group.id": "g1"},
    })
    assert status == 201, body
