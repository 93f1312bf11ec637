"""Deployment URIs: link-local and metadata addresses denied, failed discovery not echoed.

Unit tests of the policy; the real resolver and a real discovery client against real
sockets; a real engine refusing ``POST /deployments`` to the metadata address and not
echoing the body of an endpoint's error answer; a real engine checking its HTTP/2
connections again when it opens them (the HTTP/2 client's own checks are in
``tests/engine/invoker/test_http2.py``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from engine.metadata.address_policy import AddressPolicy, DeniedAddress, GuardedResolver
from engine.metadata.discovery import DiscoveryClient
from engine.metadata.errors import BadDiscoveryResponse, InvalidRequest
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import http

SECRET = "aws-secret-access-key=AKIA-NEVER-ECHOED"


@pytest.mark.parametrize("address", ["169.254.169.254", "169.254.0.1", "::ffff:169.254.169.254", "fe80::1",
                                     "fe80::1%eth0", "fd00:ec2::254", "100.100.100.200", "168.63.129.16", "0.0.0.0"])
def test_metadata_and_link_local_addresses_are_denied(address: str) -> None:
    reason = AddressPolicy().reason(address)
    assert reason is not None and "deployment_allow_networks" in reason


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.10", "172.17.0.2", "8.8.8.8", "my-host"])
def test_ordinary_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().reason(address) is None


def test_the_allow_list_wins_and_lists_are_configurable() -> None:
    policy = AddressPolicy.from_settings(["169.254.0.0/16", "10.0.0.0/8"], ["169.254.10.0/24"])
    assert policy.reason("169.254.10.5") is None
    assert policy.reason("169.254.169.254") is not None and policy.reason("10.9.9.9") is not None
    with pytest.raises(ValueError, match="deployment_deny_networks: 'x' is not an IP network"):
        AddressPolicy.from_settings(["x"], [])


def test_the_guarded_resolver_refuses_names_that_resolve_to_denied_addresses() -> None:
    async def main() -> None:
        resolver = GuardedResolver(AddressPolicy.from_settings(["127.0.0.0/8", "::1/128"], []))
        try:
            with pytest.raises(DeniedAddress, match=r"the address (127\.0\.0\.1|::1) is in"):
                await resolver.resolve("localhost", 80)
        finally:
            await resolver.close()
        allowed = GuardedResolver(AddressPolicy())
        try:
            assert await allowed.resolve("localhost", 80)
        finally:
            await allowed.close()

    asyncio.run(main())


@pytest.fixture
def error_endpoint() -> Iterator[str]:
    """A real HTTP server answering every request with 404 and a body holding a secret."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = SECRET.encode()
            self.send_response(404)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_discovery_refuses_denied_hosts_and_does_not_echo_bodies(error_endpoint: str) -> None:
    async def discover(uri: str, policy: AddressPolicy | None = None) -> None:
        client = DiscoveryClient(timeout_s=5, policy=policy)
        try:
            await client.discover(uri)
        finally:
            await client.close()

    with pytest.raises(InvalidRequest, match="the address 169.254.169.254 is in 169.254.0.0/16"):
        asyncio.run(discover("http://169.254.169.254/latest/meta-data/"))
    with pytest.raises(InvalidRequest, match="localhost resolves to an address the engine does not call"):
        asyncio.run(discover("http://localhost:9/", AddressPolicy.from_settings(["127.0.0.0/8", "::1/128"], [])))
    with pytest.raises(BadDiscoveryResponse) as caught:
        asyncio.run(discover(error_endpoint))
    assert "answered HTTP 404" in str(caught.value) and SECRET not in str(caught.value)


def test_the_engine_refuses_metadata_addresses_and_hides_error_bodies(
    engine_factory: Callable[..., EngineProcess], error_endpoint: str,
) -> None:
    engine = engine_factory(env={"LOGSTRATE_DEPLOYMENT_ALLOW_NETWORKS": "169.254.10.0/24"})
    engine.start_and_wait()
    for uri in ("http://169.254.169.254/", "http://[fe80::1]:9080/", "http://[::ffff:169.254.169.254]/"):
        status, body = http("POST", f"{engine.admin_url}/deployments", {"uri": uri})
        assert status == 400 and "does not call" in body["message"], (uri, body)
    status, body = http("POST", f"{engine.admin_url}/deployments", {"uri": error_endpoint})
    assert status != 201 and "answered HTTP 404" in body["message"], body
    assert SECRET not in str(body)
    assert SECRET in engine.output()  # kept for the operator, in the engine's log


BIDI_APP = "tests.fixtures.official_sdk_bidi:app"


def _requests_served(endpoint: ServiceEndpoint) -> dict[str, int]:
    status, body = http("GET", f"{endpoint.url}/bench/requests")
    assert status == 200 and isinstance(body, dict), body
    return {str(k): int(v) for k, v in body.items()}


def test_http2_connections_are_checked_against_the_policy_when_reopened(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, tmp_path: Path,
) -> None:
    """A deployment registered (and streamed to over HTTP/2) while its address was allowed
    is not called once the policy denies it: the restarted engine's new HTTP/2
    connection is checked again, the attempt fails with the policy's reason, and the
    endpoint sees no request."""
    endpoint = service_endpoints.get(BIDI_APP)
    data_dir = tmp_path / "engine-data"
    engine = engine_factory(data_dir=data_dir, extra_args=["--invoker-http2"])
    engine.start_and_wait()
    engine.wait_leading_all()
    status, body = http("POST", f"{engine.admin_url}/deployments", {"uri": endpoint.url, "force": True})
    assert status in (200, 201), body
    assert http("POST", f"{engine.ingress_url}/BidiSteps/noop") == (200, "ok")
    engine.kill()

    engine = engine_factory(
        data_dir=data_dir, extra_args=["--invoker-http2"], ingress_port=engine.ingress_port,
        admin_port=engine.admin_port, env={"LOGSTRATE_DEPLOYMENT_DENY_NETWORKS": "127.0.0.0/8"},
    )
    engine.start_and_wait()
    engine.wait_leading_all()
    before = _requests_served(endpoint)
    status, body = http("POST", f"{engine.ingress_url}/BidiSteps/noop/send")
    assert status == 202, body
    invocation = body["invocationId"]

    def refused() -> str | None:
        status, row = http("GET", f"{engine.admin_url}/invocations/{invocation}?journal=false")
        failure = str(row.get("last_failure") or "") if status == 200 and isinstance(row, dict) else ""
        return failure or None

    failure = wait_until(refused, 30, "the attempt to fail on the address policy")
    assert "over HTTP/2" in failure and "the address 127.0.0.1 is in 127.0.0.0/8" in failure, failure
    assert _requests_served(endpoint) == before
