"""The admin API's access to the WAL and to this process's partition tables.

Invocation and state management read LMDB (through :class:`~engine.storage.reader.TableReader`)
and append WAL records (through the process's :class:`~engine.wal.appender.WalAppender`).
A process only has current data for the partitions it leads: in a single-process engine
that is all of them; with several processes, requests about another process's partition
are forwarded to it (:mod:`engine.admin.forwarding`) before these reads are reached, and
an id whose partition no other process is known to lead gets a 404 saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from engine.admin.errors import AdminError
from engine.admin.watermarks import WalWatermarks
from engine.ids import IdParseError, InvocationId
from engine.storage.reader import TableReader
from engine.storage.tables import PartitionTables
from engine.wal.appender import WalAppendError, WalAppender
from engine.wal.partitioning import partition_for, partition_key_for_key
from engine.wal.records import Record

__all__ = ["APPLY_WAIT_S", "LocalPartitions", "PartitionAccess", "parse_invocation_id"]

T = TypeVar("T")

APPLY_WAIT_S: Final = 5.0
"""How long a management call waits for its record to be applied locally before answering."""


class LocalPartitions(Protocol):
    """What the admin API needs of the partition processors (``engine.partition.processor``)."""

    @property
    def reader(self) -> TableReader:
        """Read transactions over the committed partition tables."""
        ...

    @property
    def leading(self) -> Sequence[int]:
        """The partitions this process leads, so whose tables are current."""
        ...

    async def wait_applied(self, partition: int, offset: int, timeout: float) -> bool:
        """Wait until ``offset`` of ``partition`` is applied here; False on timeout."""
        ...


def parse_invocation_id(text: str) -> InvocationId:
    """``inv_1...`` as an id, or a 400 saying what is wrong with it."""
    try:
        return InvocationId.parse(text)
    except IdParseError as exc:
        raise AdminError(400, str(exc)) from None


@dataclass(frozen=True, slots=True)
class PartitionAccess:
    """The WAL appender and the local partitions, as one object on the admin app."""

    appender: WalAppender
    processors: LocalPartitions
    watermarks: WalWatermarks | None = None

    @property
    def partition_count(self) -> int:
        """P, the number of WAL partitions."""
        return self.appender.partition_count

    def partition_of(self, invocation_id: InvocationId) -> int:
        """The WAL partition of an invocation."""
        return self.appender.partition_of(invocation_id)

    def partition_of_object(self, service: str, key: str) -> int:
        """The WAL partition of a virtual object or workflow instance."""
        return partition_for(partition_key_for_key(service, key), self.partition_count)

    def is_local(self, partition: int) -> bool:
        """Whether this process leads ``partition`` (its tables are current)."""
        return partition in self.processors.leading

    def local_partitions(self) -> list[int]:
        """Every partition this process leads, ascending."""
        return sorted(self.processors.leading)

    def read(self, partition: int, fn: Callable[[PartitionTables], T], what: str) -> T:
        """Run ``fn`` over ``partition``'s tables; a 404 naming ``what`` if they are not here."""
        if not self.is_local(partition):
            raise AdminError(404, not_local_message(what, partition))
        return self.processors.reader.read(partition, fn)

    def read_any(self, partition: int, fn: Callable[[PartitionTables], T]) -> T:
        """Run ``fn`` over ``partition``'s tables without the ownership check."""
        return self.processors.reader.read(partition, fn)

    async def append(self, partition: int, record: Record) -> int:
        """Append ``record``; its offset once durable, or a 503 if Kafka refused it."""
        try:
            return await self.appender.append(partition, record)
        except WalAppendError as exc:
            raise AdminError(503, f"the WAL append failed, nothing was changed: {exc}") from None

    async def wait_applied(self, partition: int, offset: int, timeout_s: float = APPLY_WAIT_S) -> bool:
        """Wait until this process applied ``offset`` of ``partition``; False on timeout or not local."""
        if not self.is_local(partition):
            return False
        return await self.processors.wait_applied(partition, offset, timeout_s)

    async def catch_up(self, partition: int) -> bool:
        """Wait until this process applied every record ``partition`` holds right now.

        Used before answering "not found": a record accepted a moment ago (a ``/send``)
        may be durable but not applied yet. False if that could not be established.
        """
        if self.watermarks is None or not self.is_local(partition):
            return False
        high = await self.watermarks.high(partition)
        if high is None:
            return False
        return high == 0 or await self.wait_applied(partition, high - 1)


def not_local_message(what: str, partition: int) -> str:
    """The 404 text for something in a partition this process does not lead."""
    return (
        f"{what} is not known to this process: it lives in WAL partition {partition}, which this "
        "engine process does not lead, and no other engine process advertises that it leads it "
        "(it may be starting up or moving); retry shortly"
    )
