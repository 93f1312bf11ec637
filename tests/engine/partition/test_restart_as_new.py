"""``RestartAsNewInvocation``: a completed invocation runs again under a new id, with a
copy of a prefix of its journal (and the completions of the copied commands)."""

from __future__ import annotations

import dataclasses

from engine.ids import DeploymentId, InvocationId, InvocationUuid
from engine.partition.actions import InvokeAction
from engine.storage.invocation_status import StatusKind
from restate_protocol import JournalEntry
from engine.wal import records as r
from tests.engine.partition.harness import Partition, command, decode, entry, invoke, object_target, pb, service_target

PINNED = DeploymentId.generate()


def _run(name: str, completion: int) -> pb.RunCommandMessage:
    return pb.RunCommandMessage(result_completion_id=completion, name=name)


def _completed(part: Partition, target: r.InvocationTarget = service_target(), n: int = 1) -> r.Invoke:
    """A completed invocation whose journal is retained:

    0 input, 1 run one (c1), 2 c1, 3 run two (c2), 4 run three (c3), 5 c3, 6 c2, 7 output.
    """
    record = dataclasses.replace(
        invoke(target, n, headers=(r.Header("x-h", "v"),)), journal_retention_ms=600_000, completion_retention_ms=60_000
    )
    inv = record.invocation_id
    part.apply(record)
    part.apply(r.DeploymentPinned(inv, PINNED, 6))
    part.apply(command(_run("one", 1), inv, 1))
    part.apply(r.Notify(inv, r.CompletionId(1), r.Value(b"1")))
    part.apply(command(_run("two", 2), inv, 3))
    part.apply(command(_run("three", 3), inv, 4))
    part.apply(r.Notify(inv, r.CompletionId(3), r.Value(b"3")))
    part.apply(r.Notify(inv, r.CompletionId(2), r.Value(b"2")))
    part.apply(command(pb.OutputCommandMessage(value=pb.Value(content=b"done")), inv, 7))
    part.apply(r.InvocationEnded(inv, r.Value(b"done")))
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.COMPLETED and status.journal_length == 8
    return record


def _new_id(old: InvocationId, n: int = 1) -> InvocationId:
    return InvocationId(old.partition_key, InvocationUuid.derive("restart", str(n)))


def _names(journal: list[JournalEntry]) -> list[str]:
    out = []
    for e in journal:
        message = decode(e)
        out.append(getattr(message, "name", "") or f"c{getattr(message, 'completion_id', '')}")
    return out


def test_restart_from_a_prefix_copies_it_with_the_completions_of_its_commands(part: Partition) -> None:
    old = _completed(part).invocation_id
    new = _new_id(old)
    assert part.apply(r.RestartAsNewInvocation(old, new, 3)) == [InvokeAction(new)]
    journal = part.journal(new)
    # Entries 0..3 (input, one, its completion, two), then two's completion from further on.
    assert journal[0] == part.journal(old)[0]
    assert _names(journal[1:]) == ["one", "c1", "two", "c2"]
    status = part.status(new)
    assert status is not None
    assert (status.kind, status.journal_length, status.commands) == (StatusKind.INVOKED, 5, 3)
    assert (status.restarted_from, status.random_seed_from) == (old, old)  # the copied steps replay the same randoms
    assert (status.deployment_id, status.protocol_version) == (PINNED, 6)
    assert status.argument == b'"arg"' and status.headers == (r.Header("x-h", "v"),)
    assert status.response_sinks == () and status.idempotency_key is None
    assert (status.completion_retention_ms, status.journal_retention_ms) == (60_000, 600_000)
    with part.read() as t:
        assert t.journal.has_notification(new, r.CompletionId(2))
        assert not t.journal.has_notification(new, r.CompletionId(3))
    # The old invocation is untouched.
    assert (old_status := part.status(old)) is not None and old_status.kind is StatusKind.COMPLETED


def test_restart_from_the_start_keeps_the_input_only_and_a_fresh_seed(part: Partition) -> None:
    old = _completed(part).invocation_id
    new = _new_id(old)
    other = DeploymentId.generate()
    part.apply(r.RestartAsNewInvocation(old, new, 0, other))
    assert part.journal(new) == part.journal(old)[:1]
    status = part.status(new)
    assert status is not None and (status.restarted_from, status.random_seed_from) == (old, None)
    assert (status.deployment_id, status.protocol_version) == (other, 6)  # moved, same protocol version


def test_restart_without_a_retained_journal_journals_the_input_from_the_status(part: Partition) -> None:
    record = invoke(service_target(), 1, argument=b'"again"')
    old = record.invocation_id
    part.apply(record)
    part.apply(r.InvocationEnded(old, r.Value(b"x")))
    assert part.journal(old) == []
    new = _new_id(old)
    assert part.apply(r.RestartAsNewInvocation(old, new, 0)) == [InvokeAction(new)]
    [input_entry] = part.journal(new)
    assert decode(input_entry) == pb.InputCommandMessage(value=pb.Value(content=b'"again"'))
    # Nothing to copy from: a prefix beyond the input is dropped.
    assert part.apply(r.RestartAsNewInvocation(old, _new_id(old, 2), 1)) == []
    assert part.status(_new_id(old, 2)) is None


def test_a_restarted_object_invocation_waits_for_the_key_and_starts_with_its_journal(part: Partition) -> None:
    target = object_target("k")
    old = _completed(part, target).invocation_id
    holder = invoke(target, 2)
    part.apply(holder)  # holds the key
    new = _new_id(old)
    assert part.apply(r.RestartAsNewInvocation(old, new, 1)) == []
    assert (status := part.status(new)) is not None and status.kind is StatusKind.INBOXED
    assert InvokeAction(new) in part.apply(r.InvocationEnded(holder.invocation_id, r.Value(b"")))
    status = part.status(new)
    assert status is not None and (status.kind, status.journal_length) == (StatusKind.INVOKED, 3)
    assert _names(part.journal(new)[1:]) == ["one", "c1"]


def test_restart_is_dropped_when_the_old_invocation_is_not_completed_or_the_id_is_taken(part: Partition) -> None:
    running = invoke(service_target(), 5)
    part.apply(running)
    assert part.apply(r.RestartAsNewInvocation(running.invocation_id, _new_id(running.invocation_id), 0)) == []
    assert part.status(_new_id(running.invocation_id)) is None
    old = _completed(part).invocation_id
    assert part.apply(r.RestartAsNewInvocation(old, running.invocation_id, 0)) == []  # taken
    unknown = _new_id(old, 9)
    assert part.apply(r.RestartAsNewInvocation(unknown, _new_id(old, 10), 0)) == []
    workflow = r.InvocationTarget("Flow", "run", "w", r.ServiceKind.WORKFLOW, r.HandlerKind.WORKFLOW)
    flow = invoke(workflow, 6)
    part.apply(flow)
    part.apply(r.InvocationEnded(flow.invocation_id, r.Value(b"")))
    assert part.apply(r.RestartAsNewInvocation(flow.invocation_id, _new_id(flow.invocation_id), 0)) == []
    assert part.journal(_new_id(flow.invocation_id)) == []


def test_entries_are_copied_verbatim(part: Partition) -> None:
    old = _completed(part).invocation_id
    new = _new_id(old)
    part.apply(r.RestartAsNewInvocation(old, new, 7))  # everything, the output included
    assert part.journal(new) == part.journal(old)
    assert entry(_run("one", 1)) in part.journal(new)
