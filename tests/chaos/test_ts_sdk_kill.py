"""kill -9 of the engine while a TypeScript-SDK handler runs its side effects.

``TsSteps/countTo`` (``tests/fixtures/ts_services/services.mjs``, the official
``@restatedev/restate-sdk``) runs 20 ``ctx.run`` steps, each POSTing a key of its own to
a counter this test owns. The engine is killed with SIGKILL three times while the steps
run and restarted on the same data dir, with the SDK on Node's HTTP/2 server
(bidirectional streams) and on its HTTP/1.1 server (request/response). Nothing is lost:
the invocation completes and the counter ends at exactly 20 distinct steps. No
journaled step runs again: each kill can catch at most the one step in flight (sent to
the counter, its result not yet durable), so the counter's requests exceed 20 by at most
the number of kills.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.counter_server import CounterServer
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.systems import http
from tests.fixtures.ts_endpoint import TsEndpoint, sdk_version, start_ts_endpoint

STEPS = 20
KILL_AT = (3, 8, 13)  # kill once the counter has seen this many distinct steps
PROTOCOL_TYPES = {"h2": "BidiStream", "h1": "RequestResponse"}


@pytest.fixture(params=["h2", "h1"])
def ts_endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TsEndpoint]:
    assert sdk_version() is not None, "run scripts/bootstrap.sh (npm ci in tests/fixtures/ts_services)"
    endpoint = start_ts_endpoint(str(request.param), tmp_path)
    try:
        yield endpoint
    finally:
        endpoint.stop()


def test_twenty_ts_side_effects_survive_repeated_kill_9(
    engine_factory: Callable[..., EngineProcess], ts_endpoint: TsEndpoint, tmp_path: Path
) -> None:
    data_dir = tmp_path / "engine-data"
    engine = engine_factory(data_dir=data_dir, partitions=2)
    engine.start_and_wait()
    status, body = http("POST", f"{engine.admin_url}/deployments", {"uri": ts_endpoint.url})
    assert status in (200, 201), body
    assert engine.protocol_type(ts_endpoint.url) == PROTOCOL_TYPES[ts_endpoint.mode]

    with CounterServer() as counter:
        status, body = http("POST", f"{engine.ingress_url}/TsSteps/countTo/send", {"url": counter.url, "steps": STEPS})
        assert status == 202, body
        for kills, threshold in enumerate(KILL_AT, start=1):
            wait_until(lambda: counter.applied >= threshold, 60,
                       f"the handler to reach step {threshold} (kill {kills})")
            engine.kill()
            engine = engine_factory(data_dir=data_dir, partitions=2, ingress_port=engine.ingress_port,
                                    admin_port=engine.admin_port)
            engine.start_and_wait()

        wait_until(lambda: counter.finished, 120, "the invocation to finish after the restarts")
        assert counter.finished == [{"key": counter.finished[0]["key"], "applied": STEPS}]
        assert counter.applied == STEPS
        reruns = counter.requests - STEPS
        assert 0 <= reruns <= len(KILL_AT), (
            f"{reruns} steps ran again after {len(KILL_AT)} kills; hits per step: {dict(counter.hits)}"
        )
    assert engine.terminate() == 0
