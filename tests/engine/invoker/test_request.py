"""What an attempt's request looks like, per protocol version, and task validation."""

from __future__ import annotations

import dataclasses

import pytest

from restate_protocol import MessageType, ProtocolVersion, decode_frames, pb
from engine.invoker.request import build_body, build_headers, build_start_message, invoke_url
from engine.invoker.task import AttemptOutcome, EndpointTarget, OutcomeKind
from restate_protocol import JournalEntry
from engine.wal.records import Value
from tests.engine.invoker.driver import new_task


def test_url_keeps_the_mount_prefix_and_escapes_names() -> None:
    task = new_task("http://svc:9080/prefix/", "My Svc", "run/x", "in")
    assert invoke_url(task) == "http://svc:9080/prefix/invoke/My%20Svc/run%2Fx"


@pytest.mark.parametrize("version", list(ProtocolVersion), ids=lambda v: f"v{int(v)}")
def test_start_message_has_the_fields_of_its_version(version: ProtocolVersion) -> None:
    task = new_task("http://svc", "S", "h", "in", version=version, random_seed=5, idempotency_key="idem")
    start = build_start_message(task)
    assert start.random_seed == (5 if version >= ProtocolVersion.V6 else 0)
    assert start.HasField("idempotency_key") == (version >= ProtocolVersion.V7)
    assert build_headers(task)["content-type"] == f"application/vnd.restate.invocation.v{int(version)}"


def test_body_is_start_then_the_journal_verbatim() -> None:
    task = new_task("http://svc", "S", "h", "in")
    notification = JournalEntry(MessageType.SLEEP_COMPLETION, b"\x08\x01\x22\x00")
    task = dataclasses.replace(task, journal=(*task.journal, notification))
    frames = decode_frames(build_body(task))
    assert isinstance(frames[0].message, pb.StartMessage)
    assert frames[0].message.known_entries == 2
    assert [(f.type_id, f.body) for f in frames[1:]] == [(e.message_type, e.message) for e in task.journal]


def test_additional_headers_cannot_replace_protocol_headers() -> None:
    task = new_task("http://svc", "S", "h", "in", headers=(("Accept", "text/html"), ("x-a", "1")))
    headers = build_headers(task)
    assert headers["accept"] == headers["content-type"]
    assert "Accept" not in headers and headers["x-a"] == "1"


def test_tasks_need_an_input_entry_first() -> None:
    task = new_task("http://svc", "S", "h", "in")
    with pytest.raises(ValueError, match="InputCommand"):
        dataclasses.replace(task, journal=())
    with pytest.raises(ValueError, match="InputCommand"):
        dataclasses.replace(task, journal=(JournalEntry(MessageType.RUN_COMMAND, b""),))
    with pytest.raises(ValueError):
        dataclasses.replace(task, inactivity_timeout_ms=0)
    with pytest.raises(ValueError):
        EndpointTarget("svc:9080", ProtocolVersion.V7)


def test_outcomes_are_consistent() -> None:
    AttemptOutcome(OutcomeKind.ENDED, result=Value(b""))
    with pytest.raises(ValueError):
        AttemptOutcome(OutcomeKind.ENDED)
    with pytest.raises(ValueError):
        AttemptOutcome(OutcomeKind.SUSPENDED)
    with pytest.raises(ValueError):
        AttemptOutcome(OutcomeKind.FAILED, result=Value(b""))
