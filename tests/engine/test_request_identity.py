"""Request identity end to end: an official-SDK endpoint with ``identity_keys``.

The endpoint (``tests/fixtures/official_sdk_identity.py``, ``restate.app(...,
identity_keys=[<key A>])`` under hypercorn) answers 401 to any request not signed by
key A. Our engine started with key A (``LOGSTRATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE``)
registers it (discovery signed) and invokes it (attempts signed); an engine without a key,
or with another key, cannot register it and says why. restate-server behaves the same
with and without its ``RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE`` (issue 13 item 4).

The same holds over HTTP/2 (hypercorn speaks h2c on the endpoint's port): discovery
over h2c and each bidirectional stream carry the signature, and the SDK refuses an
unsigned HTTP/2 request as it refuses an unsigned HTTP/1.1 one.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.invoker.http2 import Http2Client
from engine.invoker.identity import RequestIdentity
from restate_protocol import content_type
from tests.engine.invoker.test_identity import write_pem
from tests.fixtures.engine import INVOKER_TRANSPORTS, EngineProcess
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import ServiceEndpoint, spawn_service_endpoint, wait_ready
from tests.fixtures.systems import http

APP = "tests.fixtures.official_sdk_identity:app"
ENV = "LOGSTRATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("identity-keys")
    return {name: write_pem(folder / f"{name}.pem") for name in ("a", "b")}


@pytest.fixture(scope="module")
def endpoint(keys: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoint]:
    public_key = RequestIdentity.from_pem_file(keys["a"]).public_key
    ep = spawn_service_endpoint(APP, tmp_path_factory.mktemp("identity-endpoint"), env={"IDENTITY_KEYS": public_key})
    try:
        yield wait_ready(ep)
    finally:
        ep.stop()


#: How the engine talks to the endpoint: HTTP/1.1 request/response, or HTTP/2 streams.
TRANSPORTS = INVOKER_TRANSPORTS


def _register(admin_url: str, uri: str, transport: str = "http1.1") -> tuple[int, object]:
    body: dict[str, object] = {"uri": uri, "force": True}
    if transport == "http1.1":
        body["use_http_11"] = True
    return http("POST", f"{admin_url}/deployments", body)


def _requests_served(endpoint: ServiceEndpoint) -> dict[str, int]:
    with urllib.request.urlopen(f"{endpoint.url}/bench/requests", timeout=5) as resp:
        return dict(json.loads(resp.read()))


def _invoke_greet(ingress_url: str) -> tuple[int, object]:
    return http("POST", f"{ingress_url}/IdentityGreeter/greet", "signed", timeout=30)


def test_the_endpoint_refuses_unsigned_requests(endpoint: ServiceEndpoint) -> None:
    status, _ = http("GET", f"{endpoint.url}/discover",
                     headers={"accept": "application/vnd.restate.endpointmanifest.v3+json"})
    assert status == 401


def test_engine_with_the_key_registers_and_invokes(
    engine_factory: Callable[..., EngineProcess], endpoint: ServiceEndpoint, keys: dict[str, Path]
) -> None:
    engine = engine_factory(env={ENV: str(keys["a"])})
    engine.start_and_wait()
    engine.wait_leading_all()
    status, body = _register(engine.admin_url, endpoint.url)
    assert status in (200, 201), body
    assert _invoke_greet(engine.ingress_url) == (200, "Hello signed")
    # The operator finds the public key to configure SDKs with in the start-up log;
    # the private key is never in it.
    public_key = RequestIdentity.from_pem_file(keys["a"]).public_key
    output = engine.output()
    assert public_key in output
    pem_body = keys["a"].read_text().splitlines()[1]
    assert pem_body not in output


def test_the_endpoint_refuses_unsigned_http2_requests(endpoint: ServiceEndpoint, keys: dict[str, Path]) -> None:
    """Over h2c, straight to the SDK: unsigned discovery and invocation streams get 401,
    the engine's signed ones are accepted."""
    identity = RequestIdentity.from_pem_file(keys["a"])
    invoke = {"content-type": content_type(5), "accept": content_type(5)}
    discover = {"accept": "application/vnd.restate.endpointmanifest.v3+json"}

    async def status_of(path: str, headers: dict[str, str], method: str) -> int:
        client = Http2Client(connect_timeout_s=5)
        try:
            stream = await client.open_stream(f"{endpoint.url}{path}", headers, method=method)
            if method == "GET":
                await stream.end()
            status, _ = await asyncio.wait_for(stream.response(), 10)
            stream.reset()
            return status
        finally:
            await client.close()

    async def main() -> None:
        assert await status_of("/discover", discover, "GET") == 401
        assert await status_of("/invoke/IdentityGreeter/greet", invoke, "POST") == 401
        assert await status_of("/discover", {**discover, **identity.headers("/discover")}, "GET") == 200
        signed = {**invoke, **identity.headers("/invoke/IdentityGreeter/greet")}
        assert await status_of("/invoke/IdentityGreeter/greet", signed, "POST") == 200

    asyncio.run(main())


def test_engine_with_the_key_streams_signed_over_http2(
    engine_factory: Callable[..., EngineProcess], endpoint: ServiceEndpoint, keys: dict[str, Path]
) -> None:
    engine = engine_factory(env={ENV: str(keys["a"])}, extra_args=TRANSPORTS["h2"])
    engine.start_and_wait()
    engine.wait_leading_all()
    status, body = _register(engine.admin_url, endpoint.url, "h2")
    assert status in (200, 201), body
    status, listing = http("GET", f"{engine.admin_url}/deployments")
    assert isinstance(listing, dict)
    mine = [d for d in listing["deployments"] if d["uri"].rstrip("/") == endpoint.url]
    assert mine and (mine[0]["http_version"], mine[0]["protocol_type"]) == ("HTTP/2.0", "BidiStream"), mine
    before = _requests_served(endpoint)
    assert _invoke_greet(engine.ingress_url) == (200, "Hello signed")
    after = _requests_served(endpoint)
    # One signed HTTP/2 stream (an unsigned one would get 401 and be retried until the
    # test's timeout), and nothing over HTTP/1.1.
    assert after.get("2", 0) - before.get("2", 0) == 1, (before, after)
    assert after.get("1.1", 0) == before.get("1.1", 0)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("key", [None, "b"], ids=["no-key", "other-key"])
def test_engine_without_the_key_cannot_register(
    engine_factory: Callable[..., EngineProcess], endpoint: ServiceEndpoint, keys: dict[str, Path], key: str | None,
    transport: str,
) -> None:
    engine = engine_factory(env={} if key is None else {ENV: str(keys[key])}, extra_args=TRANSPORTS[transport])
    engine.start_and_wait()
    status, body = _register(engine.admin_url, endpoint.url, transport)
    assert status == 502, body
    assert isinstance(body, dict)
    message = str(body["message"])
    assert "answered HTTP 401 Unauthorized" in message
    if key is None:
        assert "requires request identity" in message
        assert "request_identity_private_key_pem_file" in message
    else:
        assert "rejected this engine's signature" in message
        assert RequestIdentity.from_pem_file(keys["b"]).public_key in message


def test_restate_server_behaves_the_same(
    endpoint: ServiceEndpoint, keys: dict[str, Path], restate_server: RestateServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Without a key (the session's server): discovery refused.
    status, body = _register(restate_server.admin_url, endpoint.url)
    assert status >= 400, body
    assert "401" in str(body)
    signed = RestateServer(
        tmp_path_factory.mktemp("restate-identity"),
        env={"RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(keys["a"])},
    )
    signed.start()
    try:
        status, body = _register(signed.admin_url, endpoint.url)
        assert status in (200, 201), body
        assert _invoke_greet(signed.ingress_url) == (200, "Hello signed")
    finally:
        signed.stop()
