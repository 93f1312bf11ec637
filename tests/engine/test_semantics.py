"""Restate's invocation semantics, checked on our engine and on the real restate-server.

Every test runs twice, once per system, with the same official-SDK endpoint
(``tests/fixtures/official_sdk_semantics.py``) and the same requests; both runs must give
the answers written here, which are what restate-server gives. Object keys are unique per
test and system, so the systems share the endpoint without sharing state.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import SYSTEMS, System, module_engine, system_under_test

SEMANTICS_APP = "tests.fixtures.official_sdk_semantics:app"


@pytest.fixture(scope="module")
def semantics_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(SEMANTICS_APP)


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    yield from module_engine(kafka, tmp_path_factory, "semantics")


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request: pytest.FixtureRequest, semantics_endpoint: ServiceEndpoint) -> System:
    return system_under_test(request, semantics_endpoint.url)


def new_key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_fifty_concurrent_adds_lose_no_update(system: System) -> None:
    key = new_key("acct")
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda _: system.ok(f"/Account/{key}/add", 1), range(50)))
    # Exclusive handlers run one at a time per key: every add saw the previous one.
    assert sorted(results) == list(range(1, 51))
    assert system.ok(f"/Account/{key}/balance") == 50


def test_proxy_reaches_an_object_by_call_send_and_delayed_send(system: System) -> None:
    key = new_key("proxied")
    assert system.ok("/Proxy/call_add", {"key": key, "delta": 5}) == 5

    assert system.ok("/Proxy/send_add", {"key": key, "delta": 7}) == "sent"
    wait_until(lambda: system.ok(f"/Account/{key}/balance") == 12, timeout=30,
               what=f"{system.name}: the one-way add applied")

    sent_at = time.monotonic()
    assert system.ok("/Proxy/send_add", {"key": key, "delta": 30, "delay_ms": 1000}) == "sent"
    wait_until(lambda: system.ok(f"/Account/{key}/balance") == 42, timeout=30,
               what=f"{system.name}: the delayed add applied")
    # A lower bound only: the delayed call cannot have run before its delay.
    assert time.monotonic() - sent_at >= 1.0

    # A shared handler called from a service: answered through the proxy.
    assert system.ok("/Proxy/call_balance", key) == 42


def test_one_second_durable_sleep(system: System) -> None:
    started = time.monotonic()
    assert system.ok("/Proxy/nap", 1000) == "awake"
    assert time.monotonic() - started >= 1.0


def test_retryable_failures_are_retried_until_success(system: System) -> None:
    # Fails on attempts 1 and 2, succeeds on 3, and says which attempt succeeded.
    assert system.ok("/Flaky/succeed_on", 3) == 3


def test_terminal_error_reaches_the_caller_with_its_code(system: System) -> None:
    status, body = system.invoke("/Proxy/refuse", 409)
    assert status == 409
    assert body["code"] == 409
    assert "refused with 409" in body["message"]


def test_shared_handler_reads_state_while_an_exclusive_one_is_queued(system: System) -> None:
    key = new_key("busy")
    assert system.ok(f"/Account/{key}/add", 5) == 5
    # hold keeps the key's lock (durable sleep); the add queues behind it.
    status, _ = system.invoke(f"/Account/{key}/hold/send", 3000)
    assert status == 202
    status, _ = system.invoke(f"/Account/{key}/add/send", 10)
    assert status == 202
    # Shared reads (direct and via a call from a service) do not wait for the lock:
    # they see 5, not the 15 the queued add will leave.
    assert system.ok(f"/Account/{key}/balance") == 5
    assert system.ok("/Proxy/call_balance", key) == 5
    wait_until(lambda: system.ok(f"/Account/{key}/balance") == 15, timeout=30,
               what=f"{system.name}: the queued add ran after hold released the key")

