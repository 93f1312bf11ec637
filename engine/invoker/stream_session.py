"""One attempt of one invocation as a bidirectional stream over HTTP/2.

The message handling is :class:`engine.invoker.session.Attempt`'s (the same records for
the same messages); what differs is the transport and what can go back to the endpoint:

* The request carries the HTTP/1.1 attempt's headers, signed with the request identity
  key when one is configured (:mod:`engine.invoker.identity`), and opens with
  StartMessage + the journal and **stays open**. Each record is
  handed to ``emit`` as its message arrives (not held until the answer is complete).
* **Acks only for applied records.** A command sent with ``REQUESTED_ACK`` is answered
  with ``CommandAck`` once its record is durable *and* the partition processor applied
  it under this leader's epoch (:attr:`AttemptChannel.confirm`): a record of a
  superseded leader is durable but ignored when applied, so Kafka's ack alone would
  acknowledge something no replica will ever hold. If the record is not confirmed the
  attempt fails (the leadership moved; the next leader runs the invocation again).
* **Notifications are pushed.** Whatever the state machine journals for the invocation
  while the stream is open (a run's completion, a call's result, a timer, an awakeable)
  reaches the leader as ``ForwardNotification``, is read back from the applied journal
  and written into the stream (:meth:`AttemptChannel.forward`), so it is applied before
  the SDK can see it. A run proposal sent with ``REQUESTED_ACK`` (v7) is answered with
  ``ProposeRunCompletionAck`` instead of its notification, at the same moment.
* **Timeouts.** When the endpoint sends nothing for ``inactivity_timeout_ms``, the
  request stream is ended (END_STREAM), which asks the SDK to suspend (restate-server's
  behaviour); if the endpoint has not ended its answer ``abort_timeout_ms -
  inactivity_timeout_ms`` later, the stream is reset (``ABORT_TIMEOUT``).
* **No push after a stall.** The liveness ``guard`` is checked before every write into
  the stream, not only before the start: a process that was frozen while the stream was
  open stops the attempt instead of pushing into it (:mod:`engine.invoker.liveness`).
* Suspension, End and Error end the attempt as in request/response mode; before the
  outcome is returned every handed-over record is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from engine.invoker.http2 import Http2Client, Http2Error, Http2Stream
from engine.invoker.identity import RequestIdentity
from restate_protocol import FrameDecoder, MessageType, ProtocolError, encode_frame, encode_raw_frame, pb
from engine.invoker.request import build_body, build_headers
from engine.invoker.session import (
    BAD_STREAM,
    UNREACHABLE,
    Attempt,
    AttemptFailed,
    Emit,
    Guard,
    ResolveCall,
)
from engine.invoker.task import AttemptOutcome, FailureKind, InvocationTask
from restate_protocol import JournalEntry
from engine.wal.records import InvokerEffect, Notify

__all__ = ["AttemptChannel", "Confirm", "run_stream_attempt"]

_T = TypeVar("_T")

Confirm = Callable[[int], Awaitable[bool]]
"""``offset`` -> True once the partition applied it under the attempt's leadership."""


class AttemptChannel:
    """What the leader gives a streaming attempt: confirmation of applied offsets, and
    the notifications journaled for the invocation while the attempt runs."""

    def __init__(self, confirm: Confirm) -> None:
        self.confirm = confirm
        self._entries: asyncio.Queue[tuple[int, JournalEntry]] = asyncio.Queue()

    def forward(self, entry_index: int, entry: JournalEntry) -> None:
        """A notification was applied at ``entry_index`` of the invocation's journal."""
        self._entries.put_nowait((entry_index, entry))

    async def next_entry(self) -> tuple[int, JournalEntry]:
        return await self._entries.get()


async def run_stream_attempt(
    task: InvocationTask,
    client: Http2Client,
    emit: Emit,
    channel: AttemptChannel,
    resolve_call: ResolveCall | None = None,
    identity: RequestIdentity | None = None,
    guard: Guard | None = None,
) -> AttemptOutcome:
    """Run one attempt of ``task`` as a bidirectional stream; returns and raises like
    :func:`engine.invoker.session.run_attempt` (``identity`` signs the stream's request
    as it signs an HTTP/1.1 one; ``guard`` is checked right before it is written)."""
    attempt = _StreamAttempt(task, emit, resolve_call, channel, identity, guard)
    return await attempt.run(lambda: attempt.exchange(client))


class _StreamAttempt(Attempt):
    def __init__(
        self,
        task: InvocationTask,
        emit: Emit,
        resolve_call: ResolveCall | None,
        channel: AttemptChannel,
        identity: RequestIdentity | None = None,
        guard: Guard | None = None,
    ) -> None:
        super().__init__(task, emit, resolve_call, identity, guard)
        self._channel = channel
        self._stream: Http2Stream | None = None
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._helpers: set[asyncio.Task[None]] = set()
        self._broken: BaseException | None = None
        self._acked_runs: set[int] = set()
        self._input_open = True
        self._inactive_at = 0.0
        self._bump()

    # --- records go out at once -----------------------------------------------------------

    def _hand_over(self, record: InvokerEffect | Notify) -> Awaitable[object] | None:
        for item in self._prelude:
            self._track(self._emit(item))
        self._prelude = ()
        durable = self._emit(record)
        self._track(durable)
        return durable

    def _track(self, durable: Awaitable[object]) -> None:
        self._handed_over.append(durable)
        if isinstance(durable, asyncio.Future):
            durable.add_done_callback(self._check_durable)

    def _check_durable(self, done: asyncio.Future[object]) -> None:
        if done.cancelled() or done.exception() is None:
            return
        self._break(done.exception() or asyncio.CancelledError())

    def _break(self, reason: BaseException) -> None:
        """Stop the attempt from outside the read loop (a failed write or ack)."""
        if self._broken is None:
            self._broken = reason
        if self._stream is not None:
            self._stream.reset()

    # --- acks -------------------------------------------------------------------------------

    def _ack_requested(self, durable: Awaitable[object] | None, command_index: int, name: str) -> None:
        assert durable is not None
        self._spawn(self._ack(durable, command_index))

    def _run_proposed(self, completion_id: int, requested_ack: bool) -> None:
        if requested_ack:
            self._acked_runs.add(completion_id)

    async def _ack(self, durable: Awaitable[object], command_index: int) -> None:
        try:
            offset = await durable
        except BaseException:  # noqa: BLE001 - reported by _check_durable
            return
        if not isinstance(offset, int) or not await self._channel.confirm(offset):
            self._log.warning("record not applied under this leadership; no ack", command_index=command_index)
            self._break(self._transport(
                UNREACHABLE, f"command {command_index} was written but not applied under this partition "
                "leadership (the leadership moved); the next leader runs the invocation again"))
            return
        self._log.debug("command acknowledged", command_index=command_index, offset=offset)
        self._send(encode_frame(pb.CommandAckMessage(command_index=command_index)))

    # --- pushing notifications ----------------------------------------------------------

    async def _forward_loop(self) -> None:
        known = len(self._task.journal)
        while True:
            index, entry = await self._channel.next_entry()
            if index < known:
                continue  # replayed with the StartMessage already
            completion = self._run_completion_id(entry)
            if completion is not None and completion in self._acked_runs:
                self._acked_runs.discard(completion)
                frame = encode_frame(pb.ProposeRunCompletionAckMessage(completion_id=completion))
            else:
                frame = encode_raw_frame(entry.message_type, entry.message)
            self._next_index += 1
            self._bump()
            self._send(frame)

    @staticmethod
    def _run_completion_id(entry: JournalEntry) -> int | None:
        if entry.message_type != MessageType.RUN_COMPLETION:
            return None
        with contextlib.suppress(Exception):
            return int(pb.NotificationTemplate.FromString(entry.message).completion_id)
        return None

    # --- transport ------------------------------------------------------------------------

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    def _send(self, data: bytes) -> None:
        if self._input_open:
            self._outgoing.put_nowait(data)

    async def _write_loop(self, stream: Http2Stream) -> None:
        try:
            while True:
                data = await self._outgoing.get()
                # Every push is guarded, not only the start: a process frozen while this
                # stream was open may have lost its leadership, and a notification or ack
                # it sent after thawing would make the SDK act on a journal that is no
                # longer the log's (engine/invoker/liveness.py).
                self._check_guard()
                await stream.send(data)
        except AttemptFailed as exc:
            self._break(exc)
        except Http2Error as exc:
            self._break(exc)

    def _bump(self) -> None:
        loop = asyncio.get_running_loop()
        self._inactive_at = loop.time() + self._task.inactivity_timeout_ms / 1000

    async def exchange(self, client: Http2Client) -> AttemptOutcome:
        finished = False
        try:
            try:
                # The start and the journal leave with the HEADERS, in one write.
                stream = self._stream = await client.open_stream(
                    self._url, build_headers(self._task, self._identity), body=build_body(self._task),
                    guard=self._check_guard,
                )
            except Http2Error as exc:
                raise self._transport(UNREACHABLE, f"cannot reach {self._url} over HTTP/2: {exc}") from exc
            if stream.unsent:
                self._outgoing.put_nowait(stream.unsent)
            self._spawn(self._write_loop(stream))
            self._spawn(self._forward_loop())
            try:
                status, headers = await self._wait_for(stream.response(), "waiting for the response head")
            except Http2Error as exc:
                raise self._broken_stream(exc) from exc
            head = dict(headers)
            quote = ""
            if status != 200:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        quote = (await stream.read()).decode("utf-8", errors="replace").strip()[:2048]
            self._check_answer(status, "", head.get("x-restate-server"), head.get("content-type"), quote)
            outcome = await self._read(stream)
            finished = True
            return outcome
        finally:
            for helper in list(self._helpers):
                helper.cancel()
            if self._stream is not None:
                if finished:
                    await self._stream.end()
                self._stream.close()

    async def _read(self, stream: Http2Stream) -> AttemptOutcome:
        decoder = FrameDecoder(max_message_size=self._task.max_message_size)
        while True:
            try:
                chunk = await self._wait_for(stream.read(), "waiting for the endpoint")
            except Http2Error as exc:
                raise self._broken_stream(exc) from exc
            self._bump()
            try:
                if not chunk:
                    decoder.close()
                    raise ProtocolError(
                        "the endpoint closed the stream without an End, Suspension or Error message"
                    )
                frames = decoder.feed(chunk)
            except ProtocolError as exc:
                raise self._protocol(str(exc)) from exc
            for frame in frames:
                outcome = await self._handle(frame)
                if outcome is not None:
                    return outcome

    def _broken_stream(self, exc: Http2Error) -> BaseException:
        if self._broken is not None:
            return self._broken
        return self._transport(BAD_STREAM, f"stream to {self._url} broke off: {exc}", http_status=200)

    async def _wait_for(self, pending: Awaitable[_T], doing: str) -> _T:
        """Wait on the endpoint: at inactivity, end the request (asks the SDK to
        suspend); after the abort grace as well, fail with ABORT_TIMEOUT."""
        loop = asyncio.get_running_loop()
        future = asyncio.ensure_future(pending)
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=max(0.0, self._inactive_at - loop.time()))
                if future in done:
                    return future.result()
                if loop.time() < self._inactive_at:
                    continue  # something was pushed meanwhile
                if not self._input_open or self._stream is None:
                    raise self._timed_out(
                        FailureKind.ABORT_TIMEOUT,
                        "endpoint did not suspend within the abort timeout after the request stream was "
                        f"closed for inactivity ({doing})",
                    )
                self._log.info("endpoint inactive; closing the request stream to ask for a suspension",
                               inactivity_timeout_ms=self._task.inactivity_timeout_ms)
                self._input_open = False
                await self._stream.end()
                grace = max(0, self._task.abort_timeout_ms - self._task.inactivity_timeout_ms)
                self._inactive_at = loop.time() + grace / 1000
        finally:
            if not future.done():
                future.cancel()
