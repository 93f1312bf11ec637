"""Drive an SDK endpoint at the protocol level, without a runtime: build requests, read frames."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from google.protobuf.message import Message

from restate_protocol import Frame, FrameDecoder, encode_frame, pb
from sdk.endpoint import Endpoint

INVOCATION_ID = bytes(range(1, 17))


def request(*entries: Message, version: int = 7, key: str = "",
            state: dict[bytes, bytes] | None = None, partial_state: bool = False,
            retry_count: int = 0) -> bytes:
    start = pb.StartMessage(
        id=INVOCATION_ID, debug_id="inv_test", known_entries=len(entries), key=key,
        state_map=[pb.StartMessage.StateEntry(key=k, value=v) for k, v in (state or {}).items()],
        partial_state=partial_state, random_seed=42 if version >= 6 else 0,
        retry_count_since_last_stored_entry=retry_count,
    )
    return b"".join(encode_frame(m) for m in (start, *entries))


def invoke(endpoint: Endpoint, service: str, handler: str, body: bytes, version: int = 7) -> list[Frame]:
    """POST one attempt; the frames the SDK answered."""

    async def run() -> bytes:
        response = endpoint.invoke(service, handler, f"application/vnd.restate.invocation.v{version}",
                                   {}, body)
        assert response.status == 200, response.body
        if isinstance(response.body, bytes):
            return response.body
        return b"".join([chunk async for chunk in response.body])

    data = asyncio.run(run())
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    decoder.close()
    return frames


def names(frames: Sequence[Frame]) -> list[str]:
    return [f.name for f in frames]


def json_input(text: str) -> pb.InputCommandMessage:
    return pb.InputCommandMessage(value=pb.Value(content=text.encode()))
