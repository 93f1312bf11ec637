"""The endpoint manifest: negotiation by accept header, kinds, schemas and options."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import sdk
from engine.metadata.manifest import parse_manifest
from sdk.discovery import negotiate_manifest_version
from sdk.endpoint import Endpoint
from sdk.errors import HandlerDefinitionError

RESTATE_ACCEPT = ", ".join(f"application/vnd.restate.endpointmanifest.v{v}+json" for v in (1, 2, 3, 4))

svc = sdk.Service("Svc", inactivity_timeout=timedelta(seconds=30), description="a service")
obj = sdk.VirtualObject("Obj", enable_lazy_state=True)
wf = sdk.Workflow("Wf")


@svc.handler(abort_timeout=timedelta(seconds=5), idempotency_retention=timedelta(hours=1),
             journal_retention=timedelta(days=1), ingress_private=True)
async def hidden(ctx: sdk.Context, data: bytes) -> bytes:
    return data


@obj.handler(kind="shared")
async def look(ctx: sdk.ObjectSharedContext) -> int:
    return 1


@obj.handler()
async def write(ctx: sdk.ObjectContext, value: int) -> None:
    ctx.set("v", value)


@wf.main(workflow_retention=timedelta(days=2))
async def main(ctx: sdk.WorkflowContext, amount: int) -> str:
    return str(amount)


endpoint = Endpoint([svc, obj, wf])


def manifest(accept: str | None) -> tuple[str, dict[str, object]]:
    response = endpoint.discover(accept)
    assert response.status == 200
    assert isinstance(response.body, bytes)
    return response.headers["content-type"], json.loads(response.body)


def test_negotiation_picks_the_highest_offered_version() -> None:
    assert negotiate_manifest_version(RESTATE_ACCEPT) == 4
    assert negotiate_manifest_version("application/vnd.restate.endpointmanifest.v2+json") == 2
    assert negotiate_manifest_version("application/vnd.restate.endpointmanifest.v9+json") is None
    assert endpoint.discover("application/vnd.restate.endpointmanifest.v9+json").status == 415


def test_v4_manifest_has_kinds_schemas_and_options_and_parses() -> None:
    content_type, body = manifest(RESTATE_ACCEPT)
    assert content_type == "application/vnd.restate.endpointmanifest.v4+json"
    assert body["protocolMode"] == "REQUEST_RESPONSE"
    assert (body["minProtocolVersion"], body["maxProtocolVersion"]) == (5, 7)
    services = {s["name"]: s for s in body["services"]}  # type: ignore[attr-defined]
    assert services["Svc"]["inactivityTimeout"] == 30000
    assert services["Svc"]["documentation"] == "a service"
    hidden_handler = services["Svc"]["handlers"][0]
    assert "ty" not in hidden_handler
    assert hidden_handler["ingressPrivate"] is True
    assert hidden_handler["abortTimeout"] == 5000
    assert hidden_handler["idempotencyRetention"] == 3600000
    assert hidden_handler["input"]["contentType"] == "*/*"
    assert services["Obj"]["enableLazyState"] is True
    assert {h["name"]: h["ty"] for h in services["Obj"]["handlers"]} == {"look": "SHARED", "write": "EXCLUSIVE"}
    main_handler = services["Wf"]["handlers"][0]
    assert main_handler["ty"] == "WORKFLOW"
    assert main_handler["workflowCompletionRetention"] == 2 * 86400000
    assert main_handler["input"]["jsonSchema"] == {"type": "integer"}
    # Our engine's own manifest parser accepts it.
    parsed = parse_manifest(4, body)
    assert {s.name for s in parsed.services} == {"Svc", "Obj", "Wf"}


def test_v1_manifest_leaves_out_newer_fields() -> None:
    _, body = manifest("application/vnd.restate.endpointmanifest.v1+json")
    text = json.dumps(body)
    for field in ("documentation", "inactivityTimeout", "ingressPrivate", "enableLazyState"):
        assert field not in text


def test_definition_errors() -> None:
    with pytest.raises(HandlerDefinitionError):
        Endpoint([sdk.Workflow("Empty")])
    bad = sdk.Service("Bad")
    with pytest.raises(HandlerDefinitionError):
        bad.handler()(lambda ctx: None)  # type: ignore[arg-type,return-value]
