"""The benchmarks' load generator: closed-loop aiohttp workers against an ingress.

A :class:`Workload` is one kind of ingress request; a :class:`Phase` says how many
connections drive it, with how much warm-up and load. :func:`run_phase` warms up, then
measures, and returns a :class:`Summary`. Every answer must have an accepted status (200,
or 202 for ``/send``) and, where the answer is known, the expected body; anything else is
counted as an error, never as a latency sample.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.procstats import CpuSnapshot

JSON_HEADERS = {"content-type": "application/json"}
PROGRESS_EVERY_S = 5.0
OK = frozenset({200})
ACCEPTED = frozenset({200, 202})
"""What a ``/send`` may answer: restate-server and logstrate both answer 202 Accepted."""
NOOP_BODY = b'"hello"'


def progress(message: str) -> None:
    """One progress line on stderr (the report alone goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def post_json(url: str, payload: dict[str, Any] | bytes | None, timeout: float = 30.0) -> tuple[int, bytes]:
    """One blocking POST (JSON body, or none); (status, body)."""
    data = payload if isinstance(payload, bytes) or payload is None else json.dumps(payload).encode()
    headers = JSON_HEADERS if data else {}
    request = urllib.request.Request(url, data=data or b"", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


# -- workloads and phases --------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One ingress request: path, JSON body and, when it is fixed, the expected answer.

    ``vary``, when given, makes request number ``n`` (0, 1, ...) of a run: its
    ``(path, body)``; successes are then also counted per path (:attr:`Samples.ok_by_path`).
    """

    name: str
    path: str
    body: bytes
    expect: bytes | None
    accept: frozenset[int] = OK
    vary: Callable[[int], tuple[str, bytes]] | None = None

    def request(self, n: int) -> tuple[str, bytes]:
        return self.vary(n) if self.vary is not None else (self.path, self.body)


@dataclass(frozen=True)
class Phase:
    """A measured run of one workload: how many connections, how much warm-up and load.

    ``requests`` > 0 measures that many requests; otherwise the phase lasts ``duration_s``.
    ``warmup_requests`` > 0 warms up with that many requests; otherwise for ``warmup_s``
    (0 and 0: no warm-up).
    """

    key: str
    title: str
    workload: Workload
    connections: int
    requests: int
    duration_s: float
    warmup_requests: int
    warmup_s: float

    @property
    def concurrent(self) -> bool:
        return self.connections > 1


@dataclass
class Budget:
    """Hands out numbered request tickets until a request count or a deadline is reached."""

    max_requests: int | None
    deadline: float | None
    issued: int = 0

    def take(self) -> int | None:
        if self.max_requests is not None and self.issued >= self.max_requests:
            return None
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return None
        self.issued += 1
        return self.issued - 1


@dataclass
class Samples:
    """Latencies of successful requests (seconds) and the failures, as they come in."""

    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    ok_by_path: collections.Counter[str] = field(default_factory=collections.Counter)

    def fail(self, what: str) -> None:
        self.errors += 1
        if len(self.error_examples) < 5 and what not in self.error_examples:
            self.error_examples.append(what)


async def _worker(session: aiohttp.ClientSession, base_url: str, workload: Workload, budget: Budget, samples: Samples) -> None:
    while (n := budget.take()) is not None:
        path, body = workload.request(n)
        started = time.perf_counter()
        try:
            async with session.post(f"{base_url}{path}", data=body, headers=JSON_HEADERS if body else None) as resp:
                answer = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            samples.fail(f"{type(exc).__name__}: {str(exc) or f'no answer within {session.timeout.total:g}s'}")
            continue
        elapsed = time.perf_counter() - started
        if status not in workload.accept:
            samples.fail(f"HTTP {status}: {answer[:300].decode(errors='replace')}")
        elif workload.expect is not None and answer != workload.expect:
            samples.fail(f"unexpected answer {answer[:300]!r}, wanted {workload.expect!r}")
        else:
            samples.latencies_s.append(elapsed)
            if workload.vary is not None:
                samples.ok_by_path[path] += 1


async def _report_progress(label: str, samples: Samples, started: float) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        progress(f"{label}: {time.perf_counter() - started:5.1f}s, {len(samples.latencies_s)} ok, {samples.errors} errors")


async def drive(
    session: aiohttp.ClientSession, base_url: str, workload: Workload, connections: int, budget: Budget, label: str,
) -> tuple[Samples, float]:
    """Run ``connections`` closed-loop workers until the budget is spent; (samples, seconds)."""
    samples = Samples()
    started = time.perf_counter()
    reporter = asyncio.create_task(_report_progress(label, samples, started))
    try:
        await asyncio.gather(*(_worker(session, base_url, workload, budget, samples) for _ in range(connections)))
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    return samples, time.perf_counter() - started


def client_session(connections: int, request_timeout: float) -> aiohttp.ClientSession:
    """One session whose connector keeps at most ``connections`` keep-alive connections."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections), timeout=aiohttp.ClientTimeout(total=request_timeout),
    )


# -- summaries -------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The measured part of one phase on one system (``latencies_ms``: every sample)."""

    ok: int
    errors: int
    elapsed_s: float
    throughput_rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None
    error_examples: list[str]
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] | None = None
    """CPU seconds the measured processes used while the phase measured (when metered)."""


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of sorted data, linear between closest ranks."""
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples: Samples, elapsed_s: float, cpu_s: dict[str, float] | None = None) -> Summary:
    ordered = sorted(samples.latencies_s)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000.0, 3)

    def stat(q: float) -> float | None:
        return ms(percentile(ordered, q)) if ordered else None

    return Summary(
        ok=len(ordered),
        errors=samples.errors,
        elapsed_s=round(elapsed_s, 3),
        throughput_rps=round(len(ordered) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        p50_ms=stat(0.50),
        p90_ms=stat(0.90),
        p99_ms=stat(0.99),
        mean_ms=ms(sum(ordered) / len(ordered)) if ordered else None,
        min_ms=ms(ordered[0]) if ordered else None,
        max_ms=ms(ordered[-1]) if ordered else None,
        error_examples=samples.error_examples,
        latencies_ms=[round(s * 1000.0, 3) for s in samples.latencies_s],
        cpu_s=cpu_s,
    )


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}x"


# -- one phase -------------------------------------------------------------------------


async def run_phase(
    ingress_url: str, phase: Phase, system: str, request_timeout: float,
    meter: dict[str, int] | None = None, keep: Samples | None = None,
) -> Summary:
    """Warm up, then measure one phase against one ingress.

    ``meter`` (role -> pid): also measure those processes' CPU seconds over the measured
    part. ``keep``: successes per path of warm-up and measurement are added to it (for
    workloads whose effect is checked afterwards)."""
    label = f"{system} {phase.key}"
    async with client_session(phase.connections, request_timeout) as session:
        warmup: Budget | None = None
        if phase.warmup_requests > 0:
            warmup = Budget(phase.warmup_requests, None)
            progress(f"{label}: warm-up, {phase.warmup_requests} requests over {phase.connections} connection(s)")
        elif phase.warmup_s > 0:
            warmup = Budget(None, time.perf_counter() + phase.warmup_s)
            progress(f"{label}: warm-up, {phase.warmup_s:g}s over {phase.connections} connection(s)")
        if warmup is not None:
            warm, _ = await drive(session, ingress_url, phase.workload, phase.connections, warmup, f"{label} warm-up")
            if warm.errors:
                progress(f"{label}: {warm.errors} errors during warm-up, e.g. {warm.error_examples[0]}")
            if keep is not None:
                keep.ok_by_path.update(warm.ok_by_path)

        if phase.requests > 0:
            budget = Budget(phase.requests, None)
            progress(f"{label}: measuring {phase.requests} requests over {phase.connections} connection(s)")
        else:
            budget = Budget(None, time.perf_counter() + phase.duration_s)
            progress(f"{label}: measuring for {phase.duration_s:g}s over {phase.connections} connection(s)")
        before = CpuSnapshot.take(meter) if meter else None
        samples, elapsed = await drive(session, ingress_url, phase.workload, phase.connections, budget, label)
        cpu = CpuSnapshot.take(meter).since(before).cpu_s if meter and before else None
        if keep is not None:
            keep.ok_by_path.update(samples.ok_by_path)
    summary = summarize(samples, elapsed, cpu)
    progress(
        f"{label}: {summary.ok} ok, {summary.errors} errors in {summary.elapsed_s:.1f}s, "
        f"p50 {fmt(summary.p50_ms)} ms, p99 {fmt(summary.p99_ms)} ms, {summary.throughput_rps:.1f} req/s"
        + (f", CPU s {cpu}" if cpu else "")
    )
    for example in summary.error_examples:
        progress(f"{label}: error: {example}")
    return summary
