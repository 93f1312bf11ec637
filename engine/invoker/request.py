"""The HTTP request of one attempt: URL, headers and body (StartMessage + journal).

Pure functions of an :class:`InvocationTask`, kept apart from the session so what goes
on the wire can be read (and tested) without any I/O.
"""

from __future__ import annotations

from urllib.parse import quote

from engine.invoker.identity import JWT_HEADER, SCHEME_HEADER, RequestIdentity
from restate_protocol import (
    ProtocolVersion,
    content_type,
    encode_frame,
    encode_raw_frame,
    pb,
)
from engine.invoker.task import InvocationTask

__all__ = [
    "INVOCATION_ID_HEADER",
    "SERVICE_KEY_HEADER",
    "build_body",
    "build_headers",
    "build_start_message",
    "invoke_path",
    "invoke_url",
]

#: Restate sends the invocation id and the object key as headers too, so proxies and
#: access logs in front of an endpoint can see them without decoding the body.
INVOCATION_ID_HEADER = "x-restate-invocation-id"
SERVICE_KEY_HEADER = "x-restate-service-key"

# Headers the protocol owns; a deployment's additional headers may not replace them.
_PROTOCOL_HEADERS = frozenset(
    {
        "content-type",
        "accept",
        INVOCATION_ID_HEADER,
        SERVICE_KEY_HEADER,
        "content-length",
        SCHEME_HEADER,
        JWT_HEADER,
        "traceparent",
    }
)


def invoke_path(task: InvocationTask) -> str:
    """``/invoke/{service}/{handler}``, names percent-encoded: the path relative to the
    deployment, which is also the audience of the request identity token."""
    return f"/invoke/{quote(task.service, safe='')}/{quote(task.handler, safe='')}"


def invoke_url(task: InvocationTask) -> str:
    """``{base}/invoke/{service}/{handler}``, names percent-encoded.

    A path in the base URL is kept (endpoints may be mounted under a prefix).
    """
    return task.endpoint.base_url.rstrip("/") + invoke_path(task)


def build_headers(task: InvocationTask, identity: RequestIdentity | None = None) -> dict[str, str]:
    """The request headers: the deployment's additional headers, then the protocol's,
    then, with ``identity``, the request identity headers (signed per request)."""
    headers = {
        name: value
        for name, value in task.endpoint.additional_headers
        if name.lower() not in _PROTOCOL_HEADERS
    }
    media_type = content_type(task.endpoint.protocol_version)
    headers["content-type"] = media_type
    headers["accept"] = media_type
    headers[INVOCATION_ID_HEADER] = str(task.invocation_id)
    if task.key is not None:
        headers[SERVICE_KEY_HEADER] = quote(task.key, safe="")
    if task.traceparent is not None:
        # W3C Trace Context: the endpoint's spans continue the attempt's span.
        headers["traceparent"] = task.traceparent
    if identity is not None:
        headers.update(identity.headers(invoke_path(task)))
    return headers


def build_start_message(task: InvocationTask) -> pb.StartMessage:
    """The StartMessage of the attempt, with the fields its protocol version defines."""
    version = task.endpoint.protocol_version
    start = pb.StartMessage(
        id=task.invocation_id.to_bytes(),
        debug_id=str(task.invocation_id),
        known_entries=len(task.journal),
        state_map=[pb.StartMessage.StateEntry(key=k, value=v) for k, v in task.eager_state],
        partial_state=task.partial_state,
        key=task.key or "",
        retry_count_since_last_stored_entry=task.retry_count_since_last_stored_entry,
        duration_since_last_stored_entry=task.duration_since_last_stored_entry_ms,
    )
    # Older SDKs would skip unknown fields anyway; leaving them out keeps each version's
    # StartMessage exactly what that version defines.
    if version >= ProtocolVersion.V6:
        start.random_seed = task.random_seed
    if version >= ProtocolVersion.V7 and task.idempotency_key is not None:
        start.idempotency_key = task.idempotency_key
    return start


def build_body(task: InvocationTask) -> bytes:
    """StartMessage frame, then every journal entry's frame verbatim, in order."""
    parts = [encode_frame(build_start_message(task))]
    parts.extend(encode_raw_frame(e.message_type, e.message) for e in task.journal)
    return b"".join(parts)
