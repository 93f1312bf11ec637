"""Discovery over real HTTP: the official SDK greeter, and a local server answering badly on purpose."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from aiohttp import web

from engine.metadata.discovery import DISCOVERY_ACCEPT, DiscoveryClient, normalize_endpoint_uri
from engine.metadata.errors import (
    BadDiscoveryResponse,
    DiscoveryTimeout,
    EndpointUnreachable,
    IncompatibleEndpoint,
    InvalidManifest,
    InvalidRequest,
)
from engine.metadata.model import ServiceType
from tests.fixtures.ports import free_port
from tests.fixtures.service_endpoint import ServiceEndpoint

T = TypeVar("T")
V4 = "application/vnd.restate.endpointmanifest.v4+json"
MANIFEST = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 7,
    "services": [{"name": "Echo", "ty": "SERVICE", "handlers": [{"name": "echo"}]}],
}


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


@asynccontextmanager
async def serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """A real HTTP server on a free port whose every ``GET /.../discover`` goes to ``handler``."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def discover_from(handler: Callable[[web.Request], Awaitable[web.StreamResponse]], timeout_s: float = 5.0) -> Any:
    client = DiscoveryClient(timeout_s=timeout_s)
    try:
        async with serving(handler) as uri:
            return await client.discover(uri + "/prefix", additional_headers={"x-api-key": "secret"})
    finally:
        await client.close()


def test_discovers_the_official_sdk_greeter(greeter_endpoint: ServiceEndpoint) -> None:
    async def main() -> Any:
        client = DiscoveryClient()
        try:
            return await client.discover(greeter_endpoint.url)
        finally:
            await client.close()

    discovered = run(main())
    assert discovered.uri == greeter_endpoint.url + "/"
    assert discovered.sdk_version is not None and discovered.sdk_version.startswith("restate-sdk-python/")
    assert discovered.manifest.manifest_version == 4
    assert [(s.name, s.ty) for s in discovered.manifest.services] == [
        ("Greeter", ServiceType.SERVICE),
        ("Counter", ServiceType.VIRTUAL_OBJECT),
    ]


def test_request_offers_every_version_and_carries_additional_headers() -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(path=request.path, accept=request.headers["accept"], key=request.headers["x-api-key"])
        return web.Response(body=json.dumps(MANIFEST), content_type="application/vnd.restate.endpointmanifest.v2+json")

    discovered = run(discover_from(handler))
    assert seen == {"path": "/prefix/discover", "accept": DISCOVERY_ACCEPT, "key": "secret"}
    assert DISCOVERY_ACCEPT.split(", ") == [f"application/vnd.restate.endpointmanifest.v{v}+json" for v in (4, 3, 2, 1)]
    assert discovered.manifest.manifest_version == 2


def _answer(status: int = 200, body: Any = MANIFEST, content_type: str = V4) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=status, text=text, content_type=content_type)

    return handler


@pytest.mark.parametrize(
    ("handler", "error", "complaint"),
    [
        (_answer(404, "no such thing", "text/plain"), BadDiscoveryResponse, r"answered HTTP 404; is this the URI"),
        (_answer(content_type="application/json"), BadDiscoveryResponse, "not an endpoint manifest"),
        (_answer(body="{not json"), BadDiscoveryResponse, "not valid JSON"),
        (_answer(415, "Unsupported discovery version", "text/plain"), IncompatibleEndpoint, "none of the endpoint manifest versions"),
        (_answer(content_type="application/vnd.restate.endpointmanifest.v9+json"), IncompatibleEndpoint, "manifest v9"),
        (_answer(body={**MANIFEST, "services": "nope"}), InvalidManifest, "manifest.services: expected an array"),
        (_answer(body={**MANIFEST, "minProtocolVersion": 1, "maxProtocolVersion": 4}), IncompatibleEndpoint, "no common version"),
        (_answer(body={**MANIFEST, "protocolMode": "BIDI_STREAM"}), IncompatibleEndpoint, "BIDI_STREAM"),
    ],
)
def test_unusable_answers_are_typed_errors(
    handler: Callable[[web.Request], Awaitable[web.Response]], error: type[Exception], complaint: str
) -> None:
    with pytest.raises(error, match=complaint):
        run(discover_from(handler))


def test_protocol_version_mismatch_carries_meta0012() -> None:
    with pytest.raises(IncompatibleEndpoint) as caught:
        run(discover_from(_answer(body={**MANIFEST, "minProtocolVersion": 8, "maxProtocolVersion": 9})))
    assert caught.value.restate_code == "META0012"
    assert "upgrade logstrate" in str(caught.value)


def test_a_silent_endpoint_times_out() -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    with pytest.raises(DiscoveryTimeout, match=r"did not answer the discovery request within 0.3s") as caught:
        run(discover_from(hang, timeout_s=0.3))
    assert caught.value.restate_code == "META0003"


def test_nothing_listening_is_unreachable() -> None:
    async def main() -> None:
        client = DiscoveryClient(timeout_s=5)
        try:
            await client.discover(f"http://127.0.0.1:{free_port()}")
        finally:
            await client.close()

    with pytest.raises(EndpointUnreachable, match="cannot reach http://127.0.0.1:.*/discover"):
        run(main())


@pytest.mark.parametrize("uri", ["relative/path", "ftp://host/x", "http://", "http://h:1/?a=b"])
def test_only_absolute_http_uris_are_endpoints(uri: str) -> None:
    with pytest.raises(InvalidRequest, match="The request field 'uri' is invalid"):
        normalize_endpoint_uri(uri)


def test_uri_normalization() -> None:
    assert normalize_endpoint_uri("http://Host:9080") == "http://host:9080/"
    assert normalize_endpoint_uri("https://h/p/") == "https://h/p/"
    assert normalize_endpoint_uri("http://h:1/p") == "http://h:1/p"
