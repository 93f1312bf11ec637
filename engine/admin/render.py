"""Metadata as the admin API's JSON: the OpenAPI shapes, key order and omissions of restate-server.

Optional fields are left out when they have nothing to say (no documentation, empty
metadata, handler options that are not set), as restate-server does; service-level
options always show their effective value, defaults included.

Inactivity timeouts are not applied to request/response deployments: the engine waits for
each response as a whole, so there is no stream to watch for inactivity. Such services
show ``"inactivity_timeout": "0s"`` and, if one was configured, an ``info`` entry saying
it is ignored (code ``RT0021``, the code restate-server uses for the same notice).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from engine.sensitive_headers import REDACTED, is_sensitive_header
from engine.metadata.durations import format_duration
from engine.metadata.model import (
    DEFAULT_ABORT_TIMEOUT,
    DEFAULT_IDEMPOTENCY_RETENTION,
    DEFAULT_INACTIVITY_TIMEOUT,
    DEFAULT_JOURNAL_RETENTION,
    DEFAULT_WORKFLOW_COMPLETION_RETENTION,
    Deployment,
    EffectiveRetryPolicy,
    HandlerMetadata,
    JsonValue,
    ProtocolType,
    ServiceMetadata,
    ServiceType,
    effective_retry_policy,
)

__all__ = [
    "deployment_json",
    "detailed_deployment_json",
    "handler_json",
    "payload_description",
    "register_json",
    "service_json",
]

_INACTIVITY_NOT_APPLIED: Final = "RT0021"


def deployment_json(deployment: Deployment) -> dict[str, Any]:
    """A ``DeploymentResponse`` (list item): services as name and revision."""
    document = _deployment_head(deployment)
    document["services"] = [{"name": s.name, "revision": s.revision} for s in deployment.services]
    return document


def detailed_deployment_json(deployment: Deployment, default_retry: EffectiveRetryPolicy | None = None) -> dict[str, Any]:
    """A ``DetailedDeploymentResponse``: services in full (this deployment's revisions)."""
    document = _deployment_head(deployment)
    document["services"] = [service_json(s, deployment.protocol_type, default_retry) for s in deployment.services]
    return document


def register_json(deployment: Deployment, default_retry: EffectiveRetryPolicy | None = None) -> dict[str, Any]:
    """A ``RegisterDeploymentResponse``."""
    document: dict[str, Any] = {
        "id": str(deployment.id),
        "services": [service_json(s, deployment.protocol_type, default_retry) for s in deployment.services],
        "min_protocol_version": deployment.min_protocol_version,
        "max_protocol_version": deployment.max_protocol_version,
    }
    if deployment.sdk_version is not None:
        document["sdk_version"] = deployment.sdk_version
    return document


def _deployment_head(deployment: Deployment) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": str(deployment.id),
        "uri": deployment.uri,
        "protocol_type": deployment.protocol_type.api_name,
        "http_version": deployment.http_version,
    }
    if deployment.additional_headers:
        # Credentials (Authorization, Cookie, the configured sensitive names) are not shown.
        document["additional_headers"] = {
            k: REDACTED if is_sensitive_header(k) else v for k, v in deployment.additional_headers.items()
        }
    if deployment.metadata:
        document["metadata"] = dict(deployment.metadata)
    document["created_at"] = _timestamp(deployment.created_at)
    document["min_protocol_version"] = deployment.min_protocol_version
    document["max_protocol_version"] = deployment.max_protocol_version
    if deployment.sdk_version is not None:
        document["sdk_version"] = deployment.sdk_version
    return document


def service_json(
    service: ServiceMetadata, protocol_type: ProtocolType, default_retry: EffectiveRetryPolicy | None = None
) -> dict[str, Any]:
    """A ``ServiceMetadata`` with effective service-level options; the retry policy is the
    service's over ``default_retry`` (the engine's configured default), as restate-server
    shows it over its ``default-retry-policy``."""
    options = service.options
    request_response = protocol_type is ProtocolType.REQUEST_RESPONSE
    document: dict[str, Any] = {
        "name": service.name,
        "ty": service.ty.api_name,
        "handlers": [handler_json(service, h, protocol_type) for h in service.handlers],
    }
    if service.definition.documentation is not None:
        document["documentation"] = service.definition.documentation
    if service.definition.metadata:
        document["metadata"] = dict(service.definition.metadata)
    document["deployment_id"] = str(service.deployment_id)
    document["revision"] = service.revision
    document["public"] = service.public
    document["idempotency_retention"] = _duration(options.idempotency_retention, DEFAULT_IDEMPOTENCY_RETENTION)
    if service.ty is ServiceType.WORKFLOW:
        document["workflow_completion_retention"] = _duration(
            options.workflow_completion_retention, DEFAULT_WORKFLOW_COMPLETION_RETENTION
        )
    document["journal_retention"] = _duration(options.journal_retention, DEFAULT_JOURNAL_RETENTION)
    inactivity = _duration(options.inactivity_timeout, DEFAULT_INACTIVITY_TIMEOUT)
    document["inactivity_timeout"] = "0s" if request_response else inactivity
    document["abort_timeout"] = _duration(options.abort_timeout, DEFAULT_ABORT_TIMEOUT)
    document["enable_lazy_state"] = bool(options.enable_lazy_state)
    retry = effective_retry_policy(options.retry_policy, default=default_retry)
    document["retry_policy"] = {
        "initial_interval": format_duration(retry.initial_interval),
        "exponentiation_factor": retry.exponentiation_factor,
        "max_attempts": retry.max_attempts,
        "max_interval": None if retry.max_interval is None else format_duration(retry.max_interval),
        "on_max_attempts": retry.on_max_attempts.api_name,
    }
    if request_response and options.inactivity_timeout is not None:
        document["info"] = [_inactivity_info(options.inactivity_timeout, "service")]
    return document


def handler_json(service: ServiceMetadata, handler: HandlerMetadata, protocol_type: ProtocolType) -> dict[str, Any]:
    """A ``HandlerMetadata``: handler-level options only where the handler sets them."""
    options = handler.options
    request_response = protocol_type is ProtocolType.REQUEST_RESPONSE
    document: dict[str, Any] = {"name": handler.name}
    if handler.ty is not None:
        document["ty"] = handler.ty.api_name
    if handler.documentation is not None:
        document["documentation"] = handler.documentation
    if handler.metadata:
        document["metadata"] = dict(handler.metadata)
    if options.idempotency_retention is not None:
        document["idempotency_retention"] = format_duration(options.idempotency_retention)
    if options.journal_retention is not None:
        document["journal_retention"] = format_duration(options.journal_retention)
    if options.inactivity_timeout is not None and not request_response:
        document["inactivity_timeout"] = format_duration(options.inactivity_timeout)
    if options.abort_timeout is not None:
        document["abort_timeout"] = format_duration(options.abort_timeout)
    if options.enable_lazy_state is not None:
        document["enable_lazy_state"] = options.enable_lazy_state
    document["public"] = service.public and not options.ingress_private
    document["input_description"] = payload_description(handler.input.content_type, handler.input.json_schema)
    document["output_description"] = payload_description(handler.output.content_type, handler.output.json_schema)
    if handler.input.json_schema is not None:
        document["input_json_schema"] = handler.input.json_schema
    if handler.output.json_schema is not None:
        document["output_json_schema"] = handler.output.json_schema
    retry = options.retry_policy
    retry_json: dict[str, Any] = {}
    if retry.initial_interval is not None:
        retry_json["initial_interval"] = format_duration(retry.initial_interval)
    if retry.exponentiation_factor is not None:
        retry_json["exponentiation_factor"] = retry.exponentiation_factor
    retry_json["max_attempts"] = retry.max_attempts
    if retry.max_interval is not None:
        retry_json["max_interval"] = format_duration(retry.max_interval)
    if retry.on_max_attempts is not None:
        retry_json["on_max_attempts"] = retry.on_max_attempts.api_name
    document["retry_policy"] = retry_json
    if request_response and options.inactivity_timeout is not None:
        document["info"] = [_inactivity_info(options.inactivity_timeout, "handler")]
    return document


def payload_description(content_type: str | None, json_schema: JsonValue) -> str:
    """A one-line human description of a handler's input or output.

    ``none`` without a body, ``JSON <type>`` for JSON with a typed schema, otherwise the
    content type.
    """
    if content_type is None:
        return "none"
    media_type = content_type.split(";", 1)[0].strip().lower()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    if is_json and isinstance(json_schema, dict) and isinstance(json_schema.get("type"), str):
        return f"JSON {json_schema['type']}"
    return content_type


def _inactivity_info(configured: timedelta, owner: str) -> dict[str, str]:
    return {
        "code": _INACTIVITY_NOT_APPLIED,
        "message": (
            f"inactivity_timeout {format_duration(configured)} of this {owner} has no effect: its deployment "
            "serves request/response, where each response is awaited as a whole"
        ),
    }


def _timestamp(value: datetime) -> str:
    # RFC 3339 in UTC with nanosecond digits, as restate-server prints it.
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond * 1000:09d}Z"


def _duration(value: timedelta | None, default: timedelta) -> str:
    return format_duration(default if value is None else value)
