"""Running one attempt of one invocation: the handler, its ``ctx.run`` steps, the end.

:class:`Invocation` is the asyncio layer over :class:`~sdk.state_machine.StateMachine`:
it decodes the input, calls the handler with the right context, executes ``ctx.run``
actions (async ones as tasks, sync ones in a worker thread so they never block the
endpoint's event loop), and turns the handler's outcome into the attempt's ending:

* a return value or :class:`TerminalError` -> OutputCommand + End;
* awaiting something the journal does not have -> every running step is finished and
  proposed, then Suspension;
* any other exception -> ErrorMessage (code 500, retried by the runtime);
* non-determinism -> ErrorMessage 570 (written by the state machine).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from restate_protocol.messages import MessageType
from sdk.errors import InvocationAbort, TerminalError
from sdk.retry import RunRetryPolicy
from sdk.service import HandlerDef
from sdk.state_machine import Failure, Key, StateMachine

__all__ = ["Invocation", "current_invocation"]

#: The invocation whose handler is running in the current task (for the replay-aware logger).
current_invocation: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar(
    "logstrate_sdk_invocation", default=None
)


class Invocation:
    """One attempt: the state machine, the handler and the ``ctx.run`` steps in flight."""

    def __init__(
        self, machine: StateMachine, handler: HandlerDef, attempt_headers: dict[str, str]
    ) -> None:
        self.machine = machine
        self.handler = handler
        self.attempt_headers = attempt_headers
        self._runs: set[asyncio.Task[None]] = set()

    # -- waiting ------------------------------------------------------------------

    async def wait(self, done: Callable[[], bool], leaves: Callable[[], list[Key]]) -> None:
        """Return once ``done()`` holds, or suspend the invocation on ``leaves()``.

        Raises:
            TerminalError: 409 ``cancelled``, the first time a wait meets the runtime's
                CANCEL signal; the handler may catch it and compensate (later waits
                proceed normally).
        """
        finished = self.machine.progress(done)
        if self.machine.take_cancel():
            raise TerminalError("cancelled", 409)
        if finished:
            return
        upcoming = self.machine.next_replayed_command()
        if upcoming is not None:
            # The first time, the handler got past this point without waiting (the
            # awaited result was there); now it is not, yet the journal goes on.
            self.machine.journal_mismatch(
                expected=upcoming,
                actual="an await on a result the journal does not have at this point",
                details=[f"awaiting {sorted(leaves(), key=str)}"],
                type_id=0,
            )
        await self.flush_runs()
        self.machine.suspend(self.machine.suspension_keys(leaves()))

    # -- ctx.run ------------------------------------------------------------------

    def start_run(
        self,
        completion_id: int,
        name: str,
        action: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        serialize: Callable[[Any], bytes],
        policy: RunRetryPolicy,
    ) -> None:
        """Execute a step whose result is not journaled yet, in the background."""
        command_index = self.machine.command_index
        first_after_replay = self.machine.written == 0
        task = asyncio.get_running_loop().create_task(
            self._execute_run(
                completion_id, name, action, args, kwargs, serialize, policy, command_index,
                first_after_replay,
            )
        )
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def _execute_run(
        self,
        completion_id: int,
        name: str,
        action: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        serialize: Callable[[Any], bytes],
        policy: RunRetryPolicy,
        command_index: int,
        first_after_replay: bool,
    ) -> None:
        started = time.monotonic()
        try:
            if inspect.iscoroutinefunction(action):
                value = await action(*args, **kwargs)
            else:
                value = await asyncio.to_thread(action, *args, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
            self.machine.propose_run(completion_id, serialize(value))
        except TerminalError as exc:
            self.machine.propose_run(
                completion_id, Failure(exc.status_code, exc.message, exc.metadata)
            )
        except InvocationAbort:
            return
        except Exception as exc:  # noqa: BLE001 - a step's failure is data here
            self._run_failed(completion_id, name, exc, policy, command_index, first_after_replay,
                             started)

    def _run_failed(
        self,
        completion_id: int,
        name: str,
        exc: Exception,
        policy: RunRetryPolicy,
        command_index: int,
        first_after_replay: bool,
        started: float,
    ) -> None:
        start = self.machine.start
        # Attempts since the step's command was journaled: the runtime counts them,
        # but only when this step is the first thing the attempt does after replay.
        previous = start.retry_count_since_last_stored_entry if first_after_replay else 0
        previous_ms = (
            start.duration_since_last_stored_entry if first_after_replay and previous else 0
        )
        elapsed_ms = previous_ms + int((time.monotonic() - started) * 1000)
        decision = policy.decide(previous + 1, elapsed_ms)
        text = f"ctx.run {name!r} failed: {type(exc).__name__}: {exc}"
        if decision.terminal:
            self.machine.propose_run(
                completion_id,
                Failure(500, f"{text} (gave up after {previous + 1} attempts)"),
            )
            return
        self.machine.fail(
            500,
            text,
            stacktrace="".join(traceback.format_exception(exc)),
            next_retry_delay_ms=decision.delay_ms,
            related_index=command_index,
            related_name=name,
            related_type=MessageType.RUN_COMMAND,
        )

    async def flush_runs(self) -> None:
        """Wait for every step in flight to finish (and propose its result)."""
        while self._runs:
            await asyncio.gather(*list(self._runs), return_exceptions=True)
        self.machine.check_open()

    def cancel_runs(self) -> None:
        """Stop waiting for steps in flight (the attempt is over)."""
        for task in list(self._runs):
            task.cancel()

    # -- the handler --------------------------------------------------------------

    async def execute(self, make_context: Callable[[Invocation], Any]) -> None:
        """Run the handler to the end of this attempt; the machine records the outcome."""
        token = current_invocation.set(self)
        machine = self.machine
        try:
            ctx = make_context(self)
            definition = self.handler
            fn: Callable[..., Awaitable[Any]] = definition.fn
            if definition.has_input:
                arg = definition.input_serde.deserialize(bytes(machine.input.value.content))
                result = await fn(ctx, arg)
            else:
                result = await fn(ctx)
            await self.flush_runs()
            payload = definition.output_serde.serialize(result)
            machine.output(payload)
        except TerminalError as exc:
            try:
                await self.flush_runs()
                machine.output(Failure(exc.status_code, exc.message, exc.metadata))
            except InvocationAbort:
                pass
        except InvocationAbort:
            pass
        except Exception as exc:  # noqa: BLE001 - any other failure is retried
            machine.fail(
                500,
                f"{type(exc).__name__}: {exc}",
                stacktrace="".join(traceback.format_exception(exc)),
                related_index=machine.command_index,
            )
        finally:
            self.cancel_runs()
            current_invocation.reset(token)
        if machine.closed is None:
            machine.fail(571, f"handler {self.handler.label} ended without closing the attempt")

