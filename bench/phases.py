"""The durable-core phases: what each one sends, waits for, checks and measures.

Each phase is an ``async`` function of a :class:`PhaseContext` (the running system, the
options, the completion counter) returning an :class:`Outcome`: named metric values, error
count and examples, and raw data for ``--json``. See ``bench/README.md`` for the list.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bench.load import (
    ACCEPTED, NOOP_BODY, Budget, Phase, Samples, Summary, Workload, client_session, drive, fmt, post_json, progress,
    run_phase, summarize,
)
from bench.procstats import CpuSnapshot
from bench.services import STEPS, TIMERS
from bench.systems import Running, endpoint_requests
from tests.fixtures.ports import free_port

PHASE_KEYS = ("idle_cpu", "noop_seq", "noop_concurrent", "ten_steps_seq", "counter_add", "sends", "timers", "kill_recovery")
H2_PHASES = ("ten_steps_seq",)
"""The phases also run against ``restate (h2 bidi)``; every selected phase runs on the others."""

NOOP = Workload("noop", "/Bench/noop", NOOP_BODY, NOOP_BODY)
TEN_STEPS = Workload("ten_steps", "/Bench/ten_steps", NOOP_BODY, f'"hello:{STEPS}"'.encode())
TIMERS_CALL = Workload("timers", "/Bench/timers", NOOP_BODY, str(TIMERS).encode())


# -- the completion counter ------------------------------------------------------------


class Completions:
    """A loopback HTTP server counting the jobs that handlers report done (distinct ids per tag).

    Handlers POST ``{"tag", "id"}`` to :attr:`url` from their last ``ctx.run`` step; a
    re-executed step (after a crash) reports again and counts as a duplicate, not twice."""

    def __init__(self) -> None:
        self._seen: dict[str, set[int]] = {}
        self._duplicates: dict[str, int] = {}
        self._targets: dict[str, tuple[int, asyncio.Future[float]]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/done", self._done)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/done"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _done(self, request: web.Request) -> web.Response:
        job = await request.json()
        tag, job_id = str(job["tag"]), int(job["id"])
        seen = self._seen.setdefault(tag, set())
        if job_id in seen:
            self._duplicates[tag] = self._duplicates.get(tag, 0) + 1
        else:
            seen.add(job_id)
            target = self._targets.get(tag)
            if target is not None and len(seen) >= target[0] and not target[1].done():
                target[1].set_result(time.perf_counter())
        return web.Response(text="ok")

    def count(self, tag: str) -> int:
        return len(self._seen.get(tag, ()))

    def duplicates(self, tag: str) -> int:
        return self._duplicates.get(tag, 0)

    def expect(self, tag: str, jobs: int) -> asyncio.Future[float]:
        """A future set to the ``perf_counter`` time when the ``jobs``-th distinct job of
        ``tag`` is reported (call before sending them)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._targets[tag] = (jobs, future)
        return future

    async def wait(self, future: asyncio.Future[float], timeout: float) -> float | None:
        """When the expected count was reached, or None after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            return None


# -- phases ----------------------------------------------------------------------------


@dataclass
class PhaseContext:
    running: Running
    args: argparse.Namespace
    completions: Completions

    @property
    def label(self) -> str:
        return self.running.system


@dataclass
class Outcome:
    """What one phase measured on one system in one round."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def fail(self, what: str, count: int = 1) -> None:
        self.errors += count
        if len(self.error_examples) < 5:
            self.error_examples.append(what)

    def absorb(self, summary: Summary, name: str = "summary") -> None:
        """Count a load run's errors as this phase's and keep its summary as raw data."""
        self.errors += summary.errors
        self.error_examples += summary.error_examples[: 5 - len(self.error_examples)]
        self.raw[name] = asdict(summary)


def _sequential(key: str, title: str, workload: Workload, args: argparse.Namespace) -> Phase:
    return Phase(key, title, workload, 1, args.requests, 0.0, args.warmup, 0.0)


def _concurrent(key: str, title: str, workload: Workload, args: argparse.Namespace) -> Phase:
    return Phase(key, title, workload, args.connections, args.concurrent_requests, args.duration, 0, args.concurrent_warmup)


async def idle_cpu(ctx: PhaseContext) -> Outcome:
    """One warm-up request, a short settle, then CPU of each process over ``--idle-seconds``."""
    status, body = await asyncio.to_thread(post_json, f"{ctx.running.ingress_url}{NOOP.path}", NOOP.body)
    out = Outcome()
    if status != 200:
        out.fail(f"warm-up request answered {status}: {body[:200]!r}")
    await asyncio.sleep(ctx.args.idle_settle)
    pids = ctx.running.pids()
    progress(f"{ctx.label} idle_cpu: sampling {', '.join(f'{r} (pid {p})' for r, p in pids.items())} for {ctx.args.idle_seconds:g}s")
    before = CpuSnapshot.take(pids)
    await asyncio.sleep(ctx.args.idle_seconds)
    usage = CpuSnapshot.take(pids).since(before)
    for role, pct in usage.percent_of_core().items():
        out.metrics[f"pct.{role}"] = pct
    out.raw = {"wall_s": round(usage.wall_s, 3), "cpu_s": usage.cpu_s}
    progress(f"{ctx.label} idle_cpu: % of a core {usage.percent_of_core()}")
    return out


async def noop_seq(ctx: PhaseContext) -> Outcome:
    summary = await run_phase(ctx.running.ingress_url, _sequential("noop_seq", "noop, 1 conn", NOOP, ctx.args),
                              ctx.label, ctx.args.request_timeout)
    out = Outcome({"p50_ms": summary.p50_ms, "p99_ms": summary.p99_ms})
    out.absorb(summary)
    return out


async def noop_concurrent(ctx: PhaseContext) -> Outcome:
    """Closed loop over ``--connections``; also CPU seconds per 1,000 completed requests."""
    pids = ctx.running.pids()
    phase = _concurrent("noop_concurrent", f"noop, {ctx.args.connections} conns", NOOP, ctx.args)
    summary = await run_phase(ctx.running.ingress_url, phase, ctx.label, ctx.args.request_timeout, meter=pids)
    out = Outcome({"rps": summary.throughput_rps, "p50_ms": summary.p50_ms, "p99_ms": summary.p99_ms})
    if summary.cpu_s and summary.ok:
        for role, used in summary.cpu_s.items():
            out.metrics[f"cpu_per_1k.{role}"] = round(used / summary.ok * 1000.0, 4)
        if "engine" in summary.cpu_s and "broker" in summary.cpu_s:
            both = summary.cpu_s["engine"] + summary.cpu_s["broker"]
            out.metrics["cpu_per_1k.engine+broker"] = round(both / summary.ok * 1000.0, 4)
    out.absorb(summary)
    return out


async def ten_steps_seq(ctx: PhaseContext) -> Outcome:
    """Ten sequential ``ctx.run`` s; also how many endpoint requests one invocation took."""
    before = await asyncio.to_thread(endpoint_requests, ctx.running.endpoint)
    phase = _sequential("ten_steps_seq", f"{STEPS}x ctx.run, 1 conn", TEN_STEPS, ctx.args)
    summary = await run_phase(ctx.running.ingress_url, phase, ctx.label, ctx.args.request_timeout)
    after = await asyncio.to_thread(endpoint_requests, ctx.running.endpoint)
    per_version = {v: after.get(v, 0) - before.get(v, 0) for v in after}
    invocations = ctx.args.warmup + summary.ok + summary.errors
    p50 = summary.p50_ms
    out = Outcome({"p50_ms": p50, "p99_ms": summary.p99_ms, "per_step_ms": None if p50 is None else round(p50 / STEPS, 3)})
    out.absorb(summary)
    out.raw["endpoint_requests"] = per_version
    out.raw["endpoint_requests_per_invocation"] = round(sum(per_version.values()) / invocations, 2) if invocations else None
    progress(f"{ctx.label} ten_steps_seq: endpoint requests by HTTP version {per_version} "
             f"for {invocations} invocations ({ctx.running.notes.get('protocol', '?')})")
    return out


async def counter_add(ctx: PhaseContext) -> Outcome:
    """``BenchCounter/{key}/add`` over ``--keys`` keys and ``--connections``; then every key
    is read back through ``get`` and must hold exactly the number of successful adds."""
    run = uuid.uuid4().hex[:8]
    keys = ctx.args.keys

    def request(n: int) -> tuple[str, bytes]:
        return f"/BenchCounter/c{run}-{n % keys}/add", b"1"

    workload = Workload("counter_add", "/BenchCounter/{key}/add", b"1", None, vary=request)
    kept = Samples()
    phase = _concurrent("counter_add", f"object add, {keys} keys, {ctx.args.connections} conns", workload, ctx.args)
    summary = await run_phase(ctx.running.ingress_url, phase, ctx.label, ctx.args.request_timeout, keep=kept)
    out = Outcome({"rps": summary.throughput_rps, "p50_ms": summary.p50_ms, "p99_ms": summary.p99_ms})
    out.absorb(summary)
    total_expected = total_read = 0
    async with client_session(8, ctx.args.request_timeout) as session:
        for k in range(keys):
            key = f"c{run}-{k}"
            expected = kept.ok_by_path.get(f"/BenchCounter/{key}/add", 0)
            try:
                # No body and no content-type: restate-server refuses one for a handler without input.
                async with session.post(f"{ctx.running.ingress_url}/BenchCounter/{key}/get",
                                        skip_auto_headers=["Content-Type"]) as resp:
                    status, answer = resp.status, await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                out.fail(f"reading {key}: {type(exc).__name__}: {exc}")
                continue
            if status != 200:
                out.fail(f"reading {key}: HTTP {status}: {answer[:200]!r}")
                continue
            try:
                value = int(answer)
            except ValueError:
                out.fail(f"reading {key}: not a number: {answer[:200]!r}")
                continue
            total_expected += expected
            total_read += value
            if value != expected:
                out.fail(f"key {key} holds {value}, but {expected} adds succeeded")
    out.raw["sum_expected"], out.raw["sum_read"] = total_expected, total_read
    progress(f"{ctx.label} counter_add: sum over {keys} keys {total_read}, expected {total_expected}"
             + (" (OK)" if total_read == total_expected else " (WRONG)"))
    return out


def _job_workload(path: str, tag: str, report_url: str, extra: str = "") -> Workload:
    def request(n: int) -> tuple[str, bytes]:
        return path, f'{{"tag": "{tag}", "id": {n}, "report": "{report_url}"{extra}}}'.encode()

    return Workload(path, path, b"", None, accept=ACCEPTED, vary=request)


async def _send_jobs(ctx: PhaseContext, path: str, jobs: int, extra: str = "") -> tuple[str, asyncio.Future[float], Summary, float]:
    """``jobs`` ``/send`` s of ``path`` over ``--connections``: (tag, done-future, summary, started)."""
    tag = uuid.uuid4().hex[:12]
    done = ctx.completions.expect(tag, jobs)
    workload = _job_workload(path, tag, ctx.completions.url, extra)
    async with client_session(ctx.args.connections, ctx.args.request_timeout) as session:
        started = time.perf_counter()
        samples, elapsed = await drive(session, ctx.running.ingress_url, workload, ctx.args.connections,
                                       Budget(jobs, None), f"{ctx.label} {path}")
    return tag, done, summarize(samples, elapsed), started


async def sends(ctx: PhaseContext) -> Outcome:
    """``--sends`` ``/send`` s of ``Bench/three_steps``: completed/s from the first send
    until the counter has seen every job (after ``--send-warmup`` jobs, not measured)."""
    out = Outcome()
    if ctx.args.send_warmup > 0:
        progress(f"{ctx.label} sends: warm-up, {ctx.args.send_warmup} jobs")
        tag, done, summary, _ = await _send_jobs(ctx, "/Bench/three_steps/send", ctx.args.send_warmup)
        if await ctx.completions.wait(done, ctx.args.completion_timeout) is None:
            progress(f"{ctx.label} sends: warm-up: only {ctx.completions.count(tag)} of {ctx.args.send_warmup} completed")
    jobs = ctx.args.sends
    progress(f"{ctx.label} sends: measuring {jobs} jobs over {ctx.args.connections} connections")
    tag, done, summary, started = await _send_jobs(ctx, "/Bench/three_steps/send", jobs)
    out.absorb(summary, "send_summary")
    progress(f"{ctx.label} sends: all {summary.ok} accepted in {summary.elapsed_s:.1f}s; waiting for completions")
    finished = await ctx.completions.wait(done, ctx.args.completion_timeout)
    completed = ctx.completions.count(tag)
    if finished is None:
        out.fail(f"only {completed} of {jobs} jobs completed within {ctx.args.completion_timeout:g}s", jobs - completed)
    else:
        elapsed = finished - started
        out.metrics["completed_per_s"] = round(jobs / elapsed, 1)
        out.raw["elapsed_s"] = round(elapsed, 3)
        progress(f"{ctx.label} sends: {jobs} completed in {elapsed:.2f}s = {jobs / elapsed:.1f}/s")
    out.raw.update({"jobs": jobs, "completed": completed, "submit_s": summary.elapsed_s,
                    "duplicate_reports": ctx.completions.duplicates(tag)})
    return out


async def timers(ctx: PhaseContext) -> Outcome:
    """``--timer-calls`` concurrent ``Bench/timers`` calls (each 20 sleeps of 10-50 ms):
    seconds until all answered (after one call to warm up)."""
    calls = ctx.args.timer_calls
    async with client_session(calls, ctx.args.request_timeout) as session:
        warm, _ = await drive(session, ctx.running.ingress_url, TIMERS_CALL, 1, Budget(1, None), f"{ctx.label} timers warm-up")
        progress(f"{ctx.label} timers: {calls} concurrent calls x {TIMERS} sleeps")
        samples, elapsed = await drive(session, ctx.running.ingress_url, TIMERS_CALL, calls, Budget(calls, None),
                                       f"{ctx.label} timers")
    summary = summarize(samples, elapsed)
    out = Outcome({"all_answered_s": round(elapsed, 3) if summary.errors == 0 else None, "p50_ms": summary.p50_ms})
    out.absorb(summary)
    if warm.errors:
        out.fail(f"warm-up call failed: {warm.error_examples[0]}", warm.errors)
    progress(f"{ctx.label} timers: {summary.ok} of {calls} answered in {elapsed:.2f}s, {summary.errors} errors")
    return out


async def kill_recovery(ctx: PhaseContext) -> Outcome:
    """``--kill-sends`` jobs that sleep ``--kill-sleep-ms`` then report; once all are
    accepted, SIGKILL every process (engine and broker, or restate-server; and the
    endpoint), restart them on the same ports and data, and time from the restart until
    every job completed. Jobs not completed by ``--kill-deadline`` are lost."""
    out = Outcome()
    jobs, args = ctx.args.kill_sends, ctx.args
    progress(f"{ctx.label} kill_recovery: sending {jobs} jobs sleeping {args.kill_sleep_ms} ms")
    tag, done, summary, _ = await _send_jobs(ctx, "/Bench/sleep_then_record/send", jobs, f', "sleep_ms": {args.kill_sleep_ms}')
    out.absorb(summary, "send_summary")
    before_kill = ctx.completions.count(tag)
    progress(f"{ctx.label} kill_recovery: {summary.ok} accepted in {summary.elapsed_s:.1f}s ({before_kill} already "
             f"completed); SIGKILL of {ctx.running.pids()} and the endpoint")
    await asyncio.to_thread(ctx.running.crash)
    restarted = time.perf_counter()
    await asyncio.to_thread(ctx.running.restart, args.startup_timeout)
    up_s = time.perf_counter() - restarted
    progress(f"{ctx.label} kill_recovery: up again in {up_s:.1f}s; waiting for the jobs (deadline {args.kill_deadline:g}s)")
    finished = await ctx.completions.wait(done, max(args.kill_deadline - up_s, 0.0))
    completed = ctx.completions.count(tag)
    lost = jobs - completed
    out.metrics["lost"] = lost
    if finished is not None:
        out.metrics["recovery_s"] = round(finished - restarted, 3)
    if lost:
        out.fail(f"{lost} of {jobs} jobs never completed within {args.kill_deadline:g}s of the restart", lost)
    out.raw.update({"jobs": jobs, "completed_before_kill": before_kill, "completed": completed, "up_s": round(up_s, 3),
                    "duplicate_reports": ctx.completions.duplicates(tag)})
    progress(f"{ctx.label} kill_recovery: {completed} of {jobs} completed, recovery "
             f"{fmt(out.metrics.get('recovery_s'))}s after the restart (processes up after {up_s:.1f}s), {lost} lost")
    return out


PHASES: dict[str, Callable[[PhaseContext], Awaitable[Outcome]]] = {
    "idle_cpu": idle_cpu,
    "noop_seq": noop_seq,
    "noop_concurrent": noop_concurrent,
    "ten_steps_seq": ten_steps_seq,
    "counter_add": counter_add,
    "sends": sends,
    "timers": timers,
    "kill_recovery": kill_recovery,
}
