"""One attempt of one invocation over HTTP/1.1, request/response mode.

:func:`run_attempt` POSTs the StartMessage and the whole journal to
``{base}/invoke/{service}/{handler}``, then reads the endpoint's answer frame by frame
and turns each message into WAL records, handed to ``emit`` in order:

==============================  ===========================================================
endpoint sends                  session emits
==============================  ===========================================================
a command (``0x04xx``) or a     ``JournalAppend`` with the next command index (the eager-state
custom entry (``0xFC00``+)      reads and the ``OutputCommand`` too: they are commands)
``ProposeRunCompletion``        ``Notify(CompletionId(id), Value | Failure)``
``AwaitingOn`` (v7)             nothing; remembered in case the suspension names no future
``Suspension``                  ``InvocationSuspended`` with every awaited notification id
``End``                         ``InvocationEnded`` with the output (of this attempt, or
                                replayed from the journal)
``Error``                       nothing: the outcome carries the failure
==============================  ===========================================================

**Durable before the outcome.** ``emit`` hands a record to the WAL *when called*, in
order, and returns an awaitable that resolves once the record is durable. In
request/response mode nothing goes back to the endpoint, so nothing in the attempt
waits on a single record: the session keeps the records of the endpoint's answer and,
once the answer is complete (End, Suspension, Error, or a broken stream), hands them
all over, after the task's ``prelude`` (a first attempt's deployment pin), and awaits
them before it returns the outcome. The partition leader batches what is handed over
together into one Kafka record: one WAL round trip and one record per attempt instead
of one per message. If an ``emit``
raises (at once or once awaited), the HTTP request is closed and the exception
propagates; the caller cannot know which records made it, so it must not treat the
attempt as finished (journal appends carry command indexes and the state machine drops
one whose command is journaled already, so running the attempt again is safe).

**Command indexes.** A ``JournalAppend`` carries its ``command_index``: the commands
(and custom entries) of the replayed journal plus those this attempt appended before it,
which is how the SDK numbers them too. The state machine stores it at the end of the
journal when it is the next command and drops it as a duplicate when it is not.
Notifications do not count: the state machine journals some on its own while an attempt
runs (the run completion of each ``Notify`` emitted here, a call's invocation id, a lazy
state read), so the attempt cannot know a command's journal position in advance.
``entry_index`` (the replayed journal's length plus the commands appended since) is its
best guess of that position; only records of older writers are placed by it.

**Acks.** In request/response mode the runtime cannot write once the endpoint has
started answering, so neither ``CommandAck`` nor ``ProposeRunCompletionAck`` can be sent,
whatever the ``REQUESTED_ACK`` flag says. The SDK copes: having no ack for its run
proposal, it suspends on the run's completion id; on the next attempt the stored
``RunCompletionNotification`` takes the place the ack would have had.

**Timeouts.** Only waiting on the endpoint is timed, never ``emit``: an attempt fails
with ``INACTIVITY_TIMEOUT`` when the endpoint sends nothing for ``inactivity_timeout_ms``
and with ``ABORT_TIMEOUT`` when the attempt passes ``abort_timeout_ms`` in total; either
way the connection is closed, which the SDK sees as a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from google.protobuf.message import DecodeError

from engine.errors import LeadershipLost
from engine.invoker.answer_checks import MAX_RETRY_DELAY_MS, all_in_journal, run_completion_ids
from engine.invoker.awaiting import awaited_notifications
from engine.journal.limits import out_of_range
from engine.journal.notifications import failure_of
from restate_protocol import (
    Frame,
    FrameDecoder,
    MessageType,
    ProtocolError,
    ProtocolVersion,
    is_command,
    is_custom,
    parse_content_type,
    pb,
)
from engine.invoker.http1 import Http1Client, Http1Error, Http1Response
from engine.invoker.identity import RequestIdentity, request_identity_hint
from engine.invoker.liveness import Stalled
from engine.invoker.request import build_body, build_headers, invoke_url
from engine.invoker.task import (
    AttemptFailure,
    AttemptOutcome,
    ErrorBehavior,
    FailureKind,
    InvocationTask,
    OutcomeKind,
)
from engine.logs import get_logger
from engine.wal.appender import WalAppendError
from engine.wal.codec import WalCodecError
from engine.wal.records import (
    CallTarget,
    CompletionId,
    Failure,
    InvocationEnded,
    InvocationSuspended,
    InvokerEffect,
    JournalAppend,
    NotificationId,
    Notify,
    OutputResult,
    Value,
)

__all__ = ["Attempt", "AttemptFailed", "Emit", "Guard", "ResolveCall", "run_attempt"]

Emit = Callable[[InvokerEffect | Notify], Awaitable[object]]
"""Hands one record to the WAL now (calls keep their order) and returns an awaitable
that resolves once the record is durable (see the module docstring)."""

Guard = Callable[[], None]
"""Raises :class:`engine.invoker.liveness.Stalled` when no request may leave now."""

ResolveCall = Callable[[str, str], CallTarget]
"""The kinds of a call command's target ``(service, handler)``, recorded on its
``JournalAppend``; raises :class:`LookupError` (with a message for the user) when the
target is not registered."""

#: The failure code of a call to something that is not registered.
NOT_FOUND = 404

#: Codes for failures the endpoint did not describe itself (HTTP-like, as Restate uses).
BAD_STREAM = 502
BAD_REQUEST = 400  # a command with a value the engine cannot store (engine.journal.limits)
UNREACHABLE = 503
TIMED_OUT = 504

# After the terminal message the endpoint closes its response at once; waiting a little
# for that lets the connection go back to the pool instead of being torn down.
_DRAIN_TIMEOUT_S = 1.0
# How much of a non-200 answer's body to quote in the failure message.
_ERROR_BODY_QUOTE = 2048

_BEHAVIORS = {
    pb.RETRY: ErrorBehavior.RETRY,
    pb.PAUSE: ErrorBehavior.PAUSE,
    pb.FAIL: ErrorBehavior.FAIL,
}


async def run_attempt(
    task: InvocationTask,
    http: Http1Client,
    emit: Emit,
    resolve_call: ResolveCall | None = None,
    identity: RequestIdentity | None = None,
    guard: Guard | None = None,
) -> AttemptOutcome:
    """Run one attempt of ``task`` against its endpoint; see the module docstring.

    Args:
        task: Everything the attempt needs.
        http: The client session to send the request with (see :mod:`.client`).
        emit: Called with each record, in order; all its awaitables are awaited before
            the outcome is returned.
        resolve_call: Fills ``call_target`` of call commands; ``None`` leaves it unset.
        identity: Signs the request (see :mod:`.identity`); ``None`` sends it unsigned.
        guard: Called right before the request is sent; raising :class:`.liveness.Stalled`
            fails the attempt instead (see :mod:`.liveness`).

    Returns:
        ENDED or SUSPENDED after the matching record was emitted, or FAILED with the
        reason (an SDK error, a broken stream, an HTTP problem or a timeout).

    Raises:
        Whatever ``emit`` raises, and ``asyncio.CancelledError`` when cancelled; the HTTP
        request is closed in both cases.
    """
    attempt = Attempt(task, emit, resolve_call, identity, guard)
    return await attempt.run(lambda: attempt._exchange(http))


class AttemptFailed(Exception):
    """Ends the attempt early with ``failure``; never escapes the session modules."""

    def __init__(self, failure: AttemptFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Attempt:
    """The mutable state of one running attempt (request/response; the bidirectional
    session in :mod:`.stream_session` overrides the transport and the hooks)."""

    def __init__(
        self,
        task: InvocationTask,
        emit: Emit,
        resolve_call: ResolveCall | None,
        identity: RequestIdentity | None = None,
        guard: Guard | None = None,
    ) -> None:
        self._task = task
        self._identity = identity
        self._guard = guard
        self._emit = emit
        self._handed_over: list[Awaitable[object]] = []
        self._held: list[InvokerEffect | Notify] = []
        self._prelude: tuple[InvokerEffect, ...] = task.prelude
        self._resolve_call = resolve_call
        self._version = ProtocolVersion(task.endpoint.protocol_version)
        self._url = invoke_url(task)
        self._next_index = len(task.journal)
        self._next_command = sum(
            1 for e in task.journal if is_command(e.message_type) or is_custom(e.message_type)
        )
        self._new_entries = 0
        self._output: OutputResult | None = None
        self._awaiting_on: tuple[NotificationId, ...] = ()
        # Completion ids of Run commands (see _run_ids): this attempt's, and all once read.
        self._new_runs: set[int] = set()
        self._runs: set[int] | None = None
        self._sdk_server: str | None = None
        self._log = get_logger(
            __name__,
            invocation_id=str(task.invocation_id),
            service=task.service,
            handler=task.handler,
            endpoint=task.endpoint.base_url,
            protocol_version=int(self._version),
        )
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self._abort_at = self._started + task.abort_timeout_ms / 1000

    async def run(self, exchange: Callable[[], Awaitable[AttemptOutcome]]) -> AttemptOutcome:
        self._log.debug("attempt starting", url=self._url, known_entries=len(self._task.journal))
        try:
            try:
                outcome = await exchange()
            except AttemptFailed as failed:
                # What the endpoint sent before failing is kept: durable before the
                # caller records the failure after it. Not a speculative attempt's: its
                # records count only with its Invoke, which leaves without them and runs
                # the invocation anew (the SDK sent no run result: in request/response
                # mode it suspends on every run).
                if not self._task.speculative:
                    await self._durable()
                raise
            await self._durable()
        except asyncio.CancelledError:
            self._log.info("attempt cancelled", new_entries=self._new_entries)
            raise
        except AttemptFailed as failed:
            outcome = self._outcome(OutcomeKind.FAILED, failure=failed.failure)
            self._log.warning(
                "attempt failed",
                kind=failed.failure.kind.value,
                code=failed.failure.code,
                error=failed.failure.message,
                related_command_index=failed.failure.related_command_index,
                related_command_name=failed.failure.related_command_name,
                next_retry_delay_ms=failed.failure.next_retry_delay_ms,
                new_entries=self._new_entries,
            )
            return outcome
        except LeadershipLost:
            self._log.debug("attempt stopped: leadership lost", new_entries=self._new_entries)
            raise
        except (WalAppendError, WalCodecError) as exc:
            # Known and handled by the caller (a failed attempt under the retry policy,
            # e.g. an output over the WAL's record limit): no traceback at error level.
            self._log.warning("attempt's records not written to the WAL", error=str(exc),
                              new_entries=self._new_entries)
            raise
        except Exception:
            # emit failed (or a bug): which records are durable is unknown to us.
            self._log.exception("attempt abandoned", new_entries=self._new_entries)
            raise
        # Debug, not info: one line per attempt is per-record work on the hot path.
        self._log.debug(
            "attempt " + outcome.kind.value,
            new_entries=outcome.new_entries,
            duration_ms=outcome.duration_ms,
        )
        return outcome

    def _hand_over(self, record: InvokerEffect | Notify) -> Awaitable[object] | None:
        """Keep ``record`` for :meth:`_durable`, which hands everything over at once.

        In request/response mode the endpoint has sent its whole answer before anything
        could go back to it, so nothing gains from writing a record early; an SDK writes
        a run, its proposal and the suspension (or the output and the end) in separate
        chunks, and kept back they travel as one WAL record instead of several.
        """
        self._held.append(record)
        return None

    async def _durable(self) -> None:
        """Hand the prelude and every record kept so far to the WAL, in order, and wait
        until they are durable; raise the first failure."""
        if self._held:
            for item in [*self._prelude, *self._held]:
                self._handed_over.append(self._emit(item))
            self._prelude = ()
            self._held.clear()
        pending, self._handed_over = self._handed_over, []
        if not pending:
            return
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    # --- HTTP ----------------------------------------------------------------------------

    async def _exchange(self, http: Http1Client) -> AttemptOutcome:
        body = build_body(self._task)
        response: Http1Response | None = None
        try:
            async with self._waiting_on_endpoint("sending the request"):
                self._check_guard()
                try:
                    response = await http.post(self._url, build_headers(self._task, self._identity), body)
                except (Http1Error, OSError) as exc:
                    raise self._transport(
                        UNREACHABLE, f"cannot reach {self._url}: {exc}"
                    ) from exc
            await self._check_head(response)
            return await self._read_stream(response)
        finally:
            # A response read to its end hands the connection back to the pool; anything
            # else (failure, timeout, cancellation) closes it, which the SDK sees as a
            # disconnect and which stops the handler's attempt.
            if response is not None:
                if response.at_eof():
                    response.release()
                else:
                    response.close()

    async def _check_head(self, response: Http1Response) -> None:
        quote = await self._quote_body(response) if response.status != 200 else ""
        self._check_answer(
            response.status, response.reason or "", response.headers.get("x-restate-server"),
            response.headers.get("content-type"), quote,
        )

    def _check_answer(
        self, status: int, reason: str, server: str | None, ctype: str | None, quote: str
    ) -> None:
        """Fail the attempt unless the response head is a 200 in the requested version."""
        self._sdk_server = server
        if status != 200:
            hint = ""
            if status == 415:
                hint = f" (the endpoint does not speak service protocol v{int(self._version)})"
            elif status == 401:
                hint = " (" + request_identity_hint(self._identity) + ")"
            raise self._transport(
                status,
                f"endpoint answered {status} {reason} for "
                f"{self._url}{hint}" + (f": {quote}" if quote else ""),
                http_status=status,
            )
        try:
            if ctype is None:
                raise ProtocolError("the response has no content type")
            answered = parse_content_type(ctype)
        except ProtocolError as exc:
            raise self._transport(BAD_STREAM, str(exc), http_status=200) from exc
        if answered != self._version:
            raise self._transport(
                BAD_STREAM,
                f"endpoint answered with service protocol v{int(answered)}, but "
                f"v{int(self._version)} was requested",
                http_status=200,
            )

    async def _quote_body(self, response: Http1Response) -> str:
        # Best effort: the status alone already says the attempt failed.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_DRAIN_TIMEOUT_S):
                data = await response.read(_ERROR_BODY_QUOTE)
                return data.decode("utf-8", errors="replace").strip()
        return ""

    async def _read_stream(self, response: Http1Response) -> AttemptOutcome:
        decoder = FrameDecoder(max_message_size=self._task.max_message_size)
        while True:
            async with self._waiting_on_endpoint("waiting for the endpoint"):
                try:
                    chunk = await response.readany()
                except Http1Error as exc:
                    raise self._transport(
                        BAD_STREAM, f"response from {self._url} broke off: {exc}", http_status=200
                    ) from exc
            try:
                if not chunk:
                    decoder.close()
                    raise ProtocolError(
                        "the endpoint closed the stream without an End, Suspension or Error "
                        "message"
                    )
                frames = decoder.feed(chunk)
            except ProtocolError as exc:
                raise self._protocol(str(exc)) from exc
            for position, frame in enumerate(frames):
                outcome = await self._handle(frame)
                if outcome is not None:
                    await self._drain(response, decoder, trailing=len(frames) - position - 1)
                    return outcome

    async def _drain(
        self, response: Http1Response, decoder: FrameDecoder, trailing: int
    ) -> None:
        """Read to the end of the response after the terminal message, ignoring the rest."""
        extra = decoder.buffered
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_DRAIN_TIMEOUT_S):
                while chunk := await response.readany():
                    extra += len(chunk)
        if trailing or extra:
            self._log.warning(
                "endpoint sent data after its final message; ignored",
                trailing_frames=trailing,
                trailing_bytes=extra,
            )

    @contextlib.asynccontextmanager
    async def _waiting_on_endpoint(self, doing: str) -> AsyncIterator[None]:
        """Bound one wait on the endpoint by both the inactivity and the abort timeout."""
        loop = asyncio.get_running_loop()
        inactive_at = loop.time() + self._task.inactivity_timeout_ms / 1000
        try:
            async with asyncio.timeout_at(min(inactive_at, self._abort_at)) as timeout:
                yield
        except TimeoutError as exc:
            if not timeout.expired():
                raise
            if self._abort_at <= inactive_at:
                raise self._timed_out(
                    FailureKind.ABORT_TIMEOUT,
                    f"attempt took longer than the abort timeout of "
                    f"{self._task.abort_timeout_ms} ms ({doing})",
                ) from exc
            raise self._timed_out(
                FailureKind.INACTIVITY_TIMEOUT,
                f"endpoint sent nothing for {self._task.inactivity_timeout_ms} ms ({doing})",
            ) from exc

    # --- messages ------------------------------------------------------------------------

    async def _handle(self, frame: Frame) -> AttemptOutcome | None:
        """Act on one message; return the outcome when it ends the attempt."""
        type_id = frame.type_id
        self._log.debug("message received", message=frame.name, flags=frame.header.flags)
        if is_command(type_id) or is_custom(type_id):
            await self._journal(frame)
            return None
        message = frame.message
        if isinstance(message, pb.ProposeRunCompletionMessage):
            await self._propose_run_completion(message, frame.requested_ack)
            return None
        if isinstance(message, pb.AwaitingOnMessage):
            # A hint for observability; kept only as a fallback for the suspension.
            self._awaiting_on = awaited_notifications(message.awaiting_on)
            return None
        if isinstance(message, pb.SuspensionMessage):
            return await self._suspend(message)
        if isinstance(message, pb.EndMessage):
            return await self._end()
        if isinstance(message, pb.ErrorMessage):
            raise AttemptFailed(self._sdk_error(message))
        raise self._protocol(
            f"the endpoint sent a {frame.name} message, which only the runtime sends"
        )

    async def _journal(self, frame: Frame) -> None:
        if frame.type_id == MessageType.INPUT_COMMAND:
            raise self._protocol("the endpoint sent an InputCommand; only the runtime writes it")
        problem = out_of_range(frame.message)
        if problem is not None:
            # Refused here, never written to the WAL (engine.journal.limits).
            raise AttemptFailed(AttemptFailure(
                kind=FailureKind.PROTOCOL, code=BAD_REQUEST,
                message=f"{problem} (command {self._next_command}: {frame.name}); the attempt fails",
                related_command_index=self._next_command, related_command_type=frame.type_id,
                http_status=200,
            ))
        output: OutputResult | None = None
        if isinstance(frame.message, pb.OutputCommandMessage):
            output = _output_result(frame.message)
            if output is None:
                raise self._protocol(
                    "the endpoint sent an OutputCommand without a value or failure"
                )
        elif isinstance(frame.message, pb.RunCommandMessage):
            self._new_runs.add(frame.message.result_completion_id)
            if self._runs is not None:
                self._runs.add(frame.message.result_completion_id)
        command_index = self._next_command
        call_target = self._call_target(frame)
        durable = self._hand_over(
            JournalAppend(
                invocation_id=self._task.invocation_id,
                entry_index=self._next_index,
                message_type=frame.type_id,
                message=frame.body,
                call_target=call_target,
                command_index=self._next_command,
                # With tracing on, a call or send continues this attempt's trace.
                trace_parent=self._task.traceparent if call_target is not None else None,
            ),
        )
        self._next_index += 1
        self._next_command += 1
        self._new_entries += 1
        if output is not None:
            self._output = output
        if frame.requested_ack:
            self._ack_requested(durable, command_index, frame.name)

    def _ack_requested(self, durable: Awaitable[object] | None, command_index: int, name: str) -> None:
        """The SDK asked for a ``CommandAck`` of ``command_index``: impossible here."""
        self._log.debug("ack requested; not possible in request/response mode", message=name)

    def _run_proposed(self, completion_id: int, requested_ack: bool) -> None:
        """A run proposal was handed over; request/response mode cannot answer it."""

    def _call_target(self, frame: Frame) -> CallTarget | None:
        message = frame.message
        if self._resolve_call is None or not isinstance(
            message, (pb.CallCommandMessage, pb.OneWayCallCommandMessage)
        ):
            return None
        try:
            return self._resolve_call(message.service_name, message.handler_name)
        except LookupError as exc:
            raise AttemptFailed(
                AttemptFailure(
                    FailureKind.UNKNOWN_CALL_TARGET,
                    NOT_FOUND,
                    f"{exc.args[0] if exc.args else exc} (called by command "
                    f"{self._next_command}: {frame.name} to {message.service_name}/"
                    f"{message.handler_name}; register the service, the attempt is retried)",
                    related_command_index=self._next_command,
                    related_command_name=message.name or None,
                    related_command_type=frame.type_id,
                )
            ) from exc

    async def _propose_run_completion(
        self, message: pb.ProposeRunCompletionMessage, requested_ack: bool = False
    ) -> None:
        if message.result_completion_id not in self._run_ids():
            raise self._protocol(
                f"run proposal for completion {message.result_completion_id}, which no Run command "
                "of this invocation allocated; an SDK proposes results only for its own Run commands"
            )
        which = message.WhichOneof("result")
        result: Value | Failure
        if which == "value":
            result = Value(message.value)
        elif which == "failure":
            result = failure_of(message.failure)
        else:
            raise self._protocol(
                f"run proposal for completion {message.result_completion_id} has no result"
            )
        # Journaled by the state machine as a RunCompletionNotification; as a notification
        # it does not advance the command numbering (see the module docstring).
        self._hand_over(
            Notify(
                invocation_id=self._task.invocation_id,
                notification_id=CompletionId(message.result_completion_id),
                result=result,
            )
        )
        self._new_entries += 1
        self._run_proposed(message.result_completion_id, requested_ack)

    async def _suspend(self, message: pb.SuspensionMessage) -> AttemptOutcome:
        if message.HasField("awaiting_on"):
            waiting = awaited_notifications(message.awaiting_on)
        else:
            waiting = awaited_notifications(message)
        waiting = waiting or self._awaiting_on
        if not waiting:
            raise self._protocol("the endpoint suspended without naming anything to wait for")
        if all_in_journal(self._task.journal, waiting):
            # Resuming would send it the same journal and get the same suspension: an
            # endless loop of attempts (seen from a broken endpoint: ~50 a second).
            raise self._protocol(
                "the endpoint suspended waiting for "
                + ", ".join(str(n) for n in waiting)
                + ", which the journal it was sent already completes; an SDK must take them "
                "from its journal instead of waiting for them"
            )
        self._hand_over(
            InvocationSuspended(invocation_id=self._task.invocation_id, waiting_for=waiting)
        )
        return self._outcome(OutcomeKind.SUSPENDED, waiting_for=waiting)

    def _run_ids(self) -> set[int]:
        """Completion ids of the invocation's Run commands (the journal it was sent is
        read on the first run proposal; this attempt's Runs are added as they come)."""
        if self._runs is None:
            self._runs = run_completion_ids(self._task.journal) | self._new_runs
        return self._runs

    async def _end(self) -> AttemptOutcome:
        result = self._output if self._output is not None else self._replayed_output()
        if result is None:
            raise self._protocol("the endpoint ended the invocation without an OutputCommand")
        self._hand_over(InvocationEnded(invocation_id=self._task.invocation_id, result=result))
        return self._outcome(OutcomeKind.ENDED, result=result)

    def _replayed_output(self) -> OutputResult | None:
        # An earlier attempt stored the output but broke off before its End.
        for entry in reversed(self._task.journal):
            if entry.message_type == MessageType.OUTPUT_COMMAND:
                try:
                    return _output_result(pb.OutputCommandMessage.FromString(entry.message))
                except DecodeError as exc:
                    raise self._protocol(f"stored OutputCommand does not parse: {exc}") from exc
        return None

    # --- outcomes ------------------------------------------------------------------------

    def _outcome(
        self,
        kind: OutcomeKind,
        *,
        result: OutputResult | None = None,
        waiting_for: tuple[NotificationId, ...] = (),
        failure: AttemptFailure | None = None,
    ) -> AttemptOutcome:
        elapsed = asyncio.get_running_loop().time() - self._started
        return AttemptOutcome(
            kind=kind,
            result=result,
            waiting_for=waiting_for,
            failure=failure,
            new_entries=self._new_entries,
            protocol_version=self._version,
            sdk_server=self._sdk_server,
            duration_ms=int(elapsed * 1000),
        )

    def _sdk_error(self, message: pb.ErrorMessage) -> AttemptFailure:
        return AttemptFailure(
            kind=FailureKind.SDK_ERROR,
            code=message.code,
            # An empty message would leave the operator nothing to go on in the status.
            message=message.message if message.message.strip() else (
                f"the endpoint reported an error with code {message.code} and no message; "
                "its own logs say what went wrong"
            ),
            stacktrace=message.stacktrace,
            related_command_index=(
                message.related_command_index if message.HasField("related_command_index") else None
            ),
            related_command_name=(
                message.related_command_name if message.HasField("related_command_name") else None
            ),
            related_command_type=(
                message.related_command_type if message.HasField("related_command_type") else None
            ),
            next_retry_delay_ms=(
                min(message.next_retry_delay, MAX_RETRY_DELAY_MS)
                if message.HasField("next_retry_delay") else None
            ),
            # Unknown future behaviours fall back to RETRY, the pre-v7 meaning.
            behavior=_BEHAVIORS.get(message.behavior, ErrorBehavior.RETRY),
            http_status=200,
        )

    def _check_guard(self) -> None:
        """Fail the attempt (no request sent) if the guard says no request may leave now."""
        if self._guard is None:
            return
        try:
            self._guard()
        except Stalled as exc:
            raise self._transport(UNREACHABLE, str(exc)) from exc

    def _transport(
        self, code: int, message: str, *, http_status: int | None = None
    ) -> AttemptFailed:
        return AttemptFailed(
            AttemptFailure(
                kind=FailureKind.TRANSPORT, code=code, message=message, http_status=http_status
            )
        )

    def _protocol(self, message: str) -> AttemptFailed:
        return AttemptFailed(
            AttemptFailure(
                kind=FailureKind.PROTOCOL, code=BAD_STREAM, message=message, http_status=200
            )
        )

    def _timed_out(self, kind: FailureKind, message: str) -> AttemptFailed:
        return AttemptFailed(AttemptFailure(kind=kind, code=TIMED_OUT, message=message))


def _output_result(message: pb.OutputCommandMessage) -> OutputResult | None:
    which = message.WhichOneof("result")
    if which == "value":
        return Value(message.value.content)
    if which == "failure":
        return failure_of(message.failure)
    return None
