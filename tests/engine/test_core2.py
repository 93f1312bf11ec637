"""Durable core II on our engine and on the real restate-server: workflows and their
promises, awakeables, idempotency keys, attach and output.

Like ``test_semantics.py``, every test runs once per system with the same official-SDK
endpoint (``tests/fixtures/official_sdk_core2.py``) and expects restate-server's answers.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.engine.test_semantics import new_key
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import SYSTEMS, System, module_engine, system_under_test

CORE2_APP = "tests.fixtures.official_sdk_core2:app"


@pytest.fixture(scope="module")
def core2_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(CORE2_APP)


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    yield from module_engine(kafka, tmp_path_factory, "core2")


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request: pytest.FixtureRequest, core2_endpoint: ServiceEndpoint) -> System:
    return system_under_test(request, core2_endpoint.url)


def get(system: System, path: str) -> tuple[int, Any, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"{system.ingress_url}{path}", timeout=30) as resp:
            payload, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        payload, status, headers = err.read(), err.code, dict(err.headers)
    try:
        return status, json.loads(payload), headers
    except ValueError:
        return status, payload.decode(), headers


def post(system: System, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    all_headers = {"content-type": "application/json"} if data is not None else {}
    all_headers.update(headers or {})
    request = urllib.request.Request(f"{system.ingress_url}{path}", data=data, method="POST", headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            payload, status, resp_headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        payload, status, resp_headers = err.read(), err.code, dict(err.headers)
    try:
        return status, json.loads(payload) if payload else None, resp_headers
    except ValueError:
        return status, payload.decode(), resp_headers


# --- workflows ------------------------------------------------------------------------------


def test_payment_workflow_waits_for_approval_and_runs_once(system: System) -> None:
    wf = new_key("pay")
    status, first, _ = post(system, f"/Payment/{wf}/run/send", 10)
    assert (status, first["status"]) == (202, "Accepted"), first
    status, again, _ = post(system, f"/Payment/{wf}/run/send", 10)
    assert (status, again) == (202, {"invocationId": first["invocationId"], "status": "PreviouslyAccepted"})

    status, body, _ = get(system, f"/restate/workflow/Payment/{wf}/output")
    assert (status, body["code"]) == (470, 470), body
    assert body["message"] == "the invocation exists but has not completed yet"
    assert system.ok(f"/Payment/{wf}/peek") == "pending"
    # A second run while the first waits is refused at once.
    status, body, headers = post(system, f"/Payment/{wf}/run", 11)
    assert (status, body["message"]) == (409, "the workflow method was already invoked"), body
    assert headers.get("x-restate-id") == first["invocationId"]

    assert system.ok(f"/Payment/{wf}/approve", "alice") == "approved"
    expected = {"amount": 10, "approved": True, "by": "alice"}
    status, body, headers = get(system, f"/restate/workflow/Payment/{wf}/attach")
    assert (status, body) == (200, expected)
    assert headers.get("x-restate-id") == first["invocationId"]
    assert get(system, f"/restate/workflow/Payment/{wf}/output")[:2] == (200, expected)

    status, body, _ = post(system, f"/Payment/{wf}/approve", "bob")
    assert (status, body["code"], body["message"]) == (409, 409, "promise was already completed")
    assert system.ok(f"/Payment/{wf}/peek") == "decided: alice"
    assert system.ok(f"/Payment/{wf}/status") == "approved"
    status, body, _ = post(system, f"/Payment/{wf}/run", 10)
    assert (status, body["message"]) == (409, "the workflow method was already invoked")


def test_rejected_promise_fails_the_waiting_run(system: System) -> None:
    wf = new_key("decline")
    assert post(system, f"/Payment/{wf}/run/send", 5)[0] == 202
    assert system.ok(f"/Payment/{wf}/decline", "too much") == "declined"
    status, body, _ = get(system, f"/restate/workflow/Payment/{wf}/attach")
    assert (status, body) == (200, {"amount": 5, "approved": False, "reason": "too much"})


def test_unknown_workflow_and_invocation_are_404(system: System) -> None:
    status, body, _ = get(system, f"/restate/workflow/Payment/{new_key('none')}/output")
    assert (status, body["message"]) == (404, "invocation not found")
    status, body, _ = get(system, "/restate/invocation/inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz/output")
    assert (status, body["message"]) == (404, "invocation not found")
    status, body, _ = get(system, "/restate/invocation/inv_1abc/output")
    assert status == 400 and body["message"].startswith("bad invocation id 'inv_1abc'"), body


# --- awakeables -----------------------------------------------------------------------------


def _waiting_mailbox(system: System) -> tuple[str, str]:
    """Start Mailbox/{key}/wait; return (its invocation id, its awakeable id)."""
    key = new_key("mbox")
    status, sent, _ = post(system, f"/Mailbox/{key}/wait/send")
    assert status == 202, sent
    awakeable = wait_until(lambda: system.ok(f"/Mailbox/{key}/awakeable_id") or None, 30,
                           f"{system.name}: the awakeable id published")
    return sent["invocationId"], awakeable


def test_awakeable_resolved_through_the_ingress(system: System) -> None:
    invocation, awakeable = _waiting_mailbox(system)
    assert post(system, f"/restate/awakeables/{awakeable}/resolve", "hello")[:2] == (202, None)
    assert post(system, f"/restate/awakeables/{awakeable}/resolve", "again")[0] == 202  # ignored
    assert get(system, f"/restate/invocation/{invocation}/attach")[:2] == (200, "got hello")


def test_awakeable_resolved_and_rejected_from_handlers(system: System) -> None:
    invocation, awakeable = _waiting_mailbox(system)
    assert system.ok(f"/Mailbox/{new_key('other')}/deliver", {"id": awakeable, "value": "from a handler"}) == "delivered"
    assert get(system, f"/restate/invocation/{invocation}/attach")[:2] == (200, "got from a handler")

    invocation, awakeable = _waiting_mailbox(system)
    assert system.ok(f"/Mailbox/{new_key('other')}/refuse", {"id": awakeable, "reason": "not today"}) == "refused"
    assert get(system, f"/restate/invocation/{invocation}/attach")[:2] == (200, "rejected: not today")


def test_awakeable_rejected_through_the_ingress(system: System) -> None:
    invocation, awakeable = _waiting_mailbox(system)
    status, _, _ = post(system, f"/restate/awakeables/{awakeable}/reject", raw=b"no way",
                        headers={"content-type": "text/plain"})
    assert status == 202
    assert get(system, f"/restate/invocation/{invocation}/attach")[:2] == (200, "rejected: no way")


def test_bad_awakeable_id_is_400(system: System) -> None:
    status, body, _ = post(system, "/restate/awakeables/sign_1xyz/resolve", "x")
    assert status == 400 and body["message"].startswith("bad awakeable id 'sign_1xyz'"), body


# --- idempotency ----------------------------------------------------------------------------


def test_twenty_concurrent_requests_with_one_idempotency_key_execute_once(system: System) -> None:
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    key = f"idem-{tag}"

    def once(_: int) -> tuple[int, Any, str | None]:
        status, body, headers = post(system, "/Slow/once", tag, headers={"idempotency-key": key})
        return status, body, headers.get("x-restate-id")

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = set(pool.map(once, range(20)))
    assert len(answers) == 1, answers
    [(status, body, invocation)] = answers
    assert (status, body) == (200, f"{tag} ran 1")
    assert system.ok("/Slow/executed", tag) == 1

    status, sent, _ = post(system, "/Slow/once/send", tag, headers={"idempotency-key": key})
    assert (status, sent) == (202, {"invocationId": invocation, "status": "PreviouslyAccepted"})
    assert get(system, f"/restate/invocation/Slow/once/{key}/output")[:2] == (200, f"{tag} ran 1")
    assert get(system, f"/restate/invocation/{invocation}/output")[:2] == (200, f"{tag} ran 1")
    # A different key is a different invocation.
    assert post(system, "/Slow/once", tag, headers={"idempotency-key": key + "-2"})[1] == f"{tag} ran 2"
