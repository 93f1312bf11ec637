"""``/kafka-clusters``: the Kafka clusters subscriptions read from (Restate's API shape).

``POST /kafka-clusters`` takes ``{"name": "my-cluster", "properties": {"bootstrap.servers":
"host:9092", ...}}`` (librdkafka properties, security settings included) and answers 201.
Only properties on the allowlist of :mod:`engine.metadata.kafka_properties` are accepted
(400 naming the first other one): nothing that loads code, runs commands or names files.
Credentials (``*password*``, ``*secret*``, ``*key.pem``, passphrases, SASL/JAAS configs:
:func:`~engine.metadata.kafka_properties.is_secret_property`) are redacted in every
answer and stored sealed with the engine's secrets key; without one they are refused
(400, :mod:`engine.metadata.sealing`). ``DELETE`` refuses (409) while subscriptions use the cluster, unless
``?force=true``. Clusters declared in the engine's TOML config are listed too but can
only be changed there (409).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from engine.admin.errors import AdminError, read_json_object
from engine.admin.state import METADATA
from engine.metadata.errors import InvalidRequest
from engine.metadata.kafka import (
    REDACTED,
    KafkaCluster,
    Subscription,
    is_secret_property,
    validate_cluster_name,
    validate_cluster_properties,
)
from engine.metadata.store import DeleteKafkaCluster, MetadataWrite, PutKafkaCluster
from engine.metadata.view import MetadataView

__all__ = ["add_routes", "cluster_json", "subscription_json"]


def add_routes(router: web.UrlDispatcher, prefix: str = "") -> None:
    router.add_get(f"{prefix}/kafka-clusters", list_clusters)
    router.add_post(f"{prefix}/kafka-clusters", create_cluster)
    router.add_get(f"{prefix}/kafka-clusters/{{name}}", get_cluster)
    router.add_patch(f"{prefix}/kafka-clusters/{{name}}", update_cluster)
    router.add_delete(f"{prefix}/kafka-clusters/{{name}}", delete_cluster)


def cluster_json(cluster: KafkaCluster) -> dict[str, Any]:
    """``SimpleKafkaClusterResponse``, credentials redacted."""
    return {
        "name": cluster.name,
        "properties": cluster.redacted_properties(),
        "created_at": cluster.created_at.isoformat().replace("+00:00", "Z"),
    }


def subscription_json(sub: Subscription) -> dict[str, Any]:
    """``SubscriptionResponse`` (plus ``paused``, an extension), credentials in options redacted."""
    options = {k: (REDACTED if is_secret_property(k) else v) for k, v in sub.options.items()}
    return {"id": str(sub.id), "source": sub.source, "sink": sub.sink, "options": options, "paused": sub.paused}


async def list_clusters(request: web.Request) -> web.Response:
    view = request.app[METADATA].view
    return web.json_response({"clusters": [cluster_json(c) for c in view.list_kafka_clusters()]})


async def get_cluster(request: web.Request) -> web.Response:
    view = request.app[METADATA].view
    cluster = view.get_kafka_cluster(request.match_info["name"])
    body = cluster_json(cluster)
    body["subscriptions"] = []
    if request.query.get("include_subscriptions", "false").lower() == "true":
        body["subscriptions"] = [subscription_json(s) for s in _users(view, cluster.name)]
    return web.json_response(body)


async def create_cluster(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name = validate_cluster_name(body.get("name"))
    properties = validate_cluster_properties(body.get("properties"))
    cluster = KafkaCluster(name=name, properties=properties, created_at=_now())

    def plan(view: MetadataView) -> tuple[MetadataWrite, KafkaCluster]:
        if name in view.kafka_clusters:
            raise AdminError(409, f"a Kafka cluster named '{name}' exists already; PATCH /kafka-clusters/{name} changes it")
        return PutKafkaCluster(cluster), cluster

    created = await request.app[METADATA].modify(plan)
    return web.json_response(cluster_json(created), status=201)


async def update_cluster(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await read_json_object(request)
    properties = validate_cluster_properties(body.get("properties"))

    def plan(view: MetadataView) -> tuple[MetadataWrite, KafkaCluster]:
        current = _changeable(view, name)
        updated = KafkaCluster(name=name, properties=properties, created_at=current.created_at)
        return PutKafkaCluster(updated), updated

    updated = await request.app[METADATA].modify(plan)
    return web.json_response(cluster_json(updated))


async def delete_cluster(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    force = request.query.get("force", "false").lower()
    if force not in ("true", "false"):
        raise InvalidRequest(f"the query parameter 'force' must be true or false, got {force!r}")

    def plan(view: MetadataView) -> tuple[MetadataWrite, None]:
        _changeable(view, name)
        users = _users(view, name)
        if users and force != "true":
            raise AdminError(
                409,
                f"the Kafka cluster '{name}' is used by {len(users)} subscription(s) "
                f"({', '.join(str(s.id) for s in users)}); delete them first or pass ?force=true",
            )
        return DeleteKafkaCluster(name), None

    await request.app[METADATA].modify(plan)
    return web.Response(status=202)


def _changeable(view: MetadataView, name: str) -> KafkaCluster:
    cluster = view.get_kafka_cluster(name)
    if cluster.declared_in_config:
        raise AdminError(409, f"the Kafka cluster '{name}' is declared in the engine config; change it there")
    return cluster


def _users(view: MetadataView, name: str) -> list[Subscription]:
    return [s for s in view.list_subscriptions() if s.cluster == name]


def _now() -> datetime:
    now = datetime.now(UTC)
    # Millisecond precision: the metadata topic stores milliseconds.
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
