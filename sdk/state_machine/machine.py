"""The invocation state machine: replay, matching, new commands, suspension, the end.

Pure logic, no I/O and no event loop: it is given the StartMessage and the replayed
journal (request/response mode: the runtime has sent everything before the SDK
answers) and a ``sink`` for the frames the SDK writes back.

Ordering rules that make replay deterministic:

* Commands are matched one by one, in order, against the journal. The first time a
  handler issues a command beyond the journal's end, the machine leaves replay and
  writes the command to the runtime.
* Notifications are consumed lazily, in journal order: before issuing a command the
  machine takes every notification that precedes that command in the journal (the
  handler had them when it first issued it); while the handler waits, it takes one
  notification at a time until the wait is satisfied. A race (``select``) is therefore
  decided on replay exactly as it was the first time.
* The runtime's CANCEL signal interrupts the first wait that consumes it (or, when a
  command consumed it, the next wait): that wait raises ``TerminalError(409)`` once,
  later waits proceed, so the handler can run compensations. Until then every
  suspension also waits for the signal, so a cancel wakes a suspended handler.
* Once closed (ended, suspended or failed) the machine writes nothing more; every
  later operation raises the same :class:`InvocationAbort` again, so a handler that
  swallowed one still cannot corrupt the attempt.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from google.protobuf.message import Message

from restate_protocol import Frame, encode_frame, is_command, is_notification, pb
from restate_protocol.messages import MessageType, spec_for_message
from sdk.errors import (
    JOURNAL_MISMATCH,
    PROTOCOL_VIOLATION,
    AttemptFailed,
    InvocationSuspended,
    JournalMismatch,
)
from sdk.state_machine.matching import describe_command, differences
from sdk.state_machine.results import (
    CANCEL_SIGNAL,
    FIRST_USER_SIGNAL,
    Failure,
    Key,
    Result,
    parse_notification,
    signal_key,
)

__all__ = ["Closed", "StateMachine"]


class Closed(enum.Enum):
    """How an attempt ended."""

    ENDED = "ended"
    SUSPENDED = "suspended"
    FAILED = "failed"


class StateMachine:
    """One attempt of one invocation, as the SDK sees it.

    Args:
        version: Negotiated service protocol version (5..7).
        start: The attempt's StartMessage.
        entries: The replayed journal frames (commands and notifications), in order;
            the first must be the InputCommand.
        label: ``Service/handler`` for error messages.
        sink: Receives every frame the SDK writes, already encoded.

    Raises:
        ProtocolViolation: the journal does not start with an InputCommand.
    """

    def __init__(
        self,
        *,
        version: int,
        start: pb.StartMessage,
        entries: Sequence[Frame],
        label: str,
        sink: Callable[[bytes], None],
    ) -> None:
        self.version = version
        self.start = start
        self.label = label
        self._sink = sink
        self.closed: Closed | None = None
        self.close_reason = ""
        #: Frames written in this attempt so far (commands and run proposals).
        self.written = 0
        self._queue: deque[Frame] = deque(f for f in entries if f.message is not None)
        first = self._queue.popleft() if self._queue else None
        if first is None or not isinstance(first.message, pb.InputCommandMessage):
            got = "nothing" if first is None else first.name
            self._fail_protocol(f"the journal must start with an InputCommand, got {got}")
        assert first is not None and isinstance(first.message, pb.InputCommandMessage)
        self.input: pb.InputCommandMessage = first.message
        #: Index of the last command issued or replayed (the input is 0).
        self.command_index = 0
        self._next_completion = 1
        self._next_signal = FIRST_USER_SIGNAL
        self._results: dict[Key, Result] = {}
        self._journaled_keys: set[Key] = set()
        for frame in self._queue:
            if frame.message is not None and is_notification(frame.type_id):
                self._journaled_keys.add(parse_notification(frame.type_id, frame.message)[0])
        self.state: dict[bytes, bytes] = {bytes(e.key): bytes(e.value) for e in start.state_map}
        self.partial_state = bool(start.partial_state)
        self._cancel_delivered = False

    # -- status -------------------------------------------------------------------

    @property
    def replaying(self) -> bool:
        """True while journaled commands remain to be matched."""
        return any(is_command(f.type_id) for f in self._queue)

    @property
    def cancelled(self) -> bool:
        """True once the runtime's CANCEL signal has been consumed."""
        return signal_key(CANCEL_SIGNAL) in self._results

    @property
    def cancel_pending(self) -> bool:
        """True when the CANCEL signal was consumed but not yet raised in the handler."""
        return self.cancelled and not self._cancel_delivered

    def take_cancel(self) -> bool:
        """Whether a wait must raise the cancellation now (at most once per attempt)."""
        if not self.cancel_pending:
            return False
        self._cancel_delivered = True
        return True

    def suspension_keys(self, awaited: Iterable[Key]) -> list[Key]:
        """What a suspension waits for: ``awaited``, plus the CANCEL signal until it
        has been raised in the handler (so a cancel wakes a suspended invocation)."""
        keys = list(awaited)
        if not self._cancel_delivered:
            keys.append(signal_key(CANCEL_SIGNAL))
        return keys

    def check_open(self) -> None:
        """Raise the attempt's :class:`InvocationAbort` if it is already closed."""
        if self.closed is Closed.SUSPENDED:
            raise InvocationSuspended(self.close_reason)
        if self.closed is not None:
            raise AttemptFailed(self.close_reason)

    # -- ids ----------------------------------------------------------------------

    def next_completion_id(self) -> int:
        """Allocate the next completion id (deterministic: 1, 2, 3, ...)."""
        value = self._next_completion
        self._next_completion += 1
        return value

    def next_signal_index(self) -> int:
        """Allocate the next awakeable signal index (17, 18, ...)."""
        value = self._next_signal
        self._next_signal += 1
        return value

    # -- notifications ------------------------------------------------------------

    def _take_notification(self) -> bool:
        """Consume the notification at the head of the replay queue, if there is one."""
        if not self._queue or not is_notification(self._queue[0].type_id):
            return False
        frame = self._queue.popleft()
        assert frame.message is not None
        key, result = parse_notification(frame.type_id, frame.message)
        self._results[key] = result
        return True

    def progress(self, done: Callable[[], bool]) -> bool:
        """Consume notifications one at a time until ``done()`` holds or none is next.

        Stops early once the CANCEL signal is consumed (see :meth:`take_cancel`)."""
        self.check_open()
        while not done() and not self.cancel_pending:
            if not self._take_notification():
                break
        return done()

    def has_result(self, key: Key) -> bool:
        """Whether the notification ``key`` has been consumed."""
        return key in self._results

    def result(self, key: Key) -> Result:
        """The consumed result of ``key`` (check :meth:`has_result` first)."""
        return self._results[key]

    def journaled(self, key: Key) -> bool:
        """Whether ``key`` is anywhere in this attempt's journal (consumed or not)."""
        return key in self._results or key in self._journaled_keys

    def next_replayed_command(self) -> str | None:
        """Description of the next journaled command still to be matched, if any."""
        for frame in self._queue:
            if is_command(frame.type_id):
                return describe_command(frame.type_id, frame.message)
        return None

    # -- commands -----------------------------------------------------------------

    def command(self, message: Message) -> Message:
        """Issue a command: match it against the journal, or write it when past the end.

        Returns the journaled message when replaying (whose results, e.g. of an eager
        state read, are the ones to use) and ``message`` itself otherwise.

        Raises:
            AttemptFailed: the journal has a different command here (non-determinism);
                the attempt has been failed with code 570.
            InvocationAbort: the attempt was already closed.
        """
        self.check_open()
        while self._take_notification():
            pass
        spec = spec_for_message(message)
        self.command_index += 1
        if self._queue:
            journaled = self._queue.popleft()
            mismatch: list[str] = []
            if journaled.type_id != spec.type_id:
                mismatch.append(
                    f"the journal has {describe_command(journaled.type_id, journaled.message)}"
                )
            else:
                assert journaled.message is not None
                mismatch = differences(spec.type_id, journaled.message, message)
            if mismatch:
                self.journal_mismatch(
                    expected=describe_command(journaled.type_id, journaled.message),
                    actual=describe_command(spec.type_id, message),
                    details=mismatch,
                    type_id=spec.type_id,
                )
            assert journaled.message is not None
            self._apply_state(journaled.message)
            return journaled.message
        self._apply_state(message)
        self._write(message, requested_ack=False)
        return message

    def _apply_state(self, message: Message) -> None:
        if isinstance(message, pb.SetStateCommandMessage):
            self.state[bytes(message.key)] = bytes(message.value.content)
        elif isinstance(message, pb.ClearStateCommandMessage):
            self.state.pop(bytes(message.key), None)
        elif isinstance(message, pb.ClearAllStateCommandMessage):
            self.state.clear()
            self.partial_state = False

    def journal_mismatch(
        self, *, expected: str, actual: str, details: Iterable[str], type_id: int
    ) -> None:
        """Fail the attempt with code 570 and raise :class:`AttemptFailed`."""
        detail = "; ".join(details)
        text = (
            f"Journal mismatch in handler {self.label} at command index {self.command_index}: "
            f"replaying the journal expected {expected} but the handler issued {actual}"
            + (f" ({detail})" if detail else "")
            + ". The handler is not deterministic: code outside ctx.run must do the same "
            "thing on every attempt."
        )
        error = JournalMismatch(
            text, command_index=self.command_index, expected=expected, actual=actual
        )
        self.fail(
            JOURNAL_MISMATCH,
            text,
            related_index=self.command_index,
            related_name=actual,
            related_type=type_id,
        )
        raise AttemptFailed(text) from error

    def _fail_protocol(self, text: str) -> None:
        self.fail(PROTOCOL_VIOLATION, f"Protocol violation in handler {self.label}: {text}")
        raise AttemptFailed(text)

    # -- run ----------------------------------------------------------------------

    def propose_run(self, completion_id: int, result: bytes | Failure) -> None:
        """Propose a ``ctx.run`` result (the runtime journals it as its completion)."""
        self.check_open()
        if isinstance(result, Failure):
            message = pb.ProposeRunCompletionMessage(
                result_completion_id=completion_id, failure=result.to_pb()
            )
        else:
            message = pb.ProposeRunCompletionMessage(
                result_completion_id=completion_id, value=result
            )
        self._write(message, requested_ack=self.version >= 7)

    # -- closing ------------------------------------------------------------------

    def suspend(self, keys: Iterable[Key]) -> None:
        """Write a SuspensionMessage awaiting any of ``keys`` and raise
        :class:`InvocationSuspended`."""
        self.check_open()
        completions = sorted({int(v) for k, v in keys if k == "c"})
        signals = sorted({int(v) for k, v in keys if k == "s"})
        names = sorted({str(v) for k, v in keys if k == "n"})
        if not (completions or signals or names):
            self._fail_protocol("suspending without anything to wait for")
        if self.version >= 7:
            message = pb.SuspensionMessage(
                awaiting_on=pb.Future(
                    waiting_completions=completions,
                    waiting_signals=signals,
                    waiting_named_signals=names,
                    combinator_type=pb.FIRST_COMPLETED,
                )
            )
        else:
            message = pb.SuspensionMessage(
                waiting_completions=completions,
                waiting_signals=signals,
                waiting_named_signals=names,
            )
        self._write(message)
        self.closed = Closed.SUSPENDED
        self.close_reason = f"suspended awaiting completions={completions} signals={signals}"
        raise InvocationSuspended(self.close_reason)

    def fail(
        self,
        code: int,
        text: str,
        *,
        stacktrace: str = "",
        next_retry_delay_ms: int | None = None,
        related_index: int | None = None,
        related_name: str | None = None,
        related_type: int | None = None,
    ) -> None:
        """End the attempt with an ErrorMessage (the runtime retries it). No-op if closed."""
        if self.closed is not None:
            return
        message = pb.ErrorMessage(code=code, message=text, stacktrace=stacktrace)
        if next_retry_delay_ms is not None:
            message.next_retry_delay = next_retry_delay_ms
        if related_index is not None:
            message.related_command_index = related_index
        if related_name:
            message.related_command_name = related_name
        if related_type is not None:
            message.related_command_type = related_type
        self._write(message)
        self.closed = Closed.FAILED
        self.close_reason = text

    def output(self, result: bytes | Failure) -> None:
        """Write the OutputCommand (value or terminal failure) and the EndMessage."""
        if isinstance(result, Failure):
            message = pb.OutputCommandMessage(failure=result.to_pb())
        else:
            message = pb.OutputCommandMessage(value=pb.Value(content=result))
        self.command(message)
        if self.replaying:
            extra = self.next_replayed_command() or "more commands"
            self.journal_mismatch(
                expected=extra,
                actual="the end of the handler",
                details=["the journal has commands after the output"],
                type_id=MessageType.OUTPUT_COMMAND,
            )
        self._write(pb.EndMessage())
        self.closed = Closed.ENDED
        self.close_reason = "ended"

    def _write(self, message: Message, *, requested_ack: bool = False) -> None:
        self.written += 1
        self._sink(encode_frame(message, requested_ack=requested_ack))


