"""Table ``invocation_status``: where each invocation of a partition stands.

Key: ``partition (u32) + invocation id (24 bytes)``.
Value: version byte 5, then the fields of :class:`InvocationStatus` in declaration
order, in the :mod:`engine.storage.codec` layout (the status kind is a frozen tag).
Version 1 values (without the two retention fields), version 2 values (without
``ordering_key``), version 3 values (a last failure without its related command) and
version 4 values (without ``restarted_from`` and ``random_seed_from``) are still read.

An invocation moves through the kinds like this::

    Scheduled --timer--> (Inboxed --lock free-->) Invoked <--> Suspended
                                                  |  ^
                                   attempts used up  |  resume
                                                  v  |
                                                  Paused
    (any of them) --end, kill, cancel--> Completed --cleanup timer--> (deleted)

Every transition happens in the partition state machine; times come from the WAL
record being applied, never from the wall clock, so replicas agree byte for byte.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import lmdb

from engine.ids import DeploymentId, InvocationId
from engine.storage.codec import Reader, StorageCorruptError, Writer
from engine.storage.keys import iter_prefix, partition_prefix
from engine.wal import records as r

__all__ = [
    "DB_NAME",
    "InvocationStatus",
    "InvocationStatusTable",
    "LastFailure",
    "ResponseSinkEntry",
    "StatusKind",
]

DB_NAME: Final = b"invocation_status"
_VERSION: Final = 5
_OLDER_VERSIONS: Final = frozenset(bytes((v,)) for v in (1, 2, 3, 4))

ResponseSinkEntry = r.IngressSink | r.InvocationSink
"""A response sink that is actually set (the records' ``ResponseSink`` minus ``None``)."""


class StatusKind(Enum):
    """The lifecycle step an invocation is in."""

    SCHEDULED = "scheduled"
    """Submitted with a future ``execute_at_ms``; a DELAYED_INVOKE timer starts it."""
    INBOXED = "inboxed"
    """Queued in its object's inbox behind the invocation holding the key's lock."""
    INVOKED = "invoked"
    """Running (or about to run, or waiting for a retry): the invoker owns it."""
    SUSPENDED = "suspended"
    """No attempt running; resumes when a notification in ``waiting_for`` arrives."""
    COMPLETED = "completed"
    """Done; the result is kept until ``cleanup_at_ms`` for late callers and attach."""
    PAUSED = "paused"
    """Its retry policy gave up with "pause" (or an operator paused it): no attempt runs
    and no retry is scheduled until an operator resumes it; notifications still land."""


# Frozen tags: on disk.
_KIND_TAGS: Final = {
    StatusKind.SCHEDULED: 1,
    StatusKind.INBOXED: 2,
    StatusKind.INVOKED: 3,
    StatusKind.SUSPENDED: 4,
    StatusKind.COMPLETED: 5,
    StatusKind.PAUSED: 6,
}
_KINDS: Final = {tag: kind for kind, tag in _KIND_TAGS.items()}


@dataclass(frozen=True, slots=True)
class LastFailure:
    """The most recent retryable failure of an attempt, and the command it was at when
    the failure names one (value version 4; Restate's ``last_failure_related_command_*``):
    its index among the commands, its name, its protocol message type id."""

    code: int
    message: str
    retry_at_ms: int
    related_command_index: int | None = None
    related_command_name: str | None = None
    related_command_type: int | None = None


@dataclass(frozen=True, slots=True)
class InvocationStatus:
    """Everything the engine keeps about one invocation besides its journal.

    Fields used by one kind only: ``inbox_sequence`` (Inboxed), ``waiting_for``
    (Suspended), ``result`` and ``cleanup_at_ms`` (Completed; ``result`` also holds the
    handler's output command while Invoked). ``deployment_id`` and
    ``protocol_version`` are set once the first attempt picked a deployment.
    """

    kind: StatusKind
    target: r.InvocationTarget
    argument: bytes
    headers: tuple[r.Header, ...] = ()
    source: r.Source = None
    response_sinks: tuple[ResponseSinkEntry, ...] = ()
    idempotency_key: str | None = None
    execute_at_ms: int | None = None
    created_at_ms: int = 0
    modified_at_ms: int = 0
    journal_length: int = 0
    """Entries in the journal table (commands and notifications)."""
    commands: int = 0
    """How many of those entries are commands (the SDK's command indexes)."""
    attempt: int = 0
    """Failed attempts so far, as counted by the invoker."""
    retries_since_last_entry: int = 0
    """Failed attempts since the journal last grew (StartMessage retry count)."""
    last_failure: LastFailure | None = None
    deployment_id: DeploymentId | None = None
    protocol_version: int | None = None
    waiting_for: tuple[r.NotificationId, ...] = ()
    inbox_sequence: int | None = None
    result: r.OutputResult | None = None
    cleanup_at_ms: int | None = None
    completion_retention_ms: int | None = None
    """How long to keep the result once completed (``None``: the engine default)."""
    journal_retention_ms: int | None = None
    """How long to keep the journal once completed (``None`` or 0: drop it at once)."""
    ordering_key: str | None = None
    """Runs one at a time with the target service's other invocations of this key
    (:attr:`engine.wal.records.Invoke.ordering_key`)."""
    restarted_from: InvocationId | None = None
    """The completed invocation this one restarts (admin ``/restart-as-new``)."""
    random_seed_from: InvocationId | None = None
    """The invocation whose id seeds the SDK's random generator, when not this one's: a
    restart from a journal prefix keeps the original's seed, so the copied steps replay
    with the same random values."""

    @property
    def in_flight(self) -> bool:
        """Invoked, Suspended or Paused: started, not completed."""
        return self.kind in (StatusKind.INVOKED, StatusKind.SUSPENDED, StatusKind.PAUSED)

    def touched(self, now_ms: int, **changes: Any) -> InvocationStatus:
        """A copy with ``changes`` applied and ``modified_at_ms`` set to ``now_ms``."""
        return dataclasses.replace(self, modified_at_ms=now_ms, **changes)


def _write_last_failure(writer: Writer, value: LastFailure) -> None:
    writer.int_(value.code)
    writer.str_(value.message)
    writer.int_(value.retry_at_ms)
    writer.optional(value.related_command_index, writer.int_)
    writer.optional(value.related_command_name, writer.str_)
    writer.optional(value.related_command_type, writer.int_)


def _read_last_failure(reader: Reader, version: int) -> LastFailure:
    code, message, retry_at_ms = reader.int_(), reader.str_(), reader.int_()
    if version < 4:
        return LastFailure(code, message, retry_at_ms)
    return LastFailure(
        code,
        message,
        retry_at_ms,
        reader.optional(reader.int_),
        reader.optional(reader.str_),
        reader.optional(reader.int_),
    )


def encode_status(status: InvocationStatus) -> bytes:
    """The LMDB value of ``status``."""
    w = Writer(_VERSION)
    w.byte(_KIND_TAGS[status.kind])
    w.target(status.target)
    w.bytes_(status.argument)
    w.headers(status.headers)
    w.source(status.source)
    w.sequence(status.response_sinks, w.sink)
    w.optional(status.idempotency_key, w.str_)
    w.optional(status.execute_at_ms, w.int_)
    w.int_(status.created_at_ms)
    w.int_(status.modified_at_ms)
    w.int_(status.journal_length)
    w.int_(status.commands)
    w.int_(status.attempt)
    w.int_(status.retries_since_last_entry)
    w.optional(status.last_failure, lambda f: _write_last_failure(w, f))
    w.optional(status.deployment_id, w.deployment_id)
    w.optional(status.protocol_version, w.int_)
    w.sequence(status.waiting_for, w.notification_id)
    w.optional(status.inbox_sequence, w.int_)
    # Spelled out: mypy joins the Value | Failure union to object in optional().
    if status.result is None:
        w.byte(0)
    else:
        w.byte(1)
        w.output_result(status.result)
    w.optional(status.cleanup_at_ms, w.int_)
    w.optional(status.completion_retention_ms, w.int_)
    w.optional(status.journal_retention_ms, w.int_)
    w.optional(status.ordering_key, w.str_)
    w.optional(status.restarted_from, w.invocation_id)
    w.optional(status.random_seed_from, w.invocation_id)
    return w.finish()


def decode_status(raw: bytes) -> InvocationStatus:
    """Inverse of :func:`encode_status`; raises :class:`StorageCorruptError`."""
    version = raw[0] if raw[:1] in _OLDER_VERSIONS else _VERSION
    rd = Reader(raw, version, "invocation status")
    tag = rd.byte()
    kind = _KINDS.get(tag)
    if kind is None:
        raise StorageCorruptError(f"unknown invocation status kind tag {tag}")
    # Fields are read in layout order into one dict: the status is built once (a
    # dataclasses.replace per later layout version cost more than the whole read).
    fields: dict[str, Any] = dict(
        kind=kind,
        target=rd.target(),
        argument=rd.bytes_(),
        headers=rd.headers(),
        source=rd.source(),
        response_sinks=rd.sequence(rd.sink),
        idempotency_key=rd.optional(rd.str_),
        execute_at_ms=rd.optional(rd.int_),
        created_at_ms=rd.int_(),
        modified_at_ms=rd.int_(),
        journal_length=rd.int_(),
        commands=rd.int_(),
        attempt=rd.int_(),
        retries_since_last_entry=rd.int_(),
        last_failure=rd.optional(lambda: _read_last_failure(rd, version)),
        deployment_id=rd.optional(rd.deployment_id),
        protocol_version=rd.optional(rd.int_),
        waiting_for=rd.sequence(rd.notification_id),
        inbox_sequence=rd.optional(rd.int_),
        result=rd.optional(rd.output_result),
        cleanup_at_ms=rd.optional(rd.int_),
    )
    if version >= 2:
        fields["completion_retention_ms"] = rd.optional(rd.int_)
        fields["journal_retention_ms"] = rd.optional(rd.int_)
    if version >= 3:
        fields["ordering_key"] = rd.optional(rd.str_)
    if version >= 5:
        fields["restarted_from"] = rd.optional(rd.invocation_id)
        fields["random_seed_from"] = rd.optional(rd.invocation_id)
    status = InvocationStatus(**fields)
    rd.done()
    return status


class InvocationStatusTable:
    """The ``invocation_status`` rows of one partition, inside one LMDB transaction."""

    def __init__(
        self, txn: lmdb.Transaction[bytes], db: lmdb._Database, partition: int, *, write_back: bool = False
    ) -> None:
        self._txn = txn
        self._db = db
        self._prefix = partition_prefix(partition)
        # Statuses read or written in this transaction, decoded (they are immutable).
        # One batch often touches an invocation several times (pinned, a command, its
        # end): each get after the first is a dict lookup instead of an LMDB read and a
        # decode.
        self._seen: dict[InvocationId, InvocationStatus | None] = {}
        # With ``write_back`` (the partition processor), puts are kept here and written
        # by :meth:`flush`: the three records of an attempt's batch (pinned, output, end)
        # then encode and write the row once instead of three times. The processor
        # flushes after every WAL record, before the transaction commits, so nothing
        # outside the record's apply can see the difference; :meth:`scan` flushes first.
        self._dirty: dict[InvocationId, InvocationStatus] | None = {} if write_back else None

    def _key(self, invocation_id: InvocationId) -> bytes:
        return self._prefix + invocation_id.to_bytes()

    def get(self, invocation_id: InvocationId) -> InvocationStatus | None:
        """The status of ``invocation_id``; ``None`` if the partition does not know it."""
        try:
            return self._seen[invocation_id]
        except KeyError:
            pass
        raw = self._txn.get(self._key(invocation_id), db=self._db)
        status = None if raw is None else decode_status(raw)
        self._seen[invocation_id] = status
        return status

    def put(self, invocation_id: InvocationId, status: InvocationStatus) -> None:
        """Insert or replace the status of ``invocation_id``."""
        self._seen[invocation_id] = status
        if self._dirty is not None:
            self._dirty[invocation_id] = status
            return
        self._txn.put(self._key(invocation_id), encode_status(status), db=self._db)

    def flush(self) -> None:
        """Write the statuses put since the last flush (write-back tables only)."""
        dirty = self._dirty
        if not dirty:
            return
        put, db, prefix = self._txn.put, self._db, self._prefix
        for invocation_id, status in dirty.items():
            put(prefix + invocation_id.to_bytes(), encode_status(status), db=db)
        dirty.clear()

    def delete(self, invocation_id: InvocationId) -> bool:
        """Forget ``invocation_id``; True if it existed."""
        self._seen[invocation_id] = None
        pending = self._dirty is not None and self._dirty.pop(invocation_id, None) is not None
        return self._txn.delete(self._key(invocation_id), db=self._db) or pending

    def scan(
        self, kind: StatusKind | None = None
    ) -> Iterator[tuple[InvocationId, InvocationStatus]]:
        """Every invocation of the partition (of ``kind``, if given), in id order.

        Used on becoming leader, to restart what is Invoked. Do not write to this table
        while iterating.
        """
        self.flush()
        start = len(self._prefix)
        for key, value in iter_prefix(self._txn, self._db, self._prefix):
            status = decode_status(value)
            if kind is None or status.kind is kind:
                yield InvocationId.from_bytes(key[start:]), status
