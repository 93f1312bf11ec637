"""OpenTelemetry traces: a span per invocation and per attempt, exported over OTLP/HTTP.

Off unless ``tracing_endpoint`` is set (:mod:`engine.config`): then the node builds one
:class:`Tracing` and hands it to the partition leaders; without it the executor keeps
``None`` and creates no span object, reads no header and formats nothing.

**Trace ids without storage.** An invocation runs as attempts that may happen on
different leaders (failover) or engine processes, so no span can stay open across them.
Its ids are derived instead: the trace id is the caller's (the ``traceparent`` among the
invocation's headers: from the ingress request, the Kafka record of a subscription, or
added by the engine for a call from another invocation, see
:class:`engine.wal.records.JournalAppend`) or, without one, a hash of the invocation id;
the invocation span's id is a hash of the invocation id. Every attempt span is a child of
that id, and the invocation span itself is emitted once, by the leader that sees the
invocation end, with its start set to the invocation's creation time. The engine passes
the attempt span's ``traceparent`` on to the service endpoint, so SDK-side spans nest
under the attempt, and puts it on the WAL record of each call and one-way send, so the
callee's invocation span is a child of the calling attempt.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from engine.ids import InvocationId
from engine.wal.records import Header

__all__ = [
    "TRACEPARENT",
    "AttemptSpan",
    "InvocationTrace",
    "Tracing",
    "format_traceparent",
    "parse_traceparent",
    "traces_url",
]

TRACEPARENT: Final = "traceparent"
"""The W3C Trace Context header (lower case, as invocation headers are stored)."""

_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_HEX: Final = frozenset("0123456789abcdef")


def parse_traceparent(value: str) -> SpanContext | None:
    """The remote span a ``traceparent`` names (version 00 layout); ``None`` if invalid."""
    parts = value.strip().lower().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace_hex, span_hex, flags_hex = parts[:4]
    if version == "00" and len(parts) != 4:
        return None
    if len(trace_hex) != 32 or len(span_hex) != 16 or len(flags_hex) != 2:
        return None
    if not _HEX.issuperset(trace_hex + span_hex + flags_hex):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags_hex, 16)))


def format_traceparent(context: SpanContext) -> str:
    """``00-<trace id>-<span id>-<flags>``."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector: ``/v1/traces`` added to an endpoint that
    names no path (``http://collector:4318``), a full URL kept as it is."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, "/v1/traces", parts.query, parts.fragment))
    return endpoint


def _derived(invocation_id: InvocationId, person: bytes, size: int) -> int:
    digest = hashlib.blake2b(invocation_id.to_bytes(), digest_size=size, person=person).digest()
    return int.from_bytes(digest, "big") or 1


# The ids the next span must have (the invocation span's derived ids); set around one
# synchronous start_span call only.
_FORCED: ContextVar[tuple[int, int] | None] = ContextVar("forced_span_ids", default=None)


class _Ids(IdGenerator):
    """Random ids, except while :data:`_FORCED` names the ids of an invocation span."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        forced = _FORCED.get()
        return self._random.generate_span_id() if forced is None else forced[1]

    def generate_trace_id(self) -> int:
        forced = _FORCED.get()
        return self._random.generate_trace_id() if forced is None else forced[0]


@dataclass(frozen=True, slots=True)
class InvocationTrace:
    """Where an invocation's spans go: its trace, its (derived) span and its parent."""

    invocation_id: InvocationId
    span: SpanContext
    parent: SpanContext | None
    attributes: dict[str, str]
    name: str


class AttemptSpan:
    """One attempt's span; :attr:`traceparent` goes to the endpoint and on calls."""

    __slots__ = ("_span", "traceparent")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self.traceparent = format_traceparent(span.get_span_context())

    def end(self, outcome: str, error: str | None = None) -> None:
        self._span.set_attribute("restate.attempt.outcome", outcome)
        if error is not None:
            self._span.set_status(Status(StatusCode.ERROR, error))
        self._span.end()


class Tracing:
    """The engine's tracer: an SDK provider exporting in batches to ``endpoint``."""

    def __init__(self, endpoint: str, *, instance: str, exporter_timeout_s: float = 10.0) -> None:
        resource = Resource.create({"service.name": "logstrate", "service.instance.id": instance})
        self._provider = TracerProvider(resource=resource, id_generator=_Ids())
        self._provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint), timeout=exporter_timeout_s))
        )
        self._tracer = self._provider.get_tracer("logstrate")

    def shutdown(self) -> None:
        """Export what is buffered and stop (blocking: call off the event loop)."""
        self._provider.shutdown()

    def invocation(
        self, invocation_id: InvocationId, service: str, handler: str, key: str | None,
        headers: tuple[Header, ...],
    ) -> InvocationTrace:
        """The ids of an invocation's spans, from its id and its ``traceparent`` header."""
        parent = None
        for header in headers:
            if header.name.lower() == TRACEPARENT:
                parent = parse_traceparent(header.value)
                break
        trace_id = parent.trace_id if parent is not None else _derived(invocation_id, b"lstrace", 16)
        flags = parent.trace_flags if parent is not None else _SAMPLED
        span = SpanContext(trace_id, _derived(invocation_id, b"lsspan", 8), is_remote=False, trace_flags=flags)
        attributes = {
            "rpc.service": service,
            "rpc.method": handler,
            "restate.invocation.id": str(invocation_id),
            "restate.invocation.target": f"{service}/{key}/{handler}" if key is not None else f"{service}/{handler}",
        }
        if key is not None:
            attributes["restate.invocation.key"] = key
        return InvocationTrace(invocation_id, span, parent, attributes, f"{service}/{handler}")

    def start_attempt(self, invocation: InvocationTrace, attempt: int) -> AttemptSpan:
        """A span for one attempt, a child of the invocation's span."""
        context = trace.set_span_in_context(NonRecordingSpan(invocation.span), Context())
        span = self._tracer.start_span(
            f"attempt {invocation.name}", context=context, kind=SpanKind.CLIENT,
            attributes={**invocation.attributes, "restate.invocation.attempt": attempt},
        )
        return AttemptSpan(span)

    def end_invocation(self, invocation: InvocationTrace, start_ms: int, error: str | None = None) -> None:
        """Emit the invocation's span (from ``start_ms``, its creation, to now)."""
        context = (
            Context() if invocation.parent is None
            else trace.set_span_in_context(NonRecordingSpan(invocation.parent), Context())
        )
        token = _FORCED.set((invocation.span.trace_id, invocation.span.span_id))
        try:
            span = self._tracer.start_span(
                f"invocation {invocation.name}", context=context, kind=SpanKind.SERVER,
                attributes=invocation.attributes, start_time=start_ms * 1_000_000 if start_ms > 0 else None,
            )
        finally:
            _FORCED.reset(token)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
