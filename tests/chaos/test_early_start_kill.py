"""kill -9 while invocations run on the early-start path.

A ``/send`` or call with a fresh random id to a plain service starts its first attempt as
its ``Invoke`` is appended, before the record is read back (``leader.start_early``).
Here many such sends of ``Effects/apply`` (one ``ctx.run`` side effect each, counted by a
server this test owns) are accepted while the engine is killed with SIGKILL, then it is
restarted on the same data. Every accepted invocation must complete, and its result
must be the count its key had when the journaled step ran: a step that ran again after
its result was journaled would leave the counter above the result.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.chaos.counter_server import CounterServer
from tests.engine.test_invocations import call, register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http

EFFECTS_APP = "tests.fixtures.zombie_effects:app"
JOBS = 120


def early_starts(engine: EngineProcess) -> float:
    with urllib.request.urlopen(f"{engine.admin_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(v) for v in re.findall(r"^logstrate_invocations_started_early_total\{[^}]*\} (\S+)$", text, re.M))


def test_sends_started_early_survive_kill_9(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, tmp_path: Path
) -> None:
    endpoint = service_endpoints.get(EFFECTS_APP)
    data_dir = tmp_path / "engine-data"
    engine = engine_factory(data_dir=data_dir)
    engine.start_and_wait()
    engine.wait_leading_all()
    register(engine, endpoint)

    with CounterServer() as counter:
        def send(i: int) -> tuple[str, str] | None:
            try:
                status, body, _ = call(f"{engine.ingress_url}/Effects/apply/send", {"url": counter.url, "key": f"k{i}"})
            except OSError:
                return None  # cut off by the kill: never acknowledged
            return (f"k{i}", str(body["invocationId"])) if status == 202 else None

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(send, i) for i in range(JOBS)]
            wait_until(lambda: counter.applied >= JOBS // 4, 60, "a quarter of the side effects")
            started_early = early_starts(engine)
            engine.kill()
            accepted = [a for a in (f.result() for f in futures) if a is not None]
        assert started_early > 0, "no invocation took the early-start path"
        assert len(accepted) >= JOBS // 4

        engine = engine_factory(data_dir=data_dir, ingress_port=engine.ingress_port, admin_port=engine.admin_port)
        engine.start_and_wait()
        engine.wait_leading_all()
        results: dict[str, int] = {}
        last: dict[str, object] = {}

        def all_done() -> bool:
            for key, invocation_id in accepted:
                if key in results:
                    continue
                status, body = http("GET", f"{engine.ingress_url}/restate/invocation/{invocation_id}/attach", timeout=60)
                if status != 200:
                    last[key] = (status, body)
                    return False
                results[key] = int(body)
            return True

        wait_until(all_done, 120, "every accepted invocation to complete after the restart")
        assert not [k for k, _ in accepted if k not in results], last
        wrong = {key: (result, counter.hits[key]) for key, result in results.items() if counter.hits[key] != result}
        assert not wrong, f"results that differ from the side effects (result, runs): {wrong}"
    assert engine.terminate() == 0
