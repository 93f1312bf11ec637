"""Interop: our codec against a real service built with the official ``restate-sdk``.

The greeter in ``tests/fixtures/official_sdk_greeter.py`` runs in a subprocess under
hypercorn (HTTP/1.1, hence request/response mode). We speak to it exactly as the
invoker will: a Start + journal encoded by our codec in one request body, and the
response stream decoded by our FrameDecoder in small reads, so frames straddle reads.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass

import pytest
from google.protobuf.message import Message

from restate_protocol import (
    Frame,
    FrameDecoder,
    ProtocolVersion,
    content_type,
    encode_frames,
    negotiate_version,
    parse_content_type,
    pb,
)
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints

SERVICE = "Greeter"
INVOCATION_ID = bytes(range(1, 27))
DEBUG_ID = "inv_1interopTestInvocation"
ALL_VERSIONS = [ProtocolVersion.V5, ProtocolVersion.V6, ProtocolVersion.V7]


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str | None
    frames: list[Frame]

    @property
    def messages(self) -> list[Message | None]:
        return [frame.message for frame in self.frames]


@pytest.fixture(scope="module")
def sdk_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get("tests.fixtures.official_sdk_greeter:app")


def _invoke(endpoint: ServiceEndpoint, handler: str, version: int, *journal: Message) -> Response:
    body = encode_frames(*journal)
    ctype = content_type(version)
    conn = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=30)
    try:
        conn.request(
            "POST",
            f"/invoke/{SERVICE}/{handler}",
            body=body,
            headers={"content-type": ctype, "accept": ctype},
        )
        response = conn.getresponse()
        decoder = FrameDecoder()
        frames: list[Frame] = []
        # Deliberately tiny reads: the decoder must reassemble frames across them.
        while chunk := response.read(5):
            frames.extend(decoder.feed(chunk))
        decoder.close()
        return Response(response.status, response.getheader("content-type"), frames)
    finally:
        conn.close()


def _start(known_entries: int) -> pb.StartMessage:
    return pb.StartMessage(
        id=INVOCATION_ID, debug_id=DEBUG_ID, known_entries=known_entries, random_seed=42
    )


def _input(name: str) -> pb.InputCommandMessage:
    return pb.InputCommandMessage(
        headers=[pb.Header(key="x-test", value="interop")],
        value=pb.Value(content=json.dumps(name).encode()),
    )


def test_discovery_advertises_request_response_v5_to_v7(sdk_endpoint: ServiceEndpoint) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", sdk_endpoint.port, timeout=30)
    try:
        conn.request(
            "GET", "/discover", headers={"accept": "application/vnd.restate.endpointmanifest.v4+json"}
        )
        response = conn.getresponse()
        manifest = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200
    assert manifest["protocolMode"] == "REQUEST_RESPONSE"
    assert (manifest["minProtocolVersion"], manifest["maxProtocolVersion"]) == (5, 7)
    version = negotiate_version(manifest["minProtocolVersion"], manifest["maxProtocolVersion"])
    assert version == ProtocolVersion.V7
    handlers = {h["name"] for h in manifest["services"][0]["handlers"]}
    assert handlers == {"greet", "greet_with_run", "greet_slowly"}


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{int(v)}")
def test_greet_returns_output_then_end(sdk_endpoint: ServiceEndpoint, version: ProtocolVersion) -> None:
    response = _invoke(sdk_endpoint, "greet", version, _start(1), _input("Ada"))

    assert response.status == 200, sdk_endpoint.log()
    assert response.content_type is not None
    assert parse_content_type(response.content_type) == version
    assert [f.name for f in response.frames] == ["OutputCommand", "End"]
    output = response.messages[0]
    assert isinstance(output, pb.OutputCommandMessage)
    assert output.WhichOneof("result") == "value"
    assert json.loads(output.value.content) == "Hello Ada"
    # The SDK sets no header flags on plain output.
    assert all(frame.header.flags == 0 for frame in response.frames)


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{int(v)}")
def test_ctx_run_proposes_then_suspends(sdk_endpoint: ServiceEndpoint, version: ProtocolVersion) -> None:
    response = _invoke(sdk_endpoint, "greet_with_run", version, _start(1), _input("Ada"))

    assert response.status == 200, sdk_endpoint.log()
    # Request/response mode: the SDK runs the side effect, proposes its result and,
    # having no completion yet, suspends. No EndMessage follows a suspension.
    assert [f.name for f in response.frames] == ["RunCommand", "ProposeRunCompletion", "Suspension"]
    run, proposal, suspension = response.messages
    assert isinstance(run, pb.RunCommandMessage)
    assert isinstance(proposal, pb.ProposeRunCompletionMessage)
    assert isinstance(suspension, pb.SuspensionMessage)

    assert run.name == "make_greeting"
    assert proposal.result_completion_id == run.result_completion_id == 1
    assert json.loads(proposal.value) == "Hello Ada from a side effect"

    cancel_signal = pb.BuiltInSignal.CANCEL
    if version >= ProtocolVersion.V7:
        # v7: the SDK asks for a ProposeRunCompletionAck and describes the await point
        # as a future tree; the legacy flat lists stay empty.
        assert response.frames[1].requested_ack
        assert not suspension.waiting_completions and not suspension.waiting_signals
        assert suspension.HasField("awaiting_on")
        assert list(suspension.awaiting_on.waiting_completions) == [1]
        assert list(suspension.awaiting_on.waiting_signals) == [cancel_signal]
        assert suspension.awaiting_on.combinator_type == pb.FIRST_COMPLETED
    else:
        assert response.frames[1].header.flags == 0
        assert not suspension.HasField("awaiting_on")
        assert list(suspension.waiting_completions) == [1]
        # The SDK always also waits on the built-in cancel signal.
        assert list(suspension.waiting_signals) == [cancel_signal]
    # Commands are never sent with REQUESTED_ACK by the SDK in request/response mode.
    assert not response.frames[0].requested_ack


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{int(v)}")
def test_ctx_run_replay_with_completion_finishes(
    sdk_endpoint: ServiceEndpoint, version: ProtocolVersion
) -> None:
    # What the engine does after the suspension above: re-invoke with the whole journal,
    # now including the stored RunCompletionNotification.
    result = json.dumps("Hello Ada from the journal").encode()
    response = _invoke(
        sdk_endpoint,
        "greet_with_run",
        version,
        _start(3),
        _input("Ada"),
        pb.RunCommandMessage(result_completion_id=1, name="make_greeting"),
        pb.RunCompletionNotificationMessage(completion_id=1, value=pb.Value(content=result)),
    )

    assert response.status == 200, sdk_endpoint.log()
    assert [f.name for f in response.frames] == ["OutputCommand", "End"]
    output = response.messages[0]
    assert isinstance(output, pb.OutputCommandMessage)
    # The journaled result wins over re-running the side effect.
    assert json.loads(output.value.content) == "Hello Ada from the journal"


def test_unknown_handler_is_404(sdk_endpoint: ServiceEndpoint) -> None:
    response = _invoke(sdk_endpoint, "nope", ProtocolVersion.V7, _start(1), _input("Ada"))
    assert response.status == 404
    assert response.frames == []
