"""Request identity end to end: an official-SDK endpoint with ``identity_keys``.

The endpoint (``tests/fixtures/official_sdk_identity.py``, ``restate.app(...,
identity_keys=[<key A>])`` under hypercorn) answers 401 to any request not signed by
key A. Our engine started with key A (``LOGSTRATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE``)
registers it (discovery signed) and invokes it (attempts signed); an engine without a key,
or with another key, cannot register it and says why. restate-server behaves the same
with and without its ``RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE`` (issue 13 item 4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.invoker.identity import RequestIdentity
from tests.engine.invoker.test_identity import write_pem
from tests.fixtures.engine import EngineProcess
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


def _register(admin_url: str, uri: str) -> tuple[int, object]:
    return http("POST", f"{admin_url}/deployments", {"uri": uri, "use_http_11": True, "force": True})


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


@pytest.mark.parametrize("key", [None, "b"], ids=["no-key", "other-key"])
def test_engine_without_the_key_cannot_register(
    engine_factory: Callable[..., EngineProcess], endpoint: ServiceEndpoint, keys: dict[str, Path], key: str | None
) -> None:
    engine = engine_factory(env={} if key is None else {ENV: str(keys[key])})
    engine.start_and_wait()
    status, body = _register(engine.admin_url, endpoint.url)
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
