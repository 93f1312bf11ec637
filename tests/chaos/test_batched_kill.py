"""kill -9 of the engine while timers fire in batches and attempts write batched records.

Sixty invocations each wait on five concurrent durable sleeps (their timers fire
together, as one WAL record per partition and loop turn), then run one side effect
against a counter this test owns (``tests/fixtures/zombie_effects.py``). The engine is
killed twice while that happens and restarted on its data dir. Every invocation must
complete, and each one's result must be the counter's final count for its key: a run
whose result was journaled never runs again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.ids import InvocationUuid
from engine.wal.partitioning import invocation_id_for
from tests.chaos.counter_server import CounterServer
from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http

EFFECTS_APP = "tests.fixtures.zombie_effects:app"
INVOCATIONS = 60
KILL_AT = (15, 35)  # kill once the counter has seen this many keys


def _invocation(engine: EngineProcess, key: str) -> dict[str, Any] | None:
    uuid = InvocationUuid.for_idempotent_request("Effects", None, "sleep_then_apply", key)
    status, body = http("GET", f"{engine.admin_url}/invocations/{invocation_id_for('Effects', None, uuid)}")
    return dict(body) if status == 200 else None


def test_batched_timers_and_records_survive_kill_9(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, tmp_path: Path
) -> None:
    endpoint = service_endpoints.get(EFFECTS_APP)
    data_dir = tmp_path / "engine-data"
    engine = engine_factory(data_dir=data_dir)
    engine.start_and_wait()
    register(engine, endpoint)

    with CounterServer() as counter:
        keys = [f"job-{i}" for i in range(INVOCATIONS)]
        for i, key in enumerate(keys):
            sleeps = [100 + 50 * ((i + j) % 7) for j in range(5)]
            status, body = http("POST", f"{engine.ingress_url}/Effects/sleep_then_apply/send",
                                {"url": counter.url, "key": key, "sleeps_ms": sleeps},
                                headers={"idempotency-key": key})
            assert status == 202, body
        for kills, threshold in enumerate(KILL_AT, start=1):
            wait_until(lambda: counter.applied >= threshold, 120, f"{threshold} side effects (kill {kills})")
            engine.kill()
            engine = engine_factory(data_dir=data_dir, ingress_port=engine.ingress_port,
                                    admin_port=engine.admin_port)
            engine.start_and_wait()

        def all_completed() -> bool:
            return all((inv := _invocation(engine, key)) is not None and inv["status"] == "completed" for key in keys)

        wait_until(all_completed, 180, "every invocation to complete after the restarts", interval=0.5)
        assert counter.applied == INVOCATIONS
        reran = {}
        for key in keys:
            invocation = _invocation(engine, key)
            assert invocation is not None
            result = int(invocation["completion_value"]["utf8"])
            if result != counter.hits[key]:
                reran[key] = (result, counter.hits[key])
        assert not reran, f"journaled side effects that ran again (result, executions): {reran}"
    assert engine.terminate() == 0
