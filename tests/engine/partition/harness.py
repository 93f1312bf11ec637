"""Drives the state machine against a real LMDB environment, one record at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from google.protobuf.message import Message

from engine.ids import InvocationId, InvocationUuid
from restate_protocol import pb, spec_for_id, spec_for_message
from engine.partition.actions import Action
from engine.partition.state_machine import DEFAULT_OPTIONS, StateMachineOptions, apply
from engine.storage.environment import StorageEnvironment
from engine.storage.invocation_status import InvocationStatus
from restate_protocol import JournalEntry
from engine.storage.tables import PartitionTables, StorageTables, TableHandles
from engine.wal import records as r
from engine.wal.partitioning import invocation_id_for

T0 = 1_700_000_000_000
"""The timestamp of the first record (ms)."""


class Partition:
    """Partition ``partition`` of a fresh LMDB environment, fed records in order."""

    def __init__(
        self,
        data_dir: Path,
        *,
        partition: int = 0,
        partition_count: int = 1,
        options: StateMachineOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.env = StorageEnvironment(data_dir, map_size_mb=64)
        self.handles = TableHandles.open(self.env.env)
        self.partition = partition
        self.partition_count = partition_count
        self.options = options
        self.offset = 0
        self.now_ms = T0

    def close(self) -> None:
        self.env.close()

    def apply(
        self,
        record: r.Record,
        *,
        epoch: int | None = None,
        dedup_id: r.DedupId | None = None,
        at_ms: int | None = None,
        offset: int | None = None,
    ) -> list[Action]:
        """Apply ``record`` at the next offset; time advances 1 ms per record unless given."""
        if at_ms is not None:
            self.now_ms = at_ms
        applied_at = self.offset if offset is None else offset
        with self.env.env.begin(write=True) as txn:
            # Write-back status rows, flushed after the record: as the processor does.
            tables = StorageTables(txn, self.handles, write_back=True)
            actions = apply(
                tables,
                self.partition,
                r.Envelope(record, epoch=epoch, dedup_id=dedup_id),
                applied_at,
                self.now_ms,
                self.partition_count,
                options=self.options,
            )
            tables.flush()
        self.offset = max(self.offset, applied_at + 1)
        self.now_ms += 1
        return actions

    @contextmanager
    def read(self) -> Iterator[PartitionTables]:
        """The partition's tables in a read transaction."""
        with self.env.env.begin() as txn:
            yield StorageTables(txn, self.handles).partition(self.partition)

    def status(self, invocation_id: InvocationId) -> InvocationStatus | None:
        with self.read() as t:
            return t.status.get(invocation_id)

    def journal(self, invocation_id: InvocationId) -> list[JournalEntry]:
        with self.read() as t:
            return [entry for _, entry in t.journal.entries(invocation_id)]

    def dump(self) -> dict[str, list[tuple[bytes, bytes]]]:
        """Every row of every table, for byte-for-byte comparisons."""
        out: dict[str, list[tuple[bytes, bytes]]] = {}
        with self.env.env.begin() as txn:
            for name, db in self.handles.all().items():
                out[name] = list(txn.cursor(db).iternext())
        return out


def command(message: Message, invocation_id: InvocationId, index: int) -> r.JournalAppend:
    """A ``JournalAppend`` of protobuf ``message`` at ``index``."""
    spec = spec_for_message(message)
    return r.JournalAppend(invocation_id, index, spec.type_id, message.SerializeToString())


def entry(message: Message) -> JournalEntry:
    """The journal entry of ``message``."""
    return JournalEntry(spec_for_message(message).type_id, message.SerializeToString())


def decode(journal_entry: JournalEntry) -> Message:
    """The protobuf message of a journal entry."""
    return spec_for_id(journal_entry.message_type).cls.FromString(journal_entry.message)


def service_target(service: str = "Greeter", handler: str = "greet") -> r.InvocationTarget:
    return r.InvocationTarget(service, handler, None, r.ServiceKind.SERVICE)


def object_target(
    key: str,
    handler: str = "add",
    kind: r.HandlerKind | None = r.HandlerKind.EXCLUSIVE,
    service: str = "Counter",
) -> r.InvocationTarget:
    return r.InvocationTarget(service, handler, key, r.ServiceKind.VIRTUAL_OBJECT, kind)


def new_id(target: r.InvocationTarget, n: int) -> InvocationId:
    """A deterministic invocation id for ``target`` (placed like the engine places it)."""
    return invocation_id_for(target.service, target.key, InvocationUuid.derive("test", str(n)))


def invoke(
    target: r.InvocationTarget,
    n: int,
    argument: bytes = b'"arg"',
    *,
    request: str | None = None,
    headers: tuple[r.Header, ...] = (),
    idempotency_key: str | None = None,
    execute_at_ms: int | None = None,
) -> r.Invoke:
    """An ``Invoke`` of ``target`` answering ingress request ``request`` (default ``req-n``)."""
    request_id = request or f"req-{n}"
    return r.Invoke(
        invocation_id=new_id(target, n),
        target=target,
        argument=argument,
        headers=headers,
        source=r.IngressSource("node-1", request_id),
        response_sink=r.IngressSink("node-1", request_id),
        idempotency_key=idempotency_key,
        execute_at_ms=execute_at_ms,
    )


__all__ = [
    "T0",
    "Partition",
    "command",
    "decode",
    "entry",
    "invoke",
    "new_id",
    "object_target",
    "pb",
    "service_target",
]
