"""Which librdkafka properties the admin API accepts for Kafka clusters and subscriptions.

Properties of a Kafka cluster registered through ``POST /kafka-clusters`` (and the
librdkafka options of a subscription) are set on the engine's own Kafka clients, in the
engine's process. Some librdkafka properties load code or run commands there:
``plugin.library.paths`` (``dlopen``), ``ssl.engine.location`` / ``ssl.providers``
(OpenSSL engines and providers are shared libraries), ``sasl.kerberos.kinit.cmd`` (a
shell command, into which ``sasl.kerberos.principal`` and ``sasl.kerberos.keytab`` are
pasted), ``interceptors`` and the callback properties; others name files on the engine
host (``*.location``, keytabs, key files). None of them may come from an API caller.

So the API takes an **allowlist**: connection, security (inline PEM, SASL
username/password, SCRAM, OAUTHBEARER/OIDC client credentials) and tuning settings.
Anything else is a 400 naming the property; clusters that need it (Kerberos, key files,
OpenSSL providers) are declared by the operator in the engine config
(``[kafka_clusters.<name>]``), which is not filtered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from engine.metadata.errors import InvalidRequest

__all__ = [
    "CLIENT_PROPERTIES", "CONSUMER_PROPERTIES", "SECRET_PROPERTY_MARKERS", "RefusedProperty", "check_api_properties",
    "is_secret_property",
]

SECRET_PROPERTY_MARKERS: Final = (
    "password", "secret", "passphrase", "key.pem", "sasl.jaas.config", "sasl.oauthbearer.config",
    "basic.auth.user.info",
)
"""A property whose name contains one of these holds a credential: ``sasl.password``,
``ssl.key.password``, ``ssl.key.pem`` (a private key), ``sasl.oauthbearer.client.secret``,
``sasl.oauthbearer.assertion.private.key.pem`` and ``...passphrase``, JAAS and OAuth
configs, ``schema.registry.basic.auth.user.info`` (``user:password``)."""


def is_secret_property(name: str) -> bool:
    """Whether a client property (or subscription option) holds a credential: redacted in
    every answer and log line, sealed at rest (:mod:`engine.metadata.sealing`)."""
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_PROPERTY_MARKERS)


class RefusedProperty(InvalidRequest, ValueError):
    """A librdkafka property the API does not accept (400; a ``ValueError`` too, so a
    subscription consumer built from such a record fails alone, not the engine)."""

CLIENT_PROPERTIES: Final = frozenset(
    {
        # connection
        "bootstrap.servers", "metadata.broker.list", "client.id", "client.rack", "client.dns.lookup",
        "broker.address.family", "broker.address.ttl", "socket.timeout.ms", "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes", "socket.keepalive.enable", "socket.nagle.disable", "socket.max.fails",
        "socket.connection.setup.timeout.ms", "connections.max.idle.ms", "reconnect.backoff.ms",
        "reconnect.backoff.max.ms", "retry.backoff.ms", "retry.backoff.max.ms", "metadata.recovery.strategy",
        "metadata.recovery.rebootstrap.trigger.ms", "topic.metadata.refresh.interval.ms", "metadata.max.age.ms",
        "topic.metadata.refresh.fast.interval.ms", "topic.metadata.refresh.sparse",
        "topic.metadata.propagation.max.ms", "message.max.bytes", "message.copy.max.bytes",
        "receive.message.max.bytes", "max.in.flight.requests.per.connection", "max.in.flight",
        "api.version.request", "api.version.request.timeout.ms", "api.version.fallback.ms",
        "broker.version.fallback", "allow.auto.create.topics",
        # security: TLS with inline PEM (no file paths), SASL PLAIN/SCRAM/OAUTHBEARER
        "security.protocol", "ssl.cipher.suites", "ssl.curves.list", "ssl.sigalgs.list", "ssl.key.pem",
        "ssl.key.password", "ssl.certificate.pem", "ssl.ca.pem", "https.ca.pem",
        "enable.ssl.certificate.verification", "ssl.endpoint.identification.algorithm",
        "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
        "sasl.oauthbearer.config", "enable.sasl.oauthbearer.unsecure.jwt", "sasl.oauthbearer.method",
        "sasl.oauthbearer.client.id", "sasl.oauthbearer.client.credentials.client.id",
        "sasl.oauthbearer.client.secret", "sasl.oauthbearer.client.credentials.client.secret",
        "sasl.oauthbearer.scope", "sasl.oauthbearer.extensions", "sasl.oauthbearer.token.endpoint.url",
        "sasl.oauthbearer.grant.type", "sasl.oauthbearer.assertion.algorithm",
        "sasl.oauthbearer.assertion.private.key.pem", "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.claim.aud", "sasl.oauthbearer.assertion.claim.exp.seconds",
        "sasl.oauthbearer.assertion.claim.iss", "sasl.oauthbearer.assertion.claim.jti.include",
        "sasl.oauthbearer.assertion.claim.nbf.seconds", "sasl.oauthbearer.assertion.claim.sub",
        # producer settings (the dead-letter producer of a subscription uses the cluster's properties)
        "acks", "request.required.acks", "compression.type", "compression.codec", "linger.ms",
        "queue.buffering.max.ms", "batch.num.messages", "batch.size", "message.timeout.ms",
        "delivery.timeout.ms", "request.timeout.ms", "enable.idempotence",
    }
)
"""Properties accepted from the API for any client (cluster properties)."""

CONSUMER_PROPERTIES: Final = CLIENT_PROPERTIES | frozenset(
    {
        "group.id", "group.instance.id", "partition.assignment.strategy", "session.timeout.ms",
        "heartbeat.interval.ms", "group.protocol", "group.remote.assignor", "coordinator.query.interval.ms",
        "max.poll.interval.ms", "enable.auto.commit", "auto.commit.interval.ms", "enable.auto.offset.store",
        "queued.min.messages", "queued.max.messages.kbytes", "fetch.wait.max.ms", "fetch.queue.backoff.ms",
        "fetch.message.max.bytes", "max.partition.fetch.bytes", "fetch.max.bytes", "fetch.min.bytes",
        "fetch.error.backoff.ms", "isolation.level", "check.crcs", "auto.offset.reset",
    }
)
"""Properties accepted from the API for consumers (cluster properties and subscription options)."""

_WHY_REFUSED: Final[Mapping[str, str]] = {
    "plugin.library.paths": "it loads shared libraries into the engine process",
    "interceptors": "interceptors run code in the engine process",
    "ssl.engine.location": "it loads an OpenSSL engine (a shared library) into the engine process",
    "ssl.engine.id": "it selects an OpenSSL engine loaded into the engine process",
    "ssl.providers": "it loads OpenSSL providers (shared libraries) into the engine process",
    "sasl.kerberos.kinit.cmd": "it is a shell command the engine runs",
    "sasl.kerberos.principal": "it is pasted into the kinit shell command the engine runs",
    "sasl.kerberos.keytab": "it is pasted into the kinit shell command the engine runs",
    "sasl.oauthbearer.metadata.authentication.type": "it makes the engine query a cloud metadata endpoint",
}
_FILE_SUFFIXES: Final = (".location", ".file", ".path", ".keytab")


def check_api_properties(names: Iterable[str], *, consumer: bool, what: str) -> None:
    """Raise :class:`RefusedProperty` naming the first property an API caller may not set."""
    allowed = CONSUMER_PROPERTIES if consumer else CLIENT_PROPERTIES
    for name in sorted(names):
        if name in allowed:
            continue
        shown = name[:100]
        if name in _WHY_REFUSED:
            reason = _WHY_REFUSED[name]
        elif name.endswith(_FILE_SUFFIXES) or name in ("ssl.keystore.password", "sasl.kerberos.service.name"):
            reason = "it names a file on the engine host or needs one (use the inline *.pem properties instead)"
        elif name.startswith("sasl.kerberos."):
            reason = "Kerberos runs a shell command on the engine host"
        elif name.endswith("_cb") or "callback" in name:
            reason = "callbacks run code in the engine process"
        else:
            reason = "it is not one of the connection, security and tuning properties the API accepts"
        raise RefusedProperty(
            f"{what} {shown!r} is refused: {reason}. The admin API accepts librdkafka connection, security "
            "(inline PEM, SASL PLAIN/SCRAM/OAUTHBEARER) and tuning properties only; a cluster that needs "
            "other properties is declared by the operator in the engine config ([kafka_clusters.<name>])"
        )
