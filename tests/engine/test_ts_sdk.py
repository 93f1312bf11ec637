"""The official TypeScript SDK (``@restatedev/restate-sdk`` from npm) on this engine.

``tests/fixtures/ts_services/services.mjs`` (plain JavaScript) serves a service, a
virtual object and a workflow, (a) on Node's own HTTP/2 server, where the SDK announces
``BIDI_STREAM`` and every attempt is ONE bidirectional stream, and (b) on Node's
HTTP/1.1 server with the SDK's request/response handler; the engine runs with its
defaults and the deployments are registered without ``use_http_11`` (the HTTP/1.1
server is found not to speak HTTP/2 and is discovered over HTTP/1.1). Each mode runs
state, ``ctx.run``, durable sleep, calls, one-way and delayed sends, awakeables and a
workflow with a durable promise. (kill -9 of the engine: ``tests/chaos/test_ts_sdk_kill.py``.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from restate_protocol.versions import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.systems import http
from tests.fixtures.ts_endpoint import TsEndpoint, sdk_version, start_ts_endpoint

PINNED_SDK = "1.17.2"
EXPECTED = {"h2": ("BidiStream", "HTTP/2.0", "2.0"), "h1": ("RequestResponse", "HTTP/1.1", "1.1")}


@pytest.fixture(scope="module", params=["h2", "h1"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def ts_endpoint(mode: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsEndpoint]:
    assert sdk_version() == PINNED_SDK, "run scripts/bootstrap.sh (npm ci in tests/fixtures/ts_services)"
    endpoint = start_ts_endpoint(mode, tmp_path_factory.mktemp(f"ts-{mode}"))
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture(scope="module")
def engine(kafka: KafkaBroker, ts_endpoint: TsEndpoint, tmp_path_factory: pytest.TempPathFactory,
           mode: str) -> Iterator[EngineProcess]:
    process = EngineProcess(
        bootstrap_servers=kafka.bootstrap_servers,
        topic_prefix=f"t-ts-{mode}-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path_factory.mktemp(f"ts-engine-{mode}") / "engine",
        partitions=2,
    )
    process.start_and_wait()
    try:
        process.wait_leading_all()
        status, body = http("POST", f"{process.admin_url}/deployments", {"uri": ts_endpoint.url, "force": True})
        assert status in (200, 201), body
        yield process
    finally:
        process.kill()


def call(engine: EngineProcess, path: str, body: object = None) -> tuple[int, object]:
    return http("POST", f"{engine.ingress_url}/{path}", body, timeout=60)


def test_discovered_in_the_mode_of_its_server(engine: EngineProcess, ts_endpoint: TsEndpoint, mode: str) -> None:
    status, body = http("GET", f"{engine.admin_url}/deployments")
    assert status == 200 and isinstance(body, dict), body
    [deployment] = [d for d in body["deployments"] if d["uri"].rstrip("/") == ts_endpoint.url]
    assert (deployment["protocol_type"], deployment["http_version"]) == EXPECTED[mode][:2], deployment
    assert str(deployment.get("sdk_version", "")).startswith(f"restate-sdk-typescript/{PINNED_SDK}"), deployment
    # The SDK speaks service protocol 5..7, all of which this engine negotiates (7 is used).
    assert (deployment["min_protocol_version"], deployment["max_protocol_version"]) == (5, 7), deployment
    assert (MIN_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION) == (5, 7)
    assert {s["name"] for s in deployment["services"]} == {"TsSteps", "TsBox", "TsFlow"}, deployment
    status, body = http("GET", f"{engine.admin_url}/services")
    assert status == 200 and isinstance(body, dict), body
    kinds = {s["name"]: s["ty"] for s in body["services"]}
    assert kinds == {"TsSteps": "Service", "TsBox": "VirtualObject", "TsFlow": "Workflow"}, kinds


def test_state_and_run_steps(engine: EngineProcess, ts_endpoint: TsEndpoint, mode: str) -> None:
    key = uuid.uuid4().hex[:8]
    assert call(engine, f"TsBox/{key}/add", 2) == (200, 2)
    assert call(engine, f"TsBox/{key}/add", 3) == (200, 5)
    assert call(engine, f"TsBox/{key}/get") == (200, 5)
    before = ts_endpoint.requests_served()
    assert call(engine, "TsSteps/ten") == (200, 45)
    after = ts_endpoint.requests_served()
    version = EXPECTED[mode][2]
    served = after.get(version, 0) - before.get(version, 0)
    if mode == "h2":
        assert served == 1, (before, after)  # ten ctx.run steps acknowledged in one open stream
    else:
        assert served > 1, (before, after)  # each step ends a request; the next replays the journal


def test_durable_sleep(engine: EngineProcess) -> None:
    started = time.monotonic()
    assert call(engine, "TsSteps/nap", 300) == (200, "rested")
    assert time.monotonic() - started >= 0.3


def test_calls_and_sends(engine: EngineProcess) -> None:
    key = uuid.uuid4().hex[:8]
    assert call(engine, "TsSteps/callBox", key) == (200, 5)
    assert call(engine, "TsSteps/callBox", key) == (200, 10)
    assert call(engine, "TsSteps/sendBox", key) == (200, "sent")
    # One send at once, one 200 ms later: 10 + 1 + 10.
    wait_until(lambda: call(engine, f"TsBox/{key}/get") == (200, 21), 30, "both sends to land")


def test_awakeable_resolved_through_the_ingress(engine: EngineProcess) -> None:
    key = uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(call, engine, f"TsBox/{key}/wait")

        def awakeable() -> str | None:
            status, body = call(engine, f"TsBox/{key}/awakeableId")
            return body if status == 200 and isinstance(body, str) and body else None

        awakeable_id = wait_until(awakeable, 30, "the awakeable id")
        status, _ = http("POST", f"{engine.ingress_url}/restate/awakeables/{awakeable_id}/resolve", "hello")
        assert status in (200, 202)
        assert waiting.result(timeout=60) == (200, "got hello")


def test_workflow_with_a_durable_promise(engine: EngineProcess) -> None:
    workflow_id = uuid.uuid4().hex[:8]
    status, body = call(engine, f"TsFlow/{workflow_id}/run/send", {"name": "ada"})
    assert status == 202, body
    wait_until(lambda: call(engine, f"TsFlow/{workflow_id}/stage") == (200, "waiting"), 30, "the run to wait")
    assert call(engine, f"TsFlow/{workflow_id}/approve", "bob") == (200, "ok")
    status, body = http("GET", f"{engine.ingress_url}/restate/workflow/TsFlow/{workflow_id}/attach", timeout=60)
    assert (status, body) == (200, "hello ada, approved by bob")
    assert call(engine, f"TsFlow/{workflow_id}/stage") == (200, "done")
