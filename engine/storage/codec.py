"""The binary encoding of LMDB values: a version byte, then fixed-layout fields.

Why not Avro or JSON: values are read and written on every applied record, they hold
raw bytes (arguments, state) that JSON would have to base64, and the state machine's
output must be byte-for-byte deterministic (replicas compare equal). A small struct
codec is compact, fast and exact. Why not evolution rules like the WAL's: LMDB is a
cache of the WAL. A layout change bumps the value's version byte (readers reject
versions they do not know) or ``STORAGE_FORMAT_VERSION`` in
:mod:`engine.storage.environment`, and the state is rebuilt from Kafka.

Layout of the primitives:

* ``int``: 8 bytes, big-endian, signed (every count, time and id fits in 63 bits);
* ``bytes`` / ``str``: 4-byte length, then the raw bytes / UTF-8;
* optional value: one byte 0 (absent) or 1 (present), then the value;
* sequence: 4-byte count, then the items;
* union: one tag byte naming the branch (tags below are frozen), then the branch.

The WAL building blocks (targets, sinks, sources, notification ids and results) have
a reader and a writer here so every table encodes them the same way.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from engine.errors import EngineError
from engine.ids import DeploymentId, InvocationId, SubscriptionId
from engine.wal import records as r

__all__ = ["Reader", "StorageCorruptError", "Writer"]

_T = TypeVar("_T")

_I64: Final = struct.Struct(">q")
_U32: Final = struct.Struct(">I")

# Frozen tags: on disk. Add new ones at the end, never renumber.
_SERVICE_KIND_TAGS: Final = {
    r.ServiceKind.SERVICE: 1,
    r.ServiceKind.VIRTUAL_OBJECT: 2,
    r.ServiceKind.WORKFLOW: 3,
}
_HANDLER_KIND_TAGS: Final = {
    r.HandlerKind.EXCLUSIVE: 1,
    r.HandlerKind.SHARED: 2,
    r.HandlerKind.WORKFLOW: 3,
}
_SERVICE_KINDS: Final = {tag: kind for kind, tag in _SERVICE_KIND_TAGS.items()}
_HANDLER_KINDS: Final = {tag: kind for kind, tag in _HANDLER_KIND_TAGS.items()}


class StorageCorruptError(EngineError):
    """An LMDB value is not in a layout this engine reads (corrupt, or another format)."""


class Writer:
    """Appends fields to a growing byte buffer; :meth:`finish` returns the value."""

    def __init__(self, version: int) -> None:
        self._out = bytearray((version,))

    def finish(self) -> bytes:
        """The encoded value."""
        return bytes(self._out)

    # --- primitives ---------------------------------------------------------------------

    def int_(self, value: int) -> None:
        """A signed 64-bit integer."""
        self._out += _I64.pack(value)

    def byte(self, value: int) -> None:
        """One unsigned byte (tags, flags)."""
        self._out.append(value)

    def bytes_(self, value: bytes) -> None:
        """Length-prefixed bytes."""
        self._out += _U32.pack(len(value))
        self._out += value

    def raw(self, value: bytes) -> None:
        """Bytes without a length (fixed-size fields such as ids)."""
        self._out += value

    def str_(self, value: str) -> None:
        """Length-prefixed UTF-8."""
        self.bytes_(value.encode("utf-8"))

    def optional(self, value: _T | None, write: Callable[[_T], None]) -> None:
        """A presence byte, then ``write(value)`` if present."""
        if value is None:
            self.byte(0)
        else:
            self.byte(1)
            write(value)

    def sequence(self, values: Sequence[_T], write: Callable[[_T], None]) -> None:
        """A count, then every item."""
        self._out += _U32.pack(len(values))
        for value in values:
            write(value)

    # --- WAL building blocks ----------------------------------------------------------

    def invocation_id(self, value: InvocationId) -> None:
        """24 raw bytes."""
        self.raw(value.to_bytes())

    def target(self, value: r.InvocationTarget) -> None:
        """An :class:`~engine.wal.records.InvocationTarget`."""
        self.str_(value.service)
        self.str_(value.handler)
        self.optional(value.key, self.str_)
        self.byte(_SERVICE_KIND_TAGS[value.service_kind])
        self.byte(0 if value.handler_kind is None else _HANDLER_KIND_TAGS[value.handler_kind])

    def headers(self, value: Sequence[r.Header]) -> None:
        """Request headers, in order."""
        self.sequence(value, self._header)

    def _header(self, value: r.Header) -> None:
        self.str_(value.name)
        self.str_(value.value)

    def source(self, value: r.Source) -> None:
        """Tag 0 none, 1 ingress, 2 invocation, 3 subscription."""
        if value is None:
            self.byte(0)
        elif isinstance(value, r.IngressSource):
            self.byte(1)
            self.str_(value.node_id)
            self.str_(value.request_id)
        elif isinstance(value, r.InvocationSource):
            self.byte(2)
            self.invocation_id(value.invocation_id)
            self.int_(value.entry_index)
        else:
            self.byte(3)
            self.raw(value.subscription_id.to_bytes())
            self.str_(value.topic)
            self.int_(value.partition)
            self.int_(value.offset)

    def sink(self, value: r.IngressSink | r.InvocationSink) -> None:
        """Tag 1 ingress, 2 invocation."""
        if isinstance(value, r.IngressSink):
            self.byte(1)
            self.str_(value.node_id)
            self.str_(value.request_id)
        else:
            self.byte(2)
            self.invocation_id(value.invocation_id)
            self.int_(value.completion_id)

    def notification_id(self, value: r.NotificationId) -> None:
        """Tag 1 completion id, 2 signal index, 3 signal name."""
        if isinstance(value, r.CompletionId):
            self.byte(1)
            self.int_(value.id)
        elif isinstance(value, r.SignalIndex):
            self.byte(2)
            self.int_(value.index)
        else:
            self.byte(3)
            self.str_(value.name)

    def result(self, value: r.NotificationResult) -> None:
        """Tag 1 value, 2 failure, 3 void, 4 invocation id, 5 state keys."""
        if isinstance(value, r.Value):
            self.byte(1)
            self.bytes_(value.content)
        elif isinstance(value, r.Failure):
            self.byte(2)
            self.failure(value)
        elif isinstance(value, r.Void):
            self.byte(3)
        elif isinstance(value, r.InvocationIdResult):
            self.byte(4)
            self.invocation_id(value.invocation_id)
        else:
            self.byte(5)
            self.sequence(value.keys, self.bytes_)

    def output_result(self, value: r.OutputResult) -> None:
        """An invocation's outcome, in the :meth:`result` layout."""
        self.result(value)

    def failure(self, value: r.Failure) -> None:
        """Code, message, metadata pairs."""
        self.int_(value.code)
        self.str_(value.message)
        self.sequence(value.metadata, self._metadata)

    def _metadata(self, value: r.FailureMetadata) -> None:
        self.str_(value.key)
        self.str_(value.value)

    def deployment_id(self, value: DeploymentId) -> None:
        """16 raw bytes."""
        self.raw(value.to_bytes())


class Reader:
    """Reads fields back in the order a :class:`Writer` wrote them.

    The constructor checks the version byte; :meth:`done` checks nothing is left over.
    Every read raises :class:`StorageCorruptError` on truncated or malformed input.
    """

    def __init__(self, data: bytes, expected_version: int, what: str) -> None:
        # LMDB hands out bytes (copied out of the map), so slicing them is cheap and safe.
        self._raw = bytes(data)
        self._end = len(self._raw)
        self._pos = 1
        self._what = what
        if not data:
            raise StorageCorruptError(f"empty {what} value")
        if data[0] != expected_version:
            raise StorageCorruptError(
                f"{what} value has layout version {data[0]}, this engine reads {expected_version}; "
                "use a fresh data dir (state is rebuilt from the WAL)"
            )

    def done(self) -> None:
        """Raise if bytes remain after the last field."""
        if self._pos != self._end:
            raise StorageCorruptError(
                f"{self._end - self._pos} stray bytes after {self._what} value"
            )

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > self._end:
            raise StorageCorruptError(f"truncated {self._what} value")
        chunk = self._raw[self._pos : end]
        self._pos = end
        return chunk

    def _unpack(self, layout: struct.Struct) -> int:
        # unpack_from reads in place: no slice, no copy (this runs for every LMDB read).
        pos = self._pos
        if pos + layout.size > self._end:
            raise StorageCorruptError(f"truncated {self._what} value")
        self._pos = pos + layout.size
        return int(layout.unpack_from(self._raw, pos)[0])

    # --- primitives ---------------------------------------------------------------------

    def int_(self) -> int:
        """See :meth:`Writer.int_`."""
        return self._unpack(_I64)

    def byte(self) -> int:
        """See :meth:`Writer.byte`."""
        pos = self._pos
        if pos >= self._end:
            raise StorageCorruptError(f"truncated {self._what} value")
        self._pos = pos + 1
        return self._raw[pos]

    def bytes_(self) -> bytes:
        """See :meth:`Writer.bytes_`."""
        return self._take(self._unpack(_U32))

    def raw(self, n: int) -> bytes:
        """See :meth:`Writer.raw`."""
        return self._take(n)

    def str_(self) -> str:
        """See :meth:`Writer.str_`."""
        try:
            return self.bytes_().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StorageCorruptError(f"invalid UTF-8 in {self._what} value") from exc

    def optional(self, read: Callable[[], _T]) -> _T | None:
        """See :meth:`Writer.optional`."""
        flag = self.byte()
        if flag == 0:
            return None
        if flag != 1:
            raise StorageCorruptError(f"bad presence flag {flag} in {self._what} value")
        return read()

    def sequence(self, read: Callable[[], _T]) -> tuple[_T, ...]:
        """See :meth:`Writer.sequence`."""
        count = self._unpack(_U32)
        return tuple(read() for _ in range(count))

    def _bad_tag(self, tag: int, what: str) -> StorageCorruptError:
        return StorageCorruptError(f"unknown {what} tag {tag} in {self._what} value")

    # --- WAL building blocks ----------------------------------------------------------

    def invocation_id(self) -> InvocationId:
        """See :meth:`Writer.invocation_id`."""
        return InvocationId.from_bytes(self._take(InvocationId.RAW_LENGTH))

    def target(self) -> r.InvocationTarget:
        """See :meth:`Writer.target`."""
        service = self.str_()
        handler = self.str_()
        key = self.optional(self.str_)
        service_tag = self.byte()
        handler_tag = self.byte()
        service_kind = _SERVICE_KINDS.get(service_tag)
        if service_kind is None:
            raise self._bad_tag(service_tag, "service kind")
        handler_kind = None
        if handler_tag:
            handler_kind = _HANDLER_KINDS.get(handler_tag)
            if handler_kind is None:
                raise self._bad_tag(handler_tag, "handler kind")
        return r.InvocationTarget(service, handler, key, service_kind, handler_kind)

    def headers(self) -> tuple[r.Header, ...]:
        """See :meth:`Writer.headers`."""
        return self.sequence(lambda: r.Header(self.str_(), self.str_()))

    def source(self) -> r.Source:
        """See :meth:`Writer.source`."""
        tag = self.byte()
        if tag == 0:
            return None
        if tag == 1:
            return r.IngressSource(self.str_(), self.str_())
        if tag == 2:
            return r.InvocationSource(self.invocation_id(), self.int_())
        if tag == 3:
            sub = SubscriptionId.from_bytes(self._take(16))
            return r.SubscriptionSource(sub, self.str_(), self.int_(), self.int_())
        raise self._bad_tag(tag, "source")

    def sink(self) -> r.IngressSink | r.InvocationSink:
        """See :meth:`Writer.sink`."""
        tag = self.byte()
        if tag == 1:
            return r.IngressSink(self.str_(), self.str_())
        if tag == 2:
            return r.InvocationSink(self.invocation_id(), self.int_())
        raise self._bad_tag(tag, "response sink")

    def notification_id(self) -> r.NotificationId:
        """See :meth:`Writer.notification_id`."""
        tag = self.byte()
        if tag == 1:
            return r.CompletionId(self.int_())
        if tag == 2:
            return r.SignalIndex(self.int_())
        if tag == 3:
            return r.SignalName(self.str_())
        raise self._bad_tag(tag, "notification id")

    def result(self) -> r.NotificationResult:
        """See :meth:`Writer.result`."""
        tag = self.byte()
        if tag == 1:
            return r.Value(self.bytes_())
        if tag == 2:
            return self.failure()
        if tag == 3:
            return r.Void()
        if tag == 4:
            return r.InvocationIdResult(self.invocation_id())
        if tag == 5:
            return r.StateKeys(self.sequence(self.bytes_))
        raise self._bad_tag(tag, "result")

    def output_result(self) -> r.OutputResult:
        """A :meth:`result` that must be a value or a failure."""
        value = self.result()
        if not isinstance(value, r.Value | r.Failure):
            raise StorageCorruptError(
                f"{self._what} value holds {type(value).__name__} as an output"
            )
        return value

    def failure(self) -> r.Failure:
        """See :meth:`Writer.failure`."""
        code = self.int_()
        message = self.str_()
        metadata = self.sequence(lambda: r.FailureMetadata(self.str_(), self.str_()))
        return r.Failure(code, message, metadata)

    def deployment_id(self) -> DeploymentId:
        """See :meth:`Writer.deployment_id`."""
        return DeploymentId.from_bytes(self._take(16))
