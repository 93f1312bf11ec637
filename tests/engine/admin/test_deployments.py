"""``/deployments`` on a real engine process, registering real official-SDK endpoints."""

from __future__ import annotations

from tests.engine.admin.admin_client import assert_error, assert_schema, call
from tests.fixtures.engine import EngineProcess
from tests.fixtures.service_endpoint import GREETER_APP, ServiceEndpoint, ServiceEndpoints

APPS = "tests.fixtures.endpoint_apps"


def _register(engine: EngineProcess, uri: str, prefix: str = "", **options: object) -> tuple[int, dict[str, object]]:
    answer = call("POST", f"{engine.admin_url}{prefix}/deployments", {"uri": uri, **options})
    return answer.status, answer.json


def test_register_the_greeter_then_read_it_back_in_restate_shapes(
    engine: EngineProcess, greeter_endpoint: ServiceEndpoint
) -> None:
    answer = call("POST", f"{engine.admin_url}/deployments", {"uri": greeter_endpoint.url, "use_http_11": True})
    assert answer.status == 201, answer.body
    registered = answer.json
    assert_schema(registered, "RegisterDeploymentResponse")
    deployment_id = registered["id"]
    assert deployment_id.startswith("dp_1") and len(deployment_id) == 26
    assert answer.headers["location"] == f"deployments/{deployment_id}"
    assert (registered["min_protocol_version"], registered["max_protocol_version"]) == (5, 7)
    assert registered["sdk_version"].startswith("restate-sdk-python/")
    services = {s["name"]: s for s in registered["services"]}
    assert {name: s["ty"] for name, s in services.items()} == {"Greeter": "Service", "Counter": "VirtualObject"}
    assert [(h["name"], h.get("ty")) for h in services["Greeter"]["handlers"]] == [("greet", None)]
    assert {h["name"]: h["ty"] for h in services["Counter"]["handlers"]} == {"add": "Exclusive", "get": "Shared"}
    greeter = services["Greeter"]
    assert (greeter["revision"], greeter["deployment_id"], greeter["public"]) == (1, deployment_id, True)
    assert greeter["handlers"][0]["input_description"] == "JSON string"
    assert greeter["handlers"][0]["input_json_schema"] == {"type": "string"}

    listing = call("GET", f"{engine.admin_url}/deployments").json
    assert_schema(listing, "ListDeploymentsResponse")
    (listed,) = listing["deployments"]
    assert listed["id"] == deployment_id
    assert listed["uri"] == greeter_endpoint.url + "/"
    assert (listed["protocol_type"], listed["http_version"]) == ("RequestResponse", "HTTP/1.1")
    assert listed["created_at"].endswith("Z")
    assert sorted((s["name"], s["revision"]) for s in listed["services"]) == [("Counter", 1), ("Greeter", 1)]

    detailed = call("GET", f"{engine.admin_url}/deployments/{deployment_id}").json
    assert_schema(detailed, "DetailedDeploymentResponse")
    assert {s["name"] for s in detailed["services"]} == {"Greeter", "Counter"}

    # The restate CLI speaks the versioned paths; they serve the same resources.
    assert call("GET", f"{engine.admin_url}/v3/deployments").json == listing


def test_re_registering_a_uri_follows_the_admin_api_version(
    engine: EngineProcess, greeter_endpoint: ServiceEndpoint
) -> None:
    status, first = _register(engine, greeter_endpoint.url)
    assert status == 201
    revision = {s["name"]: s["revision"] for s in first["services"]}
    # Unversioned (and v3): the same URI again is answered from what is registered.
    status, again = _register(engine, greeter_endpoint.url + "/")
    assert (status, again["id"]) == (200, first["id"])
    assert {s["name"]: s["revision"] for s in again["services"]} == revision
    status, forced = _register(engine, greeter_endpoint.url, force=True)
    assert (status, forced["id"]) == (200, first["id"])
    assert {s["name"]: s["revision"] for s in forced["services"]} == {"Greeter": 2, "Counter": 2}
    # v2: re-registering without force is a conflict, with force (its default) a 201.
    answer = call("POST", f"{engine.admin_url}/v2/deployments", {"uri": greeter_endpoint.url, "force": False})
    assert_error(answer, 409, f"deployment {first['id']} already exists")
    status, forced = _register(engine, greeter_endpoint.url, prefix="/v2")
    assert (status, forced["id"]) == (201, first["id"])
    assert forced["services"][0]["revision"] == 3
    assert len(call("GET", f"{engine.admin_url}/deployments").json["deployments"]) == 1


def test_dry_run_validates_and_writes_nothing(engine: EngineProcess, service_endpoints: ServiceEndpoints) -> None:
    tuned = service_endpoints.get(f"{APPS}:tuned_app")
    status, would_be = _register(engine, tuned.url, dry_run=True)
    assert status == 201
    assert_schema(would_be, "RegisterDeploymentResponse")
    assert {s["name"] for s in would_be["services"]} == {"Tuned", "Signup"}
    assert call("GET", f"{engine.admin_url}/deployments").json == {"deployments": []}
    assert_error(call("GET", f"{engine.admin_url}/deployments/{would_be['id']}"), 404, "does not exist")
    assert_error(call("GET", f"{engine.admin_url}/services/Tuned"), 404, "The requested service 'Tuned' does not exist")


def test_breaking_revisions_conflict_unless_allowed(
    engine: EngineProcess, service_endpoints: ServiceEndpoints
) -> None:
    greeter, as_object, without_greet = service_endpoints.start_all(
        [(GREETER_APP, "default"), (f"{APPS}:greeter_as_object", "default"), (f"{APPS}:greeter_without_greet", "default")]
    )
    assert _register(engine, greeter.url)[0] == 201
    answer = call("POST", f"{engine.admin_url}/deployments", {"uri": without_greet.url})
    assert_error(answer, 409, "removing the handlers ['greet']", "META0006")
    answer = call("POST", f"{engine.admin_url}/deployments", {"uri": as_object.url, "dry_run": True})
    assert_error(answer, 409, "changing the service type from Service to VirtualObject", "META0006")
    assert answer.json["message"].startswith("[META0006] ")
    status, registered = _register(engine, as_object.url, breaking=True)
    assert status == 201
    (greeter_revision,) = registered["services"]
    assert (greeter_revision["ty"], greeter_revision["revision"]) == ("VirtualObject", 2)
    service = call("GET", f"{engine.admin_url}/services/Greeter").json
    assert (service["ty"], service["deployment_id"]) == ("VirtualObject", registered["id"])


def test_delete_falls_back_to_the_previous_revision(
    engine: EngineProcess, service_endpoints: ServiceEndpoints
) -> None:
    first, second = service_endpoints.start_all([(GREETER_APP, "default"), (GREETER_APP, "second")])
    status, old = _register(engine, first.url)
    status, new = _register(engine, second.url)
    assert status == 201
    assert call("GET", f"{engine.admin_url}/services/Greeter").json["revision"] == 2
    url = f"{engine.admin_url}/deployments/{new['id']}"
    assert_error(call("DELETE", url + "?force=maybe"), 400, "must be true or false")
    # Nothing runs on it, so no force is needed (restate-server would answer 501; with
    # in-flight invocations logstrate answers 409, see tests/engine/test_core2_ops.py).
    answer = call("DELETE", url)
    assert (answer.status, answer.body) == (202, b""), answer.body
    service = call("GET", f"{engine.admin_url}/services/Greeter").json
    assert (service["revision"], service["deployment_id"]) == (1, old["id"])
    assert [d["id"] for d in call("GET", f"{engine.admin_url}/deployments").json["deployments"]] == [old["id"]]
    assert_error(call("DELETE", url + "?force=true"), 404, f"The requested deployment '{new['id']}' does not exist")
    assert_error(call("DELETE", url), 404, f"The requested deployment '{new['id']}' does not exist")
    answer = call("DELETE", f"{engine.admin_url}/deployments/{old['id']}?force=true")
    assert (answer.status, answer.body) == (202, b"")


def test_bad_requests_get_restate_error_answers(engine: EngineProcess) -> None:
    admin = engine.admin_url
    unreachable = "http://127.0.0.1:1"
    answer = call("POST", f"{admin}/deployments", {"uri": unreachable})
    assert_error(answer, 502, "cannot reach http://127.0.0.1:1/discover", "META0003")
    assert_error(call("POST", f"{admin}/deployments", raw=b'{"uri":'), 400, "the request body is not valid JSON")
    assert_error(call("POST", f"{admin}/deployments", raw=b""), 400, "the request body is empty")
    assert_error(call("POST", f"{admin}/deployments", [1]), 422, "must be a JSON object, got an array")
    assert_error(call("POST", f"{admin}/deployments", {}), 422, 'name the endpoint to register: {"uri"')
    assert_error(call("POST", f"{admin}/deployments", {"uri": 42}), 422, "'uri' must be a string")
    assert_error(call("POST", f"{admin}/deployments", {"uri": unreachable, "force": "yes"}), 422, "'force' must be true or false")
    answer = call("POST", f"{admin}/deployments", {"arn": "arn:aws:lambda:eu-central-1:1:function:f:1"})
    assert_error(answer, 400, "Lambda deployments (\"arn\") are not supported")
    assert_error(call("POST", f"{admin}/deployments", {"uri": "relative/path"}), 400, "The request field 'uri' is invalid")
    answer = call("POST", f"{admin}/deployments", {"uri": unreachable, "additional_headers": {"bad header": "x"}})
    assert_error(answer, 400, "'bad header' is not a valid header name")
    answer = call("POST", f"{admin}/deployments", raw=b'{"uri": "x"}', content_type="application/x-www-form-urlencoded")
    assert_error(answer, 415, "content-type: application/json")
    assert_error(call("GET", f"{admin}/deployments/nonsense"), 400, "invalid deployment id 'nonsense'")
    assert_error(call("GET", f"{admin}/deployments/dp_10000000000000000000000"), 404, "does not exist")
    assert_error(call("GET", f"{admin}/no/such/thing"), 404, "GET /no/such/thing is not an admin API resource")
    answer = call("PUT", f"{admin}/deployments", {"uri": unreachable})
    assert_error(answer, 405, "PUT is not allowed on /deployments")
    assert "POST" in answer.headers["allow"]


def test_services_in_the_builtin_namespace_are_refused(
    engine: EngineProcess, service_endpoints: ServiceEndpoints
) -> None:
    # A real SDK endpoint declaring logstrate.KafkaEgress (plus a valid service): the whole
    # registration is refused, dry run or not, and nothing is written.
    impostor = service_endpoints.get(f"{APPS}:reserved_name_app")
    for options in ({}, {"dry_run": True}, {"force": True, "breaking": True}):
        answer = call("POST", f"{engine.admin_url}/deployments", {"uri": impostor.url, **options})
        assert_error(answer, 400, "service name 'logstrate.KafkaEgress' is reserved")
        assert "the 'logstrate.' namespace holds the engine's built-in services" in answer.json["message"]
        assert "rename the service" in answer.json["message"]
    assert call("GET", f"{engine.admin_url}/deployments").json == {"deployments": []}
    assert_error(call("GET", f"{engine.admin_url}/services/Greeter"), 404, "does not exist")
