"""Cancel propagation and retention across a kill -9 of the engine.

An idempotent request with a 2 s retention completes, then a trip blocked in its call
to the hotel is cancelled; the engine is killed with SIGKILL at a random moment after
the cancel was acknowledged (the seed is in the test id, so a failure replays), while
the request's cleanup timer is usually still pending, then restarted on the same data
dir. The cancellation still reaches the hotel, the trip still compensates and fails
with "cancelled", both keys are free; the request's key keeps answering its one result
until its retention ends, then runs again.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engine.test_core2 import post
from tests.engine.test_core2_ops import OPS_APP, admin, attach
from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import System


def system_of(engine: EngineProcess) -> System:
    return System("logstrate", engine.admin_url, engine.ingress_url)


@pytest.mark.parametrize("seed", [random.randrange(1_000_000)])
def test_cancel_propagation_and_retention_survive_kill_9(
    seed: int, engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    endpoint = service_endpoints.get(OPS_APP)
    data_dir = tmp_path / "engine-data"
    engine = engine_factory(data_dir=data_dir)
    engine.start_and_wait()
    register(engine, endpoint)
    sys = system_of(engine)

    suffix = uuid.uuid4().hex[:8]
    key, tag = f"trip-{suffix}", f"tag-{suffix}"
    idem = {"idempotency-key": f"key-{suffix}"}
    status, trip, _ = post(sys, f"/Trip/{key}/book/send", 60_000)
    assert status == 202, trip
    assert sys.ok("/Retained/once", tag, headers=idem) == f"{tag} ran 1"
    wait_until(lambda: sys.ok(f"/Hotel/{key}/status") == "reserving", 60, "hotel reserving")
    assert admin(sys, "PATCH", f"/invocations/{trip['invocationId']}/cancel")[0] == 202

    time.sleep(rng.uniform(0.0, 1.5))  # the random crash point (not a wait for a condition)
    engine.kill()
    engine = engine_factory(data_dir=data_dir, ingress_port=engine.ingress_port, admin_port=engine.admin_port)
    engine.start_and_wait()
    sys = system_of(engine)

    assert attach(sys, trip["invocationId"]) == (409, {"code": 409, "message": "cancelled"})
    assert sys.ok(f"/Hotel/{key}/status") == "cancelled: 409 cancelled"
    assert sys.ok(f"/Trip/{key}/status") == "compensated after 409 cancelled"
    # The compensation step runs once, or twice if the kill landed after it ran but
    # before its result was journaled.
    assert sys.ok("/OpsProbe/compensations", key) in (1, 2)
    assert sys.ok(f"/Hotel/{key}/ping") == "hotel free"
    assert sys.ok(f"/Trip/{key}/ping") == "trip free"

    def ran_again() -> str | None:
        status, body, _ = post(sys, "/Retained/once", tag, headers=idem)
        assert status == 200, body
        assert body in (f"{tag} ran 1", f"{tag} ran 2"), body  # the kept result, or one new run
        return body if body != f"{tag} ran 1" else None

    assert wait_until(ran_again, 30, "the key to run again after its retention") == f"{tag} ran 2"
    assert sys.ok("/OpsProbe/executed", tag) == 2
    assert engine.terminate() == 0
