"""The endpoint manifest answered on ``GET /discover``.

The runtime offers the manifest versions it reads in its ``accept`` header
(restate-server 1.7 and logstrate offer ``application/vnd.restate.endpointmanifest.v1+json``
to ``v4+json``); the endpoint answers the highest one it writes, naming it in
``content-type``. Fields that a version does not define are left out of that version
(restate-server refuses unknown fields): ``documentation``/``metadata`` need v2, the
timeouts, retentions, ``ingressPrivate`` and ``enableLazyState`` need v3. Avro inputs
and outputs publish their schema in the handler's ``metadata`` (``avro.input.schema``,
``avro.output.schema``), since the manifest only knows JSON schemas.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Final

from restate_protocol.versions import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION
from sdk.avro import AvroSerde
from sdk.serde import BytesSerde
from sdk.service import HandlerDef, HandlerOptions, ServiceDef

__all__ = [
    "MANIFEST_VERSIONS",
    "build_manifest",
    "manifest_content_type",
    "negotiate_manifest_version",
]

#: Manifest versions this SDK writes.
MANIFEST_VERSIONS: Final = (1, 2, 3, 4)
_PREFIX: Final = "application/vnd.restate.endpointmanifest.v"
_SUFFIX: Final = "+json"


def manifest_content_type(version: int) -> str:
    """``application/vnd.restate.endpointmanifest.v{N}+json``."""
    return f"{_PREFIX}{version}{_SUFFIX}"


def negotiate_manifest_version(accept: str | None) -> int | None:
    """The highest manifest version both the ``accept`` header and this SDK allow.

    A missing header or ``*/*`` means any version. ``None`` when nothing matches.
    """
    if not accept:
        return max(MANIFEST_VERSIONS)
    offered: set[int] = set()
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ("*/*", "application/*"):
            return max(MANIFEST_VERSIONS)
        if media.startswith(_PREFIX) and media.endswith(_SUFFIX):
            number = media[len(_PREFIX) : -len(_SUFFIX)]
            if number.isdigit():
                offered.add(int(number))
    usable = offered.intersection(MANIFEST_VERSIONS)
    return max(usable) if usable else None


def _ms(value: timedelta | None) -> int | None:
    return None if value is None else int(value / timedelta(milliseconds=1))


def _options(options: HandlerOptions, version: int, *, handler_kind: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if version >= 2:
        if options.documentation:
            out["documentation"] = options.documentation
        if options.metadata:
            out["metadata"] = dict(options.metadata)
    if version >= 3:
        durations = {
            "inactivityTimeout": options.inactivity_timeout,
            "abortTimeout": options.abort_timeout,
            "journalRetention": options.journal_retention,
            "idempotencyRetention": options.idempotency_retention,
        }
        if handler_kind == "WORKFLOW":
            # A workflow run is not idempotent by key; its retention is its own field.
            durations.pop("idempotencyRetention")
            durations["workflowCompletionRetention"] = options.workflow_retention
        for name, value in durations.items():
            millis = _ms(value)
            if millis is not None:
                out[name] = millis
        if options.ingress_private is not None:
            out["ingressPrivate"] = options.ingress_private
        if options.enable_lazy_state is not None:
            out["enableLazyState"] = options.enable_lazy_state
    return out


def _handler(definition: HandlerDef, version: int) -> dict[str, Any]:
    out: dict[str, Any] = {"name": definition.name}
    if definition.kind is not None:
        out["ty"] = definition.kind
    if not definition.has_input:
        out["input"] = {}
    elif isinstance(definition.input_serde, BytesSerde):
        out["input"] = {"required": False, "contentType": "*/*"}
    else:
        entry: dict[str, Any] = {"required": False, "contentType": definition.input_serde.content_type}
        schema = definition.input_serde.json_schema()
        if schema is not None:
            entry["jsonSchema"] = schema
        out["input"] = entry
    if definition.output_type is None:
        out["output"] = {"setContentTypeIfEmpty": False}
    else:
        result: dict[str, Any] = {
            "contentType": definition.output_serde.content_type,
            "setContentTypeIfEmpty": False,
        }
        schema = definition.output_serde.json_schema()
        if schema is not None:
            result["jsonSchema"] = schema
        out["output"] = result
    out.update(_options(definition.options, version, handler_kind=definition.kind))
    if version >= 2:
        avro = _avro_metadata(definition)
        if avro:
            out["metadata"] = {**out.get("metadata", {}), **avro}
    return out


def _avro_metadata(definition: HandlerDef) -> dict[str, str]:
    """Avro schemas of the handler's input/output: discovery has no field for them."""
    out: dict[str, str] = {}
    if definition.has_input and isinstance(definition.input_serde, AvroSerde):
        out["avro.input.schema"] = definition.input_serde.schema_json()
    if definition.output_type is not None and isinstance(definition.output_serde, AvroSerde):
        out["avro.output.schema"] = definition.output_serde.schema_json()
    return out


def build_manifest(services: Iterable[ServiceDef], version: int) -> dict[str, Any]:
    """The manifest of ``services`` in manifest ``version`` (request/response mode)."""
    return {
        "protocolMode": "REQUEST_RESPONSE",
        "minProtocolVersion": int(MIN_PROTOCOL_VERSION),
        "maxProtocolVersion": int(MAX_PROTOCOL_VERSION),
        "services": [
            {
                "name": service.name,
                "ty": service.kind,
                "handlers": [_handler(h, version) for h in service.handlers.values()],
                **_options(service.options, version, handler_kind=None),
            }
            for service in services
        ],
    }
