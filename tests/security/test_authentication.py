"""Bearer tokens on the admin API and the ingress, against a real engine process.

The engine runs with both tokens from its environment (``LOGSTRATE_ADMIN_TOKEN``,
``LOGSTRATE_INGRESS_TOKEN``). Without the right token every route but the health checks
and the web UI's files is a 401 with ``WWW-Authenticate: Bearer`` and a JSON message in
the API's own error shape; the two tokens are not interchangeable, and the ingress token
is the engine's: handlers never see it. A second process
with the same token forwards an admin lookup of a partition it does not lead to its
leader, sending the token itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from tests.engine.admin.admin_client import assert_schema
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.security.auth_client import ADMIN_TOKEN, INGRESS_TOKEN, bearer, request

from engine.ids import InvocationUuid
from engine.wal.partitioning import invocation_id_for, partition_for, partition_key_for_key

TOKENS = {"LOGSTRATE_ADMIN_TOKEN": ADMIN_TOKEN, "LOGSTRATE_INGRESS_TOKEN": INGRESS_TOKEN}


@pytest.fixture
def secured(engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint) -> EngineProcess:
    engine = engine_factory(env=dict(TOKENS))
    engine.start_and_wait()
    reply = request("POST", f"{engine.admin_url}/deployments", {"uri": greeter_endpoint.url}, bearer(ADMIN_TOKEN))
    assert reply.status == 201, reply
    return engine


def _assert_401(reply_status: int, headers: dict[str, str], message: str, *fragments: str) -> None:
    assert reply_status == 401, (reply_status, message)
    assert headers["www-authenticate"] == "Bearer"
    for fragment in fragments:
        assert fragment in message, message


def test_the_admin_api_wants_its_token(secured: EngineProcess) -> None:
    admin = secured.admin_url
    for path in ("/deployments", "/v2/deployments", "/services", "/metrics", "/openapi", "/version", "/nope"):
        for headers in ({}, bearer("wrong"), bearer(INGRESS_TOKEN), {"Authorization": f"Basic {ADMIN_TOKEN}"}):
            reply = request("GET", f"{admin}{path}", headers=headers)
            assert reply.headers["content-type"].startswith("application/json")
            assert_schema(reply.json, "ErrorDescriptionResponse")
            _assert_401(reply.status, reply.headers, reply.json["message"], "admin")
    missing = request("GET", f"{admin}/deployments").json["message"]
    assert "Authorization: Bearer" in missing and "LOGSTRATE_ADMIN_TOKEN" in missing and "RESTATE_AUTH_TOKEN" in missing
    assert "is not the one configured" in request("GET", f"{admin}/deployments", headers=bearer("x")).json["message"]
    refused = request("POST", f"{admin}/query", {"query": "SELECT id FROM sys_invocation"})
    assert refused.status == 401
    # Writes are refused before anything happens.
    assert request("DELETE", f"{admin}/deployments/dp_11111111111111111111111?force=true").status == 401

    for path in ("/deployments", "/v2/deployments", "/metrics", "/version"):
        assert request("GET", f"{admin}{path}", headers=bearer(ADMIN_TOKEN)).status == 200, path
    assert request("GET", f"{admin}/services", headers={"Authorization": f"bearer {ADMIN_TOKEN}"}).status == 200
    reply = request("POST", f"{admin}/query", {"query": "SELECT 1 AS one"},
                    headers={**bearer(ADMIN_TOKEN), "accept": "application/json"})
    assert reply.status == 200, reply

    # Open without the token: health checks and the UI's static files (they hold no data).
    for path in ("/health", "/v2/health", "/v3/health", "/ui/", "/ui/js/main.js", "/ui/js/api.js", "/ui/app.css"):
        assert request("GET", f"{admin}{path}").status == 200, path


def test_the_ingress_wants_its_own_token(secured: EngineProcess) -> None:
    ingress = secured.ingress_url
    for headers in ({}, bearer("wrong"), bearer(ADMIN_TOKEN)):
        for method, path in (("POST", "/Greeter/greet"), ("POST", "/Greeter/greet/send"),
                             ("GET", "/restate/invocation/inv_1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/output"),
                             ("POST", "/restate/awakeables/sign_1abc/resolve")):
            reply = request(method, f"{ingress}{path}", "Ada" if method == "POST" else None, headers)
            _assert_401(reply.status, reply.headers, reply.json["message"], "ingress", "Bearer")
            assert reply.json["code"] == 401
    assert request("GET", f"{ingress}/restate/health").status == 200

    reply = request("POST", f"{ingress}/Greeter/greet", "Ada", bearer(INGRESS_TOKEN))
    assert reply.status == 200 and reply.json.startswith("Hello Ada!"), reply


def test_the_ingress_token_is_not_handed_to_handlers(
    secured: EngineProcess, service_endpoints: ServiceEndpoints,
) -> None:
    endpoint = service_endpoints.get("tests.fixtures.official_sdk_headers:app")
    reply = request("POST", f"{secured.admin_url}/deployments", {"uri": endpoint.url, "use_http_11": True},
                    bearer(ADMIN_TOKEN))
    assert reply.status == 201, reply
    reply = request("POST", f"{secured.ingress_url}/Headers/seen", ["authorization", "x-user"],
                    {**bearer(INGRESS_TOKEN), "x-user": "ada"})
    assert reply.status == 200, reply
    assert reply.json == {"authorization": None, "x-user": hashlib.sha256(b"ada").hexdigest()}
    described = request("GET", f"{secured.admin_url}/invocations/{reply.headers['x-restate-id']}",
                        headers=bearer(ADMIN_TOKEN))
    assert INGRESS_TOKEN not in described.body.decode()
    (input_entry,) = [e for e in described.json["journal"] if e["type"] == "InputCommand"]
    names = {h["key"] for h in input_entry["entry"]["headers"]}
    assert "x-user" in names and "authorization" not in names, names


def _partition_of_key(key: str, partitions: int) -> int:
    return partition_for(partition_key_for_key("Counter", key), partitions)


def test_forwarded_admin_requests_carry_the_token(
    engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint,
) -> None:
    first = engine_factory(env=dict(TOKENS))
    first.start_and_wait()
    second = engine_factory(env=dict(TOKENS))
    second.start_and_wait()
    reply = request("POST", f"{first.admin_url}/deployments", {"uri": greeter_endpoint.url}, bearer(ADMIN_TOKEN))
    assert reply.status == 201, reply
    led_by_second = wait_until(
        lambda: (b := second.led_partitions()) and b | first.led_partitions() == set(range(4)) and not
        b & first.led_partitions() and b, 90, "the second process to lead some WAL partitions", interval=0.5,
    )
    key = next(f"key-{i}" for i in range(100) if _partition_of_key(f"key-{i}", 4) in led_by_second)
    sent = wait_until(
        lambda: (r := request("POST", f"{first.ingress_url}/Counter/{key}/add/send", 3,
                              bearer(INGRESS_TOKEN))).status == 202 and r,
        30, "the deployment to be visible", interval=0.2,
    )
    invocation_id = sent.json["invocationId"]
    path = f"{first.admin_url}/invocations/{invocation_id}?journal=false"
    assert request("GET", path).status == 401
    found = wait_until(
        lambda: (r := request("GET", path, headers=bearer(ADMIN_TOKEN))).status == 200
        and r.json["status"] == "completed" and r, 30, "the forwarded lookup",
    )
    assert found.json["id"] == invocation_id
    unknown = invocation_id_for("Counter", key, InvocationUuid.generate())
    reply = request("GET", f"{first.admin_url}/invocations/{unknown}", headers=bearer(ADMIN_TOKEN))
    assert reply.status == 404 and "not found" in reply.json["message"], reply
    state = request("GET", f"{first.admin_url}/services/Counter/state/{key}", headers=bearer(ADMIN_TOKEN))
    assert (state.status, state.json["state"]) == (200, {"count": {"utf8": "3"}}), state
