"""The Restate service protocol codec (versions 5 to 7).

Both sides of the protocol use this package: the engine's invoker, which calls service
endpoints, and the SDK (``sdk/``), which serves them; it imports nothing of either, so
the SDK ships without the engine. It frames protobuf messages
(:func:`encode_frame`), decodes the endpoint's response stream incrementally
(:class:`FrameDecoder`), maps type ids to message classes (:mod:`.messages`) and
negotiates the protocol version (:mod:`.versions`). The protobuf classes themselves
live in :mod:`restate_protocol.service_protocol_pb2`, generated from
``service_protocol.proto`` by ``scripts/gen_protos.sh``; import them as ``pb``::

    from restate_protocol import pb, encode_frame, FrameDecoder

    request = encode_frame(pb.StartMessage(id=raw_id, known_entries=1)) + encode_frame(
        pb.InputCommandMessage(value=pb.Value(content=b'"Ada"'))
    )
    decoder = FrameDecoder()
    for chunk in response_chunks:
        for frame in decoder.feed(chunk):
            ...
    decoder.close()

Everything here is pure logic: no I/O, no event loop.
"""

from restate_protocol import service_protocol_pb2 as pb
from restate_protocol.errors import ProtocolError, UnsupportedProtocolVersion
from restate_protocol.framing import (
    DEFAULT_MAX_MESSAGE_SIZE,
    HEADER_SIZE,
    LEGACY_COMPLETED,
    REQUESTED_ACK,
    Frame,
    FrameDecoder,
    FrameHeader,
    decode_frames,
    encode_frame,
    encode_frames,
    encode_raw_frame,
)
from restate_protocol.journal import JournalEntry
from restate_protocol.messages import (
    MessageKind,
    MessageSpec,
    MessageType,
    allows_ack,
    is_command,
    is_control,
    is_custom,
    is_notification,
    kind_of,
    message_name,
    spec_for_id,
    spec_for_message,
)
from restate_protocol.versions import (
    CONTENT_TYPE_PREFIX,
    MAX_PROTOCOL_VERSION,
    MIN_PROTOCOL_VERSION,
    ProtocolVersion,
    content_type,
    negotiate_version,
    parse_content_type,
)

__all__ = [
    "CONTENT_TYPE_PREFIX",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HEADER_SIZE",
    "LEGACY_COMPLETED",
    "MAX_PROTOCOL_VERSION",
    "MIN_PROTOCOL_VERSION",
    "REQUESTED_ACK",
    "Frame",
    "FrameDecoder",
    "FrameHeader",
    "JournalEntry",
    "MessageKind",
    "MessageSpec",
    "MessageType",
    "ProtocolError",
    "ProtocolVersion",
    "UnsupportedProtocolVersion",
    "allows_ack",
    "content_type",
    "decode_frames",
    "encode_frame",
    "encode_frames",
    "encode_raw_frame",
    "is_command",
    "is_control",
    "is_custom",
    "is_notification",
    "kind_of",
    "message_name",
    "negotiate_version",
    "parse_content_type",
    "pb",
    "spec_for_id",
    "spec_for_message",
]
