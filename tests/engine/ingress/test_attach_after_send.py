"""Attach and output right after ``/send``, and a completed invocation whose output was not kept.

``/send`` answers once the ``Invoke`` record is durable in Kafka, which may be before this
process applied it: an ``attach``/``output`` a moment later must still find the invocation
(never a 404). The second half drives the ingress app alone, with a status table we set.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

from aiohttp.test_utils import TestClient, TestServer

from engine.ids import InvocationId, InvocationUuid
from engine.ingress.app import create_ingress_app
from engine.ingress.deps import IngressDeps
from engine.ingress.pending import PendingResponses
from engine.ingress.routing import HandlerNotFound, ServiceNotFound
from engine.storage.invocation_status import InvocationStatus, StatusKind
from engine.wal.appender import WalAppender
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import HandlerKind, InvocationTarget, Record, ServiceKind
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http

GREETER_APP = "tests.fixtures.official_sdk_greeter:app"
ROUNDS = 30


def test_attach_and_output_right_after_send_never_404(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints
) -> None:
    engine = engine_factory(partitions=4)
    engine.start_and_wait()
    status, body = http("POST", f"{engine.admin_url}/deployments", {"uri": service_endpoints.get(GREETER_APP).url})
    assert status in (200, 201), body
    ingress = engine.ingress_url
    wait_until(lambda: http("POST", f"{ingress}/Greeter/greet", "warm-up")[0] == 200, 30, "the service to answer")

    for i in range(ROUNDS):
        # By invocation id: output first (200 if it already ran, 470 if not), then attach.
        status, sent = http("POST", f"{ingress}/Greeter/greet/send", f"id-{i}")
        assert status == 202, sent
        path = f"{ingress}/restate/invocation/{sent['invocationId']}"
        status, body = http("GET", f"{path}/output")
        assert (status, body) in ((200, f"Hello id-{i}"), (470, body)), (i, status, body)
        assert http("GET", f"{path}/attach", timeout=20) == (200, f"Hello id-{i}"), i

        # By idempotency key: attach first, then output (completed by then).
        key = f"key-{time.monotonic_ns()}-{i}"
        status, sent = http("POST", f"{ingress}/Greeter/greet/send", f"idem-{i}", headers={"idempotency-key": key})
        assert status == 202, sent
        path = f"{ingress}/restate/invocation/Greeter/greet/{key}"
        assert http("GET", f"{path}/attach", timeout=20) == (200, f"Hello idem-{i}"), i
        assert http("GET", f"{path}/output") == (200, f"Hello idem-{i}"), i


# --- a completed invocation without its output --------------------------------------------------


class _Appender:
    """Records appends; only what the attach/output routes use."""

    partition_count = 1

    def __init__(self) -> None:
        self.appended: list[Record] = []

    def partition_of(self, invocation_id: InvocationId) -> int:
        return 0

    async def append(self, partition: int, record: Record, *_: Any) -> int:
        self.appended.append(record)
        return len(self.appended) - 1


def _unknown(service: str, handler: str) -> Any:
    raise ServiceNotFound(service)


def _completed_without_output(idempotency_key: str | None) -> InvocationStatus:
    return InvocationStatus(
        kind=StatusKind.COMPLETED,
        target=InvocationTarget("Greeter", "greet", None, ServiceKind.SERVICE, HandlerKind.SHARED),
        argument=b'"x"',
        idempotency_key=idempotency_key,
        result=None,
    )


def test_attach_to_a_completed_invocation_whose_output_was_not_kept_answers_at_once() -> None:
    plain = invocation_id_for("Greeter", None, InvocationUuid.generate())
    idem_uuid = InvocationUuid.for_idempotent_request("Greeter", None, "greet", "k1")
    idempotent = invocation_id_for("Greeter", None, idem_uuid)
    statuses = {plain: _completed_without_output(None), idempotent: _completed_without_output("k1")}
    appender = _Appender()

    deps = IngressDeps(
        node_name="test",
        appender=cast(WalAppender, appender),
        pending=PendingResponses(),
        resolve=_unknown,
        service_kind=lambda service: None,
        service_names=list,
        read_status=statuses.get,
    )

    async def scenario() -> list[tuple[str, int, dict[str, Any]]]:
        answers = []
        async with TestClient(TestServer(create_ingress_app(deps))) as client:
            for path in (
                f"/restate/invocation/{plain}/attach",
                f"/restate/invocation/{plain}/output",
                "/restate/invocation/Greeter/greet/k1/attach",
                "/restate/invocation/Greeter/greet/k1/output",
            ):
                resp = await asyncio.wait_for(client.get(path), 5)
                answers.append((path, resp.status, await resp.json()))
        return answers

    for path, status, body in asyncio.run(scenario()):
        assert status == 404, (path, status, body)
        assert "not retained" in body["message"], (path, body)
        assert "idempotency key" in body["message"] and "workflow" in body["message"], body
    assert appender.appended == [], "nothing to wait for: no AttachInvocation appended"
