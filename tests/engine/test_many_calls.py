"""Several one-way sends and calls to one virtual-object key from one handler attempt.

``Proxy.manyCalls`` (``tests/fixtures/official_sdk_many_calls.py``, the official test
services' proxy) issues every command before awaiting anything, so they all reach the
runtime in one attempt, each send and call followed by the callee's invocation id that
the runtime journals at once. Every sequence runs on our engine and on restate-server
with the same official-SDK endpoint; both must give the answers written here, which are
what restate-server gives: the key's invocations run in the order they were issued, so
the call after two sends sees a tally of 3.

Issue 13: with ``[send, send, call]`` the call never got its answer on our engine, and
``[send, send, send]`` lost the third send.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import SYSTEMS, System, http, module_engine, system_under_test

MANY_CALLS_APP = "tests.fixtures.official_sdk_many_calls:app"

#: Long enough for a loaded box, short enough that a hang fails the test quickly.
ANSWER_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def many_calls_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(MANY_CALLS_APP)


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    yield from module_engine(kafka, tmp_path_factory, "many-calls")


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request: pytest.FixtureRequest, many_calls_endpoint: ServiceEndpoint) -> System:
    return system_under_test(request, many_calls_endpoint.url)


def _request(kind: str, key: str) -> dict[str, object]:
    """One ``ManyCallRequest``: add 1 to ``Tally/{key}`` by ``send`` or awaited ``call``."""
    return {
        "proxyRequest": {
            "serviceName": "Tally",
            "virtualObjectKey": key,
            "handlerName": "add",
            "message": list(json.dumps(1).encode()),
        },
        "oneWayCall": kind == "send",
        "awaitAtTheEnd": kind == "call",
    }


SEQUENCES = [
    # (what manyCalls issues, in order; what the awaited calls answer)
    (["send", "send", "call"], [3]),
    (["send", "send", "send"], []),
    (["send", "call", "call"], [2, 3]),
    (["call", "send", "call"], [1, 3]),
    (["send", "send", "send", "call", "send", "call"], [4, 6]),
]


@pytest.mark.parametrize(
    ("sequence", "answers"),
    [pytest.param(seq, answers, id="-".join(seq)) for seq, answers in SEQUENCES],
)
def test_sends_and_calls_to_one_key_from_one_attempt(
    system: System, sequence: list[str], answers: list[int]
) -> None:
    key = f"tally-{uuid.uuid4().hex[:10]}"
    try:
        status, body = http(
            "POST", f"{system.ingress_url}/Proxy/manyCalls",
            [_request(kind, key) for kind in sequence], timeout=ANSWER_TIMEOUT_S,
        )
    except OSError as exc:  # a read timeout: the invocation hangs
        pytest.fail(f"{system.name}: no answer to manyCalls {sequence} within {ANSWER_TIMEOUT_S}s ({exc})")
    assert (status, body) == (200, answers), f"{system.name}: {sequence}"
    # Every send ran too, none was lost: the tally counts all of them.
    wait_until(lambda: system.ok(f"/Tally/{key}/get") == len(sequence), timeout=30,
               what=f"{system.name}: all {len(sequence)} adds of {sequence} applied")
