"""The shared objects admin handlers find on the application (typed aiohttp app keys)."""

from __future__ import annotations

from aiohttp import web

from engine.admin.errors import AdminError
from engine.admin.forwarding import Forwarder
from engine.admin.partitions import PartitionAccess
from engine.metadata.discovery import DiscoveryClient
from engine.metadata.model import EffectiveRetryPolicy
from engine.metadata.store import MetadataStore
from subscriptions.manager import SubscriptionManager

__all__ = ["DEFAULT_RETRY", "DISCOVERY", "FORWARDER", "INGRESS_URL", "METADATA", "OPENAPI_DOCUMENT", "PARTITIONS", "SUBSCRIPTIONS", "access_of", "forward_if_remote"]

METADATA = web.AppKey("metadata", MetadataStore)
"""The process's metadata store (deployments, services)."""
DISCOVERY = web.AppKey("discovery", DiscoveryClient)
"""Client for ``GET {endpoint}/discover``."""
INGRESS_URL = web.AppKey("ingress_url", str)
"""Advertised by ``GET /version``."""
OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)
"""The admin API's OpenAPI document, served by ``GET /openapi``."""
DEFAULT_RETRY = web.AppKey("default_retry", EffectiveRetryPolicy)
"""The engine's configured default retry policy (shown under the services' own)."""
PARTITIONS = web.AppKey("partitions", PartitionAccess)
"""WAL appender and local partition tables; absent when the app runs without partitions."""

FORWARDER = web.AppKey("forwarder", Forwarder)
"""Relays requests about partitions another process leads; absent in a lone admin app."""

SUBSCRIPTIONS = web.AppKey("subscriptions", SubscriptionManager)
"""This process's subscription consumers (for their status); absent when none run here."""


def access_of(request: web.Request) -> PartitionAccess:
    """The app's :data:`PARTITIONS`, or a 503 when this admin app runs without partitions."""
    access = request.app.get(PARTITIONS)
    if access is None:
        raise AdminError(
            503, "invocation and state management is not available: this admin API runs without WAL partitions"
        )
    return access


async def forward_if_remote(request: web.Request, partition: int) -> web.Response | None:
    """The answer of ``partition``'s leader when another process leads it
    (:mod:`engine.admin.forwarding`); ``None`` to answer here."""
    forwarder = request.app.get(FORWARDER)
    if forwarder is None or access_of(request).is_local(partition):
        return None
    return await forwarder.forward(request, partition)
