"""Restate 1.6/1.7 invocation lifecycle operations on our engine and on the real
restate-server: the server's default retry policy (``on-max-attempts`` kill or pause),
resume on another deployment, the failing command of the last attempt, restart-as-new.

Every test runs once per system with the same official-SDK endpoint
(``tests/fixtures/official_sdk_lifecycle.py``) and expects restate-server's answers.
Both systems run with the same default retry policy (2 attempts, 100 ms apart, then
kill), set in their configuration: ``[default_retry_policy]`` (``LOGSTRATE_*`` env) on
ours, ``[default-retry-policy]`` (``RESTATE_*`` env) on restate-server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.engine.test_core2_ops import admin, attach, send, wait_row
from tests.engine.test_semantics import new_key
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import SYSTEMS, System

LIFECYCLE_APP = "tests.fixtures.official_sdk_lifecycle:app"

# The same default retry policy on both systems, in each one's configuration.
RETRY_SETTINGS = {"MAX_ATTEMPTS": "2", "INITIAL_INTERVAL": "100ms", "ON_MAX_ATTEMPTS": "kill"}


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = EngineProcess(
        bootstrap_servers=kafka.bootstrap_servers,
        topic_prefix=f"t-lifecycle-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path_factory.mktemp("lifecycle") / "engine",
        env={f"LOGSTRATE_DEFAULT_RETRY_POLICY_{k}": v for k, v in RETRY_SETTINGS.items()},
    )
    engine.start_and_wait()
    yield engine
    engine.kill()


@pytest.fixture(scope="module")
def lifecycle_restate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestateServer]:
    server = RestateServer(
        tmp_path_factory.mktemp("restate-lifecycle"),
        env={f"RESTATE_DEFAULT_RETRY_POLICY__{k}": v for k, v in RETRY_SETTINGS.items()},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request: pytest.FixtureRequest, service_endpoints: ServiceEndpoints) -> System:
    server = request.getfixturevalue("our_engine" if request.param == "logstrate" else "lifecycle_restate_server")
    system = System(request.param, server.admin_url, server.ingress_url)
    system.register(service_endpoints.get(LIFECYCLE_APP, f"lifecycle-{request.param}").url)
    return system


# --- the default retry policy ---------------------------------------------------------------------


def test_the_configured_default_retry_policy_kills_after_its_attempts(system: System) -> None:
    # Shown under every service that sets no policy of its own, as configured.
    status, service = admin(system, "GET", "/services/Lifecycle")
    assert status == 200 and service["retry_policy"] == {
        "initial_interval": "100ms", "exponentiation_factor": 2.0, "max_attempts": 2, "max_interval": "1m",
        "on_max_attempts": "Kill",
    }, service
    tag = new_key("stubborn")
    invocation = send(system, "/Lifecycle/stubborn", tag)
    assert attach(system, invocation) == (500, {"code": 500, "message": f"ValueError('{tag} is not fixed yet')"})


def test_a_service_policy_that_pauses_wins_over_the_default_kill(system: System) -> None:
    status, service = admin(system, "GET", "/services/Wobbly")
    assert status == 200 and service["retry_policy"]["on_max_attempts"] == "Pause", service
    tag = new_key("wobbly")
    invocation = send(system, "/Wobbly/step", tag)
    wait_row(system, invocation, "paused")
    assert system.ok("/Lifecycle/fix", tag) == "fixed"
    assert admin(system, "PATCH", f"/invocations/{invocation}/resume") == (200, None)
    assert attach(system, invocation) == (200, "steady")
