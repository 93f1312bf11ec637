"""Identifiers, in the exact string and byte formats Restate uses.

Official Restate SDKs and the ``restate`` CLI see these ids (in ``StartMessage.id``,
in awakeable ids they build, in ingress and admin responses), so the formats are facts
that must match Restate's, byte for byte:

* Every textual id is ``{prefix}_{scheme version}{payload}``; the only scheme version
  is ``1``. Prefixes: ``inv`` invocation, ``dp`` deployment, ``sub`` subscription,
  ``prom`` awakeable (entry-index based, older protocols), ``sign`` signal-based
  awakeable (protocol v4 and later).
* Integers in the payload are fixed-width base62 over the alphabet ``0-9a-zA-Z``: a
  u64 takes 11 characters, a u128 takes 22, left-padded with ``0``. The integer that
  gets base62-encoded is the value with its bytes reversed (Restate converts the value
  to big-endian byte order in memory, then reads it as a native little-endian integer
  before encoding). Decoding reverses both steps.
* An invocation id is a u64 partition key and a u128 invocation uuid. Its raw form
  (``StartMessage.id``) is 24 bytes: the key big-endian, then the uuid big-endian. Its
  text form is ``inv_1`` + base62(key) + base62(uuid): always 38 characters, so the
  first 16 characters name the partition key.
* An awakeable id is ``sign_1`` (or ``prom_1``) followed by unpadded base64url of the
  24 raw invocation id bytes and a big-endian u32 (the signal index, or for ``prom_1``
  the journal entry index). Padding is accepted when parsing.
* Deployment and subscription ids are ULIDs (48-bit millisecond timestamp, 80 random
  bits) as one base62 u128: ``dp_1`` / ``sub_1`` + 22 characters.

How fresh invocation uuids are made is ours to choose (clients treat ids as opaque):
random ones are ULIDs like Restate's; deterministic ones (idempotent requests, workflow
runs, Kafka subscription events) are the first 16 bytes of a SHA-256 over length-prefixed
parts, so two different inputs can never produce the same byte string to hash.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, NewType

from engine.errors import EngineError

__all__ = [
    "PARTITION_KEY_MAX",
    "AwakeableId",
    "AwakeableIdKind",
    "DeploymentId",
    "IdParseError",
    "InvocationId",
    "InvocationUuid",
    "PartitionKey",
    "SubscriptionId",
    "make_partition_key",
]

PartitionKey = NewType("PartitionKey", int)
"""A point in the u64 partition key space (``0 ..= 2**64 - 1``)."""

PARTITION_KEY_MAX = PartitionKey(2**64 - 1)
_U32_MAX = 2**32 - 1
_U128_MAX = 2**128 - 1

_SCHEME_VERSION = "1"
_B62_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_B62_INDEX = {c: i for i, c in enumerate(_B62_ALPHABET)}
_B62_WIDTH_U64 = 11  # ceil(64 / 6)
_B62_WIDTH_U128 = 22  # ceil(128 / 6)


class IdParseError(EngineError, ValueError):
    """A string or byte sequence is not a well-formed id of the expected kind.

    The message names the input and what is wrong with it (length, prefix, version,
    characters), so an ingress or admin handler can return it as a 400 body verbatim.
    """


def make_partition_key(value: int) -> PartitionKey:
    """Validate ``value`` as a u64 and return it as a :data:`PartitionKey`."""
    if not 0 <= value <= PARTITION_KEY_MAX:
        raise IdParseError(f"partition key {value} is outside the u64 range")
    return PartitionKey(value)


# --- base62, Restate flavour -------------------------------------------------------------


def _b62_encode(value: int, nbytes: int, width: int) -> str:
    # Byte-reverse first: Restate encodes the little-endian reading of the big-endian bytes.
    n = int.from_bytes(value.to_bytes(nbytes, "big"), "little")
    chars = []
    while n:
        n, digit = divmod(n, 62)
        chars.append(_B62_ALPHABET[digit])
    return "".join(reversed(chars)).rjust(width, "0")


def _b62_decode(text: str, nbytes: int, what: str, whole: str) -> int:
    n = 0
    for c in text:
        digit = _B62_INDEX.get(c)
        if digit is None:
            raise IdParseError(f"invalid {what} {whole!r}: {c!r} is not a base62 character")
        n = n * 62 + digit
    if n >> (8 * nbytes):
        raise IdParseError(f"invalid {what} {whole!r}: value does not fit in {8 * nbytes} bits")
    return int.from_bytes(n.to_bytes(nbytes, "little"), "big")


def _split_prefixed(text: str, prefix: str, what: str) -> str:
    """Check ``{prefix}_1`` and return the payload after it, with Restate's error order."""
    if not text:
        raise IdParseError(f"invalid {what}: empty string")
    head, sep, rest = text.partition("_")
    if not sep:
        raise IdParseError(f"invalid {what} {text!r}: expected '{prefix}_1...'")
    if head != prefix:
        raise IdParseError(
            f"invalid {what} {text!r}: prefix {head!r} does not name this kind of id "
            f"(expected {prefix!r})"
        )
    if not rest:
        raise IdParseError(f"invalid {what} {text!r}: missing scheme version")
    if rest[0] != _SCHEME_VERSION:
        raise IdParseError(
            f"invalid {what} {text!r}: unsupported id scheme version {rest[0]!r} "
            f"(expected {_SCHEME_VERSION!r})"
        )
    return rest[1:]


class _RandomPool:
    """Random bytes from the OS's CSPRNG, drawn 4 KiB at a time: a fresh id per ingress
    request otherwise costs a ``getrandom`` system call each (measured at several
    percent of the event loop under load). Thread-safe; the bytes are as unpredictable
    as ``os.urandom``'s, each handed out once."""

    _CHUNK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._at = 0

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._at = b"", 0

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._at + size > len(self._buffer):
                self._buffer, self._at = os.urandom(self._CHUNK), 0
            start = self._at
            self._at += size
            return self._buffer[start : self._at]


_RANDOM = _RandomPool()
# A forked child must not hand out the parent's remaining bytes a second time.
os.register_at_fork(after_in_child=_RANDOM.reset)


def _ulid_now() -> int:
    # 48-bit millisecond timestamp, then 80 random bits: sortable by creation time and
    # never zero, like the ULIDs Restate uses.
    return ((time.time_ns() // 1_000_000) & (2**48 - 1)) << 80 | int.from_bytes(_RANDOM.take(10), "big")


def _length_prefixed(*parts: str | bytes) -> bytes:
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part
        out += len(raw).to_bytes(4, "big")
        out += raw
    return bytes(out)


# --- invocation ids ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class InvocationUuid:
    """The 128-bit part of an invocation id that tells invocations apart.

    Never zero (Restate treats a zero uuid as invalid). Text form: 22 base62 characters.
    """

    value: int

    def __post_init__(self) -> None:
        if not 0 < self.value <= _U128_MAX:
            raise IdParseError(f"invocation uuid {self.value} is not a non-zero u128")

    @classmethod
    def generate(cls) -> InvocationUuid:
        """A fresh random uuid: ULID layout (creation time in ms, then 80 random bits)."""
        return cls(_ulid_now())

    @classmethod
    def derive(cls, domain: str, *parts: str | bytes) -> InvocationUuid:
        """A deterministic uuid: the first 16 bytes of SHA-256 over length-prefixed parts.

        ``domain`` separates uses ("idempotency", "workflow", "subscription", ...) so the
        same parts in two uses never collide. Same inputs, same uuid, on every node and
        in every version: data on disk and in Kafka depends on it.
        """
        digest = hashlib.sha256(_length_prefixed("logstrate.uuid", domain, *parts)).digest()
        # A zero result has probability 2**-128; map it to 1 rather than fail.
        return cls(int.from_bytes(digest[:16], "big") or 1)

    @classmethod
    def for_idempotent_request(
        cls, service: str, key: str | None, handler: str, idempotency_key: str
    ) -> InvocationUuid:
        """The uuid of a request carrying an ``idempotency-key``: retries map to one invocation.

        Like Restate, the scope is (service, object key if any, handler, idempotency key).
        """
        key_part = b"\x00" if key is None else b"\x01" + key.encode("utf-8")
        return cls.derive("idempotency", service, key_part, handler, idempotency_key)

    @classmethod
    def for_workflow_run(cls, workflow: str, key: str) -> InvocationUuid:
        """The uuid of a workflow's ``run`` handler: one run per (workflow, key), as in Restate."""
        return cls.derive("workflow", workflow, key)

    @classmethod
    def for_subscription_event(
        cls, subscription: SubscriptionId, topic: str, partition: int, offset: int
    ) -> InvocationUuid:
        """The uuid of the invocation made for one Kafka record of a subscription.

        Re-ingesting the same source record (after a crash) yields the same invocation.
        """
        return cls.derive(
            "subscription",
            subscription.to_bytes(),
            topic,
            partition.to_bytes(4, "big", signed=True),
            offset.to_bytes(8, "big", signed=True),
        )

    def to_bytes(self) -> bytes:
        """16 bytes, big-endian."""
        return self.value.to_bytes(16, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> InvocationUuid:
        """Inverse of :meth:`to_bytes`."""
        if len(raw) != 16:
            raise IdParseError(f"invocation uuid must be 16 bytes, got {len(raw)}")
        return cls(int.from_bytes(raw, "big"))

    @property
    def timestamp_ms(self) -> int:
        """The ULID timestamp (meaningless for derived uuids, which are hash output)."""
        return self.value >> 80

    def __str__(self) -> str:
        return _b62_encode(self.value, 16, _B62_WIDTH_U128)


@dataclass(frozen=True, slots=True, order=True)
class InvocationId:
    """Identifies one invocation: the partition key that places it, and its uuid.

    ``str(id)`` is Restate's ``inv_1...`` form (38 characters); :meth:`to_bytes` is the
    24-byte form Restate sends to SDKs as ``StartMessage.id``.
    """

    PREFIX: ClassVar[str] = "inv"
    TEXT_LENGTH: ClassVar[int] = 5 + _B62_WIDTH_U64 + _B62_WIDTH_U128  # 38
    RAW_LENGTH: ClassVar[int] = 24

    partition_key: PartitionKey
    uuid: InvocationUuid

    def __post_init__(self) -> None:
        make_partition_key(self.partition_key)

    def to_bytes(self) -> bytes:
        """Partition key (8 bytes, big-endian) then uuid (16 bytes, big-endian)."""
        return self.partition_key.to_bytes(8, "big") + self.uuid.to_bytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> InvocationId:
        """Inverse of :meth:`to_bytes`; accepts exactly 24 bytes."""
        if len(raw) != cls.RAW_LENGTH:
            raise IdParseError(f"invocation id must be {cls.RAW_LENGTH} bytes, got {len(raw)}")
        return cls(
            PartitionKey(int.from_bytes(raw[:8], "big")),
            InvocationUuid(int.from_bytes(raw[8:], "big")),
        )

    @classmethod
    def parse(cls, text: str) -> InvocationId:
        """Parse ``inv_1...``; raises :class:`IdParseError` saying what is wrong."""
        payload = _split_prefixed(text, cls.PREFIX, "invocation id")
        if len(payload) != _B62_WIDTH_U64 + _B62_WIDTH_U128:
            raise IdParseError(
                f"invalid invocation id {text!r}: expected {cls.TEXT_LENGTH} characters "
                f"('inv_1' and 33 base62 characters), got {len(text)}"
            )
        key = _b62_decode(payload[:_B62_WIDTH_U64], 8, "invocation id", text)
        uuid = _b62_decode(payload[_B62_WIDTH_U64:], 16, "invocation id", text)
        if uuid == 0:
            raise IdParseError(f"invalid invocation id {text!r}: the uuid part is zero")
        return cls(PartitionKey(key), InvocationUuid(uuid))

    def __str__(self) -> str:
        return _invocation_id_text(self.partition_key, self.uuid.value)


@functools.lru_cache(maxsize=16_384)
def _invocation_id_text(partition_key: int, uuid: int) -> str:
    # Cached: every log context, status row and answer of an invocation names it, and
    # base62 in Python costs a few microseconds a time.
    return "inv_1" + _b62_encode(partition_key, 8, _B62_WIDTH_U64) + _b62_encode(uuid, 16, _B62_WIDTH_U128)


# --- ULID-based resource ids -------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class _UlidId:
    PREFIX: ClassVar[str] = ""
    WHAT: ClassVar[str] = ""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value <= _U128_MAX:
            raise IdParseError(f"{self.WHAT} value {self.value} is not a u128")

    def to_bytes(self) -> bytes:
        """16 bytes, big-endian (the ULID's binary form)."""
        return self.value.to_bytes(16, "big")

    @property
    def timestamp_ms(self) -> int:
        """Creation time (ms since the Unix epoch) stored in the ULID."""
        return self.value >> 80

    def __str__(self) -> str:
        return f"{self.PREFIX}_1" + _b62_encode(self.value, 16, _B62_WIDTH_U128)


@dataclass(frozen=True, slots=True, order=True)
class DeploymentId(_UlidId):
    """A registered service deployment: ``dp_1`` + 22 base62 characters."""

    PREFIX: ClassVar[str] = "dp"
    WHAT: ClassVar[str] = "deployment id"

    @classmethod
    def generate(cls) -> DeploymentId:
        """A fresh ULID-based id."""
        return cls(_ulid_now())

    @classmethod
    def from_bytes(cls, raw: bytes) -> DeploymentId:
        """Inverse of :meth:`to_bytes`."""
        return cls(_ulid_from_bytes(raw, cls.WHAT))

    @classmethod
    def parse(cls, text: str) -> DeploymentId:
        """Parse ``dp_1...``; raises :class:`IdParseError`."""
        return cls(_parse_ulid_text(text, cls.PREFIX, cls.WHAT))


@dataclass(frozen=True, slots=True, order=True)
class SubscriptionId(_UlidId):
    """A Kafka subscription: ``sub_1`` + 22 base62 characters."""

    PREFIX: ClassVar[str] = "sub"
    WHAT: ClassVar[str] = "subscription id"

    @classmethod
    def generate(cls) -> SubscriptionId:
        """A fresh ULID-based id."""
        return cls(_ulid_now())

    @classmethod
    def from_bytes(cls, raw: bytes) -> SubscriptionId:
        """Inverse of :meth:`to_bytes`."""
        return cls(_ulid_from_bytes(raw, cls.WHAT))

    @classmethod
    def parse(cls, text: str) -> SubscriptionId:
        """Parse ``sub_1...``; raises :class:`IdParseError`."""
        return cls(_parse_ulid_text(text, cls.PREFIX, cls.WHAT))


def _ulid_from_bytes(raw: bytes, what: str) -> int:
    if len(raw) != 16:
        raise IdParseError(f"{what} must be 16 bytes, got {len(raw)}")
    return int.from_bytes(raw, "big")


def _parse_ulid_text(text: str, prefix: str, what: str) -> int:
    payload = _split_prefixed(text, prefix, what)
    if len(payload) != _B62_WIDTH_U128:
        raise IdParseError(
            f"invalid {what} {text!r}: expected '{prefix}_1' and {_B62_WIDTH_U128} "
            f"base62 characters, got {len(payload)}"
        )
    return _b62_decode(payload, 16, what, text)


# --- awakeable ids -----------------------------------------------------------------------


class AwakeableIdKind(Enum):
    """Which numbering an awakeable id's index uses."""

    SIGNAL = "sign"
    """Protocol v4+: the index is a signal id (SDKs number awakeables from 17 up)."""
    ENTRY = "prom"
    """Protocols v1-v3: the index is the journal entry index of the awakeable entry."""


@dataclass(frozen=True, slots=True)
class AwakeableId:
    """An awakeable id handed out by an SDK, to be resolved or rejected by someone else.

    SDKs build the string themselves from ``StartMessage.id``; the engine only parses it
    (ingress ``/restate/awakeables/{id}/resolve``, ``CompleteAwakeableCommand``).
    """

    invocation_id: InvocationId
    index: int
    kind: AwakeableIdKind = AwakeableIdKind.SIGNAL

    def __post_init__(self) -> None:
        if not 0 <= self.index <= _U32_MAX:
            raise IdParseError(f"awakeable index {self.index} is not a u32")

    def __str__(self) -> str:
        raw = self.invocation_id.to_bytes() + self.index.to_bytes(4, "big")
        encoded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        return f"{self.kind.value}_1{encoded}"

    @classmethod
    def parse(cls, text: str) -> AwakeableId:
        """Parse ``sign_1...`` or ``prom_1...``; raises :class:`IdParseError`."""
        head = text.partition("_")[0]
        try:
            kind = AwakeableIdKind(head)
        except ValueError:
            raise IdParseError(
                f"invalid awakeable id {text!r}: expected prefix 'sign_1' or 'prom_1'"
            ) from None
        payload = _split_prefixed(text, kind.value, "awakeable id").rstrip("=")
        if len(payload) != 38:  # unpadded base64 of 28 bytes
            raise IdParseError(
                f"invalid awakeable id {text!r}: expected 38 base64url characters "
                f"after '{kind.value}_1', got {len(payload)}"
            )
        try:
            raw = base64.b64decode(payload + "==", altchars=b"-_", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise IdParseError(f"invalid awakeable id {text!r}: not base64url ({exc})") from None
        invocation_id = InvocationId.from_bytes(raw[:24])
        return cls(invocation_id, int.from_bytes(raw[24:], "big"), kind)
