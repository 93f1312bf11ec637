"""A leader frozen mid-load (SIGSTOP), replaced, then thawed (SIGCONT): a zombie.

Two engine processes split the WAL partitions; requests go through both ingresses,
each invocation running one side effect (``tests/fixtures/zombie_effects.py``) against
a counter this test owns. One process is frozen while invocations are in flight on it,
the other takes its partitions over, and the frozen one is woken up while it still
believes it leads them. Its late writes carry the old epoch and must change nothing:

- every answer a client got equals the result ``GET /invocations/{id}`` shows later;
- no journaled side effect ran again: an invocation's result is the counter's count for
  its key when the step ran, so a later execution would leave the counter higher;
- every request gets an answer (through either process) once both run.

It runs with both invoker transports (HTTP/1.1 request/response, HTTP/2 streams): in a
stream, the zombie's acknowledgements are the risk, since a command acknowledged to the
SDK must have been applied under the leadership that wrote it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from engine.ids import InvocationUuid
from engine.wal.partitioning import invocation_id_for
from tests.chaos.counter_server import CounterServer
from tests.fixtures.engine import INVOKER_TRANSPORTS, PROTOCOL_TYPES, EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http

EFFECTS_APP = "tests.fixtures.zombie_effects:app"
PARTITIONS = 4
INVOCATIONS = 120
CLIENTS = 12


@pytest.mark.parametrize("transport", sorted(INVOKER_TRANSPORTS))
def test_a_frozen_and_thawed_leader_changes_no_outcome(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, transport: str
) -> None:
    endpoint = service_endpoints.get(EFFECTS_APP)
    args = INVOKER_TRANSPORTS[transport]
    zombie = engine_factory(partitions=PARTITIONS, extra_args=args)
    zombie.start_and_wait()
    survivor = engine_factory(partitions=PARTITIONS, extra_args=args)
    survivor.start_and_wait()
    status, body = http("POST", f"{survivor.admin_url}/deployments", {"uri": endpoint.url})
    assert status == 201, body
    assert survivor.protocol_type(endpoint.url) == PROTOCOL_TYPES[transport]

    def split() -> bool:
        a, b = zombie.led_partitions(), survivor.led_partitions()
        return bool(a and b and a | b == set(range(PARTITIONS)) and not a & b)

    wait_until(split, 90, "both processes to lead some WAL partitions", interval=0.5)

    with CounterServer() as counter:
        answers: dict[str, tuple[int, Any, str]] = {}  # key -> (status, body, via)
        lock = threading.Lock()

        def one(i: int) -> None:
            via = zombie if i % 2 else survivor
            key = f"k{i}"
            deadline = time.monotonic() + 240
            status, body = 0, None
            while time.monotonic() < deadline:  # a client that lost its answer retries
                try:
                    status, body = http("POST", f"{via.ingress_url}/Effects/apply",
                                        {"url": counter.url, "key": key}, timeout=120,
                                        headers={"idempotency-key": key})
                except OSError as exc:
                    status, body = 0, str(exc)
                if status == 200:
                    break
            with lock:
                answers[key] = (status, body, "zombie" if via is zombie else "survivor")

        # Clients of each process apart: those of the frozen one hang until it wakes.
        with ThreadPoolExecutor(CLIENTS // 2) as via_survivor, ThreadPoolExecutor(CLIENTS // 2) as via_zombie:
            futures = [(via_zombie if i % 2 else via_survivor).submit(one, i) for i in range(INVOCATIONS)]
            wait_until(lambda: counter.applied >= INVOCATIONS // 4, 120, "a quarter of the side effects")
            assert zombie.proc is not None
            zombie.proc.send_signal(signal.SIGSTOP)
            try:
                wait_until(lambda: survivor.led_partitions() == set(range(PARTITIONS)), 120,
                           "the survivor to lead every partition", interval=0.5)
                # Work keeps flowing through the survivor while the zombie is frozen: a new
                # request through it completes (its own clients may be done already).
                moved_on = counter.applied
                status, body = http("POST", f"{survivor.ingress_url}/Effects/apply",
                                    {"url": counter.url, "key": "during-freeze"}, timeout=120,
                                    headers={"idempotency-key": "during-freeze"})
                assert (status, body) == (200, 1), (status, body)
                assert counter.applied > moved_on
            finally:
                zombie.proc.send_signal(signal.SIGCONT)
            for future in futures:
                future.result(timeout=300)

        assert len(answers) == INVOCATIONS
        failed = {k: a for k, a in answers.items() if a[0] != 200}
        assert not failed, f"requests without a result: {failed}"

        mismatched = []
        for key, (_, body, via) in answers.items():
            invocation = _lookup(key, zombie, survivor)
            shown = invocation.get("completion_value", {}).get("utf8")
            if shown is None or int(shown) != body:
                mismatched.append((key, via, body, invocation.get("status"), shown))
            if counter.hits[key] != body:
                mismatched.append((key, via, body, "counter", counter.hits[key]))
        assert not mismatched, f"answers that differ from the log's outcome: {mismatched}"
    assert zombie.terminate() == 0
    assert survivor.terminate() == 0


def _lookup(key: str, *engines: EngineProcess) -> dict[str, Any]:
    """The invocation of ``key``'s idempotent request, from whichever process has it.

    Admin reads answer only on the partition's leader, and the thawed process rejoins
    the group, so partitions may be moving (led by neither) for a moment: wait for it.
    """
    invocation_id = invocation_id_for(
        "Effects", None, InvocationUuid.for_idempotent_request("Effects", None, "apply", key)
    )

    def shown() -> dict[str, Any] | None:
        for engine in engines:
            status, invocation = http("GET", f"{engine.admin_url}/invocations/{invocation_id}", timeout=20)
            if status == 200:
                return dict(invocation)
        return None

    return wait_until(shown, 60, f"a process to show the invocation of {key} ({invocation_id})", interval=0.2)
