"""End to end: official-SDK services invoked through our ingress, on a real Kafka WAL.

Each test registers real hypercorn-served endpoints with a real engine process and
drives it over HTTP, the way a user would.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints

FEATURES_APP = "tests.fixtures.official_sdk_features:app"
STEPS_APP = "tests.fixtures.durable_steps:app"


def call(url: str, body: Any = None, *, raw: bytes | None = None, content_type: str = "application/json",
         timeout: float = 30.0, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    """POST and return (status, decoded JSON body or raw text, headers)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    # No body, no content type: handlers without input refuse one (as restate-server does).
    sent = {"content-type": content_type} if data is not None and content_type else {}
    sent.update(headers or {})
    request = urllib.request.Request(url, data=data, method="POST", headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            payload, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        payload, status, headers = err.read(), err.code, dict(err.headers)
    try:
        return status, json.loads(payload), headers
    except ValueError:
        return status, payload.decode(errors="replace"), headers


def register(engine: EngineProcess, endpoint: ServiceEndpoint, *, use_http_11: bool = False) -> None:
    """Register ``endpoint``: over HTTP/2 (bidirectional streams) by default, as
    restate-server does; ``use_http_11`` for request/response attempts."""
    body: dict[str, Any] = {"uri": endpoint.url}
    if use_http_11:
        body["use_http_11"] = True
    status, answer, _ = call(f"{engine.admin_url}/deployments", body)
    assert status in (200, 201), answer


@pytest.fixture
def running_engine(engine_factory: Callable[..., EngineProcess]) -> EngineProcess:
    engine = engine_factory(partitions=4)
    engine.start_and_wait()
    return engine


def test_greeter_and_counter(running_engine: EngineProcess, greeter_endpoint: ServiceEndpoint) -> None:
    register(running_engine, greeter_endpoint)
    ingress = running_engine.ingress_url

    status, body, headers = call(f"{ingress}/Greeter/greet", "Sam")
    assert (status, body) == (200, "Hello Sam! (greeting #1)")  # ctx.run + durable sleep inside
    assert headers["x-restate-id"].startswith("inv_1")

    # Exclusive handlers of one key run one at a time: 20 concurrent adds never lose one.
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: call(f"{ingress}/Counter/bob/add", 1), range(20)))
    assert sorted(body for _, body, _ in results) == list(range(1, 21))
    assert call(f"{ingress}/Counter/bob/get")[:2] == (200, 20)  # shared handler reads the state
    assert call(f"{ingress}/Counter/alice/get")[:2] == (200, 0)  # keys are independent


def test_calls_runs_sleeps_and_errors(running_engine: EngineProcess, service_endpoints: ServiceEndpoints) -> None:
    register(running_engine, service_endpoints.get(FEATURES_APP))
    ingress = running_engine.ingress_url
    # Service-to-service call through the outbox, two sequential side effects, a timer.
    assert call(f"{ingress}/Features/call_echo", "hey")[:2] == (200, "Echo said HEY")
    assert call(f"{ingress}/Features/two_runs", "x")[:2] == (200, "first x, second x")
    assert call(f"{ingress}/Features/sleepy", "Al")[:2] == (200, "Rested Al")
    assert call(f"{ingress}/Counter/k1/add", 3)[:2] == (200, 3)
    assert call(f"{ingress}/Counter/k1/reset")[:2] == (200, "k1")
    assert call(f"{ingress}/Counter/k1/add", 2)[:2] == (200, 2)

    # A terminal error keeps its code and message.
    status, body, _ = call(f"{ingress}/Features/fail_terminal", "Bo")
    assert status == 418
    assert body == {"code": 418, "message": "no greeting for Bo", "source": "invocation"}


def test_send_and_delayed_send(running_engine: EngineProcess, greeter_endpoint: ServiceEndpoint) -> None:
    register(running_engine, greeter_endpoint)
    ingress = running_engine.ingress_url
    status, body, _ = call(f"{ingress}/Counter/carol/add/send", 5)
    assert status == 202 and body["status"] == "Accepted" and body["invocationId"].startswith("inv_1")
    status, body, _ = call(f"{ingress}/Counter/carol/add/send?delay=500ms", 7)
    assert status == 202 and "executionTime" in body
    wait_until(lambda: call(f"{ingress}/Counter/carol/get")[1] == 12, 30, "both sends applied")


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "message"),
    [
        ("/Nope/greet", b'"x"', "application/json", 404, "service 'Nope' not found"),
        ("/Greeter/nope", b'"x"', "application/json", 404, "the service 'Greeter' exists, but the handler 'nope'"),
        ("/Counter/add", b"1", "application/json", 400, "bad path"),
        ("/Counter/k/add", b"1", "application/x-www-form-urlencoded", 400, "input validation error"),
        ("/Greeter/greet?delay=1s", b'"x"', "application/json", 400, "delay"),
        ("/Greeter/greet/send?delay=soon", b'"x"', "application/json", 400, "bad delay"),
    ],
)
def test_bad_requests_get_restate_errors(
    running_engine: EngineProcess, greeter_endpoint: ServiceEndpoint,
    path: str, body: bytes, content_type: str, status: int, message: str,
) -> None:
    register(running_engine, greeter_endpoint)
    got_status, got_body, headers = call(f"{running_engine.ingress_url}{path}", raw=body, content_type=content_type)
    assert got_status == status
    assert got_body["code"] == status and message in got_body["message"]
    assert headers["x-restate-error-source"] == "ingress"


def test_oversized_body_is_413(engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint) -> None:
    engine = engine_factory(env={"LOGSTRATE_INGRESS_MAX_BODY_BYTES": "1000"})
    engine.start_and_wait()
    register(engine, greeter_endpoint)
    status, body, _ = call(f"{engine.ingress_url}/Greeter/greet", raw=b'"' + b"a" * 5000 + b'"')
    assert status == 413 and "exceeds the limit of 1000 bytes" in body["message"]


def _markers(directory: Path) -> list[str]:
    path = directory / "markers.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_kill_9_loses_no_acknowledged_invocation_and_reruns_no_journaled_step(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, tmp_path: Path
) -> None:
    """Acknowledged sends survive SIGKILL; steps whose result was journaled never run twice."""
    steps = service_endpoints.get(STEPS_APP)
    engine = engine_factory(data_dir=tmp_path / "engine-data")
    engine.start_and_wait()
    register(engine, steps)
    jobs = [f"job{i}" for i in range(12)]
    for name in jobs:
        status, body, _ = call(f"{engine.ingress_url}/Steps/process/send",
                               {"name": name, "dir": str(tmp_path), "sleep_ms": "1500"})
        assert status == 202, body
    # Crash while the jobs sleep between their two steps, once step 1 is journaled.
    wait_until(lambda: len({m for m in _markers(tmp_path) if m.startswith("after1")}) == len(jobs), 30,
               "every job's first step to be durable")
    engine.kill()

    restarted = engine_factory(data_dir=tmp_path / "engine-data", ingress_port=engine.ingress_port,
                               admin_port=engine.admin_port)
    restarted.start_and_wait()
    wait_until(lambda: len([m for m in _markers(tmp_path) if m.startswith("step2")]) >= len(jobs), 60,
               "every job's second step after the restart")
    markers = _markers(tmp_path)
    for name in jobs:
        assert markers.count(f"step1 {name}") == 1, f"step1 of {name} ran again after the crash:\n{markers}"
        assert markers.count(f"step2 {name}") == 1, markers
    assert restarted.terminate() == 0
