"""The bidirectional session's ack rule, against a raw protocol endpoint over h2c.

The endpoint sends a command with REQUESTED_ACK and finishes only once it got the
``CommandAck``. The attempt's ``confirm`` says whether the record was applied under the
attempt's leadership: when it says no (a fenced-off leader's record: durable, but
ignored at apply), no ack may reach the endpoint and the attempt fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from engine.invoker.http2 import Http2Client
from engine.invoker.liveness import Stalled
from restate_protocol import FrameDecoder, MessageType, ProtocolVersion, encode_frame, pb
from engine.invoker.stream_session import AttemptChannel, run_stream_attempt
from engine.invoker.task import FailureKind, OutcomeKind
from engine.wal.records import InvokerEffect, JournalAppend, Notify, Value
from tests.engine.invoker.driver import new_task
from tests.engine.invoker.test_http2 import h2c_server

acks_seen: list[int] = []


async def ack_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    ctype = dict(scope["headers"])[b"content-type"]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]})
    decoder = FrameDecoder()
    frames: list[Any] = []
    while len(frames) < 2:  # StartMessage + the input
        message = await receive()
        frames.extend(decoder.feed(message.get("body", b"")))
    set_state = pb.SetStateCommandMessage(key=b"k", value=pb.Value(content=b"1"))
    await send({"type": "http.response.body", "body": encode_frame(set_state, requested_ack=True), "more_body": True})
    try:
        async with asyncio.timeout(2):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                for frame in decoder.feed(message.get("body", b"")):
                    if frame.type_id == MessageType.COMMAND_ACK:
                        acks_seen.append(frame.message.command_index)
                        body = encode_frame(pb.OutputCommandMessage(value=pb.Value(content=b'"done"')))
                        body += encode_frame(pb.EndMessage())
                        await send({"type": "http.response.body", "body": body, "more_body": False})
                        return
    except TimeoutError:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _attempt(
    applied: bool, guard: Callable[[], None] | None = None
) -> tuple[Any, list[InvokerEffect | Notify], list[int]]:
    acks_seen.clear()
    emitted: list[InvokerEffect | Notify] = []
    confirmed: list[int] = []

    def emit(record: InvokerEffect | Notify) -> asyncio.Future[int]:
        emitted.append(record)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_result(100 + len(emitted))
        return future

    async def confirm(offset: int) -> bool:
        confirmed.append(offset)
        await asyncio.sleep(0.05)
        return applied

    async with h2c_server(ack_app) as base:
        client = Http2Client()
        try:
            task = new_task(base, "S", "h", "x", version=ProtocolVersion.V5,
                            inactivity_timeout_ms=5000, abort_timeout_ms=6000)
            outcome = await run_stream_attempt(task, client, emit, AttemptChannel(confirm), guard=guard)
        finally:
            await client.close()
    return outcome, emitted, confirmed


def test_ack_is_sent_once_the_record_is_applied() -> None:
    outcome, emitted, confirmed = asyncio.run(_attempt(applied=True))
    assert outcome.kind is OutcomeKind.ENDED and outcome.result == Value(b'"done"')
    assert acks_seen == [1]  # command 1: the input is command 0
    assert confirmed == [101]  # the SetState record's offset was confirmed first
    assert isinstance(emitted[0], JournalAppend) and emitted[0].command_index == 1


def test_no_ack_for_a_record_that_was_not_applied() -> None:
    outcome, emitted, confirmed = asyncio.run(_attempt(applied=False))
    assert acks_seen == []
    assert confirmed == [101]
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.failure is not None and outcome.failure.kind is FailureKind.TRANSPORT
    assert "not applied" in outcome.failure.message


def test_no_ack_leaves_after_a_stall_while_the_stream_was_open() -> None:
    """The start passes the guard; by the time the ack is due, the process was stalled
    (its leadership may have moved): the ack must not reach the endpoint."""
    checks: list[int] = []

    def guard() -> None:
        checks.append(len(checks))
        if len(checks) > 1:
            raise Stalled("stalled a moment ago")

    outcome, emitted, confirmed = asyncio.run(_attempt(applied=True, guard=guard))
    assert len(checks) == 2  # once for the start, once for the ack
    assert acks_seen == []
    assert confirmed == [101]
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.failure is not None and outcome.failure.kind is FailureKind.TRANSPORT
    assert "stalled" in outcome.failure.message
