"""Invocation and state management through the admin API, on a real engine + Kafka + official-SDK endpoint.

Kill, cancel, purge (``PATCH /invocations/{id}/...`` and ``DELETE ?mode=``), the logstrate
additions ``GET /invocations/{id}`` and ``GET /invocations``, and object state
(``GET /services/{name}/state/{key}``, ``POST /services/{name}/state``).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from engine.ids import InvocationId, InvocationUuid
from engine.wal.partitioning import partition_key_for_key
from tests.engine.admin.admin_client import assert_error, call
from tests.engine.test_invocations import call as ingress_call
from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints

SEMANTICS_APP = "tests.fixtures.official_sdk_semantics:app"
LONG_SLEEP_MS = 60_000


@pytest.fixture
def ready(engine: EngineProcess, service_endpoints: ServiceEndpoints) -> EngineProcess:
    """The engine with the semantics endpoint (Account, Proxy, Flaky) registered for
    request/response attempts: these tests watch invocations suspend while they wait,
    which an open HTTP/2 stream does only after its inactivity timeout."""
    register(engine, service_endpoints.get(SEMANTICS_APP), use_http_11=True)
    return engine


def _send(engine: EngineProcess, path: str, body: Any) -> str:
    status, answer, _ = ingress_call(f"{engine.ingress_url}{path}/send", body)
    assert status == 202, answer
    invocation_id: str = answer["invocationId"]
    return invocation_id


def _invocation(engine: EngineProcess, invocation_id: str) -> dict[str, Any] | None:
    answer = call("GET", f"{engine.admin_url}/invocations/{invocation_id}")
    if answer.status == 404:
        return None
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.json
    return body


def _wait_status(engine: EngineProcess, invocation_id: str, *statuses: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = _invocation(engine, invocation_id)
        return body if body is not None and body["status"] in statuses else None

    return wait_until(reached, 30, f"{invocation_id} to be {' or '.join(statuses)}")


def _listing(engine: EngineProcess, query: str) -> dict[str, Any]:
    answer = call("GET", f"{engine.admin_url}/invocations?{query}")
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.json
    return body


def test_kill_a_stuck_object_handler_then_purge_it(ready: EngineProcess) -> None:
    admin, key = ready.admin_url, f"kill-{uuid.uuid4().hex[:8]}"
    hold = _send(ready, f"/Account/{key}/hold", LONG_SLEEP_MS)
    held = _wait_status(ready, hold, "suspended")
    assert held["target"] == f"Account/{key}/hold" and held["invoked_by"] == "ingress"
    assert held["waiting_for"] and held["pinned_deployment_id"].startswith("dp_1")
    journal = held["journal"]
    assert [e["type"] for e in journal[:2]] == ["InputCommand", "SleepCommand"]
    assert journal[0]["entry"]["value"]["content"] == {"utf8": str(LONG_SLEEP_MS)}
    assert journal[1]["entry"]["result_completion_id"] == 1
    add = _send(ready, f"/Account/{key}/add", 5)
    assert _wait_status(ready, add, "inboxed")["inbox_sequence"] is not None

    # Purge only forgets completed invocations.
    assert_error(call("PATCH", f"{admin}/invocations/{hold}/purge"), 409, "not yet completed")

    assert call("PATCH", f"{admin}/invocations/{hold}/kill").status == 200
    killed = _invocation(ready, hold)  # applied before the answer: visible at once
    assert killed is not None and killed["status"] == "completed"
    assert (killed["completion_result"], killed["completion_failure"]) == ("failure", {"code": 409, "message": "killed"})
    # The lock passed to the queued add, which runs.
    added = _wait_status(ready, add, "completed")
    assert (added["completion_result"], added["completion_value"]) == ("success", {"utf8": "5"})
    status, balance, headers = ingress_call(f"{ready.ingress_url}/Account/{key}/balance")
    assert (status, balance) == (200, 5)
    read = headers["x-restate-id"]

    # Nothing left to kill or cancel.
    assert_error(call("PATCH", f"{admin}/invocations/{hold}/kill"), 409, "already completed")
    assert_error(call("PATCH", f"{admin}/invocations/{hold}/cancel"), 409, "already completed")

    # Listing with filters: the invocations of this key, newest first.
    every = _listing(ready, f"service=Account&key={key}")
    assert [i["id"] for i in every["invocations"]] == [read, add, hold]
    assert (every["truncated"], every["not_local_partitions"]) == (False, [])
    assert [i["id"] for i in _listing(ready, f"service=Account&key={key}&handler=hold")["invocations"]] == [hold]
    limited = _listing(ready, f"service=Account&key={key}&limit=2")
    assert ([i["id"] for i in limited["invocations"]], limited["truncated"]) == ([read, add], True)
    assert _listing(ready, f"service=Account&key={key}&status=suspended")["invocations"] == []
    assert _listing(ready, f"service=Proxy&key={key}")["invocations"] == []
    every_account = _listing(ready, "service=Account&status=completed")["invocations"]
    assert {hold, add} <= {i["id"] for i in every_account}
    assert "journal" not in every_account[0]
    assert_error(call("GET", f"{admin}/invocations?status=running"), 400, "unknown invocation status 'running'")
    assert_error(call("GET", f"{admin}/invocations?limit=0"), 400, "'limit'")

    # Purge: gone afterwards, for the PATCH and the deprecated DELETE alike.
    assert call("PATCH", f"{admin}/invocations/{hold}/purge").status == 200
    assert _invocation(ready, hold) is None
    assert_error(call("PATCH", f"{admin}/invocations/{hold}/purge"), 404, "not found")
    assert_error(call("DELETE", f"{admin}/invocations/{add}?mode=Explode"), 400, "unknown mode 'Explode'")
    assert call("DELETE", f"{admin}/invocations/{add}?mode=Purge").status == 202
    assert _invocation(ready, add) is None
    assert call("GET", f"{admin}/v2/invocations/{add}").status == 404  # versioned routes too

    # Ids: malformed 400, well-formed but unknown 404.
    assert_error(call("PATCH", f"{admin}/invocations/inv_nope/kill"), 400, "invalid invocation id")
    assert_error(call("GET", f"{admin}/invocations/not-an-id"), 400, "invalid invocation id")
    unknown = str(InvocationId(partition_key_for_key("Account", key), InvocationUuid.generate()))
    assert_error(call("PATCH", f"{admin}/invocations/{unknown}/kill"), 404, "not found")
    assert_error(call("GET", f"{admin}/invocations/{unknown}"), 404, "not found")


def test_cancel_a_sleeping_handler(ready: EngineProcess) -> None:
    admin = ready.admin_url
    nap = _send(ready, "/Proxy/nap", LONG_SLEEP_MS)
    _wait_status(ready, nap, "suspended")
    # The handler still has to see the cancellation and finish: accepted, not done.
    assert call("PATCH", f"{admin}/invocations/{nap}/cancel").status == 202
    cancelled = _wait_status(ready, nap, "completed")
    assert cancelled["completion_result"] == "failure"
    assert cancelled["completion_failure"]["code"] == 409
    # The SDK's message for a cancelled invocation; restate-server's status says the same.
    assert "cancel" in cancelled["completion_failure"]["message"].lower(), cancelled
    assert nap in {i["id"] for i in _listing(ready, "service=Proxy&status=completed")["invocations"]}

    # DELETE defaults to cancel; a queued invocation is cancelled before it runs.
    key = f"cancel-{uuid.uuid4().hex[:8]}"
    hold = _send(ready, f"/Account/{key}/hold", LONG_SLEEP_MS)
    _wait_status(ready, hold, "suspended")
    queued = _send(ready, f"/Account/{key}/add", 1)
    _wait_status(ready, queued, "inboxed")
    assert call("DELETE", f"{admin}/invocations/{queued}").status == 202
    gone = _invocation(ready, queued)
    assert gone is not None and gone["completion_failure"] == {"code": 409, "message": "canceled"}
    assert call("PATCH", f"{admin}/invocations/{hold}/kill").status == 200
    assert ingress_call(f"{ready.ingress_url}/Account/{key}/balance")[:2] == (200, 0)


def test_object_state_read_and_replace(ready: EngineProcess) -> None:
    admin, ingress, key = ready.admin_url, ready.ingress_url, f"state-{uuid.uuid4().hex[:8]}"
    assert ingress_call(f"{ingress}/Account/{key}/add", 40)[:2] == (200, 40)
    assert ingress_call(f"{ingress}/Account/{key}/add", 2)[:2] == (200, 42)

    state = call("GET", f"{admin}/services/Account/state/{key}").json
    assert (state["service"], state["key"], state["state"]) == ("Account", key, {"balance": {"utf8": "42"}})
    version = state["version"]
    empty = call("GET", f"{admin}/services/Account/state/nobody-{key}").json
    assert empty["state"] == {} and empty["version"] != version

    # Replace with the version just read: applied.
    body = {"object_key": key, "version": version, "new_state": {"balance": list(b"100"), "note": list(b'"hi"')}}
    assert call("POST", f"{admin}/services/Account/state", body).status == 202
    assert ingress_call(f"{ingress}/Account/{key}/balance")[:2] == (200, 100)
    replaced = call("GET", f"{admin}/services/Account/state/{key}").json
    assert replaced["state"] == {"balance": {"utf8": "100"}, "note": {"utf8": '"hi"'}}
    assert replaced["version"] != version

    # The old version is stale now: refused, nothing changes.
    stale = {"object_key": key, "version": version, "new_state": {"balance": list(b"7")}}
    assert_error(call("POST", f"{admin}/services/Account/state", stale), 409, "changed since it was read")
    assert ingress_call(f"{ingress}/Account/{key}/balance")[:2] == (200, 100)
    # No version: unconditional replace; an empty state clears it.
    assert call("POST", f"{admin}/services/Account/state", {"object_key": key, "new_state": {}}).status == 202
    assert call("GET", f"{admin}/services/Account/state/{key}").json["state"] == {}
    assert ingress_call(f"{ingress}/Account/{key}/balance")[:2] == (200, 0)
    assert call("POST", f"{admin}/v3/services/Account/state", {"object_key": key, "new_state": {"balance": [57]}}).status == 202
    assert ingress_call(f"{ingress}/Account/{key}/add", 1)[:2] == (200, 10)

    # Bad requests.
    plain = {"object_key": key, "new_state": {}}
    assert_error(call("POST", f"{admin}/services/Proxy/state", plain), 400, "plain service without state")
    assert_error(call("GET", f"{admin}/services/Proxy/state/{key}"), 400, "plain service without state")
    assert_error(call("POST", f"{admin}/services/Nope/state", plain), 404, "Nope")
    assert_error(call("POST", f"{admin}/services/Account/state", {"new_state": {}}), 422, "'object_key'")
    bad_bytes = {"object_key": key, "new_state": {"balance": [256]}}
    assert_error(call("POST", f"{admin}/services/Account/state", bad_bytes), 422, "array of bytes")
    assert_error(call("POST", f"{admin}/services/Account/state", {"object_key": key}), 422, "'new_state'")


@pytest.mark.parametrize("system", ["logstrate", "restate-server"])
def test_management_status_codes_match_restate_server(
    system: str, request: pytest.FixtureRequest, service_endpoints: ServiceEndpoints
) -> None:
    """Kill, cancel and purge answer with restate-server's status codes (same SDK endpoint)."""
    if system == "logstrate":
        server: Any = request.getfixturevalue("engine")
        # Management needs the partitions' leadership, which a fresh process takes in a moment.
        wait_until(lambda: _listing(server, "limit=1")["not_local_partitions"] == [], 30, "leadership of every partition")
    else:
        server = request.getfixturevalue("restate_server")
    endpoint = service_endpoints.get(SEMANTICS_APP)
    status, body, _ = ingress_call(f"{server.admin_url}/deployments", {"uri": endpoint.url, "use_http_11": True})
    assert status in (200, 201), body
    admin, key = server.admin_url, f"codes-{uuid.uuid4().hex[:8]}"
    codes: dict[str, int] = {}

    def send(path: str, arg: Any) -> str:
        status, answer, _ = ingress_call(f"{server.ingress_url}{path}/send", arg)
        assert status == 202, answer
        invocation_id: str = answer["invocationId"]
        return invocation_id

    hold = send(f"/Account/{key}/hold", LONG_SLEEP_MS)
    add = send(f"/Account/{key}/add", 1)
    codes["purge running"] = call("PATCH", f"{admin}/invocations/{hold}/purge").status
    codes["kill running"] = call("PATCH", f"{admin}/invocations/{hold}/kill").status
    wait_until(lambda: ingress_call(f"{server.ingress_url}/Account/{key}/balance")[:2] == (200, 1), 30,
               f"{system}: the add queued behind the killed hold ran")
    codes["kill completed"] = call("PATCH", f"{admin}/invocations/{hold}/kill").status
    codes["cancel completed"] = call("PATCH", f"{admin}/invocations/{hold}/cancel").status
    codes["purge completed"] = call("PATCH", f"{admin}/invocations/{hold}/purge").status
    codes["purge purged"] = call("PATCH", f"{admin}/invocations/{hold}/purge").status
    codes["delete purge"] = call("DELETE", f"{admin}/invocations/{add}?mode=Purge").status
    codes["kill bad id"] = call("PATCH", f"{admin}/invocations/inv_nope/kill").status
    nap = send("/Proxy/nap", LONG_SLEEP_MS)
    codes["cancel running"] = call("PATCH", f"{admin}/invocations/{nap}/cancel").status
    state_request = {"object_key": key, "new_state": {"balance": list(b"9")}}
    codes["state of a plain service"] = call("POST", f"{admin}/services/Proxy/state", state_request).status
    codes["state without object_key"] = call("POST", f"{admin}/services/Account/state", {"new_state": {}}).status
    bad_byte = {"object_key": key, "new_state": {"balance": [300]}}
    codes["state with a bad byte"] = call("POST", f"{admin}/services/Account/state", bad_byte).status
    # (A stale "version" differs on purpose: restate-server answers 202 and drops the patch
    # later; logstrate compares first and answers 409, see engine/admin/object_state.py.)
    assert codes == {
        "purge running": 409,
        "kill running": 200,
        "kill completed": 409,
        "cancel completed": 409,
        "purge completed": 200,
        "purge purged": 404,
        "delete purge": 202,
        "kill bad id": 400,
        "cancel running": 202,
        "state of a plain service": 400,
        "state without object_key": 422,
        "state with a bad byte": 422,
    }
