"""The leader's invocation executor: turns ``InvokeAction`` into attempts.

For each invocation the state machine wants running, it reads the committed state
(:mod:`engine.partition.state_reader`), picks the deployment (the pinned one, or the
latest revision of the service for a first attempt, pinned in the log ahead of anything
the attempt writes), runs one attempt through the :class:`~engine.invoker.client.Invoker`
— whose records are all durable before it returns — and turns a failed attempt into an
``InvocationFailedAttempt`` (retry timer) or, past the retry policy, ends it.

At most one attempt per invocation runs at a time; an ``InvokeAction`` arriving while
one runs (a notification landed meanwhile) re-checks the state once the attempt is over.

An attempt writes only as the leader that started it. The invoker's records reach the
WAL through the process's shared ``emit``, which asks for the partition's leader at the
time of writing; after a leadership change inside this process (one leader stopped, the
next one started before the first one's attempts were cancelled) that is the successor,
whose epoch would let the stale attempt's records through the fencing and interleave
them with the successor's own attempt of the same invocation. So each attempt task
carries its executor (:func:`attempt_executor`) and a leader refuses appends from
another leader's attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from structlog.typing import FilteringBoundLogger

from engine.errors import LeadershipLost
from engine.ids import InvocationId
from engine.invoker.client import Invoker
from engine.invoker.stream_session import AttemptChannel, Confirm
from restate_protocol.errors import ProtocolError
from restate_protocol.versions import ProtocolVersion, negotiate_version
from engine.invoker.retry import RetryAction, RetryDecision, RetryPolicy, decide, failed_attempt_record
from engine.invoker.task import AttemptFailure, EndpointTarget, FailureKind, InvocationTask, OutcomeKind
from restate_protocol import JournalEntry
from engine.logs import get_logger
from engine.metadata.errors import MetadataError
from engine.metadata.model import (
    DEFAULT_RETRY_POLICY,
    Deployment,
    EffectiveRetryPolicy,
    InvocationSettings,
    OnMaxAttempts,
    ProtocolType,
    effective_settings,
)
from engine.metadata.store import MetadataStore
from engine.observability import invocations as invocation_metrics
from engine.partition.actions import InvocationStopped
from engine.partition.state_reader import InvocationTaskData
from engine.wal.appender import WalAppendError, WalRecordTooLarge
from engine.wal.codec import WalCodecError
from engine.wal.records import DeploymentPinned, Failure, InvocationEnded, Record

if TYPE_CHECKING:
    # Loaded by the node only when tracing is on (the OpenTelemetry SDK is not small).
    from engine.observability.tracing import AttemptSpan, InvocationTrace, Tracing

log = get_logger(__name__)

SubmitOwn = Callable[[Record], Awaitable[int]]
"""Hands a record for the own partition to the WAL when called (epoch-stamped by the
leader); the awaitable resolves with its offset once durable."""
LoadTask = Callable[[InvocationId], InvocationTaskData | None]
LoadEntry = Callable[[InvocationId, int], JournalEntry | None]
"""The applied journal entry at an index (what a streaming attempt is pushed)."""

_ATTEMPT_EXECUTOR: ContextVar[InvocationExecutor | None] = ContextVar("attempt_executor", default=None)


def attempt_executor() -> InvocationExecutor | None:
    """The executor whose attempt the current task runs (``None`` outside attempts)."""
    return _ATTEMPT_EXECUTOR.get()


class BuiltinServices(Protocol):
    """Services the engine runs itself instead of calling an endpoint (Kafka egress)."""

    def serves(self, service: str) -> bool:
        """Whether invocations of ``service`` run here."""

    async def run(self, invocation_id: InvocationId) -> AttemptFailure | None:
        """One attempt; the failure to retry, or ``None`` once nothing is left to do."""


def random_seed_of(invocation_id: InvocationId) -> int:
    """The SDK's deterministic random seed: fixed per invocation. NEVER CHANGE (replays)."""
    return int.from_bytes(hashlib.blake2b(invocation_id.to_bytes(), digest_size=8).digest(), "big")


_LOCAL_RETRY_MS = 1000
"""Delay of an in-process re-run when the WAL could not even record the failure."""
_MAX_FAILURE_MESSAGE = 2000


def wal_failure(exc: Exception) -> AttemptFailure:
    """An attempt whose records did not reach the WAL, as a failure the retry policy handles."""
    if isinstance(exc, WalRecordTooLarge):
        code, what = 500, "a record of the attempt is too large for the WAL"
    elif isinstance(exc, WalCodecError):
        code, what = 500, "a record of the attempt cannot be encoded"
    elif isinstance(exc, WalAppendError):
        code, what = 503, "Kafka did not acknowledge the attempt's records"
    else:
        code, what = 500, f"the engine failed to run the attempt ({type(exc).__name__})"
    return AttemptFailure(FailureKind.WAL, code, f"{what}: {exc}"[:_MAX_FAILURE_MESSAGE])


def _ms(duration: timedelta) -> int:
    return int(duration / timedelta(milliseconds=1))


def _retry_policy(policy: EffectiveRetryPolicy) -> RetryPolicy:
    initial = max(1, int(policy.initial_interval / timedelta(milliseconds=1)))
    maximum = policy.max_interval if policy.max_interval is not None else timedelta(days=365)
    return RetryPolicy(
        initial_interval_ms=initial,
        factor=max(1.0, policy.exponentiation_factor),
        max_interval_ms=max(initial, int(maximum / timedelta(milliseconds=1))),
        max_attempts=policy.max_attempts,
        on_max_attempts="kill" if policy.on_max_attempts is OnMaxAttempts.KILL else "pause",
    )


class InvocationExecutor:
    """Runs attempts for one partition's leader."""

    def __init__(
        self,
        partition: int,
        invoker: Invoker,
        metadata: MetadataStore,
        load_task: LoadTask,
        submit_own: SubmitOwn,
        clock: Callable[[], float] = time.time,
        builtin: BuiltinServices | None = None,
        confirm: Confirm | None = None,
        load_entry: LoadEntry | None = None,
        default_retry_policy: EffectiveRetryPolicy = DEFAULT_RETRY_POLICY,
        tracing: Tracing | None = None,
        release: Callable[[InvocationId], None] | None = None,
    ) -> None:
        self._partition = partition
        # Lets the held Invoke of a speculative attempt that failed leave alone (plain).
        self._release = release
        # None (tracing off): no span objects, no header parsing (engine.observability.tracing).
        self._tracing = tracing
        # The engine's configured default (``[default_retry_policy]``): what a failure is
        # retried with when neither the service nor the handler sets a policy.
        self._default_retry = default_retry_policy
        self._confirm = confirm
        self._load_entry = load_entry
        # Streaming attempts in flight, by invocation: where forwarded notifications go.
        self._channels: dict[InvocationId, AttemptChannel] = {}
        self._builtin = builtin
        self._invoker = invoker
        self._metadata = metadata
        self._load_task = load_task
        self._submit_own = submit_own
        self._clock = clock
        self._running: dict[InvocationId, asyncio.Task[None]] = {}
        self._rerun: set[InvocationId] = set()
        # Invocations whose first attempt started before their Invoke was applied; the
        # InvokeAction of that Invoke is theirs already (see start_early).
        self._early: set[InvocationId] = set()
        # The early starts among them that speculate on an object's state
        # (leader/speculation.py): their records count only with their Invoke.
        self._speculative: set[InvocationId] = set()
        # In-process re-runs of attempts whose failure could not be written to the WAL.
        self._local_retries: dict[InvocationId, asyncio.TimerHandle] = {}

    def start(self, invocation_id: InvocationId, data: InvocationTaskData | None = None) -> None:
        """Run an attempt now, or right after the one in flight.

        ``data``: the task as the applied batch left it (``InvokeAction.task``), used by
        an attempt that starts now; one that runs after the attempt in flight reads the
        task again, since that attempt's records change it."""
        if invocation_id in self._early:
            # Applying the Invoke of an early start: its first attempt runs (or ran)
            # already. Only this first action is absorbed; later ones (retries,
            # notifications) come after records of that attempt and run as usual. A
            # speculative attempt's records were accepted with it.
            self._early.discard(invocation_id)
            self._speculative.discard(invocation_id)
            return
        if invocation_id in self._running:
            self._rerun.add(invocation_id)
            return
        channel: AttemptChannel | None = None
        if data is not None and self._confirm is not None and self._invoker.streams:
            # The data is from the batch that asked for this attempt: notifications
            # applied after it must reach the stream, so its channel exists before the
            # next batch's actions are carried out (not when the task first runs).
            channel = self._channels[invocation_id] = AttemptChannel(self._confirm)
        task = asyncio.create_task(self._attempt_loop(invocation_id, data, channel), name=f"invoke-{invocation_id}")
        self._running[invocation_id] = task
        if channel is not None:
            # A task cancelled before its first step never reaches the loop's cleanup.
            task.add_done_callback(lambda _: self._drop_channel(invocation_id, channel))

    def _drop_channel(self, invocation_id: InvocationId, channel: AttemptChannel) -> None:
        if self._channels.get(invocation_id) is channel:
            del self._channels[invocation_id]

    def start_early(self, data: InvocationTaskData, speculative: bool = False) -> bool:
        """Start the first attempt of an invocation whose ``Invoke`` was handed to the WAL
        just now and not read back yet, from ``data`` (``state_reader.first_attempt_data``).

        Only for an Invoke that starts its invocation whenever it is applied
        (``state_machine.invoke.starts_when_applied``) and was submitted by this process
        to this leader's partition before any record of the attempt: the producer keeps
        the partition's order, so everything the attempt writes lands after the Invoke,
        and its answer, as always, waits for those records to be applied. What the early
        start saves is one WAL round trip and the task read before the endpoint call.
        If the Invoke's append fails, :meth:`abort` the attempt; records it wrote anyway
        name an invocation the partition does not know, and are ignored when applied.

        ``speculative``: the first attempt of an object call, run with the state in
        ``data`` before the ``Invoke`` (held by the leader) is applied; see
        :mod:`engine.partition.leader.speculation`. It runs in request/response mode, and
        one that fails hands nothing over: its ``Invoke`` leaves alone and the
        invocation runs anew.

        Returns False (nothing started) for built-in services or an id already running.
        """
        invocation_id = data.invocation_id
        if invocation_id in self._running or invocation_id in self._early:
            return False
        if self._builtin is not None and self._builtin.serves(data.target.service):
            return False
        self._early.add(invocation_id)
        if speculative:
            self._speculative.add(invocation_id)
        task = asyncio.create_task(self._attempt_loop(invocation_id, data), name=f"invoke-{invocation_id}")
        self._running[invocation_id] = task
        return True

    def may_speculate(self, service: str, handler: str) -> bool:
        """Whether a first attempt of ``service/handler`` may run speculatively: not a
        built-in service; a deployment driven in request/response mode (a streaming
        attempt's records leave one by one, not in one batch with its ``Invoke``); eager
        state (a lazy read would see a state the version check does not cover)."""
        if self._builtin is not None and self._builtin.serves(service):
            return False
        try:
            resolved = self._metadata.view.resolve(service, handler)
        except (MetadataError, LookupError):
            return False
        if resolved.deployment.protocol_type is ProtocolType.BIDI_STREAM and self._invoker.streams:
            return False
        return not effective_settings(resolved.service, resolved.handler, self._default_retry).enable_lazy_state

    def abandon_speculation(self, invocation_id: InvocationId) -> bool:
        """Stop the speculative attempt of ``invocation_id`` before it writes (its held
        ``Invoke`` leaves alone, so applying it starts the invocation anew). False when
        no speculative attempt of it runs."""
        if invocation_id not in self._speculative:
            return False
        self._speculative.discard(invocation_id)
        self._early.discard(invocation_id)
        # Forgotten at once, not when the cancellation lands: the InvokeAction of the
        # plain Invoke must find no attempt in flight and start a fresh one.
        task = self._running.pop(invocation_id, None)
        if task is not None:
            task.cancel()
        return True

    def speculation_rejected(self, invocation_id: InvocationId) -> None:
        """Applying the ``Invoke`` refused the speculative attempt's records (the key
        changed first): the invocation was admitted as any other, so its InvokeAction,
        now or once the key is free, runs it (after the attempt in flight, if any)."""
        self._speculative.discard(invocation_id)
        self._early.discard(invocation_id)

    def abort(self, invocation_id: InvocationId) -> None:
        """Cancel the attempt in flight (kill, or the Invoke of an early start failed)."""
        self._early.discard(invocation_id)
        self._speculative.discard(invocation_id)
        self._rerun.discard(invocation_id)
        retry = self._local_retries.pop(invocation_id, None)
        if retry is not None:
            retry.cancel()
        task = self._running.get(invocation_id)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        """Cancel every attempt (leadership lost or shutdown)."""
        for retry in self._local_retries.values():
            retry.cancel()
        self._local_retries.clear()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()

    def forward(self, invocation_id: InvocationId, entry_index: int) -> None:
        """A notification was applied for a running invocation: push it into its open
        stream, if it has one (request/response attempts learn it on the next attempt)."""
        channel = self._channels.get(invocation_id)
        if channel is None or self._load_entry is None:
            return
        entry = self._load_entry(invocation_id, entry_index)
        if entry is not None:
            channel.forward(entry_index, entry)

    def __len__(self) -> int:
        return len(self._running)

    async def _attempt_loop(
        self, invocation_id: InvocationId, early: InvocationTaskData | None = None,
        first_channel: AttemptChannel | None = None,
    ) -> None:
        # The task runs in its own copy of the context: this marks its records only.
        _ATTEMPT_EXECUTOR.set(self)
        try:
            while True:
                self._rerun.discard(invocation_id)
                channel, first_channel = first_channel, None
                speculative = early is not None and invocation_id in self._speculative
                if channel is None and self._confirm is not None and self._invoker.streams and not speculative:
                    # Registered before the task is read, so no notification applied
                    # after that read is missed; the session skips those already in it.
                    channel = self._channels[invocation_id] = AttemptChannel(self._confirm)
                try:
                    await self._attempt(invocation_id, channel, early)
                    early = None
                finally:
                    if channel is not None and self._channels.get(invocation_id) is channel:
                        del self._channels[invocation_id]
                if invocation_id not in self._rerun:
                    return
        except asyncio.CancelledError:
            raise
        except LeadershipLost as exc:
            # The partition's new leader runs the invocation from the WAL; nothing to record.
            log.debug("attempt stopped: leadership lost", invocation_id=str(invocation_id),
                      partition=self._partition, reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - one invocation's bug must not stop the leader
            log.exception("invocation attempt crashed", invocation_id=str(invocation_id), partition=self._partition)
            # Not left "invoked" with nothing running it: retried (or failed) by the
            # default retry policy, like any failed attempt.
            if invocation_id in self._early:
                self._early.discard(invocation_id)  # applying its Invoke starts the next attempt
                self._speculation_over(invocation_id)
            else:
                data = self._load_task(invocation_id)
                if data is not None:
                    with contextlib.suppress(LeadershipLost):
                        await self._after_failure(data, wal_failure(exc), None)
        finally:
            # Not a successor's task: an abandoned speculation is forgotten at once.
            if self._running.get(invocation_id) is asyncio.current_task():
                del self._running[invocation_id]

    def _speculation_over(self, invocation_id: InvocationId) -> None:
        """A speculative attempt ended without records to hand over (it failed): its held
        ``Invoke`` leaves now, alone and plain, and applying it starts a fresh attempt."""
        if invocation_id in self._speculative:
            self._speculative.discard(invocation_id)
            self._early.discard(invocation_id)
            if self._release is not None:
                self._release(invocation_id)

    def _retry_later(self, invocation_id: InvocationId, delay_ms: int) -> None:
        """Run the invocation again in this process after ``delay_ms`` (the WAL could
        not take the record that would have scheduled the retry)."""
        previous = self._local_retries.pop(invocation_id, None)
        if previous is not None:
            previous.cancel()
        self._local_retries[invocation_id] = asyncio.get_running_loop().call_later(
            delay_ms / 1000, self._retry_now, invocation_id
        )

    def _retry_now(self, invocation_id: InvocationId) -> None:
        self._local_retries.pop(invocation_id, None)
        self.start(invocation_id)

    async def _attempt(
        self, invocation_id: InvocationId, channel: AttemptChannel | None = None,
        preloaded: InvocationTaskData | None = None,
    ) -> None:
        data = preloaded or self._load_task(invocation_id)
        if data is None:
            return  # no longer Invoked: ended, killed or suspended meanwhile
        if self._builtin is not None and self._builtin.serves(data.target.service):
            # Built-in services have no deployment to pin or endpoint to call.
            builtin_failure = await self._builtin.run(invocation_id)
            if builtin_failure is not None:
                await self._after_failure(data, builtin_failure, None)
            return
        target = data.target
        metrics = invocation_metrics.for_target(target.service, target.handler)
        if data.attempt == 0 and data.deployment_id is None:
            metrics.started.inc()  # the first attempt: nothing pinned, nothing failed yet
        trace: InvocationTrace | None = None
        span: AttemptSpan | None = None
        if self._tracing is not None:
            trace = self._tracing.invocation(invocation_id, target.service, target.handler, target.key, data.headers)
            span = self._tracing.start_attempt(trace, data.attempt + 1)
        bound = log.bind(invocation_id=str(invocation_id), partition=self._partition,
                         service=target.service, handler=target.handler, key=target.key)
        try:
            deployment, settings, version, pin = self._choose_deployment(data)
        except (MetadataError, ProtocolError, LookupError) as exc:
            failure = AttemptFailure(FailureKind.TRANSPORT, 404, f"cannot route the invocation: {exc}")
            if span is not None:
                span.end("failed", failure.message)
            await self._after_failure(data, failure, None, metrics, trace)
            return
        task = InvocationTask(
            invocation_id=invocation_id,
            service=data.target.service,
            handler=data.target.handler,
            key=data.target.key,
            endpoint=EndpointTarget(deployment.uri, ProtocolVersion(version), tuple(deployment.additional_headers.items()),
                                    bidi=deployment.protocol_type is ProtocolType.BIDI_STREAM),
            journal=data.journal,
            eager_state=tuple((s.key, s.value) for s in data.state),
            partial_state=data.partial_state or settings.enable_lazy_state,
            retry_count_since_last_stored_entry=data.retries_since_last_entry,
            duration_since_last_stored_entry_ms=max(0, int(self._clock() * 1000) - data.modified_at_ms),
            random_seed=random_seed_of(data.random_seed_from or invocation_id),
            idempotency_key=data.idempotency_key,
            # Restate's meaning: silence for the inactivity timeout ends the attempt (in
            # request/response mode the runtime cannot ask for a suspension first); the
            # abort timeout is the grace period after it, so the whole attempt may take
            # both together.
            inactivity_timeout_ms=_ms(settings.inactivity_timeout),
            abort_timeout_ms=_ms(settings.inactivity_timeout + settings.abort_timeout),
            prelude=() if pin is None else (pin,),
            traceparent=None if span is None else span.traceparent,
            speculative=preloaded is not None and invocation_id in self._speculative,
        )
        started = time.perf_counter()
        try:
            if channel is not None and task.endpoint.bidi:
                outcome = await self._invoker.invoke(task, channel)
            else:
                outcome = await self._invoker.invoke(task)
        except (WalAppendError, WalCodecError) as exc:
            # Which of the attempt's records are durable is unknown; running it again is
            # safe (command indexes drop what is journaled already).
            metrics.attempt[OutcomeKind.FAILED.value].observe(time.perf_counter() - started)
            if span is not None:
                span.end(OutcomeKind.FAILED.value, str(exc))
            if invocation_id in self._early:
                # Its Invoke is not applied yet: applying it starts the next attempt.
                self._early.discard(invocation_id)
                self._speculation_over(invocation_id)
                return
            await self._after_failure(data, wal_failure(exc), settings, metrics, trace)
            return
        except BaseException as exc:
            if span is not None:
                span.end("stopped", type(exc).__name__)
            raise
        kind = outcome.kind.value
        metrics.attempt[kind].observe(time.perf_counter() - started)
        if outcome.failed and outcome.failure is not None:
            if span is not None:
                span.end(kind, outcome.failure.message)
            if task.speculative:
                # Nothing of it is written: the invocation runs anew from its plain Invoke.
                self._speculation_over(invocation_id)
                return
            await self._after_failure(data, outcome.failure, settings, metrics, trace)
            return
        if span is not None:
            span.end(kind)
        if outcome.kind is OutcomeKind.ENDED:
            result = outcome.result
            self._ended(data, metrics, trace, result.message if isinstance(result, Failure) else None)
        bound.debug("attempt finished", outcome=kind, new_entries=outcome.new_entries)

    def _ended(
        self, data: InvocationTaskData, metrics: invocation_metrics.TargetMetrics,
        trace: InvocationTrace | None, failure: str | None,
    ) -> None:
        """The invocation ended (its end is durable): count it, time it, emit its span."""
        self._count_end(metrics, data.created_at_ms, failure)
        if trace is not None and self._tracing is not None:
            self._tracing.end_invocation(trace, data.created_at_ms, failure)

    def _count_end(self, metrics: invocation_metrics.TargetMetrics, created_at_ms: int, failure: str | None) -> None:
        (metrics.completed if failure is None else metrics.failed).inc()
        if created_at_ms > 0:
            metrics.duration.observe(max(0.0, self._clock() - created_at_ms / 1000))

    def stopped(self, action: InvocationStopped) -> None:
        """A kill or cancel ended the invocation (applied): count it and emit its span,
        as :meth:`_ended` does for an end an attempt reports. An attempt of it still in
        flight was aborted, so it reports no end of its own."""
        self._count_end(invocation_metrics.for_target(action.service, action.handler), action.created_at_ms,
                        action.failure)
        if self._tracing is not None:
            trace = self._tracing.invocation(action.invocation_id, action.service, action.handler, action.key,
                                             action.headers)
            self._tracing.end_invocation(trace, action.created_at_ms, action.failure)

    def _choose_deployment(
        self, data: InvocationTaskData
    ) -> tuple[Deployment, InvocationSettings, int, DeploymentPinned | None]:
        """The deployment to call and, for a first attempt, the record that pins it."""
        view = self._metadata.view
        if data.deployment_id is not None and data.protocol_version is not None:
            deployment = view.get_deployment(data.deployment_id)
            service = deployment.service(data.target.service)
            if service is None:
                raise LookupError(f"deployment {data.deployment_id} no longer serves {data.target.service}")
            handler = next((h for h in service.definition.handlers if h.name == data.target.handler), None)
            if handler is None:
                raise LookupError(f"deployment {data.deployment_id} has no handler {data.target.handler}")
            settings = effective_settings(service, handler, self._default_retry)
            return deployment, settings, data.protocol_version, None
        resolved = view.resolve(data.target.service, data.target.handler)
        version = int(negotiate_version(resolved.deployment.min_protocol_version, resolved.deployment.max_protocol_version))
        # Later attempts must replay against the same deployment, so the pin goes into the
        # log ahead of anything this attempt writes: as the attempt's prelude, in the same
        # WAL record as its first records rather than a round trip before the call. An
        # attempt that writes nothing pins nothing; the next one chooses afresh.
        settings = effective_settings(resolved.service, resolved.handler, self._default_retry)
        return resolved.deployment, settings, version, DeploymentPinned(
            data.invocation_id, resolved.deployment.id, version
        )

    async def _after_failure(
        self, data: InvocationTaskData, failure: AttemptFailure, settings: InvocationSettings | None,
        metrics: invocation_metrics.TargetMetrics | None = None, trace: InvocationTrace | None = None,
    ) -> None:
        policy = _retry_policy(settings.retry_policy if settings is not None else self._default_retry)
        attempt = data.attempt + 1
        decision = decide(policy, attempt, failure)
        logger = log.bind(invocation_id=str(data.invocation_id), partition=self._partition, attempt=attempt)
        try:
            await self._record_failure(data, failure, attempt, decision, logger, metrics, trace)
        except (WalAppendError, WalCodecError) as exc:
            # Not even the failure reaches the WAL (Kafka is down): the invocation stays
            # Invoked in the log, so this leader runs it again itself, after the delay
            # the policy asked for; whoever leads next reloads it from LMDB anyway.
            delay_ms = decision.delay_ms if decision.delay_ms is not None else _LOCAL_RETRY_MS
            logger.warning("could not record the failed attempt in the WAL; running it again in-process",
                           error=str(exc), retry_in_ms=delay_ms)
            self._retry_later(data.invocation_id, max(delay_ms, _LOCAL_RETRY_MS))

    async def _record_failure(
        self, data: InvocationTaskData, failure: AttemptFailure, attempt: int, decision: RetryDecision,
        logger: FilteringBoundLogger, metrics: invocation_metrics.TargetMetrics | None,
        trace: InvocationTrace | None,
    ) -> None:
        if decision.action is RetryAction.RETRY:
            assert decision.delay_ms is not None
            # A journal mismatch is a bug in the handler (non-deterministic code), not a
            # passing outage: say so, retrying only helps once the code is fixed.
            event = (
                "journal mismatch: the handler took a different path on replay; will retry"
                if failure.non_deterministic
                else "invocation attempt failed; will retry"
            )
            logger.warning(event, code=failure.code, error=failure.message,
                           retry_in_ms=decision.delay_ms, non_deterministic=failure.non_deterministic)
            now_ms = int(self._clock() * 1000)
            await self._submit_own(failed_attempt_record(data.invocation_id, failure, attempt, now_ms, decision.delay_ms))
        elif decision.action is RetryAction.KILL:
            logger.error("invocation failed for good", code=failure.code, error=failure.message, reason=decision.reason)
            await self._submit_own(InvocationEnded(data.invocation_id, Failure(failure.code, failure.message)))
            if metrics is not None:
                self._ended(data, metrics, trace, failure.message)
        else:
            # Paused with its last failure until an operator resumes (or kills) it.
            logger.error("invocation paused after failures; resume it with PATCH /invocations/{id}/resume",
                         code=failure.code, error=failure.message, reason=decision.reason,
                         non_deterministic=failure.non_deterministic)
            now_ms = int(self._clock() * 1000)
            record = failed_attempt_record(data.invocation_id, failure, attempt, now_ms, delay_ms=0)
            await self._submit_own(dataclasses.replace(record, paused=True))
