"""Bidirectional HTTP/2 streaming (``invoker_http2``, on by default) with the official Python SDK.

The SDK runs under hypercorn, which speaks h2c on its HTTP/1.1 port; the engine runs
with its defaults and the deployment is registered WITHOUT ``use_http_11``, so
discovery goes over HTTP/2, the manifest says ``BIDI_STREAM`` and each attempt is one
open stream: commands acknowledged in-stream once applied, notifications pushed.
``--no-invoker-http2`` calls everything over HTTP/1.1 request/response, deployments
registered in bidi mode before included.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import http

BIDI_APP = "tests.fixtures.official_sdk_bidi:app"


@pytest.fixture(scope="module")
def bidi_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(BIDI_APP)


@pytest.fixture(scope="module")
def engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory,
           bidi_endpoint: ServiceEndpoint) -> Iterator[EngineProcess]:
    process = EngineProcess(
        bootstrap_servers=kafka.bootstrap_servers,
        topic_prefix=f"t-bidi-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path_factory.mktemp("bidi") / "engine",
        partitions=2,
    )
    process.start_and_wait()
    try:
        process.wait_leading_all()
        status, body = http("POST", f"{process.admin_url}/deployments", {"uri": bidi_endpoint.url, "force": True})
        assert status in (200, 201), body
        yield process
    finally:
        process.kill()


def requests_served(endpoint: ServiceEndpoint) -> dict[str, int]:
    with urllib.request.urlopen(f"{endpoint.url}/bench/requests", timeout=5) as resp:
        return dict(json.loads(resp.read()))


def call(engine: EngineProcess, path: str, body: object = None) -> tuple[int, object]:
    return http("POST", f"{engine.ingress_url}/{path}", body if body is not None else None, timeout=60)


def test_deployment_is_discovered_over_http2_as_bidi(engine: EngineProcess, bidi_endpoint: ServiceEndpoint) -> None:
    status, body = http("GET", f"{engine.admin_url}/deployments")
    assert status == 200
    assert isinstance(body, dict)
    mine = [d for d in body["deployments"] if d.get("uri", "").rstrip("/") == bidi_endpoint.url]
    assert mine and mine[0]["protocol_type"] == "BidiStream", mine
    assert mine[0]["http_version"] == "HTTP/2.0"


def test_noop_runs_in_one_http2_request(engine: EngineProcess, bidi_endpoint: ServiceEndpoint) -> None:
    before = requests_served(bidi_endpoint)
    assert call(engine, "BidiSteps/noop") == (200, "ok")
    after = requests_served(bidi_endpoint)
    assert after.get("2", 0) - before.get("2", 0) == 1
    assert after.get("1.1", 0) == before.get("1.1", 0)


def test_ten_steps_take_one_endpoint_request(engine: EngineProcess, bidi_endpoint: ServiceEndpoint) -> None:
    before = requests_served(bidi_endpoint)
    assert call(engine, "BidiSteps/ten") == (200, 45)
    after = requests_served(bidi_endpoint)
    # Every ctx.run acknowledged inside the open stream: no replay requests.
    assert after.get("2", 0) - before.get("2", 0) == 1, (before, after)
    assert after.get("1.1", 0) == before.get("1.1", 0)


def test_object_state_in_stream(engine: EngineProcess) -> None:
    key = uuid.uuid4().hex[:8]
    assert call(engine, f"BidiBox/{key}/add", 2) == (200, 2)
    assert call(engine, f"BidiBox/{key}/add", 3) == (200, 5)


def test_durable_sleep_pushed_into_the_open_stream(engine: EngineProcess, bidi_endpoint: ServiceEndpoint) -> None:
    before = requests_served(bidi_endpoint)
    started = time.monotonic()
    assert call(engine, "BidiSteps/nap", 300) == (200, "rested")
    assert time.monotonic() - started >= 0.3
    after = requests_served(bidi_endpoint)
    # The timer's completion reached the stream that was still open.
    assert after.get("2", 0) - before.get("2", 0) == 1, (before, after)


def test_service_to_service_call(engine: EngineProcess) -> None:
    key = uuid.uuid4().hex[:8]
    assert call(engine, "BidiSteps/call_box", key) == (200, 5)
    assert call(engine, "BidiSteps/call_box", key) == (200, 10)


def test_awakeable_resolved_through_the_ingress(engine: EngineProcess) -> None:
    key = uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(call, engine, f"BidiBox/{key}/wait")

        def awakeable() -> str | None:
            status, body = call(engine, f"BidiBox/{key}/awakeable_id")
            return body if status == 200 and isinstance(body, str) and body else None

        awakeable_id = wait_until(awakeable, 30, "the awakeable id")
        status, _ = http("POST", f"{engine.ingress_url}/restate/awakeables/{awakeable_id}/resolve", "hello")
        assert status in (200, 202)
        assert waiting.result(timeout=60) == (200, "got hello")


def test_the_http11_switch_calls_bidi_deployments_request_response(
    engine_factory: Callable[..., EngineProcess], bidi_endpoint: ServiceEndpoint, tmp_path: Path
) -> None:
    """A deployment registered in bidi mode (the default) is called over HTTP/1.1 in
    request/response mode once the engine runs with ``--no-invoker-http2``; registered
    again, it is discovered over HTTP/1.1 as REQUEST_RESPONSE."""
    data_dir = tmp_path / "engine-data"
    engine = engine_factory(data_dir=data_dir, partitions=1)
    engine.start_and_wait()
    status, body = http("POST", f"{engine.admin_url}/deployments", {"uri": bidi_endpoint.url, "force": True})
    assert status in (200, 201), body
    assert engine.protocol_type(bidi_endpoint.url) == "BidiStream"
    engine.kill()

    engine = engine_factory(data_dir=data_dir, partitions=1, extra_args=["--no-invoker-http2"],
                            ingress_port=engine.ingress_port, admin_port=engine.admin_port)
    engine.start_and_wait()
    engine.wait_leading_all()
    before = requests_served(bidi_endpoint)
    assert call(engine, "BidiSteps/ten") == (200, 45)
    after = requests_served(bidi_endpoint)
    assert after.get("2", 0) == before.get("2", 0), (before, after)
    # Request/response: each step the SDK has no result for ends a request, replayed after.
    assert after.get("1.1", 0) - before.get("1.1", 0) > 1, (before, after)

    status, body = http("POST", f"{engine.admin_url}/deployments", {"uri": bidi_endpoint.url, "force": True})
    assert status in (200, 201), body
    assert engine.protocol_type(bidi_endpoint.url) == "RequestResponse"
