"""TLS to ``https://`` deployments, with a CA the test makes (``invoker_tls_ca_file``).

The official Python SDK (``tests/fixtures/official_sdk_bidi.py``) runs under hypercorn
with a server certificate signed by a fresh CA (``tests/fixtures/tls.py``); hypercorn
offers ALPN ``h2`` and ``http/1.1``. An engine told to trust that CA discovers the
endpoint over HTTP/2 (ALPN ``h2``), streams to it (state, ten ``ctx.run`` steps in ONE
request), and, registered with ``use_http_11``, calls it over HTTP/1.1 + TLS; an engine
that trusts only the system's CAs refuses the certificate.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.invoker.http2 import Http2Client, Http2Error
from engine.invoker.tls import TlsTrust
from tests.fixtures.engine import EngineProcess
from tests.fixtures.service_endpoint import ServiceEndpoint, spawn_service_endpoint, wait_ready
from tests.fixtures.systems import http
from tests.fixtures.tls import TlsFiles, make_certificates

BIDI_APP = "tests.fixtures.official_sdk_bidi:app"
ENV = "LOGSTRATE_INVOKER_TLS_CA_FILE"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_endpoint(tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoint]:
    endpoint = spawn_service_endpoint(BIDI_APP, tmp_path_factory.mktemp("tls-endpoint"), tls=tls_files)
    try:
        yield wait_ready(endpoint)
    finally:
        endpoint.stop()


def _requests_served(endpoint: ServiceEndpoint) -> dict[str, int]:
    import ssl

    context = ssl.create_default_context(cafile=endpoint.ca_file)
    with urllib.request.urlopen(f"{endpoint.url}/bench/requests", timeout=5, context=context) as resp:
        return dict(json.loads(resp.read()))


def _register(engine: EngineProcess, uri: str, use_http_11: bool = False) -> tuple[int, object]:
    return http("POST", f"{engine.admin_url}/deployments", {"uri": uri, "force": True, "use_http_11": use_http_11})


def _deployment(engine: EngineProcess, uri: str) -> dict[str, object]:
    status, body = http("GET", f"{engine.admin_url}/deployments")
    assert status == 200 and isinstance(body, dict), body
    mine = [d for d in body["deployments"] if str(d.get("uri", "")).rstrip("/") == uri]
    assert len(mine) == 1, body
    return dict(mine[0])


def test_the_ca_bundle_setting(tmp_path: Path, tls_files: TlsFiles) -> None:
    assert load_config(env={ENV: str(tls_files.ca)}).invoker_tls_ca_file == tls_files.ca
    assert load_config(env={}).invoker_tls_ca_file is None
    with pytest.raises(ConfigError, match=r"invoker_tls_ca_file \(.*missing.pem\): the file does not exist"):
        TlsTrust(tmp_path / "missing.pem")
    (tmp_path / "key-only.pem").write_bytes(tls_files.key.read_bytes())
    with pytest.raises(ConfigError, match="no PEM certificate"):
        TlsTrust(tmp_path / "key-only.pem")
    (tmp_path / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="not a readable PEM CA bundle"):
        TlsTrust(tmp_path / "broken.pem")


def test_the_http2_client_verifies_certificates_and_negotiates_h2(
    tls_endpoint: ServiceEndpoint, tls_files: TlsFiles
) -> None:
    async def discover(client: Http2Client) -> int:
        try:
            stream = await client.open_stream(
                f"{tls_endpoint.url}/discover", {"accept": "application/vnd.restate.endpointmanifest.v3+json"},
                method="GET",
            )
            await stream.end()
            status, _ = await asyncio.wait_for(stream.response(), 10)
            stream.reset()
            return status
        finally:
            await client.close()

    assert asyncio.run(discover(Http2Client(ssl_context=TlsTrust(tls_files.ca).http2()))) == 200
    with pytest.raises(Http2Error, match="TLS handshake failed.*certificate verify failed"):
        asyncio.run(discover(Http2Client(ssl_context=TlsTrust().http2())))


def test_engine_streams_to_an_https_deployment_over_http2_and_calls_it_over_http11(
    engine_factory: Callable[..., EngineProcess], tls_endpoint: ServiceEndpoint, tls_files: TlsFiles
) -> None:
    engine = engine_factory(env={ENV: str(tls_files.ca)}, extra_args=["--invoker-http2"], partitions=2)
    engine.start_and_wait()
    engine.wait_leading_all()
    status, body = _register(engine, tls_endpoint.url)
    assert status in (200, 201), body
    deployment = _deployment(engine, tls_endpoint.url)
    assert (deployment["http_version"], deployment["protocol_type"]) == ("HTTP/2.0", "BidiStream"), deployment

    before = _requests_served(tls_endpoint)
    assert http("POST", f"{engine.ingress_url}/BidiSteps/ten", timeout=30) == (200, 45)
    assert http("POST", f"{engine.ingress_url}/BidiBox/tls/add", 2, timeout=30) == (200, 2)
    assert http("POST", f"{engine.ingress_url}/BidiBox/tls/add", 3, timeout=30) == (200, 5)
    after = _requests_served(tls_endpoint)
    # Ten ctx.run steps in one stream, then one stream per state update; no HTTP/1.1.
    assert after.get("2", 0) - before.get("2", 0) == 3, (before, after)
    assert after.get("1.1", 0) == before.get("1.1", 0)

    # The same endpoint registered with use_http_11: request/response over HTTP/1.1 + TLS,
    # verified with the same CA.
    status, body = _register(engine, tls_endpoint.url, use_http_11=True)
    assert status in (200, 201), body
    deployment = _deployment(engine, tls_endpoint.url)
    assert (deployment["http_version"], deployment["protocol_type"]) == ("HTTP/1.1", "RequestResponse"), deployment
    assert http("POST", f"{engine.ingress_url}/BidiBox/tls/add", 4, timeout=30) == (200, 9)
    assert _requests_served(tls_endpoint).get("1.1", 0) > after.get("1.1", 0)


def test_engine_without_the_ca_refuses_the_certificate(
    engine_factory: Callable[..., EngineProcess], tls_endpoint: ServiceEndpoint
) -> None:
    engine = engine_factory(extra_args=["--invoker-http2"], partitions=1)
    engine.start_and_wait()
    for use_http_11 in (False, True):
        status, body = _register(engine, tls_endpoint.url, use_http_11=use_http_11)
        assert status >= 400 and isinstance(body, dict), body
        assert "certificate verify failed" in str(body["message"]), body
