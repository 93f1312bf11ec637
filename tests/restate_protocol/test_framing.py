"""Frame encoding and the incremental FrameDecoder."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restate_protocol import (
    HEADER_SIZE,
    REQUESTED_ACK,
    Frame,
    FrameDecoder,
    FrameHeader,
    MessageType,
    ProtocolError,
    decode_frames,
    encode_frame,
    encode_frames,
    encode_raw_frame,
    pb,
)
from tests.restate_protocol.samples import populate, sample_frames


def _feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[Frame]:
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(decoder.feed(chunk))
    decoder.close()
    return frames


# --- exact wire bytes -------------------------------------------------------------


def test_end_message_is_a_bare_header() -> None:
    assert encode_frame(pb.EndMessage()) == bytes.fromhex("0003 0000 00000000")


def test_header_is_big_endian_type_flags_length() -> None:
    message = pb.OutputCommandMessage(value=pb.Value(content=b'"Hello Ada"'))
    body = message.SerializeToString()
    frame = encode_frame(message)
    assert frame[:HEADER_SIZE] == struct.pack(">HHI", 0x0401, 0, len(body))
    assert frame[HEADER_SIZE:] == body


def test_requested_ack_sets_the_top_flag_bit() -> None:
    proposal = pb.ProposeRunCompletionMessage(result_completion_id=1, value=b'"x"')
    frame = encode_frame(proposal, requested_ack=True)
    # Bit 47 of the 64-bit header, i.e. 0x8000 in the flags half-word.
    assert int.from_bytes(frame[:HEADER_SIZE], "big") & (1 << 47)
    assert frame[2:4] == b"\x80\x00"
    (decoded,) = decode_frames(frame)
    assert decoded.requested_ack
    assert decoded.header.flags == REQUESTED_ACK


def test_requested_ack_on_a_command() -> None:
    frame = encode_frame(pb.SetStateCommandMessage(key=b"k"), requested_ack=True)
    (decoded,) = decode_frames(frame)
    assert decoded.requested_ack


def test_requested_ack_refused_where_meaningless() -> None:
    with pytest.raises(ValueError, match="cannot carry the REQUESTED_ACK"):
        encode_frame(pb.SuspensionMessage(), requested_ack=True)
    with pytest.raises(ValueError):
        encode_frame(pb.RunCompletionNotificationMessage(completion_id=1), requested_ack=True)


def test_unknown_flag_bits_are_kept_but_do_not_mean_ack() -> None:
    # A notification with the ack bit (and a legacy COMPLETED bit): the flags survive for
    # logging, but the runtime must not treat them as an ack request.
    raw = encode_raw_frame(MessageType.SLEEP_COMPLETION, b"", flags=0x8001)
    (decoded,) = decode_frames(raw)
    assert decoded.header.flags == 0x8001
    assert not decoded.requested_ack
    assert isinstance(decoded.message, pb.SleepCompletionNotificationMessage)


def test_header_pack_unpack() -> None:
    header = FrameHeader(type_id=0x8011, flags=0x8000, length=123456)
    assert FrameHeader.unpack(header.pack()) == header
    assert header.name == "RunCompletionNotification"
    with pytest.raises(ProtocolError, match="8 bytes"):
        FrameHeader.unpack(b"\x00\x01")


def test_encode_frames_concatenates() -> None:
    start = pb.StartMessage(id=b"\x01" * 16, known_entries=1)
    inp = pb.InputCommandMessage(value=pb.Value(content=b"{}"))
    assert encode_frames(start, inp) == encode_frame(start) + encode_frame(inp)


def test_non_frame_types_cannot_be_framed() -> None:
    with pytest.raises(TypeError, match="not a service protocol frame"):
        encode_frame(pb.Value(content=b"x"))


def test_encode_raw_frame_validates_ranges() -> None:
    with pytest.raises(ValueError):
        encode_raw_frame(0x1_0000, b"")
    with pytest.raises(ValueError):
        encode_raw_frame(0x0400, b"", flags=-1)


# --- round trips --------------------------------------------------------------


def test_every_frame_type_round_trips() -> None:
    messages = sample_frames(random.Random(7))
    frames = decode_frames(encode_frames(*messages))
    assert [f.message for f in frames] == messages
    assert [type(f.message) for f in frames] == [type(m) for m in messages]
    for frame, message in zip(frames, messages):
        assert frame.body == message.SerializeToString()


def test_byte_by_byte_feeding() -> None:
    messages = sample_frames(random.Random(11))
    stream = encode_frames(*messages)
    decoder = FrameDecoder()
    frames = _feed_all(decoder, [stream[i : i + 1] for i in range(len(stream))])
    assert [f.message for f in frames] == messages
    assert decoder.buffered == 0


def test_feed_returns_frames_as_soon_as_complete() -> None:
    first = encode_frame(pb.RunCommandMessage(result_completion_id=1, name="a"))
    second = encode_frame(pb.EndMessage())
    decoder = FrameDecoder()
    assert decoder.feed(first[:5]) == []
    assert decoder.buffered == 5
    (frame,) = decoder.feed(first[5:] + second[:3])
    assert isinstance(frame.message, pb.RunCommandMessage)
    (end,) = decoder.feed(second[3:])
    assert isinstance(end.message, pb.EndMessage)
    decoder.close()


def test_empty_stream_is_fine() -> None:
    assert decode_frames(b"") == []


def test_accepts_memoryview_and_bytearray() -> None:
    stream = encode_frame(pb.EndMessage())
    assert len(FrameDecoder().feed(memoryview(stream))) == 1
    assert len(FrameDecoder().feed(bytearray(stream))) == 1


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    count=st.integers(min_value=0, max_value=12),
    data=st.data(),
)
def test_random_chunking_decodes_identically(seed: int, count: int, data: st.DataObject) -> None:
    rnd = random.Random(seed)
    pool = sample_frames(rnd)
    messages = [populate(type(rnd.choice(pool))(), rnd) for _ in range(count)]
    stream = encode_frames(*messages)
    cuts = sorted(
        data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=20))
    )
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:])]
    frames = _feed_all(FrameDecoder(), chunks)
    assert [f.message for f in frames] == messages


# --- custom entries -----------------------------------------------------------------


def test_custom_entries_pass_through_opaque() -> None:
    raw = encode_raw_frame(0xFC01, b"\xff\x00opaque", flags=REQUESTED_ACK)
    (frame,) = decode_frames(raw)
    assert frame.message is None
    assert frame.body == b"\xff\x00opaque"
    assert frame.requested_ack
    assert frame.name == "Custom(0xfc01)"


def test_custom_entries_can_be_refused() -> None:
    with pytest.raises(ProtocolError, match="custom entry 0xfc01"):
        FrameDecoder(allow_custom=False).feed(encode_raw_frame(0xFC01, b""))


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("type_id", [0x0008, 0x0200, 0x040F, 0x0415, 0x7FFF, 0x8000, 0x8014])
def test_unknown_type_id_is_a_protocol_error(type_id: int) -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match=f"unknown service protocol message type {type_id:#06x}"):
        decoder.feed(encode_raw_frame(type_id, b""))


def test_unknown_type_id_fails_before_its_body_arrives() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(struct.pack(">HHI", 0x0415, 0, 1000))


def test_oversized_frame_is_refused_from_its_header() -> None:
    decoder = FrameDecoder(max_message_size=16)
    # Only the header is fed: the limit applies before any body byte is buffered.
    header = struct.pack(">HHI", MessageType.OUTPUT_COMMAND, 0, 17)
    with pytest.raises(ProtocolError, match="17-byte body, over the 16-byte"):
        decoder.feed(header)


def test_frame_at_the_size_limit_is_accepted() -> None:
    message = pb.OutputCommandMessage(value=pb.Value(content=b"x" * 10))
    size = len(message.SerializeToString())
    (frame,) = decode_frames(encode_frame(message), max_message_size=size)
    assert frame.message == message


def test_default_limit_refuses_a_corrupt_length() -> None:
    with pytest.raises(ProtocolError, match="message size limit"):
        FrameDecoder().feed(struct.pack(">HHI", MessageType.INPUT_COMMAND, 0, 0xFFFF_FFFF))


def test_truncated_header_at_end_of_stream() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(pb.EndMessage())[:5]) == []
    with pytest.raises(ProtocolError, match="inside a frame header: 5 of 8"):
        decoder.close()


def test_truncated_body_at_end_of_stream() -> None:
    frame = encode_frame(pb.RunCommandMessage(result_completion_id=3, name="step"))
    decoder = FrameDecoder()
    decoder.feed(frame[:-2])
    with pytest.raises(ProtocolError, match="inside a RunCommand frame"):
        decoder.close()


def test_malformed_body_is_a_protocol_error() -> None:
    # Field 1 as a length-delimited value whose length runs past the body.
    with pytest.raises(ProtocolError, match="StartMessage|Start frame body"):
        decode_frames(encode_raw_frame(MessageType.START, b"\x0a\x05ab"))


def test_errors_are_sticky() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(encode_raw_frame(0x0415, b""))
    with pytest.raises(ProtocolError, match="already failed"):
        decoder.feed(encode_frame(pb.EndMessage()))
    with pytest.raises(ProtocolError, match="already failed"):
        decoder.close()


def test_feed_after_close_is_refused() -> None:
    decoder = FrameDecoder()
    decoder.close()
    with pytest.raises(ProtocolError, match="after close"):
        decoder.feed(encode_frame(pb.EndMessage()))


def test_negative_limit_is_rejected() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_message_size=-1)
