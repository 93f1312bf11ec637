"""Declaring services: :class:`Service`, :class:`VirtualObject`, :class:`Workflow`.

A handler is an ``async def`` taking the context and at most one input; its type
annotations choose the serdes and the JSON schemas published in discovery::

    greeter = Service("Greeter")

    @greeter.handler()
    async def greet(ctx: Context, name: str) -> str:
        return f"Hello {name}!"

The decorator returns the function unchanged (so it stays callable and typed) with its
:class:`HandlerDef` attached; ``ctx.service_call(greet, "Ada")`` reads it from there.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeVar

from sdk.avro import AvroSerde, is_record_type
from sdk.errors import HandlerDefinitionError
from sdk.serde import BytesSerde, Serde, serde_for

__all__ = [
    "HandlerDef",
    "HandlerOptions",
    "Service",
    "ServiceDef",
    "VirtualObject",
    "Workflow",
    "handler_def_of",
]

ServiceKind = Literal["SERVICE", "VIRTUAL_OBJECT", "WORKFLOW"]
HandlerKind = Literal["EXCLUSIVE", "SHARED", "WORKFLOW"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_ATTRIBUTE = "__logstrate_handler__"


@dataclass(frozen=True)
class HandlerOptions:
    """Options published in discovery (manifest v3+); ``None`` leaves the server default.

    Attributes:
        inactivity_timeout: How long the runtime waits for the endpoint to make
            progress before asking it to suspend.
        abort_timeout: How long after the inactivity timeout the attempt is aborted.
        journal_retention: How long the journal is kept after completion.
        idempotency_retention: How long an idempotent result is kept.
        workflow_retention: Workflows only: how long a completed workflow's state and
            result are kept (``workflowCompletionRetention``).
        ingress_private: When true, only other handlers may call it, not the ingress.
        enable_lazy_state: When true, the runtime sends no eager state; reads fetch it.
        documentation: Free text shown by the admin tooling.
        metadata: String key/values shown by the admin tooling.
    """

    inactivity_timeout: timedelta | None = None
    abort_timeout: timedelta | None = None
    journal_retention: timedelta | None = None
    idempotency_retention: timedelta | None = None
    workflow_retention: timedelta | None = None
    ingress_private: bool | None = None
    enable_lazy_state: bool | None = None
    documentation: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class HandlerDef:
    """Everything the SDK knows about one handler."""

    service_name: str
    service_kind: ServiceKind
    name: str
    kind: HandlerKind | None
    fn: Callable[..., Awaitable[Any]]
    has_input: bool
    input_type: Any
    output_type: Any
    input_serde: Serde[Any]
    output_serde: Serde[Any]
    options: HandlerOptions = field(default_factory=HandlerOptions)

    @property
    def label(self) -> str:
        """``Service/handler``, for logs and error messages."""
        return f"{self.service_name}/{self.name}"


def handler_def_of(fn: Any) -> HandlerDef:
    """The :class:`HandlerDef` of a decorated handler function.

    Raises:
        HandlerDefinitionError: ``fn`` is not a handler declared with this SDK.
    """
    found = getattr(fn, _ATTRIBUTE, None)
    if not isinstance(found, HandlerDef):
        raise HandlerDefinitionError(
            f"{fn!r} is not a handler: decorate it with @service.handler() first"
        )
    return found


def _signature_types(fn: Callable[..., Any]) -> tuple[bool, Any, Any]:
    params = list(inspect.signature(fn).parameters.values())
    if not params or len(params) > 2:
        raise HandlerDefinitionError(
            f"handler {fn.__qualname__} must take (ctx) or (ctx, input), "
            f"it takes {len(params)} parameters"
        )
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: treat as Any
        hints = {}
    has_input = len(params) == 2
    input_type = hints.get(params[1].name, Any) if has_input else None
    output_type = hints.get("return", Any)
    if output_type is type(None):
        output_type = None
    return has_input, input_type, output_type


def _bind(serde: Serde[Any] | None, annotation: Any) -> Serde[Any] | None:
    """An explicit serde, taught the handler's annotation where it can use it: an
    :class:`AvroSerde` without ``record_type`` decodes into an annotated dataclass."""
    if isinstance(serde, AvroSerde) and serde.record_type is None and is_record_type(annotation):
        return serde.with_record_type(annotation)
    return serde


class ServiceDef:
    """Common base of :class:`Service`, :class:`VirtualObject` and :class:`Workflow`."""

    kind: ServiceKind = "SERVICE"

    def __init__(
        self,
        name: str,
        *,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None,
        ingress_private: bool | None = None,
        enable_lazy_state: bool | None = None,
    ) -> None:
        if not name:
            raise HandlerDefinitionError("a service needs a name")
        self.name = name
        self.options = HandlerOptions(
            inactivity_timeout=inactivity_timeout,
            abort_timeout=abort_timeout,
            journal_retention=journal_retention,
            idempotency_retention=idempotency_retention,
            ingress_private=ingress_private,
            enable_lazy_state=enable_lazy_state,
            documentation=description,
            metadata=metadata,
        )
        self.handlers: dict[str, HandlerDef] = {}

    def _register(
        self,
        fn: F,
        *,
        name: str | None,
        kind: HandlerKind | None,
        input_serde: Serde[Any] | None,
        output_serde: Serde[Any] | None,
        options: HandlerOptions,
    ) -> F:
        if not inspect.iscoroutinefunction(typing.cast(Callable[..., Any], fn)):
            raise HandlerDefinitionError(f"handler {fn.__qualname__} must be an async def")
        handler_name = name or fn.__name__
        if handler_name in self.handlers:
            raise HandlerDefinitionError(f"{self.name} already has a handler {handler_name!r}")
        has_input, input_type, output_type = _signature_types(fn)
        in_serde = _bind(input_serde, input_type) or (
            serde_for(input_type) if has_input else BytesSerde()
        )
        out_serde = _bind(output_serde, output_type) or serde_for(output_type)
        definition = HandlerDef(
            service_name=self.name,
            service_kind=self.kind,
            name=handler_name,
            kind=kind,
            fn=fn,
            has_input=has_input,
            input_type=input_type,
            output_type=output_type,
            input_serde=in_serde,
            output_serde=out_serde,
            options=options,
        )
        self.handlers[handler_name] = definition
        setattr(fn, _ATTRIBUTE, definition)
        return fn

    def _decorator(
        self,
        *,
        name: str | None,
        kind: HandlerKind | None,
        input_serde: Serde[Any] | None,
        output_serde: Serde[Any] | None,
        options: HandlerOptions,
    ) -> Callable[[F], F]:
        def decorate(fn: F) -> F:
            return self._register(
                fn,
                name=name,
                kind=kind,
                input_serde=input_serde,
                output_serde=output_serde,
                options=options,
            )

        return decorate

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, handlers={sorted(self.handlers)})"


def _options(**kwargs: Any) -> HandlerOptions:
    return HandlerOptions(**kwargs)


class Service(ServiceDef):
    """A stateless service: every invocation runs independently."""

    kind: ServiceKind = "SERVICE"

    def handler(
        self,
        name: str | None = None,
        *,
        input_serde: Serde[Any] | None = None,
        output_serde: Serde[Any] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None,
        ingress_private: bool | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Callable[[F], F]:
        """Declare a handler: ``async def h(ctx: Context[, input: T]) -> R``."""
        return self._decorator(
            name=name,
            kind=None,
            input_serde=input_serde,
            output_serde=output_serde,
            options=_options(
                inactivity_timeout=inactivity_timeout,
                abort_timeout=abort_timeout,
                journal_retention=journal_retention,
                idempotency_retention=idempotency_retention,
                ingress_private=ingress_private,
                documentation=description,
                metadata=metadata,
            ),
        )


class VirtualObject(ServiceDef):
    """A keyed object with durable state; exclusive handlers run one at a time per key."""

    kind: ServiceKind = "VIRTUAL_OBJECT"

    def handler(
        self,
        name: str | None = None,
        kind: Literal["exclusive", "shared"] = "exclusive",
        *,
        input_serde: Serde[Any] | None = None,
        output_serde: Serde[Any] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None,
        ingress_private: bool | None = None,
        enable_lazy_state: bool | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Callable[[F], F]:
        """Declare a handler; ``kind="shared"`` ones read state without taking the key's lock."""
        if kind not in ("exclusive", "shared"):
            raise HandlerDefinitionError(f"object handler kind must be exclusive or shared, not {kind!r}")
        return self._decorator(
            name=name,
            kind="EXCLUSIVE" if kind == "exclusive" else "SHARED",
            input_serde=input_serde,
            output_serde=output_serde,
            options=_options(
                inactivity_timeout=inactivity_timeout,
                abort_timeout=abort_timeout,
                journal_retention=journal_retention,
                idempotency_retention=idempotency_retention,
                ingress_private=ingress_private,
                enable_lazy_state=enable_lazy_state,
                documentation=description,
                metadata=metadata,
            ),
        )


class Workflow(ServiceDef):
    """A workflow: one ``main`` run per workflow id, plus shared handlers (signals, queries)."""

    kind: ServiceKind = "WORKFLOW"

    def main(
        self,
        name: str | None = None,
        *,
        input_serde: Serde[Any] | None = None,
        output_serde: Serde[Any] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        workflow_retention: timedelta | None = None,
        enable_lazy_state: bool | None = None,
        ingress_private: bool | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Callable[[F], F]:
        """Declare the workflow's run handler (exactly one per workflow)."""
        if any(h.kind == "WORKFLOW" for h in self.handlers.values()):
            raise HandlerDefinitionError(f"workflow {self.name} already has a main handler")
        return self._decorator(
            name=name,
            kind="WORKFLOW",
            input_serde=input_serde,
            output_serde=output_serde,
            options=_options(
                inactivity_timeout=inactivity_timeout,
                abort_timeout=abort_timeout,
                journal_retention=journal_retention,
                workflow_retention=workflow_retention,
                enable_lazy_state=enable_lazy_state,
                ingress_private=ingress_private,
                documentation=description,
                metadata=metadata,
            ),
        )

    run = main
    """Alias of :meth:`main`."""

    def handler(
        self,
        name: str | None = None,
        *,
        input_serde: Serde[Any] | None = None,
        output_serde: Serde[Any] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None,
        ingress_private: bool | None = None,
        enable_lazy_state: bool | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Callable[[F], F]:
        """Declare a shared handler (query the workflow, resolve its promises)."""
        return self._decorator(
            name=name,
            kind="SHARED",
            input_serde=input_serde,
            output_serde=output_serde,
            options=_options(
                inactivity_timeout=inactivity_timeout,
                abort_timeout=abort_timeout,
                journal_retention=journal_retention,
                idempotency_retention=idempotency_retention,
                ingress_private=ingress_private,
                enable_lazy_state=enable_lazy_state,
                documentation=description,
                metadata=metadata,
            ),
        )
