"""``/services`` and handlers on a real engine: options, PATCH, not-found answers, /openapi."""

from __future__ import annotations

import json

from tests.engine.admin.admin_client import OPENAPI_PATH, assert_error, assert_schema, call
from tests.fixtures.engine import EngineProcess
from tests.fixtures.service_endpoint import ServiceEndpoints


def test_services_show_the_options_endpoints_declare_and_patch_changes_them(
    engine: EngineProcess, service_endpoints: ServiceEndpoints
) -> None:
    tuned_endpoint = service_endpoints.get("tests.fixtures.endpoint_apps:tuned_app")
    admin = engine.admin_url
    # Request/response (HTTP/1.1), whose services show no inactivity timeout (below).
    assert call("POST", f"{admin}/deployments", {"uri": tuned_endpoint.url, "use_http_11": True}).status == 201

    listing = call("GET", f"{admin}/services").json
    assert_schema(listing, "ListServicesResponse")
    assert [s["name"] for s in listing["services"]] == ["Signup", "Tuned"]

    tuned = call("GET", f"{admin}/services/Tuned").json
    assert_schema(tuned, "ServiceMetadata")
    assert (tuned["documentation"], tuned["metadata"]) == ("A service with every option set", {"team": "payments"})
    assert tuned["public"] is False  # ingress_private
    assert (tuned["idempotency_retention"], tuned["journal_retention"], tuned["abort_timeout"]) == ("2d", "5h", "2m")
    assert tuned["retry_policy"] == {
        "initial_interval": "250ms",
        "exponentiation_factor": 1.5,
        "max_attempts": 5,
        "max_interval": "30s",
        "on_max_attempts": "Kill",
    }
    # A request/response deployment has no inactivity timeout; the configured one is noted.
    assert tuned["inactivity_timeout"] == "0s"
    assert tuned["info"][0]["code"] == "RT0021" and "1m 30s" in tuned["info"][0]["message"]

    handlers = call("GET", f"{admin}/services/Tuned/handlers").json
    assert_schema(handlers, "ListServiceHandlersResponse")
    run = call("GET", f"{admin}/services/Tuned/handlers/run").json
    assert_schema(run, "HandlerMetadata")
    assert handlers["handlers"] == [run]
    assert "ty" not in run  # handlers of plain services have no type
    assert (run["public"], run["abort_timeout"], run["metadata"]) == (False, "20s", {"kind": "batch"})
    assert run["retry_policy"] == {"max_attempts": 3, "on_max_attempts": "Pause"}
    assert (run["input_description"], run["output_description"]) == ("application/json", "none")

    signup = call("GET", f"{admin}/services/Signup").json
    assert (signup["ty"], signup["workflow_completion_retention"], signup["idempotency_retention"]) == ("Workflow", "3d", "1d")
    assert {h["name"]: h["ty"] for h in signup["handlers"]} == {"signup_run": "Workflow", "confirm": "Shared"}

    changes = {"public": True, "idempotency_retention": "3h", "journal_retention": "PT2H", "abort_timeout": None}
    answer = call("PATCH", f"{admin}/services/Tuned", changes)
    assert answer.status == 200, answer.body
    assert_schema(answer.json, "ServiceMetadata")
    patched = call("GET", f"{admin}/services/Tuned").json
    assert patched == answer.json
    assert (patched["public"], patched["idempotency_retention"], patched["journal_retention"]) == (True, "3h", "2h")
    assert patched["abort_timeout"] == "2m"  # null leaves it alone
    assert call("GET", f"{admin}/services/Tuned/handlers/run").json["public"] is True
    assert patched["revision"] == tuned["revision"]

    answer = call("PATCH", f"{admin}/services/Signup", {"workflow_completion_retention": "7 days"})
    assert answer.json["workflow_completion_retention"] == "7d"
    assert_error(call("PATCH", f"{admin}/services/Tuned", {"workflow_completion_retention": "1d"}), 400, "workflows only")
    assert_error(call("PATCH", f"{admin}/services/Tuned", {"journal_retention": "bogus"}), 422, "'journal_retention' is invalid")
    assert_error(call("PATCH", f"{admin}/services/Tuned", {"pubic": True}), 422, "unknown field(s) pubic")
    assert_error(call("PATCH", f"{admin}/services/Tuned", {"public": "yes"}), 422, "'public' must be true or false")
    assert_error(call("PATCH", f"{admin}/services/Nope", {"public": True}), 404, "The requested service 'Nope' does not exist")


def test_unknown_services_and_handlers_are_404s_and_openapi_is_served(engine: EngineProcess) -> None:
    admin = engine.admin_url
    assert call("GET", f"{admin}/services").json == {"services": []}
    assert_error(call("GET", f"{admin}/services/Nope"), 404, "The requested service 'Nope' does not exist")
    assert_error(call("GET", f"{admin}/services/Nope/handlers"), 404, "'Nope' does not exist")
    assert_error(call("GET", f"{admin}/services/Nope/handlers/x"), 404, "'Nope' does not exist")

    answer = call("GET", f"{admin}/openapi")
    assert answer.status == 200 and answer.headers["content-type"].startswith("application/json")
    assert answer.json == json.loads(OPENAPI_PATH.read_text())
    assert "/deployments" in answer.json["paths"]

    version = call("GET", f"{admin}/v3/version").json
    assert (version["min_admin_api_version"], version["max_admin_api_version"]) == (2, 3)
    assert call("GET", f"{admin}/v2/health").status == 200
