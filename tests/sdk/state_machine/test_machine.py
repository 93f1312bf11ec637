"""The pure state machine: matching, notification order, closing for good."""

from __future__ import annotations

import pytest

from restate_protocol import Frame, FrameDecoder, encode_frame, pb
from sdk.errors import AttemptFailed, InvocationSuspended
from sdk.state_machine import Closed, StateMachine, completion_key


def frames(*messages: object) -> list[Frame]:
    decoder = FrameDecoder()
    return decoder.feed(b"".join(encode_frame(m) for m in messages))  # type: ignore[arg-type]


def machine(*journal: object, version: int = 7) -> tuple[StateMachine, list[bytes]]:
    out: list[bytes] = []
    entries = frames(pb.InputCommandMessage(), *journal)
    m = StateMachine(version=version, start=pb.StartMessage(id=b"x" * 16, debug_id="inv_x"),
                     entries=entries, label="S/h", sink=out.append)
    return m, out


def written(out: list[bytes]) -> list[str]:
    decoder = FrameDecoder()
    return [f.name for f in decoder.feed(b"".join(out))]


def test_replayed_commands_are_not_written_and_new_ones_are() -> None:
    m, out = machine(pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")))
    assert m.replaying
    m.command(pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")))
    assert not m.replaying and out == []
    m.command(pb.ClearStateCommandMessage(key=b"a"))
    assert written(out) == ["ClearStateCommand"]
    assert m.command_index == 2


def test_notifications_are_taken_lazily_in_journal_order() -> None:
    m, _ = machine(
        pb.SleepCommandMessage(result_completion_id=1), pb.SleepCommandMessage(result_completion_id=2),
        pb.SleepCompletionNotificationMessage(completion_id=2, void=pb.Void()),
        pb.SleepCompletionNotificationMessage(completion_id=1, void=pb.Void()),
    )
    m.command(pb.SleepCommandMessage(result_completion_id=m.next_completion_id()))
    m.command(pb.SleepCommandMessage(result_completion_id=m.next_completion_id()))
    # Waiting for either: only the first journaled notification is consumed.
    assert m.progress(lambda: m.has_result(completion_key(1)) or m.has_result(completion_key(2)))
    assert m.has_result(completion_key(2)) and not m.has_result(completion_key(1))
    assert m.journaled(completion_key(1))


def test_output_with_journal_left_over_is_a_mismatch() -> None:
    m, out = machine(pb.RunCommandMessage(result_completion_id=1, name="x"))
    with pytest.raises(AttemptFailed):
        m.output(b'"done"')
    assert m.closed is Closed.FAILED
    assert written(out) == ["Error"]


def test_a_closed_machine_keeps_raising_and_writes_nothing_more() -> None:
    m, out = machine()
    m.command(pb.SleepCommandMessage(result_completion_id=m.next_completion_id()))
    with pytest.raises(InvocationSuspended):
        m.suspend([completion_key(1)])
    with pytest.raises(InvocationSuspended):
        m.command(pb.ClearAllStateCommandMessage())
    m.fail(500, "ignored")
    assert written(out) == ["SleepCommand", "Suspension"]


def test_v5_suspension_uses_the_flat_lists() -> None:
    m, out = machine(version=5)
    with pytest.raises(InvocationSuspended):
        m.suspend([completion_key(3), ("s", 17)])
    decoder = FrameDecoder()
    message = decoder.feed(b"".join(out))[0].message
    assert isinstance(message, pb.SuspensionMessage)
    assert list(message.waiting_completions) == [3] and list(message.waiting_signals) == [17]


def test_journal_must_start_with_the_input() -> None:
    out: list[bytes] = []
    with pytest.raises(AttemptFailed):
        StateMachine(version=7, start=pb.StartMessage(), entries=frames(pb.EndMessage()),
                     label="S/h", sink=out.append)
    assert written(out) == ["Error"]
