"""Workflows, awakeables and idempotent requests across a kill -9 of the engine.

One combined scenario: a workflow run waiting on its promise, an object handler waiting
on an awakeable and an idempotent request are all accepted, the engine is killed with
SIGKILL at a random moment (the seed is in the test id, so a failure replays), then
restarted on the same data dir. Everything completes with the answers it would have
given without the crash, and the idempotent request is still one invocation.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engine.test_core2 import CORE2_APP, get, post
from tests.engine.test_invocations import register
from tests.fixtures.systems import System
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints


def system_of(engine: EngineProcess) -> System:
    return System("logstrate", engine.admin_url, engine.ingress_url)


@pytest.mark.parametrize("seed", [random.randrange(1_000_000)])
def test_core2_survives_kill_9_at_a_random_point(
    seed: int, engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    endpoint = service_endpoints.get(CORE2_APP)
    data_dir = tmp_path / "engine-data"
    engine = engine_factory(data_dir=data_dir)
    engine.start_and_wait()
    register(engine, endpoint)
    sys = system_of(engine)

    suffix = uuid.uuid4().hex[:8]
    wf, box, tag = f"wf-{suffix}", f"box-{suffix}", f"tag-{suffix}"
    idem = {"idempotency-key": f"key-{suffix}"}
    status, run, _ = post(sys, f"/Payment/{wf}/run/send", 42)
    assert status == 202, run
    status, waiter, _ = post(sys, f"/Mailbox/{box}/wait/send")
    assert status == 202, waiter
    status, once, _ = post(sys, "/Slow/once/send", tag, headers=idem)
    assert (status, once["status"]) == (202, "Accepted"), once

    time.sleep(rng.uniform(0.0, 1.5))  # the random crash point (not a wait for a condition)
    engine.kill()
    engine = engine_factory(data_dir=data_dir, ingress_port=engine.ingress_port, admin_port=engine.admin_port)
    engine.start_and_wait()
    sys = system_of(engine)

    awakeable = wait_until(lambda: sys.ok(f"/Mailbox/{box}/awakeable_id") or None, 60, "the awakeable id")
    assert post(sys, f"/restate/awakeables/{awakeable}/resolve", "after the crash")[0] == 202
    assert sys.ok(f"/Payment/{wf}/approve", "dana") == "approved"

    assert get(sys, f"/restate/workflow/Payment/{wf}/attach")[:2] == (200, {"amount": 42, "approved": True, "by": "dana"})
    assert get(sys, f"/restate/invocation/{waiter['invocationId']}/attach")[:2] == (200, "got after the crash")
    # The counting step runs once, or twice if the kill landed after it ran but before
    # its result was journaled (the one window a side effect can repeat in); either way
    # the answer reports the execution whose result was journaled.
    executed = sys.ok("/Slow/executed", tag)
    assert executed in (1, 2)
    assert get(sys, f"/restate/invocation/{once['invocationId']}/attach")[:2] == (200, f"{tag} ran {executed}")
    status, again, _ = post(sys, "/Slow/once/send", tag, headers=idem)
    assert (status, again) == (202, {"invocationId": once["invocationId"], "status": "PreviouslyAccepted"})
    assert get(sys, f"/restate/invocation/Slow/once/{idem['idempotency-key']}/output")[:2] == (200, f"{tag} ran {executed}")
    assert sys.ok("/Slow/executed", tag) == executed  # the duplicate ran nothing
    status, body, _ = post(sys, f"/Payment/{wf}/run", 42)
    assert (status, body["message"]) == (409, "the workflow method was already invoked")
    assert engine.terminate() == 0
