"""The shared objects admin handlers find on the application (typed aiohttp app keys)."""

from __future__ import annotations

from aiohttp import web

from engine.metadata.discovery import DiscoveryClient
from engine.metadata.store import MetadataStore

__all__ = ["DISCOVERY", "INGRESS_URL", "METADATA", "OPENAPI_DOCUMENT"]

METADATA = web.AppKey("metadata", MetadataStore)
"""The process's metadata store (deployments, services)."""
DISCOVERY = web.AppKey("discovery", DiscoveryClient)
"""Client for ``GET {endpoint}/discover``."""
INGRESS_URL = web.AppKey("ingress_url", str)
"""Advertised by ``GET /version``."""
OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)
"""The admin API's OpenAPI document, served by ``GET /openapi``."""
