"""Durable futures and their combinators.

A :class:`DurableFuture` stands for the result of a journaled operation (a ``ctx.run``
step, a sleep, a call, a state read, an awakeable, a promise). Awaiting it either
returns at once (the result is in the journal) or suspends the invocation: the
runtime re-invokes the handler when the result exists.

Combinators wait on several futures at once and suspend on all of them together:
:func:`gather` (all results, first failure raised), :func:`select` (the first to
complete, by name), :func:`wait_completed` (done and pending) and :func:`as_completed`.
They are deterministic on replay. Use them instead of ``asyncio.gather`` or tasks
for durable work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sdk.errors import TerminalError
from sdk.state_machine import Failure, Key, Result, StateMachine

if TYPE_CHECKING:
    from sdk.serde import Serde

__all__ = [
    "DurableCallFuture",
    "DurableFuture",
    "SendHandle",
    "as_completed",
    "decoder",
    "gather",
    "select",
    "wait_completed",
]

T = TypeVar("T")


class Awaiter(Protocol):
    """The invocation a future belongs to (implemented by ``sdk.invocation``)."""

    machine: StateMachine

    async def wait(self, done: Callable[[], bool], leaves: Callable[[], list[Key]]) -> None:
        """Return once ``done()`` holds; suspend the invocation on ``leaves()`` if it cannot."""
        ...


def decoder(serde: Serde[Any]) -> Callable[[Result], Any]:
    """Turns a notification's result into a value: bytes through ``serde``, else ``None``."""

    def convert(raw: Result) -> Any:
        if isinstance(raw, bytes):
            return serde.deserialize(raw)
        return None

    return convert


class _Missing:
    pass


_MISSING = _Missing()


class DurableFuture(Generic[T]):
    """The result of a journaled operation; ``await`` it to get the value.

    A failed operation raises :class:`TerminalError` (with the failure's code) when
    awaited.
    """

    def __init__(
        self,
        awaiter: Awaiter,
        key: Key | None,
        convert: Callable[[Result], T],
        *,
        value: T | _Missing = _MISSING,
    ) -> None:
        self._awaiter = awaiter
        self._key = key
        self._convert = convert
        self._value = value

    def is_completed(self) -> bool:
        """Whether the result is available now (without waiting)."""
        if not isinstance(self._value, _Missing) or self._key is None:
            return True
        return self._awaiter.machine.has_result(self._key)

    def is_failed(self) -> bool:
        """Whether the future completed with a terminal failure."""
        if not self.is_completed() or self._key is None or not isinstance(self._value, _Missing):
            return False
        return isinstance(self._awaiter.machine.result(self._key), Failure)

    def _leaves(self) -> list[Key]:
        return [] if self.is_completed() or self._key is None else [self._key]

    def result(self) -> T:
        """The result of a completed future (raises its TerminalError if it failed)."""
        if not isinstance(self._value, _Missing):
            return self._value
        assert self._key is not None and self.is_completed(), "future not completed"
        raw = self._awaiter.machine.result(self._key)
        if isinstance(raw, Failure):
            raise TerminalError(raw.message, raw.code, raw.metadata)
        return self._convert(raw)

    async def _get(self) -> T:
        if not self.is_completed():
            await self._awaiter.wait(self.is_completed, self._leaves)
        return self.result()

    def __await__(self) -> Generator[Any, None, T]:
        return self._get().__await__()


class DurableCallFuture(DurableFuture[T]):
    """The result of a call; also knows the callee's invocation id."""

    def __init__(
        self,
        awaiter: Awaiter,
        key: Key,
        convert: Callable[[Result], T],
        invocation_id: DurableFuture[str],
        cancel: Callable[[str], None],
    ) -> None:
        super().__init__(awaiter, key, convert)
        self._invocation_id = invocation_id
        self._cancel = cancel

    async def invocation_id(self) -> str:
        """The callee's invocation id (``inv_...``)."""
        return await self._invocation_id

    async def cancel_invocation(self) -> None:
        """Cancel the callee (a CANCEL signal to it): its handler's current wait raises
        ``TerminalError(409)``, so unless it compensates and returns, awaiting this
        future fails with 409. Same as ``ctx.cancel_invocation(await f.invocation_id())``."""
        self._cancel(await self._invocation_id)

    cancel = cancel_invocation
    """Alias of :meth:`cancel_invocation`."""


class SendHandle:
    """What a one-way send returns: the callee's invocation id, and cancellation."""

    def __init__(self, invocation_id: DurableFuture[str], cancel: Callable[[str], None]) -> None:
        self._invocation_id = invocation_id
        self._cancel = cancel

    async def invocation_id(self) -> str:
        """The callee's invocation id (``inv_...``)."""
        return await self._invocation_id

    async def cancel_invocation(self) -> None:
        """Cancel the sent invocation (see :meth:`DurableCallFuture.cancel_invocation`)."""
        self._cancel(await self._invocation_id)

    cancel = cancel_invocation
    """Alias of :meth:`cancel_invocation`."""


def _awaiter_of(futures: Sequence[DurableFuture[Any]]) -> Awaiter:
    if not futures:
        raise ValueError("a combinator needs at least one future")
    awaiter = futures[0]._awaiter
    if any(f._awaiter is not awaiter for f in futures):
        raise ValueError("futures of different invocations cannot be combined")
    return awaiter


def _all_leaves(futures: Sequence[DurableFuture[Any]]) -> Callable[[], list[Key]]:
    return lambda: [leaf for f in futures for leaf in f._leaves()]


async def gather(*futures: DurableFuture[Any]) -> list[Any]:
    """Wait for all futures; their results in order. The first failure (in completion
    order as journaled) is raised as soon as it is known."""
    if not futures:
        return []
    awaiter = _awaiter_of(futures)

    def done() -> bool:
        return all(f.is_completed() for f in futures) or any(f.is_failed() for f in futures)

    await awaiter.wait(done, _all_leaves(futures))
    for future in futures:
        if future.is_failed():
            future.result()  # raises its TerminalError
    return [f.result() for f in futures]


async def select(**futures: DurableFuture[Any]) -> tuple[str, Any]:
    """Wait for the first of the named futures: ``(name, result)``.

    Raises the winner's :class:`TerminalError` if it failed.
    """
    items = list(futures.items())
    awaiter = _awaiter_of([f for _, f in items])
    await awaiter.wait(
        lambda: any(f.is_completed() for _, f in items), _all_leaves([f for _, f in items])
    )
    for name, future in items:
        if future.is_completed():
            return name, future.result()
    raise AssertionError("select resolved without a completed future")


async def wait_completed(
    *futures: DurableFuture[Any],
) -> tuple[list[DurableFuture[Any]], list[DurableFuture[Any]]]:
    """Wait until at least one future completed: ``(done, pending)``."""
    awaiter = _awaiter_of(futures)
    await awaiter.wait(lambda: any(f.is_completed() for f in futures), _all_leaves(futures))
    done = [f for f in futures if f.is_completed()]
    return done, [f for f in futures if not f.is_completed()]


async def as_completed(*futures: DurableFuture[Any]) -> AsyncIterator[DurableFuture[Any]]:
    """Yield the futures as they complete (in journal order on replay)."""
    pending = list(futures)
    while pending:
        done, pending = await wait_completed(*pending)
        for future in done:
            yield future
