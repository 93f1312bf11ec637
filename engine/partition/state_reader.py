"""Reads the invoker does after a batch committed: what an attempt needs, what to restart.

The state machine's ``InvokeAction`` names only the invocation; the invoker reads the
rest here, in a read transaction, so it always sees the committed state (including
notifications journaled after the action was emitted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from engine.ids import DeploymentId, InvocationId
from engine.partition.state_machine.invoke import input_entry
from engine.storage.invocation_status import LastFailure, StatusKind
from restate_protocol import JournalEntry
from engine.storage.tables import PartitionTables
from engine.wal.records import Header, InvocationTarget, Invoke, StateEntry

__all__ = [
    "DEFAULT_EAGER_STATE_LIMIT",
    "InvocationTaskData",
    "first_attempt_data",
    "invoked_invocations",
    "load_invocation_task_data",
]

DEFAULT_EAGER_STATE_LIMIT: Final = 1024 * 1024
"""Most bytes of object state sent eagerly in a StartMessage; beyond it, partial state."""


@dataclass(frozen=True, slots=True)
class InvocationTaskData:
    """Everything stored that one attempt of an invocation needs.

    Attributes:
        invocation_id: The invocation.
        target: Service, handler, key and kinds.
        headers: The request headers (also in the InputCommand, entry 0).
        idempotency_key: The key it was submitted with, if any.
        deployment_id: The pinned deployment; ``None`` before the first attempt chose one.
        protocol_version: The pinned protocol version, with the deployment.
        journal: Every entry, in order; entry 0 is the InputCommand.
        commands: How many of the entries are commands.
        state: The object's state sent eagerly (empty for plain services).
        partial_state: True when ``state`` is not the whole state (over the size limit),
            so the SDK must read missing keys lazily.
        attempt: Failed attempts so far.
        retries_since_last_entry: Failed attempts since the journal last grew.
        last_failure: The last retryable failure, if any.
        modified_at_ms: When the status last changed (record time).
        random_seed_from: The invocation whose id seeds the SDK's random generator when
            not this one's (a restart from a journal prefix keeps the original's).
        created_at_ms: When the invocation was created (record time): the start of its
            end-to-end latency and of its trace span.
    """

    invocation_id: InvocationId
    target: InvocationTarget
    headers: tuple[Header, ...]
    idempotency_key: str | None
    deployment_id: DeploymentId | None
    protocol_version: int | None
    journal: tuple[JournalEntry, ...]
    commands: int
    state: tuple[StateEntry, ...]
    partial_state: bool
    attempt: int
    retries_since_last_entry: int
    last_failure: LastFailure | None
    modified_at_ms: int
    random_seed_from: InvocationId | None = None
    created_at_ms: int = 0


def load_invocation_task_data(
    tables: PartitionTables,
    invocation_id: InvocationId,
    *,
    eager_state_limit: int = DEFAULT_EAGER_STATE_LIMIT,
) -> InvocationTaskData | None:
    """What an attempt of ``invocation_id`` needs; ``None`` unless it is Invoked.

    Eager state: the object's entries in storage order until their keys and values
    would pass ``eager_state_limit`` bytes; the rest is left to lazy reads.
    """
    status = tables.status.get(invocation_id)
    if status is None or status.kind is not StatusKind.INVOKED:
        return None
    journal = tuple(
        entry
        for index, entry in tables.journal.entries(invocation_id)
        if index < status.journal_length
    )
    state: list[StateEntry] = []
    partial = False
    key = status.target.key
    if key is not None:
        size = 0
        for entry in tables.state.scan(status.target.service, key):
            size += len(entry.key) + len(entry.value)
            if size > eager_state_limit:
                partial = True
                break
            state.append(entry)
    return InvocationTaskData(
        invocation_id=invocation_id,
        target=status.target,
        headers=status.headers,
        idempotency_key=status.idempotency_key,
        deployment_id=status.deployment_id,
        protocol_version=status.protocol_version,
        journal=journal,
        commands=status.commands,
        state=tuple(state),
        partial_state=partial,
        attempt=status.attempt,
        retries_since_last_entry=status.retries_since_last_entry,
        last_failure=status.last_failure,
        modified_at_ms=status.modified_at_ms,
        random_seed_from=status.random_seed_from,
        created_at_ms=status.created_at_ms,
    )


def first_attempt_data(record: Invoke, now_ms: int, state: tuple[StateEntry, ...] = ()) -> InvocationTaskData:
    """What :func:`load_invocation_task_data` reads right after ``record`` is applied,
    when :func:`~engine.partition.state_machine.invoke.starts_when_applied` holds: the
    input as the whole journal, nothing pinned, no state, no attempts yet (the early
    first attempt of ``leader.invocations``). ``now_ms``: the submitter's clock.
    ``state``: the whole object state a speculative first attempt runs with
    (``leader.speculation``)."""
    return InvocationTaskData(
        invocation_id=record.invocation_id,
        target=record.target,
        headers=record.headers,
        idempotency_key=record.idempotency_key,
        deployment_id=None,
        protocol_version=None,
        journal=(input_entry(record.headers, record.argument),),
        commands=1,
        state=state,
        partial_state=False,
        attempt=0,
        retries_since_last_entry=0,
        last_failure=None,
        modified_at_ms=now_ms,
        created_at_ms=now_ms,
    )


def invoked_invocations(tables: PartitionTables) -> list[InvocationId]:
    """Every Invoked invocation of the partition: a new leader starts an attempt for each
    (their previous attempts died with the previous leader)."""
    return [invocation_id for invocation_id, _ in tables.status.scan(StatusKind.INVOKED)]
