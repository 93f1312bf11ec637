"""The typed cluster metadata: deployments, the services they expose, their handlers.

A *deployment* is one registered service endpoint (a URI the engine calls). Discovery
asks it for its manifest; each service in it becomes a *service revision*: revision 1
the first time a service name appears, one more each time a deployment that exposes it
is registered. The highest revision of a name is the one new invocations go to; older
deployments stay registered (and readable) for invocations already pinned to them.

Options (timeouts, retention, retry policy, visibility) are ``None`` when nobody set
them; :func:`effective_settings` resolves handler option > service option > engine
default. The defaults below are the engine's, the same values restate-server 1.7 uses
out of the box.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, TypeAlias, TypeVar

from engine.ids import DeploymentId

__all__ = [
    "DEFAULT_ABORT_TIMEOUT",
    "DEFAULT_IDEMPOTENCY_RETENTION",
    "DEFAULT_INACTIVITY_TIMEOUT",
    "DEFAULT_JOURNAL_RETENTION",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_WORKFLOW_COMPLETION_RETENTION",
    "Deployment",
    "EffectiveRetryPolicy",
    "HandlerMetadata",
    "HandlerType",
    "InputPayload",
    "InvocationSettings",
    "JsonValue",
    "OnMaxAttempts",
    "Options",
    "OutputPayload",
    "ProtocolType",
    "ResolvedHandler",
    "RetryPolicy",
    "ServiceDefinition",
    "ServiceMetadata",
    "ServiceType",
    "effective_retry_policy",
    "effective_settings",
]

JsonValue: TypeAlias = Any
"""A decoded JSON value (here: a JSON schema, which may be an object or ``true``)."""


class ServiceType(Enum):
    """How invocations of a service are keyed and serialized."""

    SERVICE = "SERVICE"
    """Stateless; invocations run concurrently, no key."""
    VIRTUAL_OBJECT = "VIRTUAL_OBJECT"
    """Keyed state; exclusive handlers run one at a time per key."""
    WORKFLOW = "WORKFLOW"
    """Keyed; the workflow handler runs once per key, shared handlers interact with it."""

    @property
    def api_name(self) -> str:
        """The admin API spelling: ``Service``, ``VirtualObject``, ``Workflow``."""
        return _API_NAMES[self]


class HandlerType(Enum):
    """How a handler of a keyed service shares its key with others."""

    EXCLUSIVE = "EXCLUSIVE"
    SHARED = "SHARED"
    WORKFLOW = "WORKFLOW"

    @property
    def api_name(self) -> str:
        """The admin API spelling: ``Exclusive``, ``Shared``, ``Workflow``."""
        return _API_NAMES[self]


class ProtocolType(Enum):
    """How the engine talks to an endpoint (its manifest's ``protocolMode``)."""

    REQUEST_RESPONSE = "REQUEST_RESPONSE"
    """One HTTP request per attempt; the endpoint suspends when it must wait."""
    BIDI_STREAM = "BIDI_STREAM"
    """One full-duplex HTTP/2 stream per attempt."""

    @property
    def api_name(self) -> str:
        """The admin API spelling: ``RequestResponse``, ``BidiStream``."""
        return _API_NAMES[self]


class OnMaxAttempts(Enum):
    """What happens to an invocation whose retries are exhausted."""

    PAUSE = "PAUSE"
    """Park it until an operator resumes (or kills) it."""
    KILL = "KILL"
    """Fail it terminally."""

    @property
    def api_name(self) -> str:
        """The admin API spelling: ``Pause``, ``Kill``."""
        return _API_NAMES[self]


_API_NAMES: dict[Enum, str] = {
    ServiceType.SERVICE: "Service",
    ServiceType.VIRTUAL_OBJECT: "VirtualObject",
    ServiceType.WORKFLOW: "Workflow",
    HandlerType.EXCLUSIVE: "Exclusive",
    HandlerType.SHARED: "Shared",
    HandlerType.WORKFLOW: "Workflow",
    ProtocolType.REQUEST_RESPONSE: "RequestResponse",
    ProtocolType.BIDI_STREAM: "BidiStream",
    OnMaxAttempts.PAUSE: "Pause",
    OnMaxAttempts.KILL: "Kill",
}

DEFAULT_IDEMPOTENCY_RETENTION = timedelta(days=1)
"""How long the result of a request with an idempotency key is kept."""
DEFAULT_WORKFLOW_COMPLETION_RETENTION = timedelta(days=1)
"""How long a finished workflow's result (and its key) is kept."""
DEFAULT_JOURNAL_RETENTION = timedelta(days=1)
"""How long a finished invocation's journal is kept for inspection."""
DEFAULT_INACTIVITY_TIMEOUT = timedelta(minutes=1)
"""Silence from an endpoint after which the engine asks the invocation to suspend."""
DEFAULT_ABORT_TIMEOUT = timedelta(minutes=10)
"""Time after the suspension request until the attempt is aborted."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retry settings as an endpoint (or operator) set them; ``None`` = not set."""

    initial_interval: timedelta | None = None
    exponentiation_factor: float | None = None
    max_attempts: int | None = None
    """Attempts including the first; 1 means no retries."""
    max_interval: timedelta | None = None
    on_max_attempts: OnMaxAttempts | None = None


@dataclass(frozen=True)
class EffectiveRetryPolicy:
    """A fully resolved retry policy."""

    initial_interval: timedelta
    exponentiation_factor: float
    max_attempts: int | None
    """``None`` retries forever."""
    max_interval: timedelta | None
    """``None`` lets the interval grow without bound."""
    on_max_attempts: OnMaxAttempts


DEFAULT_RETRY_POLICY = EffectiveRetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    exponentiation_factor=2.0,
    max_attempts=70,
    max_interval=timedelta(minutes=1),
    on_max_attempts=OnMaxAttempts.PAUSE,
)
"""Retry policy of services and handlers that configure none."""


@dataclass(frozen=True)
class Options:
    """Per-service or per-handler invocation options; every field ``None`` = not set.

    On a handler, a set value overrides the service's. ``workflow_completion_retention``
    is a service-level setting of workflows (taken from the workflow handler at
    registration); ``idempotency_retention`` does not apply to workflow handlers.
    """

    inactivity_timeout: timedelta | None = None
    abort_timeout: timedelta | None = None
    idempotency_retention: timedelta | None = None
    journal_retention: timedelta | None = None
    workflow_completion_retention: timedelta | None = None
    enable_lazy_state: bool | None = None
    ingress_private: bool | None = None
    """True: not callable through the HTTP or Kafka ingress, only from other services."""
    retry_policy: RetryPolicy = RetryPolicy()


@dataclass(frozen=True)
class InputPayload:
    """What a handler accepts as its request body."""

    content_type: str | None = "*/*"
    """Accepted content type (``Accept``-style wildcards allowed); ``None``: no body."""
    required: bool = False
    """True: a body with a content type must be sent, even if empty."""
    json_schema: JsonValue = None
    """JSON schema of the body, if the endpoint gave one (``None`` = none given)."""


@dataclass(frozen=True)
class OutputPayload:
    """What a handler answers with."""

    content_type: str | None = "application/json"
    """Content type of the response; ``None``: the handler answers without a body."""
    set_content_type_if_empty: bool = False
    json_schema: JsonValue = None


@dataclass(frozen=True)
class HandlerMetadata:
    """One handler of a service, as its endpoint declared it."""

    name: str
    ty: HandlerType | None
    """``None`` for handlers of plain services (they have no key to share)."""
    input: InputPayload = InputPayload()
    output: OutputPayload = OutputPayload()
    documentation: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    options: Options = Options()


@dataclass(frozen=True)
class ServiceDefinition:
    """A service as its endpoint declares it in the discovery manifest."""

    name: str
    ty: ServiceType
    handlers: tuple[HandlerMetadata, ...]
    documentation: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    options: Options = Options()

    def handler(self, name: str) -> HandlerMetadata | None:
        """The handler called ``name``, if the service has one."""
        return next((h for h in self.handlers if h.name == name), None)


@dataclass(frozen=True)
class ServiceMetadata:
    """One registered revision of a service: its definition, number and deployment."""

    definition: ServiceDefinition
    revision: int
    deployment_id: DeploymentId

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def ty(self) -> ServiceType:
        return self.definition.ty

    @property
    def handlers(self) -> tuple[HandlerMetadata, ...]:
        return self.definition.handlers

    @property
    def options(self) -> Options:
        return self.definition.options

    @property
    def public(self) -> bool:
        """Callable through the ingress (unless a handler is private itself)."""
        return not self.options.ingress_private

    def handler(self, name: str) -> HandlerMetadata | None:
        """The handler called ``name``, if this revision has one."""
        return self.definition.handler(name)

    def with_options(self, options: Options) -> ServiceMetadata:
        """This revision with its service-level options replaced (``PATCH /services``)."""
        return dataclasses.replace(self, definition=dataclasses.replace(self.definition, options=options))


@dataclass(frozen=True)
class Deployment:
    """A registered service endpoint and the service revisions it serves."""

    id: DeploymentId
    uri: str
    """Normalized absolute URI; invocations go to ``{uri}/invoke/{service}/{handler}``."""
    protocol_type: ProtocolType
    min_protocol_version: int
    max_protocol_version: int
    created_at: datetime
    """When it was registered (UTC, millisecond precision)."""
    services: tuple[ServiceMetadata, ...]
    http_version: str = "HTTP/1.1"
    """HTTP version the engine uses to call it, as the admin API prints it."""
    use_http_11: bool = False
    """What the registration asked for (logstrate calls endpoints over HTTP/1.1 either way)."""
    additional_headers: Mapping[str, str] = field(default_factory=dict)
    """Sent with every discovery and invocation request; names lower-cased."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Free-form metadata given at registration."""
    sdk_version: str | None = None
    """What the endpoint's ``x-restate-server`` header said at discovery."""

    def service(self, name: str) -> ServiceMetadata | None:
        """This deployment's revision of service ``name``, if it serves it."""
        return next((s for s in self.services if s.name == name), None)


@dataclass(frozen=True)
class InvocationSettings:
    """Options of one handler with handler > service > default resolution applied."""

    public: bool
    idempotency_retention: timedelta
    journal_retention: timedelta
    workflow_completion_retention: timedelta | None
    """Only for workflow services."""
    inactivity_timeout: timedelta
    abort_timeout: timedelta
    enable_lazy_state: bool
    retry_policy: EffectiveRetryPolicy


@dataclass(frozen=True)
class ResolvedHandler:
    """Where an invocation of ``service/handler`` goes: the latest revision and its deployment."""

    deployment: Deployment
    service: ServiceMetadata
    handler: HandlerMetadata

    @property
    def settings(self) -> InvocationSettings:
        """The effective options of this handler (the built-in default retry policy)."""
        return effective_settings(self.service, self.handler)


def effective_settings(
    service: ServiceMetadata, handler: HandlerMetadata, default_retry: EffectiveRetryPolicy | None = None
) -> InvocationSettings:
    """Resolve each option: the handler's if set, else the service's, else the default
    (for the retry policy: ``default_retry``, the engine's configured default, else
    :data:`DEFAULT_RETRY_POLICY`)."""
    svc, hdl = service.options, handler.options
    workflow = service.ty is ServiceType.WORKFLOW
    return InvocationSettings(
        public=service.public and not hdl.ingress_private,
        idempotency_retention=_first(hdl.idempotency_retention, svc.idempotency_retention, default=DEFAULT_IDEMPOTENCY_RETENTION),
        journal_retention=_first(hdl.journal_retention, svc.journal_retention, default=DEFAULT_JOURNAL_RETENTION),
        workflow_completion_retention=(
            _first(
                svc.workflow_completion_retention,
                hdl.workflow_completion_retention,
                default=DEFAULT_WORKFLOW_COMPLETION_RETENTION,
            )
            if workflow
            else None
        ),
        inactivity_timeout=_first(hdl.inactivity_timeout, svc.inactivity_timeout, default=DEFAULT_INACTIVITY_TIMEOUT),
        abort_timeout=_first(hdl.abort_timeout, svc.abort_timeout, default=DEFAULT_ABORT_TIMEOUT),
        enable_lazy_state=_first(hdl.enable_lazy_state, svc.enable_lazy_state, default=False),
        retry_policy=effective_retry_policy(svc.retry_policy, hdl.retry_policy, default_retry),
    )


def effective_retry_policy(
    service: RetryPolicy, handler: RetryPolicy = RetryPolicy(), default: EffectiveRetryPolicy | None = None
) -> EffectiveRetryPolicy:
    """Resolve each retry setting: handler's, else service's, else ``default`` (the
    engine's configured default retry policy; :data:`DEFAULT_RETRY_POLICY` if ``None``)."""
    d = DEFAULT_RETRY_POLICY if default is None else default
    h, s = handler, service
    return EffectiveRetryPolicy(
        initial_interval=_first(h.initial_interval, s.initial_interval, default=d.initial_interval),
        exponentiation_factor=_first(h.exponentiation_factor, s.exponentiation_factor, default=d.exponentiation_factor),
        max_attempts=_first(h.max_attempts, s.max_attempts, default=d.max_attempts),
        max_interval=_first(h.max_interval, s.max_interval, default=d.max_interval),
        on_max_attempts=_first(h.on_max_attempts, s.on_max_attempts, default=d.on_max_attempts),
    )


_T = TypeVar("_T")


def _first(*values: _T | None, default: _T) -> _T:
    return next((v for v in values if v is not None), default)
