"""The Restate-compatible admin HTTP API (default :9070): wiring of the routes into one app.

Resources live in their own modules (:mod:`engine.admin.deployments`,
:mod:`engine.admin.services`, :mod:`engine.admin.invocations`,
:mod:`engine.admin.object_state`, :mod:`engine.admin.kafka_clusters`,
:mod:`engine.admin.subscriptions`); ``/metrics`` serves Prometheus metrics; ``/ui`` the web UI (:mod:`engine.admin.webui`); errors and their JSON shape in :mod:`engine.admin.errors`.
Every route is served unversioned and under ``/v2`` and ``/v3``
(:mod:`engine.admin.versions`).
"""

from __future__ import annotations

import asyncio
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from engine.auth import bearer_middleware, open_paths
from engine.admin import deployments, invocations, kafka_clusters, object_state, restart, services, subscriptions, webui
from engine.admin.errors import error_middleware, error_response
from engine.admin.partitions import LocalPartitions, PartitionAccess
from engine.admin.forwarding import Forwarder
from engine.admin.state import DEFAULT_RETRY, DISCOVERY, FORWARDER, INGRESS_URL, METADATA, OPENAPI_DOCUMENT, PARTITIONS, SUBSCRIPTIONS
from engine.admin.versions import MAX_ADMIN_API_VERSION, MIN_ADMIN_API_VERSION, VERSION_PREFIXES
from engine.admin.watermarks import WalWatermarks
from engine.query import http as query_http
from engine.config import KafkaConfig, Secret
from engine.metadata.discovery import DiscoveryClient
from engine.metadata.model import DEFAULT_RETRY_POLICY, EffectiveRetryPolicy
from engine.metadata.store import MetadataStore
from engine.version import __version__
from engine.wal.appender import WalAppender
from subscriptions.manager import SubscriptionManager

__all__ = ["MAX_ADMIN_API_VERSION", "MIN_ADMIN_API_VERSION", "OPEN_PATHS", "create_admin_app"]

OPEN_PATHS = open_paths(prefixes=("/ui/",), exact=("/ui", *(f"{prefix}/health" for prefix in VERSION_PREFIXES)))
"""What the admin API serves without its token: health checks (load balancers, probes)
and the web UI's static files (code only; the UI asks for the token and sends it)."""


def create_admin_app(
    *,
    ingress_url: str,
    metadata: MetadataStore,
    discovery: DiscoveryClient | None = None,
    appender: WalAppender | None = None,
    processors: LocalPartitions | None = None,
    kafka: KafkaConfig | None = None,
    subscription_manager: SubscriptionManager | None = None,
    default_retry_policy: EffectiveRetryPolicy = DEFAULT_RETRY_POLICY,
    forwarder: Forwarder | None = None,
    token: Secret | None = None,
) -> web.Application:
    """The admin application.

    ``ingress_url`` is advertised by ``GET /version``; ``metadata`` is the running store
    the API reads and writes; ``discovery`` defaults to a client with the default timeout
    and is closed with the app. ``appender`` and ``processors`` (the process's partition
    processors) enable invocation and state management; without both, those routes
    answer 503. ``kafka`` lets lookups check the WAL's end before answering "not found"
    (:mod:`engine.admin.watermarks`). ``subscription_manager`` adds this process's
    consumer state to ``GET /subscriptions/{id}``. ``default_retry_policy`` is the engine's
    configured default, shown under the services' own policies. ``forwarder`` sends
    lookups and management of partitions another process leads to that process
    (:mod:`engine.admin.forwarding`). With ``token``, every request but the health checks
    and the web UI's static files must carry ``Authorization: Bearer <token>``
    (:mod:`engine.auth`); 401 otherwise.
    """
    middlewares: list[Middleware] = [error_middleware]
    if token is not None:
        middlewares.insert(0, bearer_middleware(
            token, what="admin API", setting="admin_token (LOGSTRATE_ADMIN_TOKEN)",
            error=lambda status, message: error_response(status, message), open_path=OPEN_PATHS,
        ))
    app = web.Application(middlewares=middlewares)
    app[INGRESS_URL] = ingress_url
    app[METADATA] = metadata
    app[DISCOVERY] = discovery or DiscoveryClient()
    app[DEFAULT_RETRY] = default_retry_policy
    # The reference document of the API we follow, shipped as package data.
    app[OPENAPI_DOCUMENT] = resources.files("engine.admin").joinpath("openapi.json").read_bytes()
    if appender is not None and processors is not None:
        watermarks = None if kafka is None else WalWatermarks(kafka)
        app[PARTITIONS] = PartitionAccess(appender, processors, watermarks)
    if forwarder is not None:
        app[FORWARDER] = forwarder
    if subscription_manager is not None:
        app[SUBSCRIPTIONS] = subscription_manager
    app.on_cleanup.append(_close_clients)
    for prefix in VERSION_PREFIXES:
        app.router.add_get(f"{prefix}/health", _health)
        app.router.add_get(f"{prefix}/version", _version)
        app.router.add_get(f"{prefix}/openapi", _openapi)
        deployments.add_routes(app.router, prefix)
        services.add_routes(app.router, prefix)
        object_state.add_routes(app.router, prefix)
        invocations.add_routes(app.router, prefix)
        restart.add_routes(app.router, prefix)
        kafka_clusters.add_routes(app.router, prefix)
        subscriptions.add_routes(app.router, prefix)
        query_http.add_routes(app.router, prefix)
    app.router.add_get("/metrics", _metrics)
    webui.add_routes(app)
    return app


async def _close_clients(app: web.Application) -> None:
    await app[DISCOVERY].close()
    forwarder = app.get(FORWARDER)
    if forwarder is not None:
        await forwarder.close()
    access = app.get(PARTITIONS)
    if access is not None and access.watermarks is not None:
        await asyncio.to_thread(access.watermarks.close)


async def _health(request: web.Request) -> web.Response:
    # The process only serves HTTP once Kafka, topics, storage and metadata are ready.
    return web.Response(status=200)


async def _version(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "version": __version__,
            "min_admin_api_version": int(MIN_ADMIN_API_VERSION),
            "max_admin_api_version": int(MAX_ADMIN_API_VERSION),
            "ingress_endpoint": request.app[INGRESS_URL],
            "features": {},
        }
    )


async def _metrics(request: web.Request) -> web.Response:
    # Prometheus text format; metrics of every module register in the default registry.
    # On a worker thread: collectors count LMDB rows at scrape time (engine.observability).
    body = await asyncio.to_thread(generate_latest, REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/json")
