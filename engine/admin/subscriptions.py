"""``/subscriptions``: Kafka topics feeding handlers (Restate's API shape, plus pause/resume).

``POST /subscriptions`` takes Restate's body::

    {"source": "kafka://my-cluster/orders", "sink": "service://Orders/process",
     "options": {"auto.offset.reset": "earliest", "payload.format": "json"}}

and answers 201 with ``{"id": "sub_1...", "source", "sink", "options"}``. Everything is
checked before anything is written, each failure a 400 saying what to fix: the URIs,
the cluster, the service and handler (a virtual object's shared handler is refused:
events of one key must run one at a time, in order; private handlers are refused), the
options (payload and key formats, librdkafka consumer properties) and that the topic
exists. ``GET /subscriptions/{id}`` adds a ``status`` with the consumer group's lag per
partition and this process's consumer state. ``PATCH /subscriptions/{id}/pause`` and
``/resume`` stop and restart consumption everywhere, keeping the committed position;
``DELETE`` answers 202 and the consumers stop (committing what they appended).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from confluent_kafka import Consumer, KafkaException, TopicPartition

from engine.admin.errors import AdminError, optional_string_map, read_json_object
from engine.admin.kafka_clusters import subscription_json
from engine.kafka import clients
from engine.admin.state import METADATA, SUBSCRIPTIONS
from engine.egress import engine_topic_reason
from engine.ids import IdParseError, SubscriptionId
from engine.metadata.errors import InvalidRequest, NotFoundError
from engine.metadata.kafka import (
    INGEST_VERSION,
    ORDERING_NONE,
    ORDERING_PARTITION,
    ORDERINGS,
    KafkaCluster,
    Subscription,
    consumer_properties,
    parse_sink,
    parse_source,
    validate_subscription_properties,
)
from engine.metadata.kafka_properties import RefusedProperty
from engine.metadata.sealing import require_sealing
from engine.metadata.model import HandlerType, ServiceType
from engine.metadata.store import DeleteSubscription, MetadataWrite, PutSubscription
from engine.metadata.view import MetadataView
from subscriptions.errors import InvalidSubscriptionOptions
from subscriptions.keys import key_mapper
from subscriptions.payload import payload_decoder

__all__ = ["add_routes"]

_KAFKA_TIMEOUT_S: Final = 10.0


def add_routes(router: web.UrlDispatcher, prefix: str = "") -> None:
    router.add_get(f"{prefix}/subscriptions", list_subscriptions)
    router.add_post(f"{prefix}/subscriptions", create_subscription)
    router.add_get(f"{prefix}/subscriptions/{{subscription}}", get_subscription)
    router.add_delete(f"{prefix}/subscriptions/{{subscription}}", delete_subscription)
    router.add_patch(f"{prefix}/subscriptions/{{subscription}}/pause", pause_subscription)
    router.add_patch(f"{prefix}/subscriptions/{{subscription}}/resume", resume_subscription)


async def list_subscriptions(request: web.Request) -> web.Response:
    """``ListSubscriptionsResponse``, filtered by exact ``sink`` / ``source`` when given."""
    subs = request.app[METADATA].view.list_subscriptions()
    sink, source = request.query.get("sink"), request.query.get("source")
    subs = [s for s in subs if (sink is None or s.sink == sink) and (source is None or s.source == source)]
    return web.json_response({"subscriptions": [subscription_json(s) for s in subs]})


async def get_subscription(request: web.Request) -> web.Response:
    view = request.app[METADATA].view
    sub = view.get_subscription(_subscription_id(request))
    body = subscription_json(sub)
    cluster = view.kafka_clusters.get(sub.cluster)
    status: dict[str, Any] = {"paused": sub.paused}
    manager = request.app.get(SUBSCRIPTIONS)
    local = None if manager is None else manager.status(sub.id)
    if local is not None:
        status["this_process"] = asdict(local)
    if cluster is not None:
        try:
            status["partitions"] = await asyncio.to_thread(_group_lag, cluster, sub)
        except KafkaException as exc:
            status["lag_error"] = f"cannot read the consumer group's offsets: {exc}"
        except RefusedProperty as exc:
            status["lag_error"] = str(exc)
    body["status"] = status
    return web.json_response(body)


async def create_subscription(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    source, sink = body.get("source"), body.get("sink")
    if not isinstance(source, str) or not isinstance(sink, str):
        raise InvalidRequest('the request needs "source" (kafka://<cluster>/<topic>) and "sink" (service://<Service>/<handler>)')
    options = optional_string_map(body, "options")
    cluster_name, topic = parse_source(source)
    parse_sink(sink)
    view = request.app[METADATA].view
    cluster = view.kafka_clusters.get(cluster_name)
    if cluster is None:
        known = ", ".join(sorted(view.kafka_clusters)) or "none"
        raise InvalidRequest(
            f"unknown Kafka cluster '{cluster_name}' (known: {known}); create it with POST /kafka-clusters "
            "or declare it in the engine config"
        )
    sub_id = SubscriptionId.generate()
    # The consumer group is named in the options, as restate-server does (default: the id).
    options = {"group.id": str(sub_id), **options}
    sub = Subscription(id=sub_id, source=source, sink=sink, options=options, created_at=_now(),
                       ingest_version=INGEST_VERSION)
    _check_sink(view, sub)
    _check_options(sub)
    await asyncio.to_thread(_check_kafka, cluster, sub, topic)

    def plan(view: MetadataView) -> tuple[MetadataWrite, Subscription]:
        return PutSubscription(sub), sub

    created = await request.app[METADATA].modify(plan)
    return web.json_response(subscription_json(created), status=201)


async def delete_subscription(request: web.Request) -> web.Response:
    subscription_id = _subscription_id(request)

    def plan(view: MetadataView) -> tuple[MetadataWrite, None]:
        view.get_subscription(subscription_id)
        return DeleteSubscription(subscription_id), None

    await request.app[METADATA].modify(plan)
    return web.Response(status=202)


async def pause_subscription(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


async def resume_subscription(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    subscription_id = _subscription_id(request)

    def plan(view: MetadataView) -> tuple[MetadataWrite | None, Subscription]:
        current = view.get_subscription(subscription_id)
        if current.paused == paused:
            return None, current
        changed = dataclasses.replace(current, paused=paused)
        return PutSubscription(changed), changed

    sub = await request.app[METADATA].modify(plan)
    return web.json_response(subscription_json(sub))


# --- validation -----------------------------------------------------------------------------


def _check_sink(view: MetadataView, sub: Subscription) -> None:
    try:
        resolved = view.resolve(sub.service, sub.handler)
    except NotFoundError as exc:
        raise InvalidRequest(f"sink {sub.sink}: {exc}; register the service's deployment first") from None
    if resolved.service.ty is ServiceType.VIRTUAL_OBJECT and resolved.handler.ty is HandlerType.SHARED:
        raise InvalidRequest(
            f"sink {sub.sink} is a shared handler of a virtual object; events of one key must run one at a time "
            "in order, so subscribe an exclusive handler"
        )
    if not resolved.settings.public:
        raise InvalidRequest(f"sink {sub.sink} is private to the service (ingress_private); make it public to subscribe it")
    ordering = sub.options.get("ordering", ORDERING_NONE)
    if ordering not in ORDERINGS:
        raise InvalidRequest(
            f"option ordering must be one of {', '.join(sorted(ORDERINGS))}, got {ordering!r}"
        )
    if ordering == ORDERING_PARTITION and resolved.service.ty is not ServiceType.SERVICE:
        raise InvalidRequest(
            f"option ordering={ORDERING_PARTITION} is for plain-service sinks; {sub.sink} is keyed, "
            "so its events already run one at a time per key in publish order"
        )


def _check_options(sub: Subscription) -> None:
    options = sub.options
    for forced in ("enable.auto.commit", "enable.auto.offset.store"):
        if options.get(forced, "false").lower() != "false":
            raise InvalidRequest(
                f"option {forced} cannot be enabled: the engine commits offsets itself, after the WAL append"
            )
    batch = options.get("batch.size", "500")
    if not batch.isdigit() or not 1 <= int(batch) <= 10_000:
        raise InvalidRequest(f"option batch.size must be a whole number from 1 to 10000, got {batch!r}")
    validate_subscription_properties(options)
    require_sealing(options, "option")
    dead_letter_topic = options.get("dead-letter-topic")
    if dead_letter_topic is not None:
        reserved = engine_topic_reason(dead_letter_topic)
        if reserved is not None:
            raise InvalidRequest(f"option dead-letter-topic: {reserved}")
    try:
        payload_decoder(options)
        key_mapper(options)
    except InvalidSubscriptionOptions as exc:
        raise InvalidRequest(str(exc)) from None


def _check_kafka(cluster: KafkaCluster, sub: Subscription, topic: str) -> None:
    """Consumer properties librdkafka accepts, and a topic that exists (blocking)."""
    try:
        consumer = clients.consumer(consumer_properties(cluster, sub), client="admin-subscription-check")
    except KafkaException as exc:
        raise InvalidRequest(f"invalid Kafka consumer options: {exc.args[0].str() if exc.args else exc}") from None
    try:
        metadata = consumer.list_topics(topic, timeout=_KAFKA_TIMEOUT_S)
    except KafkaException as exc:
        raise AdminError(503, f"cannot reach Kafka cluster '{cluster.name}' to check topic '{topic}': {exc}") from None
    finally:
        consumer.close()
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise InvalidRequest(f"topic '{topic}' does not exist on Kafka cluster '{cluster.name}'; create it first")


def _group_lag(cluster: KafkaCluster, sub: Subscription) -> list[dict[str, Any]]:
    """Committed offset, end offset and lag of each source partition, for the whole group."""
    consumer = clients.consumer(consumer_properties(cluster, sub), client="admin-subscription-lag")
    try:
        metadata = consumer.list_topics(sub.topic, timeout=_KAFKA_TIMEOUT_S)
        topic = metadata.topics.get(sub.topic)
        if topic is None or topic.error is not None:
            return []
        partitions = [TopicPartition(sub.topic, p) for p in sorted(topic.partitions)]
        committed = consumer.committed(partitions, timeout=_KAFKA_TIMEOUT_S)
        rows = []
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(sub.topic, tp.partition), timeout=_KAFKA_TIMEOUT_S)
            position = tp.offset if tp.offset >= 0 else None
            lag = high - (position if position is not None else low)
            rows.append({"partition": tp.partition, "committed": position, "end": high, "lag": max(lag, 0)})
        return rows
    finally:
        consumer.close()


def _subscription_id(request: web.Request) -> SubscriptionId:
    text = request.match_info["subscription"]
    try:
        return SubscriptionId.parse(text)
    except IdParseError as exc:
        raise InvalidRequest(f"bad subscription id '{text}': {exc}") from None


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
