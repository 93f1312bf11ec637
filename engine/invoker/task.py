"""What the partition processor hands the invoker for one attempt, and what it gets back.

An *attempt* is one HTTP request to a service endpoint: the invoker sends the whole
journal (request/response mode), the endpoint answers with new journal entries and ends
the request with an ``End``, a ``Suspension`` or an ``Error``. Everything the attempt
needs is in an :class:`InvocationTask`, built by the partition processor from its LMDB
state; the attempt's effects come back as WAL records through the session's ``emit``
callback, and its overall result as an :class:`AttemptOutcome`.

These are plain values: no I/O, no references to storage, so a task can be logged,
compared in tests and retried as is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from engine.ids import InvocationId
from restate_protocol import DEFAULT_MAX_MESSAGE_SIZE, MessageType, ProtocolVersion
from engine.wal.records import DeploymentPinned, NotificationId, OutputResult
from restate_protocol import JournalEntry

__all__ = [
    "DEFAULT_ABORT_TIMEOUT_MS",
    "DEFAULT_INACTIVITY_TIMEOUT_MS",
    "JOURNAL_MISMATCH",
    "PROTOCOL_VIOLATION",
    "AttemptFailure",
    "AttemptOutcome",
    "EndpointTarget",
    "ErrorBehavior",
    "FailureKind",
    "InvocationTask",
    "OutcomeKind",
]

#: Longest silence tolerated from an endpoint by default: 10 minutes. In request/response
#: mode the runtime cannot ask the SDK to suspend, so Restate waits up to its *abort*
#: timeout (default 10 min) for each message there; its 1-minute *inactivity* timeout only
#: applies to bidirectional streams. Matching the former keeps every ``ctx.run`` that Restate
#: tolerates working here: a side effect longer than this fails its attempt, and so every
#: retry of it.
DEFAULT_INACTIVITY_TIMEOUT_MS = 600_000
#: Backstop on a whole attempt by default: 1 hour. Restate has no such bound in
#: request/response mode; attempts there are short (every await the SDK cannot answer
#: from the journal ends the request), so this only stops an endpoint that trickles bytes.
DEFAULT_ABORT_TIMEOUT_MS = 3_600_000

#: ErrorMessage code an SDK sends when the replayed journal does not match what the
#: handler does now: the handler (or its deployment) is non-deterministic.
JOURNAL_MISMATCH = 570
#: ErrorMessage code an SDK sends when it received a message it did not expect in its
#: current state (a runtime bug or an incompatible SDK, rarely the user's code).
PROTOCOL_VIOLATION = 571

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class EndpointTarget:
    """Where and how to reach the deployment that serves the handler.

    Attributes:
        base_url: The deployment's registered URL, e.g. ``http://svc:9080`` or
            ``https://host/prefix``; ``/invoke/{service}/{handler}`` is appended.
        protocol_version: The service protocol version negotiated at registration
            (and pinned for the invocation's lifetime).
        additional_headers: Headers registered with the deployment (auth tokens, routing),
            sent on every attempt. They cannot override the protocol's own headers.

        bidi: Drive the attempt as a bidirectional stream over HTTP/2
            (:mod:`engine.invoker.stream_session`); otherwise HTTP/1.1 in
            request/response mode: the whole journal is sent, then the response is read.
    """

    base_url: str
    protocol_version: ProtocolVersion
    additional_headers: tuple[tuple[str, str], ...] = ()
    bidi: bool = False

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"endpoint base url {self.base_url!r} must be an http(s) URL")
        # Raises ValueError for versions outside 5..7.
        ProtocolVersion(self.protocol_version)


@dataclass(frozen=True, slots=True)
class InvocationTask:
    """Everything one attempt of one invocation needs.

    Attributes:
        invocation_id: The invocation; its raw bytes and ``inv_1...`` text go in the
            StartMessage.
        service: Service name, as in the invoke URL.
        handler: Handler name, as in the invoke URL.
        key: The virtual object / workflow key; ``None`` for plain services.
        endpoint: The deployment to call.
        journal: The whole journal, in order, commands and notifications interleaved;
            entry 0 is the ``InputCommand``. Sent after the StartMessage verbatim.
        eager_state: State entries shipped in the StartMessage (keyed handlers).
        partial_state: True when ``eager_state`` is not the object's whole state, so the
            SDK must fetch missing keys lazily instead of reading them as absent.
        retry_count_since_last_stored_entry: Attempts made since the journal last grew;
            the SDK uses it to enforce ``ctx.run`` retry limits across attempts.
        duration_since_last_stored_entry_ms: Time since the journal last grew; the SDK
            uses it for ``ctx.run`` max-duration limits.
        random_seed: Seed of the SDK's deterministic random generator (sent from v6);
            must be the same on every attempt of the invocation.
        idempotency_key: The key the invocation was submitted with, if any (sent from v7).
        inactivity_timeout_ms: Longest the endpoint may stay silent (no response bytes)
            before the attempt is abandoned; must exceed the longest ``ctx.run``. For
            Restate parity pass Restate's *abort* timeout here (see the default).
        abort_timeout_ms: Longest the endpoint may take for the whole attempt.
        max_message_size: Largest frame body accepted from the endpoint.
        prelude: Records to write ahead of the attempt's first record, and only if it
            writes any: a first attempt's ``DeploymentPinned``, which then travels with
            the attempt's own records instead of costing a round trip of its own.
        traceparent: The attempt span's W3C ``traceparent`` when tracing is on: sent to
            the endpoint as a header and put on the WAL record of every call and
            one-way send the attempt makes (``JournalAppend.trace_parent``).
        speculative: The first attempt of an object call that runs before its ``Invoke``
            is applied (``engine/partition/leader/speculation.py``): its records count
            only together with that ``Invoke``, so a failed one writes none of them.
    """

    invocation_id: InvocationId
    service: str
    handler: str
    key: str | None
    endpoint: EndpointTarget
    journal: tuple[JournalEntry, ...]
    eager_state: tuple[tuple[bytes, bytes], ...] = ()
    partial_state: bool = False
    retry_count_since_last_stored_entry: int = 0
    duration_since_last_stored_entry_ms: int = 0
    random_seed: int = 0
    idempotency_key: str | None = None
    inactivity_timeout_ms: int = DEFAULT_INACTIVITY_TIMEOUT_MS
    abort_timeout_ms: int = DEFAULT_ABORT_TIMEOUT_MS
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    prelude: tuple[DeploymentPinned, ...] = ()
    traceparent: str | None = None
    speculative: bool = False

    def __post_init__(self) -> None:
        if not self.service or not self.handler:
            raise ValueError("an invocation task needs a service and a handler name")
        if not self.journal or self.journal[0].message_type != MessageType.INPUT_COMMAND:
            # known_entries = 0 is refused by SDKs; entry 0 must carry the input.
            raise ValueError("journal entry 0 must be the InputCommand")
        if len(self.journal) > _U32_MAX:
            raise ValueError("journal is longer than the protocol's u32 entry count")
        if not 0 <= self.retry_count_since_last_stored_entry <= _U32_MAX:
            raise ValueError("retry_count_since_last_stored_entry must be a u32")
        if not 0 <= self.duration_since_last_stored_entry_ms <= _U64_MAX:
            raise ValueError("duration_since_last_stored_entry_ms must be a u64")
        if not 0 <= self.random_seed <= _U64_MAX:
            raise ValueError("random_seed must be a u64")
        if self.inactivity_timeout_ms <= 0 or self.abort_timeout_ms <= 0:
            raise ValueError("inactivity and abort timeouts must be positive")
        if self.max_message_size <= 0:
            raise ValueError("max_message_size must be positive")


class OutcomeKind(enum.Enum):
    """How an attempt ended."""

    ENDED = "ended"
    """The handler finished (value or terminal failure); InvocationEnded was emitted."""
    SUSPENDED = "suspended"
    """The handler waits for notifications; InvocationSuspended was emitted."""
    FAILED = "failed"
    """The attempt failed; the invocation is retried, paused or killed per policy."""


class FailureKind(enum.Enum):
    """Who or what made an attempt fail."""

    SDK_ERROR = "sdk_error"
    """The endpoint ended the stream with an ErrorMessage (handler threw, journal mismatch)."""
    PROTOCOL = "protocol"
    """The endpoint's stream broke the protocol (bad frame, unexpected message, no terminator)."""
    TRANSPORT = "transport"
    """HTTP: connection refused or reset, truncated body, non-200 status, wrong content type."""
    INACTIVITY_TIMEOUT = "inactivity_timeout"
    """The endpoint sent nothing for ``inactivity_timeout_ms``."""
    ABORT_TIMEOUT = "abort_timeout"
    """The attempt as a whole took longer than ``abort_timeout_ms``."""
    UNKNOWN_CALL_TARGET = "unknown_call_target"
    """The handler called a service or handler that is not registered (code 404).

    Retried like any failure: registering the missing service lets the call through."""
    WAL = "wal"
    """The attempt's records did not reach the WAL: Kafka did not acknowledge them (an
    outage longer than the delivery timeout), a record exceeded the WAL's size limit, or
    a value could not be encoded. Retried like any failure."""


class ErrorBehavior(enum.Enum):
    """What the endpoint asked the runtime to do after an ErrorMessage (v7 ``behavior``)."""

    RETRY = "retry"
    PAUSE = "pause"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class AttemptFailure:
    """Why an attempt failed.

    Attributes:
        kind: The failure's origin.
        code: HTTP-like status code: the ErrorMessage's code for ``SDK_ERROR``; the
            response status for a non-200 answer; otherwise chosen by the invoker
            (502 bad stream, 503 unreachable, 504 timeout).
        message: Human-readable description.
        stacktrace: The SDK's stack trace, if it sent one.
        related_command_index: Index of the command the SDK was processing, counting
            *commands only* (the InputCommand is 0; notifications are not counted). May
            lie beyond the stored journal.
        related_command_name: That command's name (``ctx.run`` name, ...), if any.
        related_command_type: That command's message type id, if known.
        next_retry_delay_ms: Delay the SDK asked for before the next attempt; overrides
            the retry policy's delay for that one retry.
        behavior: What the SDK asked for (v7); RETRY for every other failure.
        http_status: The response status, for failures after the response head arrived.
    """

    kind: FailureKind
    code: int
    message: str
    stacktrace: str = ""
    related_command_index: int | None = None
    related_command_name: str | None = None
    related_command_type: int | None = None
    next_retry_delay_ms: int | None = None
    behavior: ErrorBehavior = ErrorBehavior.RETRY
    http_status: int | None = None

    @property
    def non_deterministic(self) -> bool:
        """The SDK reported a journal mismatch: replay diverged from the recorded journal."""
        return self.kind is FailureKind.SDK_ERROR and self.code == JOURNAL_MISMATCH

    @property
    def protocol_violation(self) -> bool:
        """The SDK, or logstrate reading the SDK's stream, saw the protocol broken."""
        return self.kind is FailureKind.PROTOCOL or (
            self.kind is FailureKind.SDK_ERROR and self.code == PROTOCOL_VIOLATION
        )

    @property
    def timed_out(self) -> bool:
        """The attempt was abandoned by one of the two timeouts."""
        return self.kind in (FailureKind.INACTIVITY_TIMEOUT, FailureKind.ABORT_TIMEOUT)


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """The result of one attempt, returned after every record was emitted.

    Attributes:
        kind: Ended, suspended or failed.
        result: The invocation's result when ``kind`` is ENDED.
        waiting_for: The notifications the invocation waits on when SUSPENDED.
        failure: Why the attempt failed when FAILED.
        new_entries: Journal entries this attempt asked for (commands, plus one run
            completion notification per proposal). Non-zero means the journal grew, so
            the next attempt's ``retry_count_since_last_stored_entry`` restarts at 0.
        protocol_version: The version the attempt spoke.
        sdk_server: The endpoint's ``x-restate-server`` header, if it sent one.
        duration_ms: Wall-clock duration of the attempt.
    """

    kind: OutcomeKind
    result: OutputResult | None = None
    waiting_for: tuple[NotificationId, ...] = ()
    failure: AttemptFailure | None = None
    new_entries: int = 0
    protocol_version: ProtocolVersion | None = None
    sdk_server: str | None = None
    duration_ms: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if (self.kind is OutcomeKind.ENDED) != (self.result is not None):
            raise ValueError("an ENDED outcome, and only it, carries a result")
        if (self.kind is OutcomeKind.FAILED) != (self.failure is not None):
            raise ValueError("a FAILED outcome, and only it, carries a failure")
        if (self.kind is OutcomeKind.SUSPENDED) != bool(self.waiting_for):
            raise ValueError("a SUSPENDED outcome, and only it, waits for notifications")

    @property
    def ended(self) -> bool:
        """The invocation is complete."""
        return self.kind is OutcomeKind.ENDED

    @property
    def suspended(self) -> bool:
        """The invocation waits for a notification before the next attempt."""
        return self.kind is OutcomeKind.SUSPENDED

    @property
    def failed(self) -> bool:
        """The attempt failed and the retry policy decides what happens next."""
        return self.kind is OutcomeKind.FAILED
