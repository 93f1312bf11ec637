"""Where things live: partition keys and the mapping of keys to WAL partitions.

Every invocation id carries a u64 *partition key*; the WAL partition that owns the
invocation (and its object's state, inbox, timers) is a pure function of that key and
the partition count. The formulas here are frozen: ids already handed to clients, LMDB
tables and the records in Kafka were all placed with them.

Choices, and how they relate to Restate:

* Virtual objects and workflows: the partition key is a hash of the object key alone,
  not of (service, key). This is Restate's choice: everything keyed by ``"user-42"``,
  whatever the service, lives in one partition. Restate's hash is xxh3-64 of the key
  bytes followed by a ``0xff`` terminator (Rust's ``Hash`` for ``str``); we use BLAKE2b
  with an 8-byte digest from the standard library instead, so our partition keys differ
  from Restate's. Nothing outside the engine computes partition keys (clients treat
  invocation ids as opaque), so matching the hash would buy nothing.
* Plain services: the partition key is a hash of the invocation uuid. A random uuid
  gives a random key (load spreads over all partitions); a deterministic uuid
  (idempotency key, Kafka source offset) gives a deterministic key, so a retried request
  or a re-ingested event always lands in the partition that can deduplicate it. Restate
  hashes the idempotency key for these instead; the effect is the same.
* Key to partition: like Restate's equally sized partition table, P contiguous ranges of
  the u64 space; partition ``i`` owns ``ceil(i * 2**64 / P) ..= ceil((i+1) * 2**64 / P) - 1``
  and a key maps to ``floor(key * P / 2**64)``. The map is monotone in the key, and the
  boundaries are exactly Restate's.
"""

from __future__ import annotations

import hashlib

from engine.ids import (
    PARTITION_KEY_MAX,
    InvocationId,
    InvocationUuid,
    PartitionKey,
    make_partition_key,
)

__all__ = [
    "invocation_id_for",
    "partition_for",
    "partition_key_for_key",
    "partition_key_for_service_invocation",
    "partition_key_range",
]

_KEY_SPACE = PARTITION_KEY_MAX + 1  # 2**64

# BLAKE2b personalization strings separate the two hash uses, so an object key that
# happens to equal some uuid's bytes still gets an unrelated partition key.
_PERSON_OBJECT_KEY = b"lgs.pk.objectkey"
_PERSON_INVOCATION_UUID = b"lgs.pk.inv-uuid"


def partition_key_for_key(service: str, key: str) -> PartitionKey:
    """The partition key of a virtual object or workflow instance.

    ``service`` does not enter the hash (Restate's choice, see the module docstring);
    it is a parameter so call sites say what they place, and so that a future scheme
    version could use it without changing any caller.
    """
    del service  # deliberately unused, see above
    # NEVER CHANGE: data on disk and in Kafka depends on it.
    digest = hashlib.blake2b(
        key.encode("utf-8"), digest_size=8, person=_PERSON_OBJECT_KEY
    ).digest()
    return PartitionKey(int.from_bytes(digest, "big"))


def partition_key_for_service_invocation(uuid: InvocationUuid) -> PartitionKey:
    """The partition key of an invocation of a plain (unkeyed) service.

    Derived from the uuid, so it is random for random uuids and deterministic for
    deterministic ones (see the module docstring).
    """
    # NEVER CHANGE: data on disk and in Kafka depends on it.
    digest = hashlib.blake2b(
        uuid.to_bytes(), digest_size=8, person=_PERSON_INVOCATION_UUID
    ).digest()
    return PartitionKey(int.from_bytes(digest, "big"))


def invocation_id_for(service: str, key: str | None, uuid: InvocationUuid) -> InvocationId:
    """The invocation id of a call to ``service`` (with object ``key``, if keyed)."""
    if key is None:
        return InvocationId(partition_key_for_service_invocation(uuid), uuid)
    return InvocationId(partition_key_for_key(service, key), uuid)


def partition_for(partition_key: int, partition_count: int) -> int:
    """The WAL partition (``0 .. partition_count - 1``) that owns ``partition_key``.

    Range-based and monotone: larger keys never map to smaller partitions.
    """
    make_partition_key(partition_key)
    if partition_count < 1:
        raise ValueError(f"partition_count must be at least 1, got {partition_count}")
    # NEVER CHANGE: data on disk and in Kafka depends on it.
    return (partition_key * partition_count) >> 64


def partition_key_range(partition: int, partition_count: int) -> tuple[PartitionKey, PartitionKey]:
    """The inclusive ``(first, last)`` partition keys owned by ``partition``.

    Consistent with :func:`partition_for`: every key in the range maps to ``partition``
    and the ranges of all partitions tile the u64 space without gaps.
    """
    if partition_count < 1:
        raise ValueError(f"partition_count must be at least 1, got {partition_count}")
    if not 0 <= partition < partition_count:
        raise ValueError(f"partition {partition} is not in 0..{partition_count - 1}")
    # NEVER CHANGE: data on disk and in Kafka depends on it.
    start = -(-(partition * _KEY_SPACE) // partition_count)
    end = -(-((partition + 1) * _KEY_SPACE) // partition_count) - 1
    return PartitionKey(start), PartitionKey(end)
