"""kill -9 of the engine in the middle of a handler's side effects.

The handler (``tests/fixtures/counting_steps.py``) runs 20 ``ctx.run`` steps, each
incrementing a counter in an HTTP server this test owns. The engine is killed with
SIGKILL several times while the steps run and restarted on the same data dir. The
invocation must complete, the counter must end at exactly 20, and no step whose result
was journaled may run again: each kill can catch at most the one step in flight
(sent to the counter, result not yet durable), so the counter's requests may exceed 20
by at most the number of kills.

It runs with both invoker transports: HTTP/1.1 request/response (every step a new
request that replays the journal) and HTTP/2 bidirectional streams (every step
acknowledged inside one open stream once applied).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.counter_server import CounterServer
from tests.engine.test_invocations import call, register
from tests.fixtures.engine import INVOKER_TRANSPORTS, PROTOCOL_TYPES, EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints

COUNTING_APP = "tests.fixtures.counting_steps:app"
STEPS = 20
KILL_AT = (3, 8, 13)  # kill once the counter has seen this many distinct steps


@pytest.mark.parametrize("transport", sorted(INVOKER_TRANSPORTS))
def test_twenty_side_effects_survive_repeated_kill_9(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, tmp_path: Path,
    transport: str,
) -> None:
    endpoint = service_endpoints.get(COUNTING_APP)
    data_dir = tmp_path / "engine-data"
    args = INVOKER_TRANSPORTS[transport]
    engine = engine_factory(data_dir=data_dir, extra_args=args)
    engine.start_and_wait()
    register(engine, endpoint)
    assert engine.protocol_type(endpoint.url) == PROTOCOL_TYPES[transport]

    with CounterServer() as counter:
        status, body, _ = call(f"{engine.ingress_url}/Counting/count_to/send",
                               {"url": counter.url, "steps": STEPS})
        assert status == 202, body
        for kills, threshold in enumerate(KILL_AT, start=1):
            wait_until(lambda: counter.applied >= threshold, 60,
                       f"the handler to reach step {threshold} (kill {kills})")
            engine.kill()
            engine = engine_factory(data_dir=data_dir, ingress_port=engine.ingress_port,
                                    admin_port=engine.admin_port, extra_args=args)
            engine.start_and_wait()

        wait_until(lambda: counter.finished, 120, "the invocation to finish after the restarts")
        assert counter.finished == [{"key": counter.finished[0]["key"], "applied": STEPS}]
        assert counter.applied == STEPS
        reruns = counter.requests - STEPS
        assert 0 <= reruns <= len(KILL_AT), (
            f"{reruns} steps ran again after {len(KILL_AT)} kills; hits per step: {dict(counter.hits)}"
        )
    assert engine.terminate() == 0
