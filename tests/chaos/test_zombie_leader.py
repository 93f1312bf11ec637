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
from tests.chaos.test_early_start_kill import early_starts
from engine.ingress.durable import ACCEPTED_HEADER
from tests.engine.test_invocations import call
from tests.fixtures.systems import http

EFFECTS_APP = "tests.fixtures.zombie_effects:app"
PARTITIONS = 4
INVOCATIONS = 240
CLIENTS = 12


@pytest.mark.parametrize("transport", sorted(INVOKER_TRANSPORTS))
@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotency-keys", "fresh-ids-early-start"])
def test_a_frozen_and_thawed_leader_changes_no_outcome(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, idempotent: bool,
    transport: str,
) -> None:
    """With idempotency keys a client may retry; with fresh ids every call to a process
    leading the call's partition starts its first attempt before its Invoke is read back
    (``leader.start_early``), the path a frozen leader's late writes must not corrupt."""
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
        ids: dict[str, str] = {}  # key -> invocation id, from the answer (fresh ids)
        unknown: set[str] = set()  # fresh ids answered "accepted: unknown" (503)
        lock = threading.Lock()

        def one(i: int) -> None:
            via = zombie if i % 2 else survivor
            key = f"k{i}"
            deadline = time.monotonic() + 240
            status, body = 0, None
            while time.monotonic() < deadline:
                try:
                    status, body, headers = call(f"{via.ingress_url}/Effects/apply",
                                                 {"url": counter.url, "key": key}, timeout=120,
                                                 headers={"idempotency-key": key} if idempotent else {})
                except OSError as exc:
                    status, body, headers = 0, str(exc), {}
                if status == 200 and not idempotent:
                    with lock:
                        ids[key] = headers.get("x-restate-id", "")
                if status == 503 and not idempotent and headers.get(ACCEPTED_HEADER) == "unknown":
                    # The frozen process woke past its ingress bound: it says it does not
                    # know whether the call was accepted (no result is claimed). Checked
                    # against the log below.
                    with lock:
                        ids[key] = headers.get("x-restate-id", "")
                        unknown.add(key)
                # Only a request with an idempotency key may be sent again: a fresh id
                # would be a second invocation (and a second side effect) - unless the
                # engine said the call was not accepted (503, accepted: false: nothing of
                # it runs). A thawed process may say so for a while, having seen its own
                # appends unacknowledged for the whole freeze. The counter below checks
                # that such a call indeed ran nowhere.
                refused = status == 503 and headers.get(ACCEPTED_HEADER) == "false"
                if status == 200 or (not idempotent and not refused):
                    break
                if refused:
                    time.sleep(0.2)
            with lock:
                answers[key] = (status, body, "zombie" if via is zombie else "survivor")

        # Clients of each process apart: those of the frozen one hang until it wakes.
        with ThreadPoolExecutor(CLIENTS // 2) as via_survivor, ThreadPoolExecutor(CLIENTS // 2) as via_zombie:
            futures = [(via_zombie if i % 2 else via_survivor).submit(one, i) for i in range(INVOCATIONS)]
            wait_until(lambda: counter.applied >= INVOCATIONS // 4, 120, "a quarter of the side effects", interval=0.01)
            assert zombie.proc is not None
            zombie.proc.send_signal(signal.SIGSTOP)
            frozen_at = counter.applied
            survivor_started_early = early_starts(survivor)
            try:
                wait_until(lambda: survivor.led_partitions() == set(range(PARTITIONS)), 120,
                           "the survivor to lead every partition", interval=0.5)
                # Work keeps flowing through the survivor while the zombie is frozen: a
                # new call is answered (on the fast path, the clients' own calls may all
                # be done by now, so their progress proves nothing).
                probe = "after-the-freeze"
                status, body, _ = call(f"{survivor.ingress_url}/Effects/apply", {"url": counter.url, "key": probe},
                                       timeout=120, headers={"idempotency-key": probe} if idempotent else {})
                assert (status, body) == (200, 1), "no progress without the zombie"
            finally:
                zombie.proc.send_signal(signal.SIGCONT)
            for future in futures:
                future.result(timeout=300)

        assert len(answers) == INVOCATIONS
        failed = {k: a for k, a in answers.items() if a[0] != 200 and k not in unknown}
        assert not failed, f"requests without a result: {failed}"
        assert len(unknown) < INVOCATIONS // 4, f"most calls had an unknown outcome: {sorted(unknown)}"

        assert frozen_at < INVOCATIONS, "every invocation was done before the freeze; the test proves nothing"
        mismatched = []
        if not idempotent:
            assert early_starts(zombie) + survivor_started_early > 0, "no call took the early-start path"
        for key in unknown:
            # No result was claimed; whatever the log holds, the side effect ran once per
            # journaled run: a completed invocation's value is the counter's, and one
            # that never landed left the counter untouched or ran only unjournaled.
            invocation = _lookup(ids[key], zombie, survivor, required=False)
            shown = invocation.get("completion_value", {}).get("utf8")
            if shown is not None and int(shown) != counter.hits[key]:
                mismatched.append((key, "unknown", None, "counter", counter.hits[key], shown))
        for key, (_, body, via) in answers.items():
            if key in unknown:
                continue
            invocation = _lookup(_invocation_id(key) if idempotent else ids[key], zombie, survivor)
            shown = invocation.get("completion_value", {}).get("utf8")
            if shown is None or int(shown) != body:
                mismatched.append((key, via, body, invocation.get("status"), shown))
            if counter.hits[key] != body:
                mismatched.append((key, via, body, "counter", counter.hits[key]))
        assert not mismatched, f"answers that differ from the log's outcome: {mismatched}"
    assert zombie.terminate() == 0
    assert survivor.terminate() == 0


def _invocation_id(key: str) -> str:
    """The invocation of ``key``'s idempotent request."""
    return str(invocation_id_for("Effects", None, InvocationUuid.for_idempotent_request("Effects", None, "apply", key)))


def _lookup(invocation_id: str, *engines: EngineProcess, required: bool = True) -> dict[str, Any]:
    """The invocation, from whichever process has it. Lookups are served by the process
    leading the invocation's partition, and right after the thaw the two processes may
    still be handing partitions back and forth: ask again until one answers. With
    ``required=False`` a 404 from a process that leads the partition is an answer too
    (``{}``: the invocation never landed in the log)."""
    found: dict[str, Any] = {}

    def shown() -> bool:
        for engine in engines:
            status, invocation = http("GET", f"{engine.admin_url}/invocations/{invocation_id}", timeout=20)
            if status == 200:
                found.update(invocation)
                return True
            if status == 404 and not required:
                return True
        return False

    wait_until(shown, 60, f"a process to show the invocation {invocation_id}", interval=0.5)
    return found
