"""Parsing and validating an endpoint's discovery manifest (``GET /discover``).

The endpoint answers with ``application/vnd.restate.endpointmanifest.vN+json``; the
version decides which fields exist. Fields of a newer version in an older manifest are
ignored (the endpoint did not mean them for us), as are fields this engine does not know.

=====  ==============================================================================
v1     ``protocolMode``, ``minProtocolVersion``, ``maxProtocolVersion``; services with
       ``name``, ``ty`` and handlers with ``name``, ``ty``, ``input``, ``output``
v2     ``documentation`` and ``metadata`` on services and handlers
v3     ``inactivityTimeout``, ``abortTimeout``, ``journalRetention``,
       ``idempotencyRetention``, ``enableLazyState``, ``ingressPrivate`` on services and
       handlers, ``workflowCompletionRetention`` on workflow handlers (durations in ms)
v4     ``retryPolicyInitialInterval``, ``retryPolicyMaxInterval`` (ms),
       ``retryPolicyMaxAttempts``, ``retryPolicyExponentiationFactor``,
       ``retryPolicyOnMaxAttempts`` (``PAUSE`` | ``KILL``) on services and handlers
=====  ==============================================================================

Handler types default to ``EXCLUSIVE`` in virtual objects and ``WORKFLOW`` in workflows;
handlers of plain services have none. A workflow has exactly one ``WORKFLOW`` handler.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import Enum
from typing import Any, Final, TypeVar

from engine.egress import EGRESS_SERVICE
from engine.metadata.errors import InvalidManifest
from engine.metadata.model import (
    HandlerMetadata,
    HandlerType,
    InputPayload,
    OnMaxAttempts,
    Options,
    OutputPayload,
    ProtocolType,
    RetryPolicy,
    ServiceDefinition,
    ServiceType,
)

__all__ = [
    "BUILTIN_NAMESPACE",
    "MANIFEST_CONTENT_TYPE_PREFIX",
    "MAX_MANIFEST_VERSION",
    "MIN_MANIFEST_VERSION",
    "EndpointManifest",
    "manifest_content_type",
    "manifest_version_of",
    "parse_manifest",
]

MIN_MANIFEST_VERSION: Final = 1
MAX_MANIFEST_VERSION: Final = 4
MANIFEST_CONTENT_TYPE_PREFIX: Final = "application/vnd.restate.endpointmanifest.v"

_E = TypeVar("_E", bound=Enum)

_SERVICE_NAME = re.compile(r"([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9._-]*")
_HANDLER_NAME = re.compile(r"([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9_]*")
# Path segments the ingress owns; a service with such a name could never be called.
_RESERVED_SERVICE_PREFIXES: Final = ("restate",)
_RESERVED_SERVICE_NAMES: Final = frozenset(("openapi",))
# The engine's built-in services (logstrate.KafkaEgress) live in this namespace and are
# resolved before any deployment: a user service there would shadow one or be shadowed.
BUILTIN_NAMESPACE: Final = "logstrate."


# The longest duration a manifest may give (retention, timeouts), in ms.
_MAX_MILLIS = 1000 * 365 * 24 * 3600 * 1000


@dataclass(frozen=True)
class EndpointManifest:
    """What an endpoint declared about itself."""

    manifest_version: int
    protocol_type: ProtocolType
    min_protocol_version: int
    max_protocol_version: int
    services: tuple[ServiceDefinition, ...]


def manifest_content_type(version: int) -> str:
    """``application/vnd.restate.endpointmanifest.v{version}+json``."""
    return f"{MANIFEST_CONTENT_TYPE_PREFIX}{version}+json"


def manifest_version_of(content_type: str | None) -> int | None:
    """The manifest version a response ``content-type`` names, or ``None`` if it names none."""
    if content_type is None:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not (media_type.startswith(MANIFEST_CONTENT_TYPE_PREFIX) and media_type.endswith("+json")):
        return None
    number = media_type[len(MANIFEST_CONTENT_TYPE_PREFIX) : -len("+json")]
    return int(number) if number.isascii() and number.isdigit() else None


def parse_manifest(version: int, document: Any) -> EndpointManifest:
    """Validate a decoded manifest of ``version`` and turn it into typed definitions.

    Raises:
        InvalidManifest: the document breaks the schema or its rules; the message names
            the offending field, e.g. ``services[1].handlers[0].ty``.
    """
    if not MIN_MANIFEST_VERSION <= version <= MAX_MANIFEST_VERSION:
        raise InvalidManifest(
            f"endpoint manifest v{version} is not supported; logstrate reads v{MIN_MANIFEST_VERSION} "
            f"to v{MAX_MANIFEST_VERSION}"
        )
    root = _Obj(document, "manifest")
    mode = root.enum("protocolMode", ProtocolType, required=True)
    assert mode is not None
    min_version = root.integer("minProtocolVersion", minimum=1, required=True)
    max_version = root.integer("maxProtocolVersion", minimum=1, required=True)
    assert min_version is not None and max_version is not None
    if min_version > max_version:
        raise InvalidManifest(
            f"manifest: minProtocolVersion {min_version} is above maxProtocolVersion {max_version}"
        )
    services = tuple(_service(item, version) for item in root.objects("services"))
    if not services:
        raise InvalidManifest("manifest.services: the endpoint serves no services; bind at least one service to it")
    _unique([s.name for s in services], "manifest.services", "service")
    return EndpointManifest(version, mode, min_version, max_version, services)


def _service(obj: _Obj, version: int) -> ServiceDefinition:
    name = obj.string("name", required=True)
    assert name is not None
    if not _SERVICE_NAME.fullmatch(name):
        raise InvalidManifest(
            f"{obj.path}.name: {name!r} is not a valid service name (letters, digits, '.', '_' "
            "and '-', starting with a letter or '_' and a letter or digit)"
        )
    lowered = name.lower()
    if lowered.startswith(BUILTIN_NAMESPACE):
        raise InvalidManifest(
            f"{obj.path}.name: service name {name!r} is reserved: the '{BUILTIN_NAMESPACE}' namespace holds the "
            f"engine's built-in services ({EGRESS_SERVICE}); rename the service"
        )
    if lowered.startswith(_RESERVED_SERVICE_PREFIXES) or lowered in _RESERVED_SERVICE_NAMES:
        raise InvalidManifest(f"{obj.path}.name: service name {name!r} is reserved; rename the service")
    ty = obj.enum("ty", ServiceType, required=True)
    assert ty is not None
    handlers = tuple(_handler(item, ty, version) for item in obj.objects("handlers", required=True))
    _unique([h.name for h in handlers], f"{obj.path}.handlers", "handler")
    options = _options(obj, version)
    if ty is ServiceType.WORKFLOW:
        workflow_handlers = [h for h in handlers if h.ty is HandlerType.WORKFLOW]
        if len(workflow_handlers) != 1:
            raise InvalidManifest(
                f"{obj.path}: workflow {name!r} must have exactly one handler of type WORKFLOW, "
                f"it has {len(workflow_handlers)}"
            )
        # The completion retention belongs to the workflow as a whole.
        options = replace(options, workflow_completion_retention=workflow_handlers[0].options.workflow_completion_retention)
    return ServiceDefinition(
        name=name,
        ty=ty,
        handlers=handlers,
        documentation=obj.string("documentation") if version >= 2 else None,
        metadata=obj.string_map("metadata") if version >= 2 else {},
        options=options,
    )


def _handler(obj: _Obj, service_type: ServiceType, version: int) -> HandlerMetadata:
    name = obj.string("name", required=True)
    assert name is not None
    if not _HANDLER_NAME.fullmatch(name):
        raise InvalidManifest(
            f"{obj.path}.name: {name!r} is not a valid handler name (letters, digits and '_', "
            "starting with a letter or '_' and a letter or digit)"
        )
    ty = _handler_type(obj, service_type)
    options = _options(obj, version, handler=True)
    if options.workflow_completion_retention is not None and ty is not HandlerType.WORKFLOW:
        raise InvalidManifest(f"{obj.path}.workflowCompletionRetention: only a WORKFLOW handler can set it")
    if options.idempotency_retention is not None and ty is HandlerType.WORKFLOW:
        raise InvalidManifest(
            f"{obj.path}.idempotencyRetention: a WORKFLOW handler cannot set it (use workflowCompletionRetention)"
        )
    return HandlerMetadata(
        name=name,
        ty=ty,
        input=_input(obj.object("input")),
        output=_output(obj.object("output")),
        documentation=obj.string("documentation") if version >= 2 else None,
        metadata=obj.string_map("metadata") if version >= 2 else {},
        options=options,
    )


_ALLOWED_HANDLER_TYPES: Final = {
    ServiceType.VIRTUAL_OBJECT: (HandlerType.EXCLUSIVE, HandlerType.SHARED),
    ServiceType.WORKFLOW: (HandlerType.WORKFLOW, HandlerType.SHARED),
}


def _handler_type(obj: _Obj, service_type: ServiceType) -> HandlerType | None:
    ty = obj.enum("ty", HandlerType)
    if service_type is ServiceType.SERVICE:
        # Handlers of plain services have no key to share; SHARED says nothing more.
        if ty not in (None, HandlerType.SHARED):
            raise InvalidManifest(f"{obj.path}.ty: handlers of a SERVICE cannot be {ty.value if ty else ty}")
        return None
    allowed = _ALLOWED_HANDLER_TYPES[service_type]
    if ty is None:
        return allowed[0]
    if ty not in allowed:
        raise InvalidManifest(
            f"{obj.path}.ty: a {service_type.value} handler must be {' or '.join(a.value for a in allowed)}, "
            f"got {ty.value}"
        )
    return ty


def _input(obj: _Obj | None) -> InputPayload:
    if obj is None:
        return InputPayload()
    return InputPayload(
        content_type=obj.string("contentType"),
        required=bool(obj.boolean("required")),
        json_schema=obj.raw("jsonSchema"),
    )


def _output(obj: _Obj | None) -> OutputPayload:
    if obj is None:
        return OutputPayload()
    return OutputPayload(
        content_type=obj.string("contentType"),
        set_content_type_if_empty=bool(obj.boolean("setContentTypeIfEmpty")),
        json_schema=obj.raw("jsonSchema"),
    )


def _options(obj: _Obj, version: int, *, handler: bool = False) -> Options:
    if version < 3:
        return Options()
    retry = RetryPolicy()
    if version >= 4:
        attempts = obj.integer("retryPolicyMaxAttempts", minimum=0)
        factor = obj.number("retryPolicyExponentiationFactor")
        if factor is not None and factor <= 0:
            raise InvalidManifest(f"{obj.path}.retryPolicyExponentiationFactor: must be positive, got {factor}")
        retry = RetryPolicy(
            initial_interval=obj.millis("retryPolicyInitialInterval"),
            exponentiation_factor=factor,
            # Zero attempts cannot mean anything but "no retries", which is one attempt.
            max_attempts=None if attempts is None else max(attempts, 1),
            max_interval=obj.millis("retryPolicyMaxInterval"),
            on_max_attempts=obj.enum("retryPolicyOnMaxAttempts", OnMaxAttempts),
        )
    return Options(
        inactivity_timeout=obj.millis("inactivityTimeout"),
        abort_timeout=obj.millis("abortTimeout"),
        idempotency_retention=obj.millis("idempotencyRetention"),
        journal_retention=obj.millis("journalRetention"),
        workflow_completion_retention=obj.millis("workflowCompletionRetention") if handler else None,
        enable_lazy_state=obj.boolean("enableLazyState"),
        ingress_private=obj.boolean("ingressPrivate"),
        retry_policy=retry,
    )


def _unique(names: list[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidManifest(f"{path}: {what} {name!r} is declared twice")
        seen.add(name)


class _Obj:
    """A JSON object being read, with the path of where it sits for error messages."""

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise InvalidManifest(f"{path}: expected a JSON object, got {_kind(value)}")
        self.value: Mapping[str, Any] = value
        self.path = path

    def raw(self, key: str) -> Any:
        return self.value.get(key)

    def _get(self, key: str, required: bool) -> Any:
        value = self.value.get(key)
        if value is None and required:
            raise InvalidManifest(f"{self.path}.{key}: missing")
        return value

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is not None and not isinstance(value, str):
            raise InvalidManifest(f"{self.path}.{key}: expected a string, got {_kind(value)}")
        return value

    def boolean(self, key: str) -> bool | None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, bool):
            raise InvalidManifest(f"{self.path}.{key}: expected true or false, got {_kind(value)}")
        return value

    def integer(self, key: str, *, minimum: int, required: bool = False) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidManifest(f"{self.path}.{key}: expected an integer, got {_kind(value)}")
        if value < minimum:
            raise InvalidManifest(f"{self.path}.{key}: must be at least {minimum}, got {value}")
        return value

    def number(self, key: str) -> float | None:
        value = self._get(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidManifest(f"{self.path}.{key}: expected a number, got {_kind(value)}")
        return float(value)

    def millis(self, key: str) -> timedelta | None:
        value = self.integer(key, minimum=0)
        if value is not None and value > _MAX_MILLIS:
            # Retention and timer times are stored as epoch ms up to 9999-12-31
            # (engine.journal.limits); a longer one would not fit.
            raise InvalidManifest(f"{self.path}.{key}: {value} ms is longer than 1000 years, the most the engine supports")
        return None if value is None else timedelta(milliseconds=value)

    def enum(self, key: str, enum: type[_E], *, required: bool = False) -> _E | None:
        value = self.string(key, required=required)
        if value is None:
            return None
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise InvalidManifest(f"{self.path}.{key}: {value!r} is not one of {allowed}") from None

    def string_map(self, key: str) -> dict[str, str]:
        value = self._get(key, False)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidManifest(f"{self.path}.{key}: expected an object of strings, got {_kind(value)}")
        return dict(value)

    def object(self, key: str) -> _Obj | None:
        value = self._get(key, False)
        return None if value is None else _Obj(value, f"{self.path}.{key}")

    def objects(self, key: str, *, required: bool = True) -> list[_Obj]:
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidManifest(f"{self.path}.{key}: expected an array, got {_kind(value)}")
        return [_Obj(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(value)]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, Mapping) else type(value).__name__
