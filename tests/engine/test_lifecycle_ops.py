"""Restate 1.6/1.7 invocation lifecycle operations on our engine and on the real
restate-server: the server's default retry policy (``on-max-attempts`` kill or pause),
resume on another deployment, the failing command of the last attempt, restart-as-new.

Every test runs once per system with the same official-SDK endpoint
(``tests/fixtures/official_sdk_lifecycle.py``) and expects restate-server's answers.
Both systems run with the same default retry policy (2 attempts, 100 ms apart, then
kill), set in their configuration: ``[default_retry_policy]`` (``LOGSTRATE_*`` env) on
ours, ``[default-retry-policy]`` (``RESTATE_*`` env) on restate-server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from typing import Any

from engine.ids import DeploymentId
from tests.engine.test_core2 import post
from tests.engine.test_core2_ops import VERSIONED_V1, VERSIONED_V2, admin, attach, send, wait_row
from tests.engine.test_semantics import new_key
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import SYSTEMS, System, http

LIFECYCLE_APP = "tests.fixtures.official_sdk_lifecycle:app"

# The same default retry policy on both systems, in each one's configuration.
RETRY_SETTINGS = {"MAX_ATTEMPTS": "2", "INITIAL_INTERVAL": "100ms", "ON_MAX_ATTEMPTS": "kill"}


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = EngineProcess(
        bootstrap_servers=kafka.bootstrap_servers,
        topic_prefix=f"t-lifecycle-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path_factory.mktemp("lifecycle") / "engine",
        env={f"LOGSTRATE_DEFAULT_RETRY_POLICY_{k}": v for k, v in RETRY_SETTINGS.items()},
    )
    engine.start_and_wait()
    yield engine
    engine.kill()


@pytest.fixture(scope="module")
def lifecycle_restate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestateServer]:
    server = RestateServer(
        tmp_path_factory.mktemp("restate-lifecycle"),
        env={f"RESTATE_DEFAULT_RETRY_POLICY__{k}": v for k, v in RETRY_SETTINGS.items()},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request: pytest.FixtureRequest, service_endpoints: ServiceEndpoints) -> System:
    server = request.getfixturevalue("our_engine" if request.param == "logstrate" else "lifecycle_restate_server")
    system = System(request.param, server.admin_url, server.ingress_url)
    system.register(service_endpoints.get(LIFECYCLE_APP, f"lifecycle-{request.param}").url)
    return system


def row(system: System, invocation_id: str, *columns: str) -> dict[str, Any]:
    """Columns of the invocation's ``sys_invocation`` row: ``GET /invocations/{id}`` on
    ours (same names), SQL on restate-server; a column that is not set is left out."""
    if system.name == "logstrate":
        status, body = admin(system, "GET", f"/invocations/{invocation_id}?journal=false")
        assert status == 200, body
    else:
        sql = f"SELECT {', '.join(columns)} FROM sys_invocation WHERE id = '{invocation_id}'"
        status, answer = http("POST", f"{system.admin_url}/query", {"query": sql}, headers={"accept": "application/json"})
        assert status == 200 and answer["rows"], answer
        body = answer["rows"][0]
    return {c: body[c] for c in columns if body.get(c) is not None}


# --- the default retry policy ---------------------------------------------------------------------


def test_the_configured_default_retry_policy_kills_after_its_attempts(system: System) -> None:
    # Shown under every service that sets no policy of its own, as configured.
    status, service = admin(system, "GET", "/services/Lifecycle")
    assert status == 200 and service["retry_policy"] == {
        "initial_interval": "100ms", "exponentiation_factor": 2.0, "max_attempts": 2, "max_interval": "1m",
        "on_max_attempts": "Kill",
    }, service
    tag = new_key("stubborn")
    invocation = send(system, "/Lifecycle/stubborn", tag)
    assert attach(system, invocation) == (500, {"code": 500, "message": f"ValueError('{tag} is not fixed yet')"})


def test_a_service_policy_that_pauses_wins_over_the_default_kill(system: System) -> None:
    status, service = admin(system, "GET", "/services/Wobbly")
    assert status == 200 and service["retry_policy"]["on_max_attempts"] == "Pause", service
    tag = new_key("wobbly")
    invocation = send(system, "/Wobbly/step", tag)
    wait_row(system, invocation, "paused")
    if system.name == "logstrate":
        # The failure stays visible while paused, with its command (restate-server's
        # sys_invocation shows them only while the invocation is backing off).
        assert row(system, invocation, *RELATED) == {
            "last_failure_related_command_index": 2, "last_failure_related_command_name": "wobble",
            "last_failure_related_command_type": "Run",
        }
    assert system.ok("/Lifecycle/fix", tag) == "fixed"
    assert admin(system, "PATCH", f"/invocations/{invocation}/resume") == (200, None)
    assert attach(system, invocation) == (200, "steady")


# --- the command the last attempt failed at -------------------------------------------------------

RELATED = (
    "last_failure_related_command_index", "last_failure_related_command_name", "last_failure_related_command_type",
)


def test_the_last_failure_names_the_command_the_attempt_failed_at(system: System) -> None:
    tag = new_key("sluggish")
    invocation = send(system, "/Sluggish/step", tag)  # backs off for an hour after its first failure
    # Commands: the input (0), the warm-up step (1), then the failing step (2).
    assert wait_until(lambda: row(system, invocation, *RELATED) or None, 60, f"{system.name}: a failure") == {
        "last_failure_related_command_index": 2, "last_failure_related_command_name": "wobble",
        "last_failure_related_command_type": "Run",
    }
    assert system.ok("/Lifecycle/fix", tag) == "fixed"
    assert admin(system, "PATCH", f"/invocations/{invocation}/resume") == (200, None)
    assert attach(system, invocation) == (200, "steady")


# --- resume on another deployment ---------------------------------------------------------------


def test_resume_moves_a_suspended_invocation_to_the_latest_deployment(
    system: System, service_endpoints: ServiceEndpoints
) -> None:
    instance = f"lifecycle-{system.name}"
    v1, v2 = service_endpoints.start_all([(VERSIONED_V1, instance), (VERSIONED_V2, instance)])
    system.register(v1.url)
    first = admin(system, "GET", "/services/Versioned")[1]["deployment_id"]
    key = new_key("move")
    waiting = send(system, f"/Versioned/{key}/wait")
    awakeable = wait_until(lambda: system.ok(f"/Versioned/{key}/awakeable") or None, 60, "awakeable id")
    wait_row(system, waiting, "suspended")
    assert row(system, waiting, "pinned_deployment_id") == {"pinned_deployment_id": first}
    system.register(v2.url)
    second = admin(system, "GET", "/services/Versioned")[1]["deployment_id"]
    assert second != first

    status, body = admin(system, "PATCH", f"/invocations/{waiting}/resume?deployment=newest")
    assert status == 400 and body["message"].startswith("The query parameter 'deployment' is invalid. Reason: bad format")
    status, body = admin(system, "PATCH", f"/invocations/{waiting}/resume?deployment={DeploymentId.generate()}")
    assert (status, body["message"]) == (
        400, f"The given deployment was not found when trying to resume the invocation '{waiting}'.",
    )

    # Resumed on revision 2: it replays its journal there and waits again.
    assert admin(system, "PATCH", f"/invocations/{waiting}/resume?deployment=Latest") == (200, None)
    wait_until(lambda: row(system, waiting, "status", "pinned_deployment_id")
               == {"status": "suspended", "pinned_deployment_id": second}, 60, f"{system.name}: moved to {second}")
    assert post(system, f"/restate/awakeables/{awakeable}/resolve", "go")[0] == 202
    assert attach(system, waiting) == (200, "v2: go")
    status, body = admin(system, "PATCH", f"/invocations/{waiting}/resume?deployment=Latest")
    assert (status, body["message"]) == (409, f"The invocation '{waiting}' is completed, cannot be resumed.")


def test_resume_of_a_running_invocation_cannot_change_its_deployment(system: System) -> None:
    tag = new_key("sluggish")
    invocation = send(system, "/Sluggish/step", tag)  # backs off for an hour after its first failure
    wait_until(lambda: row(system, invocation, "retry_count").get("retry_count", 0) >= 1, 60,
               f"{system.name}: {invocation} backing off")
    status, body = admin(system, "PATCH", f"/invocations/{invocation}/resume?deployment=latest")
    assert (status, body["message"]) == (
        409,
        f"The invocation '{invocation}' is still running or the deployment id is not pinned yet, deployment id "
        "cannot be changed.",
    )
    # Keeping the deployment retries now instead of in an hour.
    assert system.ok("/Lifecycle/fix", tag) == "fixed"
    assert admin(system, "PATCH", f"/invocations/{invocation}/resume?deployment=Keep") == (200, None)
    assert attach(system, invocation) == (200, "steady")


# --- restart as new -------------------------------------------------------------------------------


def restart(system: System, invocation_id: str, query: str = "") -> tuple[int, Any]:
    return admin(system, "PATCH", f"/invocations/{invocation_id}/restart-as-new{query}")


def test_restart_as_new_from_a_journal_prefix_does_not_run_those_steps_again(system: System) -> None:
    tag = new_key("steps")
    original = send(system, "/Lifecycle/steps", tag)
    status, failure = attach(system, original)
    assert status == 412 and failure["message"].startswith(f"{tag} is not fixed yet (token "), failure
    token = failure["message"].split("token ")[1].rstrip(")")
    # Journal: 0 input, 1 run one, 2 its result, 3 run two, 4 its result, 5 run check, ...
    assert system.ok("/Lifecycle/fix", tag) == "fixed"

    status, body = restart(system, original, "?from=3")  # two's result (entry 4) comes along
    assert status == 200 and set(body) == {"new_invocation_id"}, body
    from_prefix = body["new_invocation_id"]
    assert from_prefix != original and from_prefix.startswith("inv_")
    # The copied steps replay, only the failed one runs again.
    status, output = attach(system, from_prefix)
    assert status == 200 and output.startswith("one#1 two#1 check#2 (token "), output
    if system.name == "logstrate":
        # The random seed is the original's (the same token), so what the copied steps
        # did with random values replays the same. restate-server 1.7.12 means to keep it
        # too but gives a new one (it keeps only a seed the original stored, which its
        # invocations do not while its unique-random-seeds feature is off).
        assert output.endswith(f"(token {token})"), output
    assert row(system, from_prefix, "invoked_by", "restarted_from") == {
        "invoked_by": "restart_as_new", "restarted_from": original,
    }

    status, body = restart(system, original)  # from 0: the input only
    assert status == 200, body
    status, output = attach(system, body["new_invocation_id"])
    assert status == 200 and output.startswith("one#2 two#2 check#3 (token "), output
    counts = [system.ok("/Lifecycle/count", f"{tag}/{step}") for step in ("one", "two", "check")]
    assert counts == [2, 2, 3]

    assert restart(system, original, "?from=99")[0] == 400  # beyond the journal
    status, body = restart(system, original, "?deployment=newest")
    assert status == 400 and body["message"].startswith("The query parameter 'deployment' is invalid"), body


def test_restart_as_new_refuses_what_restate_refuses(system: System) -> None:
    running = send(system, "/Sluggish/step", new_key("sluggish"))  # backs off for an hour
    status, body = restart(system, running)
    assert (status, body["message"]) == (409, f"The invocation '{running}' is still running."), body
    assert admin(system, "PATCH", f"/invocations/{running}/kill") == (200, None)

    status, sent, _ = post(system, "/Lifecycle/count/send?delay=1h", "later")
    assert status == 202, sent
    scheduled = sent["invocationId"]
    status, body = restart(system, scheduled)
    assert (status, body["message"]) == (
        425, f"The invocation '{scheduled}' cannot be restarted because it's not running yet.",
    ), body

    tag = new_key("flow")
    status, answer, headers = post(system, f"/LifecycleFlow/{tag}/run", tag)
    assert (status, answer) == (200, f"flow {tag}")
    workflow_run = headers["x-restate-id"]
    status, body = restart(system, workflow_run)
    assert status == 422 and body["message"].startswith(f"Restarting the invocation '{workflow_run}' is not supported"), body

    unknown = "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"
    assert restart(system, unknown)[0] == 404
    assert restart(system, "inv_nope")[0] == 400
