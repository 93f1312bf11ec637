"""The Avro schemas of WAL records, one per schema version, kept forever.

Rules (see :mod:`engine.wal.codec` for the wire layout):

* A schema version, once released, never changes: records in Kafka were written with
  it. ``tests/engine/wal`` pins each version's Avro fingerprint, so an accidental edit
  fails the build.
* Any change (a new record type in the ``body`` union, a new optional field with a
  default, a new enum symbol) is a new version: build ``ENVELOPE_V2`` from new building
  blocks next to the old ones (copy a block, never edit one a released version uses),
  add it to :data:`WRITER_SCHEMAS` and point :data:`CURRENT_VERSION` at it. Readers
  decode old bytes with the writer schema they were written with and Avro's resolution
  rules against the current schema, so only changes Avro can resolve are allowed:
  add fields *with defaults*, add union branches and enum symbols at the end, never
  remove or rename without an alias.
* Named types are written as complete definitions below; :func:`_define_once` turns
  repeated definitions into references, which is what Avro requires.

Every integer is an Avro ``long`` (ids, indexes, offsets, times all fit in 63 bits;
Avro ``int`` would cap at 2**31 for other readers). Field names are the field names
of the dataclasses in :mod:`engine.wal.records`, and record names are their class
names, in namespace :data:`NAMESPACE`.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "CURRENT_VERSION",
    "ENVELOPE_V1",
    "ENVELOPE_V2",
    "ENVELOPE_V3",
    "ENVELOPE_V4",
    "ENVELOPE_V5",
    "ENVELOPE_V6",
    "ENVELOPE_V7",
    "ENVELOPE_V8",
    "ENVELOPE_V9",
    "ENVELOPE_V10",
    "ENVELOPE_V11",
    "ENVELOPE_V12",
    "NAMESPACE",
    "WRITER_SCHEMAS",
    "schema_for",
]

NAMESPACE = "logstrate.wal"

Schema = dict[str, Any]


def _record(name: str, *fields: dict[str, Any]) -> Schema:
    return {"type": "record", "name": name, "namespace": NAMESPACE, "fields": list(fields)}


def _batch_replacing(batch: Schema, old: Schema, new: Schema) -> Schema:
    """``batch`` (a RecordBatch block) with its branch ``old`` replaced by ``new``, the
    other branches the same objects in the same order (so the schema stays compatible)."""
    return _record(
        "RecordBatch",
        _field(
            "records",
            {"type": "array", "items": [new if item is old else item for item in batch["fields"][0]["type"]["items"]]},
        ),
    )


def _field(name: str, avro_type: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": avro_type, **extra}


def _optional(name: str, avro_type: Any) -> dict[str, Any]:
    return {"name": name, "type": ["null", avro_type], "default": None}


def _enum(name: str, *symbols: str) -> Schema:
    return {"type": "enum", "name": name, "namespace": NAMESPACE, "symbols": list(symbols)}


def _define_once(schema: Any, seen: set[str] | None = None) -> Any:
    """Copy ``schema``, replacing every definition of a named type after the first with
    a reference to its full name (Avro rejects a second definition)."""
    seen = set() if seen is None else seen
    if isinstance(schema, list):
        return [_define_once(item, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") in ("record", "enum", "fixed"):
        full_name = f"{schema.get('namespace', NAMESPACE)}.{schema['name']}"
        if full_name in seen:
            return full_name
        seen.add(full_name)
    out = dict(schema)
    if "fields" in out:
        out["fields"] = [{**f, "type": _define_once(f["type"], seen)} for f in out["fields"]]
    for nested in ("items", "values"):
        if nested in out:
            out[nested] = _define_once(out[nested], seen)
    return out


# --- building blocks of version 1 (released: never edit) --------------------------------

_INVOCATION_ID = {
    "type": "fixed", "name": "InvocationIdBytes", "namespace": NAMESPACE, "size": 24
}
_ULID = {"type": "fixed", "name": "UlidBytes", "namespace": NAMESPACE, "size": 16}

_SERVICE_KIND = _enum("ServiceKind", "SERVICE", "VIRTUAL_OBJECT", "WORKFLOW")
_HANDLER_KIND = _enum("HandlerKind", "EXCLUSIVE", "SHARED", "WORKFLOW")
_TIMER_KIND = _enum("TimerKind", "SLEEP", "DELAYED_INVOKE", "RETRY", "CLEANUP")

_TARGET = _record(
    "InvocationTarget",
    _field("service", "string"),
    _field("handler", "string"),
    _optional("key", "string"),
    _field("service_kind", _SERVICE_KIND),
    _optional("handler_kind", _HANDLER_KIND),
)
_HEADER = _record("Header", _field("name", "string"), _field("value", "string"))

_INGRESS_SOURCE = _record(
    "IngressSource", _field("node_id", "string"), _field("request_id", "string")
)
_INVOCATION_SOURCE = _record(
    "InvocationSource", _field("invocation_id", _INVOCATION_ID), _field("entry_index", "long")
)
_SUBSCRIPTION_SOURCE = _record(
    "SubscriptionSource",
    _field("subscription_id", _ULID),
    _field("topic", "string"),
    _field("partition", "long"),
    _field("offset", "long"),
)
_INGRESS_SINK = _record("IngressSink", _field("node_id", "string"), _field("request_id", "string"))
_INVOCATION_SINK = _record(
    "InvocationSink", _field("invocation_id", _INVOCATION_ID), _field("completion_id", "long")
)

_COMPLETION_ID = _record("CompletionId", _field("id", "long"))
_SIGNAL_INDEX = _record("SignalIndex", _field("index", "long"))
_SIGNAL_NAME = _record("SignalName", _field("name", "string"))
_NOTIFICATION_ID = [_COMPLETION_ID, _SIGNAL_INDEX, _SIGNAL_NAME]

_VALUE = _record("Value", _field("content", "bytes"))
_FAILURE_METADATA = _record("FailureMetadata", _field("key", "string"), _field("value", "string"))
_FAILURE = _record(
    "Failure",
    _field("code", "long"),
    _field("message", "string"),
    _field("metadata", {"type": "array", "items": _FAILURE_METADATA}, default=[]),
)
_VOID = _record("Void")
_INVOCATION_ID_RESULT = _record("InvocationIdResult", _field("invocation_id", _INVOCATION_ID))
_STATE_KEYS = _record("StateKeys", _field("keys", {"type": "array", "items": "bytes"}))

_TIMER_KEY = _record(
    "TimerKey",
    _field("fire_at_ms", "long"),
    _field("invocation_id", _INVOCATION_ID),
    _field("kind", _TIMER_KIND),
    _optional("completion_id", "long"),
)
_STATE_ENTRY = _record("StateEntry", _field("key", "bytes"), _field("value", "bytes"))
_DEDUP_ID = _record("DedupId", _field("producer", "string"), _field("sequence", "long"))

_INVOKE = _record(
    "Invoke",
    _field("invocation_id", _INVOCATION_ID),
    _field("target", _TARGET),
    _field("argument", "bytes"),
    _field("headers", {"type": "array", "items": _HEADER}, default=[]),
    _field(
        "source",
        ["null", _INGRESS_SOURCE, _INVOCATION_SOURCE, _SUBSCRIPTION_SOURCE],
        default=None,
    ),
    _field("response_sink", ["null", _INGRESS_SINK, _INVOCATION_SINK], default=None),
    _optional("idempotency_key", "string"),
    _optional("execute_at_ms", "long"),
)
_JOURNAL_APPEND = _record(
    "JournalAppend",
    _field("invocation_id", _INVOCATION_ID),
    _field("entry_index", "long"),
    _field("message_type", "long"),
    _field("message", "bytes"),
)
_INVOCATION_SUSPENDED = _record(
    "InvocationSuspended",
    _field("invocation_id", _INVOCATION_ID),
    _field("waiting_for", {"type": "array", "items": _NOTIFICATION_ID}),
)
_INVOCATION_ENDED = _record(
    "InvocationEnded",
    _field("invocation_id", _INVOCATION_ID),
    _field("result", [_VALUE, _FAILURE]),
)
_INVOCATION_FAILED_ATTEMPT = _record(
    "InvocationFailedAttempt",
    _field("invocation_id", _INVOCATION_ID),
    _field("code", "long"),
    _field("message", "string"),
    _field("retry_at_ms", "long"),
    _field("attempt", "long"),
)
_DEPLOYMENT_PINNED = _record(
    "DeploymentPinned",
    _field("invocation_id", _INVOCATION_ID),
    _field("deployment_id", _ULID),
    _field("protocol_version", "long"),
)
_NOTIFY = _record(
    "Notify",
    _field("invocation_id", _INVOCATION_ID),
    _field("notification_id", _NOTIFICATION_ID),
    _field("result", [_VALUE, _FAILURE, _VOID, _INVOCATION_ID_RESULT, _STATE_KEYS]),
)
_TIMER_FIRED = _record("TimerFired", _field("timer", _TIMER_KEY))
_OUTBOX_TRUNCATE = _record("OutboxTruncate", _field("sequence", "long"))
_ANNOUNCE_LEADER = _record(
    "AnnounceLeader",
    _field("epoch", "long"),
    _field("node_id", "string"),
    _field("partition", "long"),
)
_CANCEL = _record("CancelInvocation", _field("invocation_id", _INVOCATION_ID))
_KILL = _record("KillInvocation", _field("invocation_id", _INVOCATION_ID))
_PURGE = _record("PurgeInvocation", _field("invocation_id", _INVOCATION_ID))
_ATTACH = _record(
    "AttachInvocation", _field("invocation_id", _INVOCATION_ID), _field("sink", _INGRESS_SINK)
)
_PATCH_STATE = _record(
    "PatchState",
    _field("service", "string"),
    _field("key", "string"),
    _field("new_state", {"type": "array", "items": _STATE_ENTRY}),
    _optional("expected_version", "string"),
)

# The order of the body union is part of the binary format (the branch index is
# written): append new record types at the end only.
_BODY_V1 = [
    _INVOKE,
    _JOURNAL_APPEND,
    _INVOCATION_SUSPENDED,
    _INVOCATION_ENDED,
    _INVOCATION_FAILED_ATTEMPT,
    _DEPLOYMENT_PINNED,
    _NOTIFY,
    _TIMER_FIRED,
    _OUTBOX_TRUNCATE,
    _ANNOUNCE_LEADER,
    _CANCEL,
    _KILL,
    _PURGE,
    _ATTACH,
    _PATCH_STATE,
]


def _envelope(body: list[Schema]) -> Schema:
    envelope: Schema = _define_once(
        _record(
            "Envelope",
            _optional("epoch", "long"),
            _optional("dedup_id", _DEDUP_ID),
            _field("body", body),
        )
    )
    return envelope


ENVELOPE_V1: Schema = _envelope(_BODY_V1)
"""Schema version 1 of the WAL envelope."""


# --- version 2: JournalAppend carries the resolved kind of a call's target -------------

_CALL_TARGET_V2 = _record(
    "CallTarget",
    _field("service_kind", _SERVICE_KIND),
    _optional("handler_kind", _HANDLER_KIND),
)
_JOURNAL_APPEND_V2 = _record(
    "JournalAppend",
    _field("invocation_id", _INVOCATION_ID),
    _field("entry_index", "long"),
    _field("message_type", "long"),
    _field("message", "bytes"),
    _field("call_target", ["null", _CALL_TARGET_V2], default=None),
)

# Same branches in the same order; only JournalAppend grew a field.
ENVELOPE_V2: Schema = _envelope(
    [_JOURNAL_APPEND_V2 if block is _JOURNAL_APPEND else block for block in _BODY_V1]
)
"""Schema version 2: v1 plus ``JournalAppend.call_target`` (optional, default null)."""


# --- version 3: retention on Invoke and CallTarget, paused attempts, pause/resume ------

_CALL_TARGET_V3 = _record(
    "CallTarget",
    _field("service_kind", _SERVICE_KIND),
    _optional("handler_kind", _HANDLER_KIND),
    _optional("idempotency_retention_ms", "long"),
    _optional("workflow_retention_ms", "long"),
    _optional("journal_retention_ms", "long"),
)
_JOURNAL_APPEND_V3 = _record(
    "JournalAppend",
    _field("invocation_id", _INVOCATION_ID),
    _field("entry_index", "long"),
    _field("message_type", "long"),
    _field("message", "bytes"),
    _field("call_target", ["null", _CALL_TARGET_V3], default=None),
)
_INVOKE_V3 = _record(
    "Invoke",
    _field("invocation_id", _INVOCATION_ID),
    _field("target", _TARGET),
    _field("argument", "bytes"),
    _field("headers", {"type": "array", "items": _HEADER}, default=[]),
    _field(
        "source",
        ["null", _INGRESS_SOURCE, _INVOCATION_SOURCE, _SUBSCRIPTION_SOURCE],
        default=None,
    ),
    _field("response_sink", ["null", _INGRESS_SINK, _INVOCATION_SINK], default=None),
    _optional("idempotency_key", "string"),
    _optional("execute_at_ms", "long"),
    _optional("completion_retention_ms", "long"),
    _optional("journal_retention_ms", "long"),
)
_INVOCATION_FAILED_ATTEMPT_V3 = _record(
    "InvocationFailedAttempt",
    _field("invocation_id", _INVOCATION_ID),
    _field("code", "long"),
    _field("message", "string"),
    _field("retry_at_ms", "long"),
    _field("attempt", "long"),
    _field("paused", "boolean", default=False),
)
_PAUSE = _record("PauseInvocation", _field("invocation_id", _INVOCATION_ID))
_RESUME = _record("ResumeInvocation", _field("invocation_id", _INVOCATION_ID))

_V3_REPLACED = {
    id(_INVOKE): _INVOKE_V3,
    id(_JOURNAL_APPEND): _JOURNAL_APPEND_V3,
    id(_INVOCATION_FAILED_ATTEMPT): _INVOCATION_FAILED_ATTEMPT_V3,
}
# The v1 branches in their order (three grew optional fields), then the new records.
ENVELOPE_V3: Schema = _envelope(
    [_V3_REPLACED.get(id(block), block) for block in _BODY_V1] + [_PAUSE, _RESUME]
)
"""Schema version 3: v2 plus ``Invoke.completion_retention_ms`` / ``journal_retention_ms``,
the callee's retention on ``CallTarget``, ``InvocationFailedAttempt.paused`` (all
optional with defaults), and the record types ``PauseInvocation`` and
``ResumeInvocation`` at the end of the body union."""


# --- version 4: attach/get-output from handlers, ordering keys --------------------------

# v3's Invoke plus one field (built from it, which leaves the v3 block untouched).
_INVOKE_V4 = _record("Invoke", *_INVOKE_V3["fields"], _optional("ordering_key", "string"))
# A v3 writer's plain IngressSink resolves to the first matching branch of the union.
_ATTACH_V4 = _record(
    "AttachInvocation",
    _field("invocation_id", _INVOCATION_ID),
    _field("sink", [_INGRESS_SINK, _INVOCATION_SINK]),
)
_GET_OUTPUT = _record(
    "GetInvocationOutput",
    _field("invocation_id", _INVOCATION_ID),
    _field("sink", [_INGRESS_SINK, _INVOCATION_SINK]),
)

_V4_REPLACED = {**_V3_REPLACED, id(_INVOKE): _INVOKE_V4, id(_ATTACH): _ATTACH_V4}
ENVELOPE_V4: Schema = _envelope(
    [_V4_REPLACED.get(id(block), block) for block in _BODY_V1] + [_PAUSE, _RESUME, _GET_OUTPUT]
)
"""Schema version 4: v3 plus ``Invoke.ordering_key`` (optional), ``AttachInvocation.sink``
as a union of an ingress request and a calling invocation (attach from a handler), and
the record type ``GetInvocationOutput`` (from a handler or from the ingress of another
engine process) at the end of the body union."""



# --- version 5: journal appends numbered by command ------------------------------------

# v3's JournalAppend plus one field (built from it, which leaves the v3 block untouched).
_JOURNAL_APPEND_V5 = _record(
    "JournalAppend", *_JOURNAL_APPEND_V3["fields"], _optional("command_index", "long")
)

_V5_REPLACED = {**_V4_REPLACED, id(_JOURNAL_APPEND): _JOURNAL_APPEND_V5}
ENVELOPE_V5: Schema = _envelope(
    [_V5_REPLACED.get(id(block), block) for block in _BODY_V1] + [_PAUSE, _RESUME, _GET_OUTPUT]
)
"""Schema version 5: v4 plus ``JournalAppend.command_index`` (optional): the command's
index among the invocation's commands, which decides where the append goes (see
:class:`engine.wal.records.JournalAppend`); null in records of older writers."""



# --- version 6: a leader's records handed over together travel as one -----------------

_RECORD_BATCH = _record(
    "RecordBatch",
    _field(
        "records",
        {
            "type": "array",
            # The branch index is written: append new branches at the end only.
            "items": [
                _JOURNAL_APPEND_V5,
                _INVOCATION_SUSPENDED,
                _INVOCATION_ENDED,
                _INVOCATION_FAILED_ATTEMPT_V3,
                _DEPLOYMENT_PINNED,
                _NOTIFY,
                _TIMER_FIRED,
                _OUTBOX_TRUNCATE,
            ],
        },
    ),
)
ENVELOPE_V6: Schema = _envelope(
    [_V5_REPLACED.get(id(block), block) for block in _BODY_V1]
    + [_PAUSE, _RESUME, _GET_OUTPUT, _RECORD_BATCH]
)
"""Schema version 6: v5 plus the record type ``RecordBatch`` (the records one partition
leader handed to the WAL together, see :class:`engine.wal.records.RecordBatch`) at the
end of the body union."""


# --- version 7: resume on another deployment ---------------------------------------------

# v3's ResumeInvocation plus one field (built from it, which leaves the v3 block untouched).
_RESUME_V7 = _record("ResumeInvocation", *_RESUME["fields"], _optional("deployment_id", _ULID))

ENVELOPE_V7: Schema = _envelope(
    [_V5_REPLACED.get(id(block), block) for block in _BODY_V1]
    + [_PAUSE, _RESUME_V7, _GET_OUTPUT, _RECORD_BATCH]
)
"""Schema version 7: v6 plus ``ResumeInvocation.deployment_id`` (optional): the
deployment a paused or suspended invocation is moved to when it resumes
(``PATCH /invocations/{id}/resume?deployment=``); null keeps the pinned one."""


# --- version 8: the command a failed attempt failed at --------------------------------------

# v3's InvocationFailedAttempt plus three fields (built from it: the v3 block stays).
_INVOCATION_FAILED_ATTEMPT_V8 = _record(
    "InvocationFailedAttempt",
    *_INVOCATION_FAILED_ATTEMPT_V3["fields"],
    _optional("related_command_index", "long"),
    _optional("related_command_name", "string"),
    _optional("related_command_type", "long"),
)
# v6's RecordBatch with the v8 failed attempt (same branches in the same order).
_RECORD_BATCH_V8 = _record(
    "RecordBatch",
    _field(
        "records",
        {
            "type": "array",
            "items": [
                _JOURNAL_APPEND_V5,
                _INVOCATION_SUSPENDED,
                _INVOCATION_ENDED,
                _INVOCATION_FAILED_ATTEMPT_V8,
                _DEPLOYMENT_PINNED,
                _NOTIFY,
                _TIMER_FIRED,
                _OUTBOX_TRUNCATE,
            ],
        },
    ),
)

_V8_REPLACED = {**_V5_REPLACED, id(_INVOCATION_FAILED_ATTEMPT): _INVOCATION_FAILED_ATTEMPT_V8}
ENVELOPE_V8: Schema = _envelope(
    [_V8_REPLACED.get(id(block), block) for block in _BODY_V1]
    + [_PAUSE, _RESUME_V7, _GET_OUTPUT, _RECORD_BATCH_V8]
)
"""Schema version 8: v7 plus ``InvocationFailedAttempt.related_command_index`` /
``related_command_name`` / ``related_command_type`` (optional): the command the failed
attempt was at, as the SDK (or the invoker) reported it (Restate's
``last_failure_related_command_*``); null in records of older writers."""


# --- version 9: restart as new --------------------------------------------------------------

_RESTART_AS_NEW = _record(
    "RestartAsNewInvocation",
    _field("invocation_id", _INVOCATION_ID),
    _field("new_invocation_id", _INVOCATION_ID),
    _field("copy_prefix_up_to_index", "long"),
    _optional("deployment_id", _ULID),
)
ENVELOPE_V9: Schema = _envelope(
    [_V8_REPLACED.get(id(block), block) for block in _BODY_V1]
    + [_PAUSE, _RESUME_V7, _GET_OUTPUT, _RECORD_BATCH_V8, _RESTART_AS_NEW]
)
"""Schema version 9: v8 plus the record type ``RestartAsNewInvocation`` (admin
``/restart-as-new``, see :class:`engine.wal.records.RestartAsNewInvocation`) at the end
of the body union."""


# --- version 10: a call's Invoke travels in its first attempt's batch ----------------------

# v8's RecordBatch with the current Invoke as a new last branch (the others unchanged).
_RECORD_BATCH_V10 = _record(
    "RecordBatch",
    _field(
        "records",
        {
            "type": "array",
            "items": [*_RECORD_BATCH_V8["fields"][0]["type"]["items"], _INVOKE_V4],
        },
    ),
)
ENVELOPE_V10: Schema = _envelope(
    [_V8_REPLACED.get(id(block), block) for block in _BODY_V1]
    + [_PAUSE, _RESUME_V7, _GET_OUTPUT, _RECORD_BATCH_V10, _RESTART_AS_NEW]
)
"""Schema version 10: v9 plus ``Invoke`` as a branch of ``RecordBatch.records``: the
``Invoke`` of a call whose first attempt ran before it was appended leaves in the same
WAL record as that attempt's records (``engine/partition/leader/deferred_invokes.py``)."""


# --- version 11: the trace context of a call -------------------------------------------------

# v5's JournalAppend plus one field (built from it, which leaves the v5 block untouched).
_JOURNAL_APPEND_V11 = _record(
    "JournalAppend", *_JOURNAL_APPEND_V5["fields"], _optional("trace_parent", "string")
)
# v10's RecordBatch with the v11 journal append (same branches in the same order).
_RECORD_BATCH_V11 = _batch_replacing(_RECORD_BATCH_V10, _JOURNAL_APPEND_V5, _JOURNAL_APPEND_V11)

_V11_REPLACED = {**_V8_REPLACED, id(_JOURNAL_APPEND): _JOURNAL_APPEND_V11}
ENVELOPE_V11: Schema = _envelope(
    [_V11_REPLACED.get(id(block), block) for block in _BODY_V1]
    + [_PAUSE, _RESUME_V7, _GET_OUTPUT, _RECORD_BATCH_V11, _RESTART_AS_NEW]
)
"""Schema version 11: v10 plus ``JournalAppend.trace_parent`` (optional): the W3C
``traceparent`` of the calling attempt on call and one-way-call commands while tracing is
on (see :class:`engine.wal.records.JournalAppend`); null otherwise and in records of older
writers."""


# --- version 12: speculative first attempts of object handlers -------------------------------

# v4's Invoke plus one field (built from it, which leaves the v4 block untouched).
_INVOKE_V12 = _record("Invoke", *_INVOKE_V4["fields"], _optional("speculation", "string"))
# v11's RecordBatch with the v12 Invoke (same branches in the same order).
_RECORD_BATCH_V12 = _batch_replacing(_RECORD_BATCH_V11, _INVOKE_V4, _INVOKE_V12)
_V12_REPLACED = {**_V11_REPLACED, id(_INVOKE): _INVOKE_V12}
ENVELOPE_V12: Schema = _envelope(
    [_V12_REPLACED.get(id(block), block) for block in _BODY_V1]
    + [_PAUSE, _RESUME_V7, _GET_OUTPUT, _RECORD_BATCH_V12, _RESTART_AS_NEW]
)
"""Schema version 12: v11 plus ``Invoke.speculation`` (optional): the state version an
object handler's speculative first attempt ran with (see
:class:`engine.wal.records.Invoke`); null otherwise and in records of older writers."""

WRITER_SCHEMAS: dict[int, Schema] = {
    1: ENVELOPE_V1,
    2: ENVELOPE_V2,
    3: ENVELOPE_V3,
    4: ENVELOPE_V4,
    5: ENVELOPE_V5,
    6: ENVELOPE_V6,
    7: ENVELOPE_V7,
    8: ENVELOPE_V8,
    9: ENVELOPE_V9,
    10: ENVELOPE_V10,
    11: ENVELOPE_V11,
    12: ENVELOPE_V12,
}
"""Every schema version ever written, by version number (kept forever)."""

CURRENT_VERSION = 12
"""The version new records are written with."""


def schema_for(version: int) -> Schema:
    """A deep copy of the envelope schema of ``version`` (callers may not mutate ours)."""
    return copy.deepcopy(WRITER_SCHEMAS[version])
