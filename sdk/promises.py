"""A workflow's durable promises: ``ctx.promise(name)`` in workflow handlers.

A promise belongs to one workflow instance (workflow name + id) and is completed once;
the run handler typically awaits it while a shared handler (a signal from outside)
resolves or rejects it. Every operation is a journaled command, so it replays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restate_protocol import pb
from sdk.futures import DurableFuture, decoder
from sdk.serde import Serde
from sdk.state_machine import completion_key

if TYPE_CHECKING:
    from sdk.context import Context

__all__ = ["DurablePromise"]


class DurablePromise:
    """A workflow's named durable promise: resolved once, awaited by any handler."""

    def __init__(self, ctx: Context, name: str, serde: Serde[Any]) -> None:
        self._ctx = ctx
        self.name = name
        self._serde = serde

    def value(self) -> DurableFuture[Any]:
        """Wait for the promise's value (suspends until it is resolved)."""
        ctx = self._ctx
        cid = ctx._machine.next_completion_id()
        ctx._machine.command(pb.GetPromiseCommandMessage(key=self.name, result_completion_id=cid))
        return DurableFuture(ctx._inv, completion_key(cid), decoder(self._serde))

    def peek(self) -> DurableFuture[Any]:
        """The value if the promise is resolved, else ``None``, without waiting."""
        ctx = self._ctx
        cid = ctx._machine.next_completion_id()
        ctx._machine.command(pb.PeekPromiseCommandMessage(key=self.name, result_completion_id=cid))
        return DurableFuture(ctx._inv, completion_key(cid), decoder(self._serde))

    def resolve(self, value: Any) -> DurableFuture[None]:
        """Resolve the promise; the future fails if it was already completed."""
        return self._complete(pb.Value(content=self._serde.serialize(value)), None)

    def reject(self, message: str, code: int = 500) -> DurableFuture[None]:
        """Reject the promise with a terminal failure."""
        return self._complete(None, pb.Failure(code=code, message=message))

    def _complete(self, value: pb.Value | None, failure: pb.Failure | None) -> DurableFuture[None]:
        ctx = self._ctx
        cid = ctx._machine.next_completion_id()
        message = pb.CompletePromiseCommandMessage(key=self.name, result_completion_id=cid)
        if value is not None:
            message.completion_value.CopyFrom(value)
        else:
            assert failure is not None
            message.completion_failure.CopyFrom(failure)
        ctx._machine.command(message)
        return DurableFuture(ctx._inv, completion_key(cid), lambda _: None)

    def __await__(self) -> Any:
        return self.value().__await__()
