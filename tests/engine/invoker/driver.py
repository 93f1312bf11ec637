"""Drives an invocation's attempts the way the partition processor will.

The processor keeps the journal; after each attempt it appends what the invoker emitted
(``JournalAppend`` as is, ``Notify`` as the matching notification entry) and, when the
invocation suspended, appends the notifications that arrive later (a timer firing, a
call's result). :class:`Driver` does exactly that with a plain list, so the invoker tests
exercise the real replay cycle against a real SDK without Kafka or LMDB.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from engine.invoker.http1 import Http1Client

from engine.ids import InvocationId, InvocationUuid, make_partition_key
from engine.journal.notifications import journal_completion_types, notification_entry
from restate_protocol import MessageType, ProtocolVersion, is_notification, pb
from engine.invoker.session import ResolveCall, run_attempt
from engine.invoker.task import AttemptOutcome, EndpointTarget, InvocationTask
from restate_protocol import JournalEntry
from engine.wal.records import JournalAppend, Notify, Record


def input_entry(argument: object) -> JournalEntry:
    """Journal entry 0 carrying ``argument`` as JSON, as ingress would store it."""
    message = pb.InputCommandMessage(value=pb.Value(content=json.dumps(argument).encode()))
    return JournalEntry(MessageType.INPUT_COMMAND, message.SerializeToString())


def new_task(
    base_url: str,
    service: str,
    handler: str,
    argument: object,
    *,
    version: ProtocolVersion = ProtocolVersion.V7,
    key: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    **fields: object,
) -> InvocationTask:
    """A first-attempt task: a fresh invocation id and a journal holding only the input."""
    invocation_id = InvocationId(make_partition_key(42), InvocationUuid.generate())
    endpoint = EndpointTarget(base_url, version, headers)
    task = InvocationTask(
        invocation_id=invocation_id,
        service=service,
        handler=handler,
        key=key,
        endpoint=endpoint,
        journal=(input_entry(argument),),
    )
    return dataclasses.replace(task, **fields)  # type: ignore[arg-type]


@dataclass
class Driver:
    """One invocation's journal, advanced attempt by attempt."""

    http: Http1Client
    task: InvocationTask
    history: list[Record] = field(default_factory=list)
    resolve_call: ResolveCall | None = None

    @property
    def journal(self) -> tuple[JournalEntry, ...]:
        return self.task.journal

    @property
    def journal_types(self) -> list[int]:
        return [entry.message_type for entry in self.task.journal]

    async def attempt(self, **changes: object) -> tuple[AttemptOutcome, list[Record]]:
        """Run one attempt (with ``changes`` to the task), then apply what it emitted."""
        task = dataclasses.replace(self.task, **changes)  # type: ignore[arg-type]
        emitted: list[Record] = []

        async def emit(record: Record) -> None:
            emitted.append(record)

        outcome = await run_attempt(task, self.http, emit, self.resolve_call)
        self.task = task
        self.apply(emitted)
        return outcome, emitted

    def apply(self, records: list[Record]) -> None:
        """Append journal entries for emitted records, checking their indexes."""
        for record in records:
            self.history.append(record)
            if isinstance(record, JournalAppend):
                assert record.invocation_id == self.task.invocation_id
                self._check_index(record.entry_index)
                self._append(JournalEntry(record.message_type, record.message))
            elif isinstance(record, Notify):
                self.notify(record)

    def _check_index(self, index: int) -> None:
        """The state machine's rule: the end of the journal, or only notifications after."""
        journal = self.task.journal
        assert index <= len(journal), f"entry index {index} beyond the journal's {len(journal)}"
        after = [entry.message_type for entry in journal[index:]]
        assert all(is_notification(t) for t in after), (
            f"entry index {index} already holds a command: {after}"
        )

    def notify(self, notify: Notify) -> None:
        """Journal a notification, as the state machine does when it arrives."""
        types = journal_completion_types(self.task.journal)
        self._append(notification_entry(notify, types))

    def _append(self, entry: JournalEntry) -> None:
        self.task = dataclasses.replace(self.task, journal=(*self.task.journal, entry))
