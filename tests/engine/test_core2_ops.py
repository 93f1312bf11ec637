"""Invocation operations on our engine and on the real restate-server: cancel and kill
propagation to called children, retention of idempotent requests and workflows,
non-determinism with pause/kill on max attempts and resume, deployment revisions.

Every test runs once per system with the same official-SDK endpoint
(``tests/fixtures/official_sdk_ops.py``) and expects restate-server's answers; where
logstrate deliberately differs (deleting a deployment without ``force``) the test says
so. restate-server purges expired invocations with a periodic cleaner (hourly by
default), so this module runs its own restate-server with a 1 s cleanup interval.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.engine.test_core2 import get, post
from tests.engine.test_semantics import new_key
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import SYSTEMS, System, http, module_engine

OPS_APP = "tests.fixtures.official_sdk_ops:app"
VERSIONED_V1 = "tests.fixtures.official_sdk_ops:versioned_v1"
VERSIONED_V2 = "tests.fixtures.official_sdk_ops:versioned_v2"
LONG_MS = 60_000


@pytest.fixture(scope="module")
def ops_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(OPS_APP)


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    yield from module_engine(kafka, tmp_path_factory, "ops")


@pytest.fixture(scope="module")
def ops_restate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestateServer]:
    """restate-server whose cleaner purges expired invocations every second."""
    server = RestateServer(tmp_path_factory.mktemp("restate-ops"), env={"RESTATE_WORKER__CLEANUP_INTERVAL": "1s"})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request: pytest.FixtureRequest, ops_endpoint: ServiceEndpoint) -> System:
    server = request.getfixturevalue("our_engine" if request.param == "logstrate" else "ops_restate_server")
    system = System(request.param, server.admin_url, server.ingress_url)
    system.register(ops_endpoint.url)
    return system


def send(system: System, path: str, body: Any = None, headers: dict[str, str] | None = None) -> str:
    status, sent, _ = post(system, f"{path}/send", body, headers=headers)
    assert status == 202, sent
    invocation_id: str = sent["invocationId"]
    return invocation_id


def attach(system: System, invocation_id: str) -> tuple[int, Any]:
    """Wait for the invocation's result. Our ``/send`` answers once the invocation is
    durable, maybe before this process applied it (then attach says 404 for a moment)."""

    def attached() -> tuple[int, Any] | None:
        status, body, _ = get(system, f"/restate/invocation/{invocation_id}/attach")
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k in ("code", "message")}
        return None if status == 404 else (status, body)

    return wait_until(attached, 30, f"{system.name}: {invocation_id} known")


def admin(system: System, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return http(method, f"{system.admin_url}{path}", body)


def invocation_row(system: System, invocation_id: str) -> dict[str, Any] | None:
    """The invocation's status, last failure and retention, the same on both systems:
    ``GET /invocations/{id}`` on ours, SQL on ``sys_invocation`` on restate-server."""
    if system.name == "logstrate":
        status, body = admin(system, "GET", f"/invocations/{invocation_id}?journal=false")
        if status == 404:
            return None
        assert status == 200, body
        failure = body["last_failure"] or {}
        return {
            "status": body["status"],
            "failure_code": failure.get("code"),
            "failure_message": failure.get("message"),
            "completion_retention": body.get("completion_retention"),
        }
    sql = (
        "SELECT status, last_failure, completion_retention FROM sys_invocation "
        f"WHERE id = '{invocation_id}'"
    )
    status, body = http("POST", f"{system.admin_url}/query", {"query": sql}, headers={"accept": "application/json"})
    assert status == 200, body
    if not body["rows"]:
        return None
    row = body["rows"][0]
    # restate renders a failure as "[570 Journal mismatch] message".
    match = re.match(r"\[(\d+)[^\]]*\] (.*)", row.get("last_failure") or "", re.S)
    return {
        "status": row["status"],
        "failure_code": int(match.group(1)) if match else None,
        "failure_message": match.group(2) if match else None,
        "completion_retention": row.get("completion_retention"),
    }


def wait_row(system: System, invocation_id: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        row = invocation_row(system, invocation_id)
        return row if row is not None and row["status"] == status else None

    return wait_until(reached, 60, f"{system.name}: {invocation_id} {status}")


# --- cancel and kill --------------------------------------------------------------------------


def _booking(system: System) -> tuple[str, str]:
    """A trip blocked in its call to the hotel: (key, trip invocation id)."""
    key = new_key("trip")
    trip = send(system, f"/Trip/{key}/book", LONG_MS)
    wait_until(lambda: system.ok(f"/Hotel/{key}/status") == "reserving", 60, f"{system.name}: hotel reserving")
    return key, trip


def test_cancel_reaches_the_called_child_and_the_parent_compensates(system: System) -> None:
    key, trip = _booking(system)
    assert admin(system, "PATCH", f"/invocations/{trip}/cancel") == (202, None)
    assert attach(system, trip) == (409, {"code": 409, "message": "cancelled"})
    # The child saw the cancellation (and failed with it), the parent compensated once.
    # Cancellation reaches parent and child alike: the parent's answer may come first.
    wait_until(lambda: system.ok(f"/Hotel/{key}/status") == "cancelled: 409 cancelled", 30,
               f"{system.name}: the child to record its cancellation")
    assert system.ok(f"/Trip/{key}/status") == "compensated after 409 cancelled"
    assert system.ok("/OpsProbe/compensations", key) == 1
    # Both keys are free again.
    assert system.ok(f"/Hotel/{key}/ping") == "hotel free"
    assert system.ok(f"/Trip/{key}/ping") == "trip free"


def test_kill_reaches_the_called_child_and_the_queued_calls_run(system: System) -> None:
    key, trip = _booking(system)
    trip_ping = send(system, f"/Trip/{key}/ping")
    hotel_ping = send(system, f"/Hotel/{key}/ping")
    assert admin(system, "PATCH", f"/invocations/{trip}/kill") == (200, None)
    assert attach(system, trip) == (409, {"code": 409, "message": "killed"})
    assert attach(system, trip_ping) == (200, "trip free")
    assert attach(system, hotel_ping) == (200, "hotel free")
    # Killed handlers run no more code: no compensation, the child never saw anything.
    assert system.ok("/OpsProbe/compensations", key) == 0
    assert system.ok(f"/Hotel/{key}/status") == "reserving"


# --- retention --------------------------------------------------------------------------------


def test_idempotent_requests_run_once_within_retention_and_again_after(system: System) -> None:
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    headers = {"idempotency-key": f"idem-{tag}"}

    def once(_: int) -> tuple[int, Any, str | None]:
        status, body, answer_headers = post(system, "/Retained/once", tag, headers=headers)
        return status, body, answer_headers.get("x-restate-id")

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = set(pool.map(once, range(20)))
    assert len(answers) == 1, answers
    [(status, body, invocation)] = answers
    assert (status, body) == (200, f"{tag} ran 1")
    assert system.ok("/OpsProbe/executed", tag) == 1
    assert invocation is not None
    row = invocation_row(system, invocation)
    assert row is not None and (row["status"], row["completion_retention"]) == ("completed", "PT2S")

    # Once the 2 s retention has passed, the key is forgotten and runs again.
    def ran_again() -> str | None:
        status, body, _ = post(system, "/Retained/once", tag, headers=headers)
        assert status == 200, body
        return body if body != f"{tag} ran 1" else None

    assert wait_until(ran_again, 30, f"{system.name}: the key to run again") == f"{tag} ran 2"


def test_workflow_runs_again_after_its_completion_retention(system: System) -> None:
    tag = new_key("flow")
    assert system.ok(f"/RetainedFlow/{tag}/run", tag) == f"flow {tag} ran 1"
    status, body, _ = post(system, f"/RetainedFlow/{tag}/run", tag)
    assert (status, body["message"]) == (409, "the workflow method was already invoked")

    def ran_again() -> str | None:
        status, body, _ = post(system, f"/RetainedFlow/{tag}/run", tag)
        return body if status == 200 else None

    assert wait_until(ran_again, 30, f"{system.name}: the workflow to run again") == f"flow {tag} ran 2"


def test_service_retention_is_changed_through_the_admin_api(system: System) -> None:
    status, service = admin(system, "PATCH", "/services/Tunable", {"idempotency_retention": "1h"})
    assert (status, service["idempotency_retention"]) == (200, "1h"), service
    assert admin(system, "GET", "/services/Tunable")[1]["idempotency_retention"] == "1h"
    status, _, headers = post(system, "/Tunable/echo", "x", headers={"idempotency-key": new_key("tune")})
    assert status == 200
    row = invocation_row(system, headers["x-restate-id"])
    assert row is not None and row["completion_retention"] == "PT3600S", row


# --- non-determinism, pause, kill, resume ------------------------------------------------------


def test_journal_mismatch_pauses_after_max_attempts_and_resume_completes_after_the_fix(system: System) -> None:
    tag = new_key("drift")
    invocation = send(system, "/Drift/step", tag)
    row = wait_row(system, invocation, "paused")
    if system.name == "logstrate":
        # The reason stays visible while paused (restate-server's sys_invocation shows
        # the last failure only while the invocation is backing off).
        assert row["failure_code"] == 570, row
        assert "mismatch" in row["failure_message"] and "first != second" in row["failure_message"], row
    assert system.ok("/OpsProbe/fix", tag) == "fixed"
    assert admin(system, "PATCH", f"/invocations/{invocation}/resume") == (200, None)
    # One first execution, three mismatching attempts, then the fixed one.
    assert attach(system, invocation) == (200, f"{tag} done after 5 executions")
    status, body = admin(system, "PATCH", f"/invocations/{invocation}/resume")
    assert status == 409 and body["message"] == f"The invocation '{invocation}' is completed, cannot be resumed."
    status, body = admin(system, "PATCH", f"/invocations/{invocation}/pause")
    assert status == 409 and body["message"] == f"The invocation '{invocation}' is not running, cannot be paused."
    status, body = admin(system, "PATCH", "/invocations/inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz/resume")
    assert status == 404, body


def test_pause_and_resume_a_retrying_invocation(system: System) -> None:
    tag = new_key("stubborn")
    invocation = send(system, "/OpsProbe/stubborn", tag)
    wait_until(lambda: (invocation_row(system, invocation) or {}).get("status") in ("invoked", "backing-off"), 60,
               f"{system.name}: {invocation} retrying")
    assert admin(system, "PATCH", f"/invocations/{invocation}/pause") == (202, None)
    wait_row(system, invocation, "paused")
    assert admin(system, "PATCH", f"/invocations/{invocation}/pause") == (200, None)  # paused already
    assert system.ok("/OpsProbe/fix", tag) == "fixed"
    assert admin(system, "PATCH", f"/invocations/{invocation}/resume") == (200, None)
    assert attach(system, invocation) == (200, f"{tag} unstuck")


def test_journal_mismatch_kills_after_max_attempts_when_configured(system: System) -> None:
    invocation = send(system, "/DriftKill/step", new_key("drift-kill"))
    status, body = attach(system, invocation)
    assert (status, body["code"]) == (570, 570), body
    assert body["message"].startswith("Found a mismatch between the code paths taken during the previous execution")
    assert "first != second" in body["message"]


# --- deployment revisions ---------------------------------------------------------------------


def test_suspended_invocation_resumes_on_its_revision_and_new_ones_use_the_latest(
    system: System, service_endpoints: ServiceEndpoints
) -> None:
    v1, v2 = service_endpoints.start_all([(VERSIONED_V1, system.name), (VERSIONED_V2, system.name)])
    system.register(v1.url)
    first_deployment = admin(system, "GET", "/services/Versioned")[1]["deployment_id"]
    key = new_key("ver")
    waiting = send(system, f"/Versioned/{key}/wait")
    awakeable = wait_until(lambda: system.ok(f"/Versioned/{key}/awakeable") or None, 60, "awakeable id")
    assert system.ok(f"/Versioned/{new_key('ver')}/hello") == "v1"

    system.register(v2.url)
    service = admin(system, "GET", "/services/Versioned")[1]
    assert service["revision"] == 2 and service["deployment_id"] != first_deployment
    assert system.ok(f"/Versioned/{new_key('ver')}/hello") == "v2"

    # Deleting revision 1 while an invocation is pinned to it: logstrate refuses without
    # force (restate-server supports forced deletion only and answers 501 to any other).
    status, body = admin(system, "DELETE", f"/deployments/{first_deployment}")
    if system.name == "logstrate":
        assert status == 409 and waiting in body["message"] and "force=true" in body["message"], body
    else:
        assert status == 501, body

    assert post(system, f"/restate/awakeables/{awakeable}/resolve", "go")[0] == 202
    assert attach(system, waiting) == (200, "v1: go")

    status, body = admin(system, "DELETE", f"/deployments/{first_deployment}")
    assert status == (202 if system.name == "logstrate" else 501), body
    if status != 202:
        assert admin(system, "DELETE", f"/deployments/{first_deployment}?force=true")[0] == 202
    assert admin(system, "GET", f"/deployments/{first_deployment}")[0] == 404
