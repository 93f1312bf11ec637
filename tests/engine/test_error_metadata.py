"""Terminal errors with metadata, on our engine and on restate-server.

``TerminalError(message, status_code, metadata={...})`` (official SDK, service protocol
v6+ ``Failure.metadata``) raised by a handler, inside a ``ctx.run`` step, or by the
callee of a service-to-service call. Every test runs on both systems with the same
official-SDK endpoint (``tests/fixtures/official_sdk_error_metadata.py``) and expects
what restate-server gives: the ingress error body carries the pairs after the message,
``{"code", "message", "metadata", "source"}`` in that order, and leaves the key out when
there are none; a calling handler sees them on the failure it catches.

Issue 13: our ingress answered without the metadata.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import SYSTEMS, System, http, module_engine, system_under_test

ERROR_METADATA_APP = "tests.fixtures.official_sdk_error_metadata:app"

METADATA = {"reason": "out-of-stock", "sku": "42", "note": "grüße"}
REQUEST = {"code": 418, "message": "no tea today", "metadata": METADATA}
#: restate-server's body for REQUEST's failure (the key order is part of it).
EXPECTED_BODY = [
    ("code", 418),
    ("message", "no tea today"),
    ("metadata", METADATA),
    ("source", "invocation"),
]


@pytest.fixture(scope="module")
def error_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(ERROR_METADATA_APP)


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    yield from module_engine(kafka, tmp_path_factory, "error-metadata")


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request: pytest.FixtureRequest, error_endpoint: ServiceEndpoint) -> System:
    return system_under_test(request, error_endpoint.url)


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, Any]], str]:
    """POST JSON; the status, the JSON answer as ordered pairs (metadata as a dict) and
    the ``x-restate-id`` header."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, raw, invocation_id = resp.status, resp.read(), resp.headers.get("x-restate-id")
    except urllib.error.HTTPError as err:
        status, raw, invocation_id = err.code, err.read(), err.headers.get("x-restate-id")
    pairs = json.loads(raw, object_pairs_hook=lambda items: items)
    # Metadata as a dict: its pairs come from a map, whose order no one promises.
    return status, [(k, dict(v) if k == "metadata" else v) for k, v in pairs], str(invocation_id)


@pytest.mark.parametrize("handler", ["raise", "inRun", "relay"])
def test_ingress_error_body_carries_the_metadata(system: System, handler: str) -> None:
    """Raised by the handler, from a ``ctx.run`` step, or by a callee and propagated."""
    status, body, _ = post(f"{system.ingress_url}/Failing/{handler}", REQUEST)
    assert (status, body) == (418, EXPECTED_BODY), system.name


def test_no_metadata_no_key(system: System) -> None:
    status, body, _ = post(f"{system.ingress_url}/Failing/raise", {**REQUEST, "metadata": {}})
    assert (status, body) == (
        418, [("code", 418), ("message", "no tea today"), ("source", "invocation")]
    ), system.name


@pytest.mark.parametrize("via", ["raise", "inRun"])
def test_the_caller_sees_the_callees_metadata(system: System, via: str) -> None:
    status, body, _ = post(f"{system.ingress_url}/Failing/inspect", {**REQUEST, "via": via})
    assert (status, dict(body)) == (
        200, {"code": 418, "message": "no tea today", "metadata": METADATA}
    ), system.name


def test_a_stored_failure_keeps_its_metadata(system: System) -> None:
    """An idempotent request's failure is kept: its retry and ``output`` answer from
    storage with the same body."""
    headers = {"idempotency-key": f"idem-{uuid.uuid4().hex[:10]}"}
    url = f"{system.ingress_url}/Failing/inRun"
    status, body, invocation_id = post(url, REQUEST, headers)
    assert (status, body) == (418, EXPECTED_BODY), system.name
    assert post(url, REQUEST, headers)[:2] == (418, EXPECTED_BODY), f"{system.name}: retry"
    request = urllib.request.Request(f"{system.ingress_url}/restate/invocation/{invocation_id}/output")
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    assert answer.value.code == 418, system.name
    assert json.loads(answer.value.read()) == dict(EXPECTED_BODY), f"{system.name}: output"


@pytest.mark.parametrize("handler", ["raise", "inRun", "relay"])
def test_admin_shows_the_completion_failure_with_its_metadata(
    our_engine: EngineProcess, error_endpoint: ServiceEndpoint, handler: str
) -> None:
    """Ours only: restate-server shows failures through SQL, as ``[418] no tea today``."""
    engine = System("logstrate", our_engine.admin_url, our_engine.ingress_url)
    engine.register(error_endpoint.url)
    _, _, invocation_id = post(f"{engine.ingress_url}/Failing/{handler}", REQUEST)
    status, invocation = http("GET", f"{engine.admin_url}/invocations/{invocation_id}")
    assert status == 200, invocation
    assert (invocation["completion_result"], invocation["completion_failure"]) == (
        "failure", {"code": 418, "message": "no tea today", "metadata": METADATA}
    )
