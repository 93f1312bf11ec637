"""Parsing discovery manifests: hand-written v1..v4 samples and the official SDK's real output."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from restate.discovery import compute_discovery_json
from restate.endpoint import Endpoint

from engine.metadata.errors import InvalidManifest
from engine.metadata.manifest import manifest_content_type, manifest_version_of, parse_manifest
from engine.metadata.model import (
    HandlerType,
    InputPayload,
    OnMaxAttempts,
    Options,
    OutputPayload,
    ProtocolType,
    RetryPolicy,
    ServiceType,
)
from examples.greeter import official_sdk_greeter
from tests.fixtures import endpoint_apps

V1_SAMPLE: dict[str, Any] = {
    "protocolMode": "BIDI_STREAM",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 6,
    "services": [
        {
            "name": "cart.Cart",
            "ty": "VIRTUAL_OBJECT",
            "handlers": [
                {"name": "add", "input": {"required": True, "contentType": "application/json", "jsonSchema": {"type": "object"}}},
                {"name": "view", "ty": "SHARED", "input": {}, "output": {"setContentTypeIfEmpty": False}},
            ],
        },
        {"name": "Echo", "ty": "SERVICE", "handlers": [{"name": "echo"}]},
    ],
}

V2_SAMPLE: dict[str, Any] = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 7,
    "services": [
        {
            "name": "Mailer",
            "ty": "SERVICE",
            "documentation": "Sends mail",
            "metadata": {"owner": "ops"},
            # A v3 field in a v2 manifest: not meant for a v2 reader, so ignored.
            "inactivityTimeout": 1000,
            "handlers": [
                {
                    "name": "send",
                    "documentation": "Send one",
                    "metadata": {"cost": "1"},
                    "output": {"contentType": "text/plain", "setContentTypeIfEmpty": True},
                }
            ],
        }
    ],
}

V3_SAMPLE: dict[str, Any] = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 7,
    "lambdaCompression": "zstd",
    "services": [
        {
            "name": "Orders",
            "ty": "WORKFLOW",
            "inactivityTimeout": 60000,
            "abortTimeout": 120000,
            "journalRetention": 3600000,
            "idempotencyRetention": 7200000,
            "enableLazyState": True,
            "ingressPrivate": False,
            # A v4 field in a v3 manifest: ignored.
            "retryPolicyMaxAttempts": 9,
            "handlers": [
                {"name": "run", "workflowCompletionRetention": 86400000 * 3, "journalRetention": 1000},
                {"name": "status", "ty": "SHARED", "ingressPrivate": True, "idempotencyRetention": 5000},
            ],
        }
    ],
}

V4_SAMPLE: dict[str, Any] = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 7,
    "services": [
        {
            "name": "Payments",
            "ty": "SERVICE",
            "retryPolicyInitialInterval": 100,
            "retryPolicyMaxInterval": 10000,
            "retryPolicyMaxAttempts": 10,
            "retryPolicyExponentiationFactor": 3,
            "retryPolicyOnMaxAttempts": "KILL",
            "handlers": [
                {"name": "charge", "retryPolicyMaxAttempts": 0, "retryPolicyOnMaxAttempts": "PAUSE"},
            ],
        }
    ],
}


def test_v1_sample() -> None:
    manifest = parse_manifest(1, V1_SAMPLE)
    assert manifest.protocol_type is ProtocolType.BIDI_STREAM
    assert (manifest.min_protocol_version, manifest.max_protocol_version) == (5, 6)
    cart, echo = manifest.services
    assert (cart.name, cart.ty) == ("cart.Cart", ServiceType.VIRTUAL_OBJECT)
    add, view = cart.handlers
    # A virtual object handler without "ty" is exclusive.
    assert add.ty is HandlerType.EXCLUSIVE
    assert add.input == InputPayload("application/json", True, {"type": "object"})
    assert add.output == OutputPayload()  # absent output: JSON by default
    assert view.ty is HandlerType.SHARED
    assert view.input == InputPayload(content_type=None)  # {} means "no body"
    assert view.output == OutputPayload(content_type=None)
    # Absent input accepts anything; plain services' handlers have no type.
    assert echo.handlers[0].ty is None
    assert echo.handlers[0].input == InputPayload(content_type="*/*", required=False)


def test_v2_sample_adds_documentation_and_metadata_only() -> None:
    (mailer,) = parse_manifest(2, V2_SAMPLE).services
    assert mailer.documentation == "Sends mail"
    assert mailer.metadata == {"owner": "ops"}
    assert mailer.options == Options()
    (send,) = mailer.handlers
    assert (send.documentation, send.metadata) == ("Send one", {"cost": "1"})
    assert send.output == OutputPayload("text/plain", True)
    # The same document read as v1 has no documentation at all.
    assert parse_manifest(1, V2_SAMPLE).services[0].documentation is None


def test_v3_sample_reads_timeouts_and_retention() -> None:
    (orders,) = parse_manifest(3, V3_SAMPLE).services
    assert orders.ty is ServiceType.WORKFLOW
    run, status = orders.handlers
    assert run.ty is HandlerType.WORKFLOW  # the default in a workflow
    assert orders.options == Options(
        inactivity_timeout=timedelta(minutes=1),
        abort_timeout=timedelta(minutes=2),
        idempotency_retention=timedelta(hours=2),
        journal_retention=timedelta(hours=1),
        # Taken from the workflow handler: it is the workflow's retention.
        workflow_completion_retention=timedelta(days=3),
        enable_lazy_state=True,
        ingress_private=False,
    )
    assert run.options.journal_retention == timedelta(seconds=1)
    assert status.options.ingress_private is True
    assert status.options.idempotency_retention == timedelta(seconds=5)
    assert orders.options.retry_policy == RetryPolicy()  # v4 field ignored in v3


def test_v4_sample_reads_retry_policies() -> None:
    (payments,) = parse_manifest(4, V4_SAMPLE).services
    assert payments.options.retry_policy == RetryPolicy(
        initial_interval=timedelta(milliseconds=100),
        exponentiation_factor=3.0,
        max_attempts=10,
        max_interval=timedelta(seconds=10),
        on_max_attempts=OnMaxAttempts.KILL,
    )
    # Zero attempts can only mean "no retries", i.e. one attempt.
    assert payments.handlers[0].options.retry_policy == RetryPolicy(max_attempts=1, on_max_attempts=OnMaxAttempts.PAUSE)


def _sdk_manifest(version: int, *services: Any) -> Any:
    endpoint = Endpoint()
    endpoint.bind(*services)
    return json.loads(compute_discovery_json(endpoint, version, "request_response"))


@pytest.mark.parametrize("version", [2, 3, 4])
def test_official_sdk_greeter_manifest(version: int) -> None:
    document = _sdk_manifest(version, official_sdk_greeter.greeter, official_sdk_greeter.counter)
    manifest = parse_manifest(version, document)
    assert manifest.protocol_type is ProtocolType.REQUEST_RESPONSE
    assert (manifest.min_protocol_version, manifest.max_protocol_version) == (5, 7)
    greeter, counter = manifest.services
    assert (greeter.name, greeter.ty, [h.name for h in greeter.handlers]) == ("Greeter", ServiceType.SERVICE, ["greet"])
    assert greeter.handlers[0].input.json_schema == {"type": "string"}
    assert counter.ty is ServiceType.VIRTUAL_OBJECT
    assert {h.name: h.ty for h in counter.handlers} == {"add": HandlerType.EXCLUSIVE, "get": HandlerType.SHARED}
    assert counter.handlers[1].input.content_type is None  # get takes no input


def test_official_sdk_v4_manifest_with_every_option() -> None:
    manifest = parse_manifest(4, _sdk_manifest(4, endpoint_apps.tuned, endpoint_apps.signup))
    tuned, signup = manifest.services
    assert tuned.documentation == "A service with every option set"
    assert tuned.options.ingress_private is True
    assert tuned.options.retry_policy.on_max_attempts is OnMaxAttempts.KILL
    assert tuned.options.retry_policy.exponentiation_factor == 1.5
    (run,) = tuned.handlers
    assert run.options.abort_timeout == timedelta(seconds=20)
    assert run.options.retry_policy == RetryPolicy(max_attempts=3, on_max_attempts=OnMaxAttempts.PAUSE)
    assert run.input.json_schema is True and run.output.content_type is None
    assert signup.options.workflow_completion_retention == timedelta(days=3)


def _service(**changes: Any) -> dict[str, Any]:
    service: dict[str, Any] = {"name": "S", "ty": "SERVICE", "handlers": [{"name": "h"}]}
    service.update(changes)
    return {"protocolMode": "REQUEST_RESPONSE", "minProtocolVersion": 5, "maxProtocolVersion": 7, "services": [service]}


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ([], "manifest: expected a JSON object, got an array"),
        ({"minProtocolVersion": 5, "maxProtocolVersion": 7, "services": []}, "manifest.protocolMode: missing"),
        (_service(ty="ACTOR"), r"services\[0\].ty: 'ACTOR' is not one of SERVICE, VIRTUAL_OBJECT, WORKFLOW"),
        (_service(name="9lives"), "is not a valid service name"),
        (_service(name="restate.Admin"), "is reserved"),
        (_service(name="logstrate.KafkaEgress"), "'logstrate.' namespace holds the engine's built-in services"),
        (_service(name="Logstrate.Other"), "service name 'Logstrate.Other' is reserved"),
        (_service(handlers=[{"name": "h"}, {"name": "h"}]), "handler 'h' is declared twice"),
        (_service(handlers=[{"name": "bad-name"}]), "is not a valid handler name"),
        (_service(handlers=[{"name": "h", "ty": "EXCLUSIVE"}]), "handlers of a SERVICE cannot be EXCLUSIVE"),
        (_service(ty="VIRTUAL_OBJECT", handlers=[{"name": "h", "ty": "WORKFLOW"}]), "must be EXCLUSIVE or SHARED"),
        (_service(ty="WORKFLOW", handlers=[{"name": "h", "ty": "SHARED"}]), "exactly one handler of type WORKFLOW"),
        (_service(handlers=[{"name": "h", "inactivityTimeout": -1}]), "inactivityTimeout: must be at least 0"),
        (_service(handlers=[{"name": "h", "inactivityTimeout": "1s"}]), "inactivityTimeout: expected an integer"),
        (_service(handlers=[{"name": "h", "workflowCompletionRetention": 5}]), "only a WORKFLOW handler"),
        # A u64 the SDK may send; it used to overflow timedelta (a 500) or be kept as a
        # retention ending after 9999-12-31, which the engine cannot store.
        (_service(handlers=[{"name": "h", "idempotencyRetention": 2**64 - 1}]), "longer than 1000 years"),
        (_service(journalRetention=40_000 * 365 * 86_400_000), "journalRetention: .* longer than 1000 years"),
        (_service(retryPolicyOnMaxAttempts="RETRY"), "'RETRY' is not one of PAUSE, KILL"),
        (_service(metadata={"a": 1}), "metadata: expected an object of strings"),
        ({**_service(), "minProtocolVersion": 7, "maxProtocolVersion": 5}, "minProtocolVersion 7 is above"),
        ({**_service(), "services": []}, "the endpoint serves no services"),
    ],
)
def test_invalid_manifests_name_the_offending_field(document: Any, complaint: str) -> None:
    with pytest.raises(InvalidManifest, match=complaint):
        parse_manifest(4, document)


def test_manifest_content_types() -> None:
    assert manifest_content_type(4) == "application/vnd.restate.endpointmanifest.v4+json"
    assert manifest_version_of("application/vnd.restate.endpointmanifest.v3+json; charset=utf-8") == 3
    assert manifest_version_of("application/json") is None
    assert manifest_version_of(None) is None
    with pytest.raises(InvalidManifest, match="v5 is not supported"):
        parse_manifest(5, V4_SAMPLE)
