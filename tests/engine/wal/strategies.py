"""Hypothesis strategies for every WAL record type (shared by the codec tests)."""

from __future__ import annotations

import typing

from hypothesis import strategies as st

from engine.ids import DeploymentId, InvocationId, InvocationUuid, PartitionKey, SubscriptionId
from engine.wal import records as r

u64 = st.integers(min_value=0, max_value=2**63 - 1)  # what an Avro long carries
i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
text = st.text(max_size=20)
blobs = st.binary(max_size=64)

invocation_ids = st.builds(
    InvocationId,
    st.integers(min_value=0, max_value=2**64 - 1).map(PartitionKey),
    st.integers(min_value=1, max_value=2**128 - 1).map(InvocationUuid),
)
ulids = st.integers(min_value=0, max_value=2**128 - 1)
deployment_ids = ulids.map(DeploymentId)
subscription_ids = ulids.map(SubscriptionId)

targets = st.builds(
    r.InvocationTarget,
    service=text,
    handler=text,
    key=st.none() | text,
    service_kind=st.sampled_from(r.ServiceKind),
    handler_kind=st.none() | st.sampled_from(r.HandlerKind),
)
headers = st.lists(st.builds(r.Header, text, text), max_size=3).map(tuple)
sources = st.one_of(
    st.none(),
    st.builds(r.IngressSource, text, text),
    st.builds(r.InvocationSource, invocation_ids, u64),
    st.builds(r.SubscriptionSource, subscription_ids, text, i64, i64),
)
ingress_sinks = st.builds(r.IngressSink, text, text)
invocation_sinks = st.builds(r.InvocationSink, invocation_ids, u64)
sinks = st.one_of(st.none(), ingress_sinks, invocation_sinks)
notification_ids = st.one_of(
    st.builds(r.CompletionId, u64), st.builds(r.SignalIndex, u64), st.builds(r.SignalName, text)
)
failures = st.builds(
    r.Failure,
    u64,
    text,
    st.lists(st.builds(r.FailureMetadata, text, text), max_size=2).map(tuple),
)
values = st.builds(r.Value, blobs)
notification_results = st.one_of(
    values,
    failures,
    st.just(r.Void()),
    st.builds(r.InvocationIdResult, invocation_ids),
    st.builds(r.StateKeys, st.lists(blobs, max_size=3).map(tuple)),
)
timer_keys = st.builds(
    r.TimerKey, i64, invocation_ids, st.sampled_from(r.TimerKind), st.none() | u64
)

invokes = st.builds(
    r.Invoke,
    invocation_id=invocation_ids,
    target=targets,
    argument=blobs,
    headers=headers,
    source=sources,
    response_sink=sinks,
    idempotency_key=st.none() | text,
    execute_at_ms=st.none() | i64,
    completion_retention_ms=st.none() | u64,
    journal_retention_ms=st.none() | u64,
    ordering_key=st.none() | text,
)

# One strategy per record type; the test module checks this covers all of Record.
RECORD_STRATEGIES: dict[type, st.SearchStrategy[r.Record]] = {
    r.Invoke: invokes,
    r.JournalAppend: st.builds(
        r.JournalAppend,
        invocation_ids,
        u64,
        u64,
        blobs,
        st.none()
        | st.builds(
            r.CallTarget,
            st.sampled_from(r.ServiceKind),
            st.none() | st.sampled_from(r.HandlerKind),
            st.none() | u64,
            st.none() | u64,
            st.none() | u64,
        ),
        st.none() | u64,
    ),
    r.InvocationSuspended: st.builds(
        r.InvocationSuspended, invocation_ids, st.lists(notification_ids, max_size=4).map(tuple)
    ),
    r.InvocationEnded: st.builds(r.InvocationEnded, invocation_ids, values | failures),
    r.InvocationFailedAttempt: st.builds(
        r.InvocationFailedAttempt, invocation_ids, u64, text, i64, u64, st.booleans(),
        st.none() | u64, st.none() | text, st.none() | u64,
    ),
    r.DeploymentPinned: st.builds(r.DeploymentPinned, invocation_ids, deployment_ids, u64),
    r.Notify: st.builds(r.Notify, invocation_ids, notification_ids, notification_results),
    r.TimerFired: st.builds(r.TimerFired, timer_keys),
    r.OutboxTruncate: st.builds(r.OutboxTruncate, u64),
    r.AnnounceLeader: st.builds(r.AnnounceLeader, u64, text, u64),
    r.CancelInvocation: st.builds(r.CancelInvocation, invocation_ids),
    r.KillInvocation: st.builds(r.KillInvocation, invocation_ids),
    r.PurgeInvocation: st.builds(r.PurgeInvocation, invocation_ids),
    r.AttachInvocation: st.builds(r.AttachInvocation, invocation_ids, ingress_sinks | invocation_sinks),
    r.GetInvocationOutput: st.builds(r.GetInvocationOutput, invocation_ids, ingress_sinks | invocation_sinks),
    r.PatchState: st.builds(
        r.PatchState,
        text,
        text,
        st.lists(st.builds(r.StateEntry, blobs, blobs), max_size=3).map(tuple),
        st.none() | text,
    ),
    r.PauseInvocation: st.builds(r.PauseInvocation, invocation_ids),
    r.ResumeInvocation: st.builds(r.ResumeInvocation, invocation_ids, st.none() | deployment_ids),
    r.RestartAsNewInvocation: st.builds(
        r.RestartAsNewInvocation, invocation_ids, invocation_ids, u64, st.none() | deployment_ids
    ),
}
# A leader's batch holds any of the records a leader writes to its own partition.
RECORD_STRATEGIES[r.RecordBatch] = st.builds(
    r.RecordBatch,
    st.lists(
        st.one_of(*(RECORD_STRATEGIES[cls] for cls in typing.get_args(r.BatchedRecord))), max_size=4
    ).map(tuple),
)

records = st.one_of(*RECORD_STRATEGIES.values())
dedup_ids = st.none() | st.builds(r.DedupId, text, i64)
epochs = st.none() | u64
