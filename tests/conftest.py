"""Shared fixtures: one real Kafka broker per session, engine processes per test.

Hypothesis's internals are imported here, at collection, on purpose: its pytest plugin
otherwise imports them lazily when the session finishes, and CPython 3.11.7's parser
(which pytest's assertion rewriting runs on them) can fail then with "AST constructor
recursion depth mismatch" after a test has hit a RecursionError, failing a green run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis.internal.conjecture.choice  # noqa: F401 - see below
import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker, start_session_broker, unique_prefix


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """The session's real Kafka broker (started once, stopped at the end)."""
    yield from start_session_broker(tmp_path_factory.mktemp("kafka"))


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A topic prefix unique to this test, so tests share the broker without sharing topics."""
    return unique_prefix(request)


@pytest.fixture
def engine_factory(kafka: KafkaBroker, topic_prefix: str, tmp_path: Path) -> Iterator[Callable[..., EngineProcess]]:
    """Builds engine processes against the session broker; all are killed at teardown."""
    started: list[EngineProcess] = []
    counter = iter(range(1000))

    def make(**kwargs: Any) -> EngineProcess:
        params: dict[str, Any] = {
            "bootstrap_servers": kafka.bootstrap_servers,
            "topic_prefix": topic_prefix,
            "data_dir": tmp_path / f"engine-{next(counter)}",
        }
        params.update(kwargs)
        proc = EngineProcess(**params)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.kill()


@pytest.fixture
def engine(engine_factory: Callable[..., EngineProcess]) -> EngineProcess:
    """A running engine process (healthy) with its own data dir and ports."""
    proc = engine_factory()
    proc.start_and_wait()
    proc.wait_leading_all()
    return proc


# Service endpoint fixtures (appended; the import sits here to leave the rest untouched).
from tests.fixtures.service_endpoint import GREETER_APP, ServiceEndpoint, ServiceEndpoints, serve_endpoints  # noqa: E402


@pytest.fixture(scope="session")
def service_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoints]:
    """Real service endpoints (ASGI apps under hypercorn), started on first use and shared by the session."""
    yield from serve_endpoints(tmp_path_factory.mktemp("endpoints"))


@pytest.fixture(scope="session")
def greeter_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    """The official-SDK example greeter: service ``Greeter`` and virtual object ``Counter``."""
    return service_endpoints.get(GREETER_APP)


from tests.fixtures.restate_server import RestateServer  # noqa: E402


@pytest.fixture(scope="session")
def restate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestateServer]:
    """The real restate-server (npm, pinned), the reference; one per session."""
    server = RestateServer(tmp_path_factory.mktemp("restate"))
    server.start()
    yield server
    server.stop()


from tests.fixtures.schema_registry import SchemaRegistry, start_session_registry  # noqa: E402


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistry]:
    """A real Confluent-compatible schema registry (Apicurio, in-memory); one per session."""
    yield from start_session_registry(tmp_path_factory.mktemp("schema-registry"))
