"""Frames of the Restate service protocol: an 8-byte header, then a protobuf body.

Header layout (big-endian, 64 bits)::

    0               16              32                              64
    +---------------+---------------+-------------------------------+
    |    type id    |     flags     |         body length           |
    +---------------+---------------+-------------------------------+

* **type id** selects the protobuf class (see :mod:`.messages`).
* **body length** counts the bytes after the header; zero is valid (``EndMessage``).
* **flags**, as used by protocol versions 5 to 7:

  - ``REQUESTED_ACK`` (``0x8000``, bit 47 of the header). Only meaningful on commands
    and on ``ProposeRunCompletion``. On a command it asks the runtime to answer with a
    ``CommandAckMessage`` once the command is durably stored. On a
    ``ProposeRunCompletion`` (protocol v7) it asks for a ``ProposeRunCompletionAck``
    instead of the runtime echoing the whole ``RunCompletionNotification``. The official
    Python SDK sets it on every ``ProposeRunCompletion`` it sends over v7 and on no
    other frame; over v5/v6 it sends no flags at all.
  - Every other bit is zero in v5+. Versions 1-4 used bit 0 as ``COMPLETED`` (the
    entry already carries its result) and the same ``0x8000`` bit as ``REQUIRES_ACK``;
    logstrate does not speak those versions, but the decoder keeps unknown flag bits in
    :attr:`FrameHeader.flags` instead of rejecting them, as the Restate runtime does, so
    a peer setting a bit we do not know about is not a protocol error.

The :class:`FrameDecoder` is incremental: HTTP bodies arrive in arbitrary chunks, and a
frame may straddle any number of them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NoReturn

from google.protobuf.message import DecodeError, Message

from restate_protocol.errors import ProtocolError
from restate_protocol.messages import (
    allows_ack,
    is_custom,
    message_name,
    spec_for_id,
    spec_for_message,
)

HEADER_SIZE = 8
_HEADER = struct.Struct(">HHI")

#: Header flag asking the runtime to acknowledge a command / run proposal (v5+).
REQUESTED_ACK = 0x8000
#: Protocol v1-v4 only: the entry carries its completion. Never set by v5+ peers.
LEGACY_COMPLETED = 0x0001

#: Largest body accepted by default. Journal entries carry user payloads; 32 MiB is
#: generous for those while still refusing a corrupt length field (up to 4 GiB)
#: before any of it is buffered.
DEFAULT_MAX_MESSAGE_SIZE = 32 * 1024 * 1024
_MAX_LENGTH_FIELD = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The decoded 8-byte header of one frame."""

    type_id: int
    flags: int
    length: int

    @property
    def requested_ack(self) -> bool:
        """True when the sender asked for an acknowledgement of this frame.

        False for message types where the flag has no meaning, whatever the bit says.
        """
        return bool(self.flags & REQUESTED_ACK) and allows_ack(self.type_id)

    @property
    def name(self) -> str:
        """The message type's name, for logs."""
        return message_name(self.type_id)

    def pack(self) -> bytes:
        """The 8 wire bytes of this header."""
        return _HEADER.pack(self.type_id, self.flags, self.length)

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> FrameHeader:
        """Parse the first :data:`HEADER_SIZE` bytes of ``data``.

        Raises:
            ProtocolError: fewer than 8 bytes were given.
        """
        if len(data) < HEADER_SIZE:
            raise ProtocolError(
                f"a frame header is {HEADER_SIZE} bytes, got only {len(data)}"
            )
        type_id, flags, length = _HEADER.unpack_from(data)
        return cls(type_id=type_id, flags=flags, length=length)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    Attributes:
        header: The frame header as received.
        body: The raw protobuf body. Kept so the invoker can journal exactly the bytes
            the SDK sent and replay them later without a decode/encode round trip.
        message: The parsed body; ``None`` only for custom entries (type ids
            ``0xFC00-0xFFFF``), whose body is opaque to the runtime.
    """

    header: FrameHeader
    body: bytes
    message: Message | None

    @property
    def type_id(self) -> int:
        """The frame's message type id."""
        return self.header.type_id

    @property
    def name(self) -> str:
        """The message type's name, for logs."""
        return self.header.name

    @property
    def requested_ack(self) -> bool:
        """See :attr:`FrameHeader.requested_ack`."""
        return self.header.requested_ack


def encode_raw_frame(type_id: int, body: bytes, *, flags: int = 0) -> bytes:
    """Frame an already-serialized body under ``type_id``.

    Used to replay journal entries stored as raw bytes, and for custom entries, which
    have no protobuf class.

    Raises:
        ValueError: ``type_id`` or ``flags`` do not fit in 16 bits.
        ProtocolError: the body is too long for the 32-bit length field.
    """
    if not 0 <= type_id <= 0xFFFF:
        raise ValueError(f"message type id {type_id!r} does not fit in 16 bits")
    if not 0 <= flags <= 0xFFFF:
        raise ValueError(f"frame flags {flags!r} do not fit in 16 bits")
    if len(body) > _MAX_LENGTH_FIELD:
        raise ProtocolError(
            f"{message_name(type_id)} body of {len(body)} bytes exceeds the 4 GiB frame limit"
        )
    return _HEADER.pack(type_id, flags, len(body)) + body


def encode_frame(message: Message, *, requested_ack: bool = False) -> bytes:
    """Serialize ``message`` into one frame (header + body).

    Args:
        message: Any frame type of :mod:`.service_protocol_pb2` (``StartMessage``,
            ``InputCommandMessage``, ...). The type id comes from the registry.
        requested_ack: Set the ``REQUESTED_ACK`` flag. Only valid on commands and on
            ``ProposeRunCompletionMessage``.

    Raises:
        TypeError: ``message`` is not a frame type (e.g. a bare ``Value``).
        ValueError: ``requested_ack`` was asked for a message type that cannot carry it.
    """
    spec = spec_for_message(message)
    if requested_ack and not spec.allows_ack:
        raise ValueError(f"{spec.name} cannot carry the REQUESTED_ACK flag")
    flags = REQUESTED_ACK if requested_ack else 0
    return encode_raw_frame(spec.type_id, message.SerializeToString(), flags=flags)


def encode_frames(*messages: Message) -> bytes:
    """Concatenate the frames of several messages (no flags), e.g. Start + journal."""
    return b"".join(encode_frame(message) for message in messages)


class FrameDecoder:
    """Incremental decoder of a service protocol byte stream.

    Feed it the chunks of an HTTP body as they arrive; each :meth:`feed` returns the
    frames completed by that chunk, in order. Call :meth:`close` at end of stream: it
    raises if the stream stopped in the middle of a frame.

    Errors are final: after a :class:`ProtocolError` the stream position is lost, so
    every later call raises again rather than decoding garbage.

    Args:
        max_message_size: Largest accepted body, in bytes. Checked as soon as a header
            is read, so an oversized frame is refused before its body is buffered.
        allow_custom: Accept custom entries (``0xFC00-0xFFFF``) as opaque frames. When
            False they are rejected like unknown ids.
    """

    def __init__(
        self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, allow_custom: bool = True
    ) -> None:
        if max_message_size < 0:
            raise ValueError("max_message_size must not be negative")
        self._max_message_size = max_message_size
        self._allow_custom = allow_custom
        self._buffer = bytearray()
        # Header of the frame whose body is still incomplete, if any: parsed once, so
        # a large body fed byte by byte is not re-validated on every chunk.
        self._pending: FrameHeader | None = None
        self._error: ProtocolError | None = None
        self._closed = False

    @property
    def buffered(self) -> int:
        """Bytes held for the frame in progress (its 8 header bytes excluded once parsed)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Add ``data`` to the stream and return every frame it completes.

        If ``data`` completes some frames and then hits an error, the error wins and
        those frames are not returned: a stream with a protocol error fails the whole
        attempt, and the SDK re-sends everything on the next one.

        Raises:
            ProtocolError: an unknown type id, a body over ``max_message_size``, a body
                that does not parse, or a feed after :meth:`close`.
        """
        self._check_usable()
        if self._closed:
            self._fail(ProtocolError("data fed to a FrameDecoder after close()"))
        self._buffer += data
        frames: list[Frame] = []
        offset = 0
        try:
            while True:
                if self._pending is None:
                    if len(self._buffer) - offset < HEADER_SIZE:
                        break
                    self._pending = self._read_header(offset)
                    offset += HEADER_SIZE
                header = self._pending
                if len(self._buffer) - offset < header.length:
                    break
                body = bytes(self._buffer[offset : offset + header.length])
                offset += header.length
                self._pending = None
                frames.append(Frame(header=header, body=body, message=self._parse(header, body)))
        finally:
            # Drop consumed bytes once per feed, not once per frame, to keep feeding
            # many small frames linear rather than quadratic.
            del self._buffer[:offset]
        return frames

    def close(self) -> None:
        """Declare the end of the stream.

        Raises:
            ProtocolError: the stream ended inside a frame (truncated header or body).
        """
        self._check_usable()
        self._closed = True
        if self._pending is not None:
            header = self._pending
            self._fail(
                ProtocolError(
                    f"stream ended inside a {header.name} frame: body has "
                    f"{len(self._buffer)} of {header.length} bytes"
                )
            )
        if self._buffer:
            self._fail(
                ProtocolError(
                    f"stream ended inside a frame header: {len(self._buffer)} of "
                    f"{HEADER_SIZE} bytes received"
                )
            )

    def _read_header(self, offset: int) -> FrameHeader:
        type_id, flags, length = _HEADER.unpack_from(self._buffer, offset)
        header = FrameHeader(type_id=type_id, flags=flags, length=length)
        if is_custom(header.type_id):
            if not self._allow_custom:
                self._fail(
                    ProtocolError(
                        f"custom entry {header.type_id:#06x} received, but custom entries "
                        "are not accepted on this stream"
                    )
                )
        else:
            try:
                spec_for_id(header.type_id)
            except ProtocolError as exc:
                self._fail(exc)
        if header.length > self._max_message_size:
            self._fail(
                ProtocolError(
                    f"{header.name} frame announces a {header.length}-byte body, over the "
                    f"{self._max_message_size}-byte message size limit"
                )
            )
        return header

    def _parse(self, header: FrameHeader, body: bytes) -> Message | None:
        if is_custom(header.type_id):
            return None
        spec = spec_for_id(header.type_id)
        try:
            return spec.cls.FromString(body)
        except DecodeError as exc:
            self._fail(
                ProtocolError(f"{spec.name} frame body is not a valid protobuf message: {exc}")
            )

    def _check_usable(self) -> None:
        if self._error is not None:
            raise ProtocolError(f"FrameDecoder already failed: {self._error}")

    def _fail(self, error: ProtocolError) -> NoReturn:
        self._error = error
        raise error


def decode_frames(
    data: bytes | bytearray | memoryview, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> list[Frame]:
    """Decode a complete stream held in memory (feed + close in one call).

    Raises:
        ProtocolError: as :meth:`FrameDecoder.feed` and :meth:`FrameDecoder.close`.
    """
    decoder = FrameDecoder(max_message_size=max_message_size)
    frames = decoder.feed(data)
    decoder.close()
    return frames
