"""Shared fixtures: one real Kafka broker per session, engine processes per test.

CPython 3.11.7's parser can fail with "SystemError: AST constructor recursion depth
mismatch" (CPython gh-106905, fixed in later 3.11 releases): its recursion bookkeeping
is shared by every thread and goes wrong after a RecursionError, which tests feeding
hostile, deeply nested input provoke on purpose. ``ast.parse`` is called by pytest's
assertion rewriting, Hypothesis and the ``traceback`` module, so that would fail a green
run. Hence: Hypothesis's internals are imported here, at collection, instead of lazily
when the session finishes; ``ast.parse`` runs one parse at a time; and a parse that
still fails that way is redone in a fresh thread.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis.internal.conjecture.choice  # noqa: F401 - see the module docstring
import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker, start_session_broker, unique_prefix

_parse = ast.parse
# The parser's recursion bookkeeping is shared by all threads: one parse at a time.
_parsing = threading.RLock()


def _parse_in_a_clean_thread(*args: Any, **kwargs: Any) -> Any:
    try:
        with _parsing:
            return _parse(*args, **kwargs)
    except SystemError as exc:
        if "recursion depth mismatch" not in str(exc):
            raise
    outcome: list[Any] = []

    def run() -> None:
        try:
            with _parsing:
                outcome.append(_parse(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="ast-parse")
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


ast.parse = _parse_in_a_clean_thread


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
