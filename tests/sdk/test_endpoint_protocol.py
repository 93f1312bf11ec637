"""The endpoint at the protocol level: each attempt's answer for a given journal.

No runtime here: the tests play the runtime, sending StartMessage + journal and reading
what the SDK writes back (commands, run proposals, suspension, output, errors).
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

import sdk
from restate_protocol import pb
from sdk.endpoint import Endpoint
from tests.sdk.protocol_driver import INVOCATION_ID, invoke, json_input, names, request

svc = sdk.Service("Proto")
obj = sdk.VirtualObject("ProtoObj")


@svc.handler()
async def steps(ctx: sdk.Context, name: str) -> str:
    count: int = await ctx.run("count", lambda: 1, type_hint=int)
    await ctx.sleep(timedelta(seconds=1))
    return f"{name}:{count}"


@svc.handler()
async def race(ctx: sdk.Context) -> str:
    a = ctx.sleep(timedelta(seconds=1))
    b = ctx.sleep(timedelta(seconds=2))
    winner, _ = await sdk.select(a=a, b=b)
    return winner


@svc.handler()
async def swallow(ctx: sdk.Context) -> str:
    try:
        await ctx.sleep(timedelta(seconds=1))
    except Exception:  # noqa: BLE001 - the point: suspension is not an Exception
        return "swallowed"
    return "slept"


@svc.handler()
async def awake(ctx: sdk.Context) -> str:
    awakeable_id, future = ctx.awakeable(type_hint=str)
    ctx.run("publish", lambda: awakeable_id)
    value: str = await future
    return value


@svc.handler()
async def cancellable(ctx: sdk.Context) -> str:
    try:
        await ctx.sleep(timedelta(hours=1))
    except sdk.TerminalError as exc:
        undone: str = await ctx.run("compensate", lambda: f"undone after {exc.status_code}")
        return undone
    return "slept"


@obj.handler()
async def incr(ctx: sdk.ObjectContext) -> int:
    value: int = (await ctx.get("n", type_hint=int) or 0) + 1
    ctx.set("n", value)
    return value


endpoint = Endpoint([svc, obj])


def run_completion(cid: int, value: bytes) -> pb.RunCompletionNotificationMessage:
    return pb.RunCompletionNotificationMessage(completion_id=cid, value=pb.Value(content=value))


@pytest.mark.parametrize("version", [5, 6, 7])
def test_attempts_progress_through_run_sleep_and_output(version: int) -> None:
    first = invoke(endpoint, "Proto", "steps", request(json_input('"Ada"'), version=version), version)
    assert names(first) == ["RunCommand", "ProposeRunCompletion", "Suspension"]
    assert first[1].message == pb.ProposeRunCompletionMessage(result_completion_id=1, value=b"1")
    assert first[1].requested_ack == (version >= 7)
    suspension = first[2].message
    assert isinstance(suspension, pb.SuspensionMessage)
    waiting = suspension.awaiting_on.waiting_completions if version >= 7 else suspension.waiting_completions
    assert list(waiting) == [1]

    journal = [json_input('"Ada"'), first[0].message, run_completion(1, b"1")]
    second = invoke(endpoint, "Proto", "steps", request(*journal, version=version), version)
    assert names(second) == ["SleepCommand", "Suspension"]

    journal += [second[0].message, pb.SleepCompletionNotificationMessage(completion_id=2, void=pb.Void())]
    third = invoke(endpoint, "Proto", "steps", request(*journal, version=version), version)
    assert names(third) == ["OutputCommand", "End"]
    assert third[0].message == pb.OutputCommandMessage(value=pb.Value(content=b'"Ada:1"'))


def test_replay_mismatch_is_error_570_naming_handler_index_and_difference() -> None:
    journal = [json_input('"Ada"'), pb.RunCommandMessage(result_completion_id=1, name="other")]
    frames = invoke(endpoint, "Proto", "steps", request(*journal))
    assert names(frames) == ["Error"]
    error = frames[0].message
    assert isinstance(error, pb.ErrorMessage)
    assert error.code == 570
    assert error.related_command_index == 1
    assert "handler Proto/steps at command index 1" in error.message
    assert "expected RunCommand(name='other')" in error.message
    assert "issued RunCommand(name='count')" in error.message


def test_a_different_command_type_is_a_mismatch_too() -> None:
    journal = [json_input('"Ada"'), pb.SleepCommandMessage(result_completion_id=1, wake_up_time=5)]
    error = invoke(endpoint, "Proto", "steps", request(*journal))[0].message
    assert isinstance(error, pb.ErrorMessage) and error.code == 570
    assert "expected SleepCommand" in error.message


def test_select_replays_the_winner_recorded_first_even_when_both_completed() -> None:
    commands = [
        pb.SleepCommandMessage(result_completion_id=1, wake_up_time=1),
        pb.SleepCommandMessage(result_completion_id=2, wake_up_time=2),
    ]
    # b's completion was journaled first: b won the first time, so b wins on replay.
    journal = [pb.InputCommandMessage(), *commands,
               pb.SleepCompletionNotificationMessage(completion_id=2, void=pb.Void()),
               pb.SleepCompletionNotificationMessage(completion_id=1, void=pb.Void())]
    frames = invoke(endpoint, "Proto", "race", request(*journal))
    assert frames[0].message == pb.OutputCommandMessage(value=pb.Value(content=b'"b"'))


def test_suspension_cannot_be_swallowed_by_except_exception() -> None:
    frames = invoke(endpoint, "Proto", "swallow", request(pb.InputCommandMessage()))
    assert names(frames) == ["SleepCommand", "Suspension"]


def test_awakeable_id_and_signal_resolution() -> None:
    first = invoke(endpoint, "Proto", "awake", request(pb.InputCommandMessage()))
    proposal = first[1].message
    assert isinstance(proposal, pb.ProposeRunCompletionMessage)
    awakeable_id = json.loads(proposal.value)
    assert awakeable_id.startswith("sign_1")
    suspension = first[-1].message
    assert isinstance(suspension, pb.SuspensionMessage)
    # The awakeable's signal, and the CANCEL signal (1) so a cancel wakes the handler.
    assert list(suspension.awaiting_on.waiting_signals) == [1, 17]
    journal = [pb.InputCommandMessage(), first[0].message, run_completion(1, proposal.value),
               pb.SignalNotificationMessage(idx=17, value=pb.Value(content=b'"hi"'))]
    frames = invoke(endpoint, "Proto", "awake", request(*journal))
    assert frames[0].message == pb.OutputCommandMessage(value=pb.Value(content=b'"hi"'))
    import base64

    raw = base64.urlsafe_b64decode(awakeable_id[len("sign_1"):] + "==")
    assert raw == INVOCATION_ID + (17).to_bytes(4, "big")


def test_eager_state_read_and_write() -> None:
    frames = invoke(endpoint, "ProtoObj", "incr", request(pb.InputCommandMessage(), key="k",
                                                          state={b"n": b"4"}))
    assert names(frames) == ["GetEagerStateCommand", "SetStateCommand", "OutputCommand", "End"]
    assert frames[1].message == pb.SetStateCommandMessage(key=b"n", value=pb.Value(content=b"5"))


def test_lazy_state_read_when_state_is_partial() -> None:
    frames = invoke(endpoint, "ProtoObj", "incr", request(pb.InputCommandMessage(), key="k",
                                                          partial_state=True))
    assert names(frames) == ["GetLazyStateCommand", "Suspension"]
    journal = [pb.InputCommandMessage(), frames[0].message,
               pb.GetLazyStateCompletionNotificationMessage(completion_id=1, value=pb.Value(content=b"9"))]
    frames = invoke(endpoint, "ProtoObj", "incr", request(*journal, key="k", partial_state=True))
    assert names(frames) == ["SetStateCommand", "OutputCommand", "End"]
    assert frames[0].message == pb.SetStateCommandMessage(key=b"n", value=pb.Value(content=b"10"))


def test_unknown_handler_is_404_and_unknown_version_415() -> None:
    assert endpoint.invoke("Proto", "nope", "application/vnd.restate.invocation.v7", {}, b"").status == 404
    assert endpoint.invoke("Proto", "steps", "application/vnd.restate.invocation.v4", {}, b"").status == 415


def test_sync_run_does_not_block_the_event_loop() -> None:
    import threading

    release = threading.Event()
    slow = sdk.Service("Slow")

    @slow.handler()
    async def block(ctx: sdk.Context) -> str:
        await ctx.run("wait", release.wait, 10)
        return "done"

    ep = Endpoint([slow])

    async def scenario() -> bool:
        response = ep.invoke("Slow", "block", "application/vnd.restate.invocation.v7", {},
                             request(pb.InputCommandMessage()))
        assert not isinstance(response.body, bytes)
        body = response.body

        async def drain() -> list[bytes]:
            return [chunk async for chunk in body]

        task = asyncio.create_task(drain())
        # The loop is free while the sync step waits in its thread.
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1
        release.set()
        await task
        return ticks == 5

    assert asyncio.run(scenario())


@svc.handler()
async def gather_fail(ctx: sdk.Context) -> str:
    slow = ctx.sleep(timedelta(seconds=9))
    bad = ctx.run("bad", lambda: 1, type_hint=int)
    try:
        await sdk.gather(slow, bad)
    except sdk.TerminalError as exc:
        return f"failed {exc.status_code}"
    return "ok"


def test_gather_raises_the_first_failure_without_waiting_for_the_rest() -> None:
    journal = [pb.InputCommandMessage(), pb.SleepCommandMessage(result_completion_id=1),
               pb.RunCommandMessage(result_completion_id=2, name="bad"),
               pb.RunCompletionNotificationMessage(completion_id=2, failure=pb.Failure(code=418, message="no"))]
    frames = invoke(Endpoint([svc]), "Proto", "gather_fail", request(*journal))
    assert frames[0].message == pb.OutputCommandMessage(value=pb.Value(content=b'"failed 418"'))


def test_cancel_signal_interrupts_the_wait_once_and_compensation_runs() -> None:
    sleep = pb.SleepCommandMessage(result_completion_id=1)
    cancel = pb.SignalNotificationMessage(idx=1, void=pb.Void())
    first = invoke(endpoint, "Proto", "cancellable", request(pb.InputCommandMessage()))
    assert names(first) == ["SleepCommand", "Suspension"]
    suspension = first[-1].message
    assert isinstance(suspension, pb.SuspensionMessage)
    assert list(suspension.awaiting_on.waiting_signals) == [1]
    sleep.wake_up_time = first[0].message.wake_up_time  # type: ignore[union-attr]
    # Cancelled while suspended: the sleep raises 409, the compensation step runs, and
    # the suspension on its result no longer waits for the (already seen) cancel.
    second = invoke(endpoint, "Proto", "cancellable", request(pb.InputCommandMessage(), sleep, cancel))
    assert names(second) == ["RunCommand", "ProposeRunCompletion", "Suspension"]
    compensation = second[1].message
    assert isinstance(compensation, pb.ProposeRunCompletionMessage)
    assert json.loads(compensation.value) == "undone after 409"
    waiting = second[2].message
    assert isinstance(waiting, pb.SuspensionMessage)
    assert list(waiting.awaiting_on.waiting_completions) == [2]
    assert list(waiting.awaiting_on.waiting_signals) == []
    # On replay the cancel is met at the same point; the compensation's result is journaled.
    journal = [pb.InputCommandMessage(), sleep, cancel, second[0].message,
               run_completion(2, compensation.value),
               pb.SleepCompletionNotificationMessage(completion_id=1, void=pb.Void())]
    third = invoke(endpoint, "Proto", "cancellable", request(*journal))
    assert third[0].message == pb.OutputCommandMessage(value=pb.Value(content=b'"undone after 409"'))
    assert names(third) == ["OutputCommand", "End"]
