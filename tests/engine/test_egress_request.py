"""The egress request format (pure): parsing, refusals, and the SDK helper's encoding."""

from __future__ import annotations

import base64
import json

import pytest

from engine.egress import EgressRequest, EgressRequestError, encode_request, parse_request
from engine.metadata.targets import resolve_call_target
from engine.metadata.view import MetadataView
from engine.wal.records import CallTarget, ServiceKind
from sdk.kafka import EGRESS_HANDLER, EGRESS_SERVICE, publish_request


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_full_request() -> None:
    raw = json.dumps({"topic": "t", "value": b64(b"\x00v"), "key": b64(b"k"), "headers": {"h": "1"},
                      "partition": 2}).encode()
    assert parse_request(raw) == EgressRequest("t", b"\x00v", b"k", (("h", "1"),), 2)


def test_value_json_and_tombstone() -> None:
    assert parse_request(b'{"topic":"t","value_json":{"a":[1,"\xc3\xa9"]}}').value == '{"a":[1,"é"]}'.encode()
    assert parse_request(b'{"topic":"t"}') == EgressRequest("t", None)


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"value": ""}', "'topic' is required"),
        (b'{"topic": "t", "value": "!!"}', "not valid base64"),
        (b'{"topic": "t", "value": "", "value_json": 1}', "not both"),
        (b'{"topic": "t", "headers": {"a": 1}}', "'headers'"),
        (b'{"topic": "t", "partition": -1}', "'partition'"),
        (b'{"topic": "t", "partition": true}', "'partition'"),
        (b'{"topic": "t", "valeu": ""}', "unknown fields ['valeu']"),
    ],
)
def test_refusals_say_what_is_wrong(raw: bytes, complaint: str) -> None:
    with pytest.raises(EgressRequestError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        parse_request(raw)


def test_engine_encoding_round_trips() -> None:
    raw = encode_request("dlq", b"v", key=b"\xff", headers={"a": "b"}, partition=1)
    assert parse_request(raw) == EgressRequest("dlq", b"v", b"\xff", (("a", "b"),), 1)


def test_sdk_helper_encoding_is_what_the_engine_parses() -> None:
    assert parse_request(publish_request("t", b"\x01")).value == b"\x01"
    assert parse_request(publish_request("t", "text")).value == b"text"
    assert parse_request(publish_request("t", {"n": 1}, key="k", headers={"x": "y"})) == EgressRequest(
        "t", b'{"n":1}', b"k", (("x", "y"),)
    )
    assert parse_request(publish_request("t", None)).value is None


def test_builtin_target_resolves_without_a_deployment() -> None:
    view = MetadataView()
    assert resolve_call_target(view, EGRESS_SERVICE, EGRESS_HANDLER) == CallTarget(ServiceKind.SERVICE, None)
    with pytest.raises(LookupError, match="no handler 'send'"):
        resolve_call_target(view, EGRESS_SERVICE, "send")
