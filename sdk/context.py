"""The context a handler receives: durable steps, state, timers, calls, awakeables.

Which class a handler gets depends on its kind:

==========================  ===================================================
plain service handler       :class:`Context`
shared object handler       :class:`ObjectSharedContext` (``get``, ``state_keys``)
exclusive object handler    :class:`ObjectContext` (+ ``set``, ``clear``, ...)
workflow shared handler     :class:`WorkflowSharedContext` (+ ``promise``)
workflow main handler       :class:`WorkflowContext` (state + ``promise``)
==========================  ===================================================

Every method that touches the journal is deterministic on replay; code outside them
must be too (use ``ctx.run`` for anything else, ``ctx.random()``/``ctx.uuid4()``/
``await ctx.time()`` for randomness and time).
"""

from __future__ import annotations

import base64
import logging
import random as _random
import struct
import time as _time
import uuid as _uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from restate_protocol import pb
from sdk.futures import DurableCallFuture, DurableFuture, SendHandle, decoder
from sdk.promises import DurablePromise
from sdk.retry import RunOptions, RunRetryPolicy
from sdk.serde import JsonSerde, Serde, serde_for
from sdk.service import HandlerDef, handler_def_of
from sdk.state_machine import (
    InvocationIdResult,
    Result,
    StateKeysResult,
    completion_key,
    signal_key,
)
from sdk.state_machine.results import CANCEL_SIGNAL

if TYPE_CHECKING:
    from sdk.invocation import Invocation

__all__ = [
    "Context",
    "DurablePromise",
    "ObjectContext",
    "ObjectSharedContext",
    "Request",
    "WorkflowContext",
    "WorkflowSharedContext",
]

T = TypeVar("T")
O = TypeVar("O")  # noqa: E741
P = ParamSpec("P")

_AWAKEABLE_PREFIX = "sign_1"


@dataclass(frozen=True)
class Request:
    """The invocation's request: id, headers and raw input."""

    id: str
    headers: dict[str, str]
    body: bytes
    attempt_headers: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None


def _serde(serde: Serde[Any] | None, type_hint: Any) -> Serde[Any]:
    if serde is not None:
        return serde
    return serde_for(type_hint) if type_hint is not None else JsonSerde()


def _headers(headers: Mapping[str, str] | None) -> list[pb.Header]:
    return [pb.Header(key=k, value=v) for k, v in (headers or {}).items()]


def _millis(delta: timedelta) -> int:
    return int(delta / timedelta(milliseconds=1))


class _ReplayAwareLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Drops records while the invocation replays, so each line is logged once."""

    def __init__(self, logger: logging.Logger, invocation: Invocation) -> None:
        super().__init__(logger, {"invocation_id": invocation.machine.start.debug_id})
        self._invocation = invocation

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        if self._invocation.machine.replaying:
            return False
        return bool(self.logger.isEnabledFor(level))


class Context:
    """The context of a plain service handler (and the base of the others)."""

    def __init__(self, invocation: Invocation) -> None:
        self._inv = invocation
        self._machine = invocation.machine
        start = self._machine.start
        seed = start.random_seed if self._machine.version >= 6 and start.random_seed else None
        if seed is None:
            seed = int.from_bytes(bytes(start.id)[-8:].rjust(8, b"\0"), "big")
        self._random = _random.Random(seed)
        self._logger: logging.LoggerAdapter | None = None  # type: ignore[type-arg]

    # -- request ------------------------------------------------------------------

    def request(self) -> Request:
        """The invocation id, the request headers and the raw input."""
        machine = self._machine
        start = machine.start
        return Request(
            id=start.debug_id,
            headers={h.key: h.value for h in machine.input.headers},
            body=bytes(machine.input.value.content),
            attempt_headers=dict(self._inv.attempt_headers),
            idempotency_key=start.idempotency_key if start.HasField("idempotency_key") else None,
        )

    @property
    def invocation_id(self) -> str:
        """This invocation's id (``inv_...``)."""
        return self._machine.start.debug_id

    @property
    def logger(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """A logger for the handler that is silent while the journal replays."""
        if self._logger is None:
            name = f"sdk.handler.{self._inv.handler.label}"
            self._logger = _ReplayAwareLogger(logging.getLogger(name), self._inv)
        return self._logger

    # -- determinism --------------------------------------------------------------

    def random(self) -> _random.Random:
        """A random generator seeded by the invocation: the same numbers on every replay."""
        return self._random

    def uuid4(self) -> _uuid.UUID:
        """A random UUID that stays the same on every replay."""
        return _uuid.UUID(int=self._random.getrandbits(128), version=4)

    uuid = uuid4

    def time(self) -> DurableFuture[float]:
        """``time.time()``, journaled: the same value on every replay."""
        return self.run("time", _time.time, type_hint=float)

    # -- ctx.run ------------------------------------------------------------------

    def run(
        self,
        name: str,
        action: Callable[..., Any],
        *call_args: Any,
        serde: Serde[Any] | None = None,
        type_hint: Any = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | None = None,
        retry_interval: timedelta | None = None,
        retry_interval_factor: float = 2.0,
        max_retry_interval: timedelta | None = None,
        args: tuple[Any, ...] | None = None,
        **kwargs: Any,
    ) -> DurableFuture[Any]:
        """Run ``action(*call_args, **kwargs)`` once and journal its result (or terminal error).

        ``action`` may be sync (run in a worker thread) or async. Any exception but
        :class:`TerminalError` is retried (the attempt fails and the runtime retries it)
        until ``max_attempts`` / ``max_retry_duration`` are exhausted; then the step
        fails terminally with code 500. The result type comes from ``type_hint`` or the
        action's return annotation. ``args=(...)`` passes positional arguments the way
        the official SDK's ``ctx.run`` does; :meth:`run_typed` is the typed variant.
        """
        policy = RunRetryPolicy(
            max_attempts=max_attempts,
            max_duration=max_retry_duration,
            initial_interval=retry_interval,
            factor=retry_interval_factor,
            max_interval=max_retry_interval,
        )
        positional = tuple(call_args) + tuple(args or ())
        return self._run(name, action, positional, kwargs, serde, type_hint, policy)

    @overload
    def run_typed(
        self,
        name: str,
        action: Callable[P, Coroutine[Any, Any, T]],
        options: RunOptions[T] | None = None,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> DurableFuture[T]: ...

    @overload
    def run_typed(
        self,
        name: str,
        action: Callable[P, T],
        options: RunOptions[T] | None = None,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> DurableFuture[T]: ...

    def run_typed(
        self,
        name: str,
        action: Callable[P, Any],
        options: RunOptions[Any] | None = None,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> DurableFuture[Any]:
        """:meth:`run` with the official SDK's typed signature: the action's arguments
        follow the :class:`RunOptions` and are type-checked against the action::

            total = await ctx.run_typed("charge", charge, RunOptions(max_attempts=3), card, amount=5)
        """
        opts = options if options is not None else RunOptions()
        return self._run(
            name, action, tuple(args), dict(kwargs), opts.serde, opts.type_hint, opts.retry_policy()
        )

    def _run(
        self,
        name: str,
        action: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        serde: Serde[Any] | None,
        type_hint: Any,
        policy: RunRetryPolicy,
    ) -> DurableFuture[Any]:
        if type_hint is None:
            annotations = getattr(action, "__annotations__", {})
            returned = annotations.get("return")
            type_hint = returned if not isinstance(returned, str) else None
        value_serde = _serde(serde, type_hint)
        cid = self._machine.next_completion_id()
        self._machine.command(pb.RunCommandMessage(result_completion_id=cid, name=name))
        key = completion_key(cid)
        if not self._machine.journaled(key):
            self._inv.start_run(cid, name, action, args, kwargs, value_serde.serialize, policy)
        return DurableFuture(self._inv, key, decoder(value_serde))

    # -- timers -------------------------------------------------------------------

    def sleep(self, delta: timedelta, name: str | None = None) -> DurableFuture[None]:
        """A durable timer: completes after ``delta`` even across restarts."""
        cid = self._machine.next_completion_id()
        wake_up = int(_time.time() * 1000) + _millis(delta)
        self._machine.command(
            pb.SleepCommandMessage(wake_up_time=wake_up, result_completion_id=cid, name=name or "")
        )
        return DurableFuture(self._inv, completion_key(cid), lambda _: None)

    # -- calls --------------------------------------------------------------------

    def _call(
        self,
        target: HandlerDef | None,
        service: str,
        handler: str,
        key: str | None,
        parameter: bytes,
        output: Serde[Any],
        idempotency_key: str | None,
        headers: Mapping[str, str] | None,
    ) -> DurableCallFuture[Any]:
        id_cid = self._machine.next_completion_id()
        result_cid = self._machine.next_completion_id()
        message = pb.CallCommandMessage(
            service_name=service,
            handler_name=handler,
            parameter=parameter,
            headers=_headers(headers),
            key=key or "",
            invocation_id_notification_idx=id_cid,
            result_completion_id=result_cid,
        )
        if idempotency_key:
            message.idempotency_key = idempotency_key
        self._machine.command(message)
        return DurableCallFuture(
            self._inv,
            completion_key(result_cid),
            decoder(output),
            self._invocation_id_future(id_cid),
            self.cancel_invocation,
        )

    def _send(
        self,
        service: str,
        handler: str,
        key: str | None,
        parameter: bytes,
        delay: timedelta | None,
        idempotency_key: str | None,
        headers: Mapping[str, str] | None,
    ) -> SendHandle:
        id_cid = self._machine.next_completion_id()
        invoke_time = int(_time.time() * 1000) + _millis(delay) if delay else 0
        message = pb.OneWayCallCommandMessage(
            service_name=service,
            handler_name=handler,
            parameter=parameter,
            invoke_time=invoke_time,
            headers=_headers(headers),
            key=key or "",
            invocation_id_notification_idx=id_cid,
        )
        if idempotency_key:
            message.idempotency_key = idempotency_key
        self._machine.command(message)
        return SendHandle(self._invocation_id_future(id_cid), self.cancel_invocation)

    def _invocation_id_future(self, cid: int) -> DurableFuture[str]:
        def convert(raw: Result) -> str:
            return raw.invocation_id if isinstance(raw, InvocationIdResult) else str(raw)

        return DurableFuture(self._inv, completion_key(cid), convert)

    @staticmethod
    def _target(fn: Callable[..., Any], expected: str) -> HandlerDef:
        target = handler_def_of(fn)
        if target.service_kind != expected:
            raise TypeError(
                f"{target.label} belongs to a {target.service_kind}, not a {expected}"
            )
        return target

    def _typed_call(
        self, target: HandlerDef, key: str | None, arg: Any, idempotency_key: str | None,
        headers: Mapping[str, str] | None,
    ) -> DurableCallFuture[Any]:
        payload = target.input_serde.serialize(arg) if target.has_input else b""
        return self._call(target, target.service_name, target.name, key, payload,
                          target.output_serde, idempotency_key, headers)

    def _typed_send(
        self, target: HandlerDef, key: str | None, arg: Any, delay: timedelta | None,
        idempotency_key: str | None, headers: Mapping[str, str] | None,
    ) -> SendHandle:
        payload = target.input_serde.serialize(arg) if target.has_input else b""
        return self._send(target.service_name, target.name, key, payload, delay,
                          idempotency_key, headers)

    def service_call(
        self, handler: Callable[..., Any], arg: Any = None, *,
        idempotency_key: str | None = None, headers: Mapping[str, str] | None = None,
    ) -> DurableCallFuture[Any]:
        """Call a service handler (a function declared with ``@service.handler()``)."""
        target = self._target(handler, "SERVICE")
        return self._typed_call(target, None, arg, idempotency_key, headers)

    def service_send(
        self, handler: Callable[..., Any], arg: Any = None, *, send_delay: timedelta | None = None,
        idempotency_key: str | None = None, headers: Mapping[str, str] | None = None,
    ) -> SendHandle:
        """Send to a service handler without waiting for its result (optionally delayed)."""
        target = self._target(handler, "SERVICE")
        return self._typed_send(target, None, arg, send_delay, idempotency_key, headers)

    def object_call(
        self, handler: Callable[..., Any], key: str, arg: Any = None, *,
        idempotency_key: str | None = None, headers: Mapping[str, str] | None = None,
    ) -> DurableCallFuture[Any]:
        """Call a virtual object's handler for ``key``."""
        target = self._target(handler, "VIRTUAL_OBJECT")
        return self._typed_call(target, key, arg, idempotency_key, headers)

    def object_send(
        self, handler: Callable[..., Any], key: str, arg: Any = None, *,
        send_delay: timedelta | None = None, idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SendHandle:
        """Send to a virtual object's handler for ``key``."""
        target = self._target(handler, "VIRTUAL_OBJECT")
        return self._typed_send(target, key, arg, send_delay, idempotency_key, headers)

    def workflow_call(
        self, handler: Callable[..., Any], key: str, arg: Any = None, *,
        idempotency_key: str | None = None, headers: Mapping[str, str] | None = None,
    ) -> DurableCallFuture[Any]:
        """Call a workflow's handler for workflow id ``key``."""
        target = self._target(handler, "WORKFLOW")
        return self._typed_call(target, key, arg, idempotency_key, headers)

    def workflow_send(
        self, handler: Callable[..., Any], key: str, arg: Any = None, *,
        send_delay: timedelta | None = None, idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SendHandle:
        """Send to a workflow's handler for workflow id ``key``."""
        target = self._target(handler, "WORKFLOW")
        return self._typed_send(target, key, arg, send_delay, idempotency_key, headers)

    def generic_call(
        self, service: str, handler: str, arg: bytes, key: str | None = None, *,
        idempotency_key: str | None = None, headers: Mapping[str, str] | None = None,
    ) -> DurableCallFuture[bytes]:
        """Call any handler by name with a raw payload; the result is raw bytes."""
        from sdk.serde import BytesSerde

        return self._call(None, service, handler, key, arg, BytesSerde(), idempotency_key,
                          headers)

    def generic_send(
        self, service: str, handler: str, arg: bytes, key: str | None = None, *,
        send_delay: timedelta | None = None, idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SendHandle:
        """Send to any handler by name with a raw payload."""
        return self._send(service, handler, key, arg, send_delay, idempotency_key, headers)

    def cancel_invocation(self, invocation_id: str) -> None:
        """Cancel another invocation (it sees a 409 ``cancelled`` failure)."""
        self._machine.command(
            pb.SendSignalCommandMessage(
                target_invocation_id=invocation_id, idx=CANCEL_SIGNAL, void=pb.Void()
            )
        )

    def attach_invocation(
        self, invocation_id: str, serde: Serde[Any] | None = None, type_hint: Any = None
    ) -> DurableFuture[Any]:
        """Wait for another invocation's result."""
        cid = self._machine.next_completion_id()
        self._machine.command(
            pb.AttachInvocationCommandMessage(invocation_id=invocation_id, result_completion_id=cid)
        )
        return DurableFuture(self._inv, completion_key(cid), decoder(_serde(serde, type_hint)))

    def get_invocation_output(
        self, invocation_id: str, serde: Serde[Any] | None = None, type_hint: Any = None
    ) -> DurableFuture[Any]:
        """Another invocation's result if it has completed, ``None`` if it has not (no
        waiting); a failed invocation raises its :class:`TerminalError`, an unknown id a
        404 one. Not in the official Python SDK (its TypeScript SDK has it)."""
        cid = self._machine.next_completion_id()
        self._machine.command(
            pb.GetInvocationOutputCommandMessage(
                invocation_id=invocation_id, result_completion_id=cid
            )
        )
        return DurableFuture(self._inv, completion_key(cid), decoder(_serde(serde, type_hint)))

    # -- awakeables ---------------------------------------------------------------

    def awakeable(
        self, serde: Serde[Any] | None = None, type_hint: Any = None
    ) -> tuple[str, DurableFuture[Any]]:
        """An id to hand to another system, and the future its completion resolves."""
        self._machine.check_open()
        index = self._machine.next_signal_index()
        raw = bytes(self._machine.start.id) + struct.pack(">I", index)
        awakeable_id = _AWAKEABLE_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return awakeable_id, DurableFuture(
            self._inv, signal_key(index), decoder(_serde(serde, type_hint))
        )

    def resolve_awakeable(self, awakeable_id: str, value: Any, serde: Serde[Any] | None = None) -> None:
        """Complete an awakeable with a value."""
        payload = _serde(serde, type(value)).serialize(value)
        self._machine.command(
            pb.CompleteAwakeableCommandMessage(awakeable_id=awakeable_id, value=pb.Value(content=payload))
        )

    def reject_awakeable(self, awakeable_id: str, message: str, code: int = 500) -> None:
        """Complete an awakeable with a terminal failure."""
        self._machine.command(
            pb.CompleteAwakeableCommandMessage(
                awakeable_id=awakeable_id, failure=pb.Failure(code=code, message=message)
            )
        )


class ObjectSharedContext(Context):
    """Context of a shared object handler: read-only state."""

    def key(self) -> str:
        """The object's key."""
        return self._machine.start.key

    def get(
        self, name: str, serde: Serde[Any] | None = None, type_hint: Any = None
    ) -> DurableFuture[Any]:
        """The value of state ``name`` (``None`` when absent); await it."""
        value_serde = _serde(serde, type_hint)
        key = name.encode()
        machine = self._machine
        convert = decoder(value_serde)
        if key in machine.state or not machine.partial_state:
            present = machine.state.get(key)
            message = pb.GetEagerStateCommandMessage(key=key)
            if present is None:
                message.void.SetInParent()
            else:
                message.value.content = present
            journaled = machine.command(message)
            assert isinstance(journaled, pb.GetEagerStateCommandMessage)
            if journaled.WhichOneof("result") == "value":
                return DurableFuture(self._inv, None, convert,
                                     value=convert(bytes(journaled.value.content)))
            return DurableFuture(self._inv, None, convert, value=None)
        cid = machine.next_completion_id()
        machine.command(pb.GetLazyStateCommandMessage(key=key, result_completion_id=cid))
        return DurableFuture(self._inv, completion_key(cid), convert)

    def state_keys(self) -> DurableFuture[list[str]]:
        """The names of the object's state entries; await it."""
        machine = self._machine

        def keys_of(raw: Result) -> list[str]:
            if isinstance(raw, StateKeysResult):
                return sorted(k.decode() for k in raw.keys)
            return []

        if not machine.partial_state:
            message = pb.GetEagerStateKeysCommandMessage(
                value=pb.StateKeys(keys=sorted(machine.state))
            )
            journaled = machine.command(message)
            assert isinstance(journaled, pb.GetEagerStateKeysCommandMessage)
            known = StateKeysResult(tuple(bytes(k) for k in journaled.value.keys))
            return DurableFuture(self._inv, None, keys_of, value=keys_of(known))
        cid = machine.next_completion_id()
        machine.command(pb.GetLazyStateKeysCommandMessage(result_completion_id=cid))
        return DurableFuture(self._inv, completion_key(cid), keys_of)


class ObjectContext(ObjectSharedContext):
    """Context of an exclusive object handler: read and write state."""

    def set(self, name: str, value: Any, serde: Serde[Any] | None = None) -> None:
        """Set state ``name`` to ``value``."""
        payload = _serde(serde, type(value)).serialize(value)
        self._machine.command(
            pb.SetStateCommandMessage(key=name.encode(), value=pb.Value(content=payload))
        )

    def clear(self, name: str) -> None:
        """Delete state ``name``."""
        self._machine.command(pb.ClearStateCommandMessage(key=name.encode()))

    def clear_all(self) -> None:
        """Delete all of the object's state."""
        self._machine.command(pb.ClearAllStateCommandMessage())


class WorkflowSharedContext(ObjectSharedContext):
    """Context of a workflow's shared handlers: read state, use promises."""

    def promise(self, name: str, serde: Serde[Any] | None = None, type_hint: Any = None) -> DurablePromise:
        """The workflow's durable promise ``name``."""
        return DurablePromise(self, name, _serde(serde, type_hint))


class WorkflowContext(ObjectContext):
    """Context of a workflow's main handler: state and promises."""

    def promise(self, name: str, serde: Serde[Any] | None = None, type_hint: Any = None) -> DurablePromise:
        """The workflow's durable promise ``name``."""
        return DurablePromise(self, name, _serde(serde, type_hint))


def context_class(handler: HandlerDef) -> type[Context]:
    """The context class a handler receives."""
    if handler.service_kind == "VIRTUAL_OBJECT":
        return ObjectContext if handler.kind == "EXCLUSIVE" else ObjectSharedContext
    if handler.service_kind == "WORKFLOW":
        return WorkflowContext if handler.kind == "WORKFLOW" else WorkflowSharedContext
    return Context

