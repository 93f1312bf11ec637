"""Durable-core benchmark: logstrate against the real restate-server, same service code.

Run from the project root::

    .venv/bin/python -m bench.durable_core [--json results.json] [options]

What is measured (all through the ingress HTTP API, ``POST /{Service}/{handler}`` with a
JSON body, every response checked for status 200 and, where the answer is known, its body):

``noop_seq``
    ``Bench/noop`` (returns its input) over 1 connection, sequential requests: p50, p99.
``noop_concurrent``
    ``Bench/noop`` over N concurrent connections (default 32), each sending its next
    request as soon as the previous answer arrives, for a fixed time or request count:
    completed requests per second, p50, p99.
``ten_steps_seq``
    ``Bench/ten_steps`` (ten sequential ``ctx.run`` steps) over 1 connection: p50, p99.
``counter_add_seq``
    ``BenchCounter/bench/add`` (virtual-object get + set, one key) over 1 connection.

How: the systems are benchmarked one after the other, and only the system under test is
running while it is measured. For each system this script starts, in a fresh work folder
under ``/tmp/bench-*``:

- **logstrate**: a local single-node Kafka broker (``compose/kafka_local.py``, or
  ``--kafka`` for an existing one), one engine process (``python -m engine serve``) and
  its own service endpoint;
- **restate**: the pinned restate-server from ``compose/restate-server`` (single node,
  default settings) and its own service endpoint.

The endpoint is ``bench.services:app`` (official ``restate-sdk``) served by hypercorn over
HTTP/1.1, so the SDK runs in request/response mode on both systems; a separate endpoint
process per system keeps one system's leftovers (connections, memory) from touching the
other's run. The endpoint is registered with ``POST /deployments``
(``{"uri": ..., "use_http_11": true}``) and the script waits until the ingress answers
before warming up. Every phase warms up first (requests or seconds, not measured), then
measures; latency is the client-side wall time of one request, answer fully read, with
one ``aiohttp.ClientSession`` whose connector is limited to the phase's connection count
(keep-alive connections, reused across requests).

Everything (broker, engine or restate-server, endpoint and this load generator) shares
this machine's cores, so absolute numbers are lower than on dedicated hardware; the
ratios are the point. Progress goes to stderr, the report to stdout, and ``--json`` writes
the full results (more percentiles, counts, errors, machine details).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp

from compose.kafka_local import LocalKafka
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import ServiceEndpoint, spawn_service_endpoint, wait_ready

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SERVICES_APP = "bench.services:app"
RESTATE_PACKAGE_JSON = PROJECT_ROOT / "compose" / "restate-server" / "node_modules" / "@restatedev" / "restate-server" / "package.json"
SYSTEMS = ("logstrate", "restate")
SYSTEM_LABELS = {"logstrate": "logstrate", "restate": "restate-server"}
JSON_HEADERS = {"content-type": "application/json"}
PROGRESS_EVERY_S = 5.0


def progress(message: str) -> None:
    """One progress line on stderr (the report alone goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- workloads and phases --------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One ingress request: path, JSON body and, when it is fixed, the expected answer."""

    name: str
    path: str
    body: bytes
    expect: bytes | None


NOOP = Workload("noop", "/Bench/noop", b'"hello"', b'"hello"')
TEN_STEPS = Workload("ten_steps", "/Bench/ten_steps", b'"hello"', b'"hello:10"')
COUNTER_ADD = Workload("counter_add", "/BenchCounter/bench/add", b"1", None)


@dataclass(frozen=True)
class Phase:
    """A measured run of one workload: how many connections, how much warm-up and load.

    ``requests`` > 0 measures that many requests; otherwise the phase lasts ``duration_s``.
    ``warmup_requests`` > 0 warms up with that many requests; otherwise for ``warmup_s``.
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


PHASE_KEYS = ("noop_seq", "noop_concurrent", "ten_steps_seq", "counter_add_seq")


def build_phases(args: argparse.Namespace) -> list[Phase]:
    seq = {"connections": 1, "requests": args.requests, "duration_s": 0.0, "warmup_requests": args.warmup, "warmup_s": 0.0}
    all_phases = {
        "noop_seq": Phase("noop_seq", "noop, 1 conn", NOOP, **seq),
        "noop_concurrent": Phase(
            "noop_concurrent", f"noop, {args.connections} conns", NOOP, args.connections,
            args.concurrent_requests, args.duration, 0, args.concurrent_warmup,
        ),
        "ten_steps_seq": Phase("ten_steps_seq", "10x ctx.run, 1 conn", TEN_STEPS, **seq),
        "counter_add_seq": Phase("counter_add_seq", "object add, 1 conn", COUNTER_ADD, **seq),
    }
    return [all_phases[key] for key in args.phases]


# -- load generation -------------------------------------------------------------------


@dataclass
class Budget:
    """Hands out request tickets until a request count or a deadline is reached."""

    max_requests: int | None
    deadline: float | None
    issued: int = 0

    def take(self) -> bool:
        if self.max_requests is not None and self.issued >= self.max_requests:
            return False
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return False
        self.issued += 1
        return True


@dataclass
class Samples:
    """Latencies of successful requests (seconds) and the failures, as they come in."""

    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.errors += 1
        if len(self.error_examples) < 5 and what not in self.error_examples:
            self.error_examples.append(what)


async def _worker(session: aiohttp.ClientSession, url: str, workload: Workload, budget: Budget, samples: Samples) -> None:
    while budget.take():
        started = time.perf_counter()
        try:
            async with session.post(url, data=workload.body, headers=JSON_HEADERS) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            samples.fail(f"{type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - started
        if status != 200:
            samples.fail(f"HTTP {status}: {body[:300].decode(errors='replace')}")
        elif workload.expect is not None and body != workload.expect:
            samples.fail(f"unexpected answer {body[:300]!r}, wanted {workload.expect!r}")
        else:
            samples.latencies_s.append(elapsed)


async def _report_progress(label: str, samples: Samples, started: float) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        progress(f"{label}: {time.perf_counter() - started:5.1f}s, {len(samples.latencies_s)} ok, {samples.errors} errors")


async def _drive(
    session: aiohttp.ClientSession, url: str, workload: Workload, connections: int, budget: Budget, label: str,
) -> tuple[Samples, float]:
    """Run ``connections`` closed-loop workers until the budget is spent; (samples, seconds)."""
    samples = Samples()
    started = time.perf_counter()
    reporter = asyncio.create_task(_report_progress(label, samples, started))
    try:
        await asyncio.gather(*(_worker(session, url, workload, budget, samples) for _ in range(connections)))
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    return samples, time.perf_counter() - started


@dataclass(frozen=True)
class Summary:
    """The measured part of one phase on one system."""

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


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of sorted data, linear between closest ranks."""
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples: Samples, elapsed_s: float) -> Summary:
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
    )


async def run_phase(ingress_url: str, phase: Phase, system: str, request_timeout: float) -> Summary:
    """Warm up, then measure one phase against one ingress."""
    url = f"{ingress_url}{phase.workload.path}"
    label = f"{system} {phase.key}"
    connector = aiohttp.TCPConnector(limit=phase.connections)
    timeout = aiohttp.ClientTimeout(total=request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if phase.warmup_requests > 0:
            warmup = Budget(phase.warmup_requests, None)
            progress(f"{label}: warm-up, {phase.warmup_requests} requests over {phase.connections} connection(s)")
        else:
            warmup = Budget(None, time.perf_counter() + phase.warmup_s)
            progress(f"{label}: warm-up, {phase.warmup_s:g}s over {phase.connections} connection(s)")
        warm, _ = await _drive(session, url, phase.workload, phase.connections, warmup, f"{label} warm-up")
        if warm.errors:
            progress(f"{label}: {warm.errors} errors during warm-up, e.g. {warm.error_examples[0]}")

        if phase.requests > 0:
            budget = Budget(phase.requests, None)
            progress(f"{label}: measuring {phase.requests} requests over {phase.connections} connection(s)")
        else:
            budget = Budget(None, time.perf_counter() + phase.duration_s)
            progress(f"{label}: measuring for {phase.duration_s:g}s over {phase.connections} connection(s)")
        samples, elapsed = await _drive(session, url, phase.workload, phase.connections, budget, label)
    summary = summarize(samples, elapsed)
    progress(
        f"{label}: {summary.ok} ok, {summary.errors} errors in {summary.elapsed_s:.1f}s, "
        f"p50 {_fmt(summary.p50_ms)} ms, p99 {_fmt(summary.p99_ms)} ms, {summary.throughput_rps:.1f} req/s"
    )
    for example in summary.error_examples:
        progress(f"{label}: error: {example}")
    return summary


# -- the systems under test ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A running system ready to be measured."""

    system: str
    ingress_url: str
    logs: list[Path]


def _post_json(url: str, payload: dict[str, Any] | bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers=JSON_HEADERS, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def register_and_wait(system: str, admin_url: str, ingress_url: str, endpoint: ServiceEndpoint, timeout: float) -> None:
    """Register the endpoint, wait until the ingress serves it, check every workload once."""
    status, body = _post_json(f"{admin_url}/deployments", {"uri": endpoint.url, "use_http_11": True})
    if status not in (200, 201):
        raise RuntimeError(f"{system}: registering {endpoint.url} answered {status}: {body.decode(errors='replace')}")

    def noop_answers() -> bool:
        return _post_json(f"{ingress_url}{NOOP.path}", NOOP.body, timeout=5.0)[0] == 200

    wait_until(noop_answers, timeout, f"{system} ingress to serve {NOOP.path}")
    for workload in (NOOP, TEN_STEPS, COUNTER_ADD):
        status, body = _post_json(f"{ingress_url}{workload.path}", workload.body)
        if status != 200 or (workload.expect is not None and body != workload.expect):
            raise RuntimeError(f"{system}: {workload.path} answered {status}: {body.decode(errors='replace')}")


def _start_endpoint(stack: contextlib.ExitStack, log_dir: Path) -> ServiceEndpoint:
    endpoint = spawn_service_endpoint(SERVICES_APP, log_dir)
    stack.callback(endpoint.stop)
    return wait_ready(endpoint)


def _stop_engine(engine: EngineProcess) -> None:
    if engine.proc is None or engine.proc.poll() is not None:
        return
    try:
        engine.terminate()
    except AssertionError:
        progress(f"the engine ignored SIGTERM and was killed; see {engine.log_path}")


def _child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _stop_restate(server: RestateServer) -> None:
    """Stop the server; the npm launcher is a node process whose child is the real binary,
    so make sure that child is gone too even if the launcher had to be killed."""
    if server.proc is None:
        return
    children = _child_pids(server.proc.pid)
    server.stop()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def logstrate_system(workdir: Path, args: argparse.Namespace) -> Iterator[Target]:
    """Kafka (local unless ``--kafka``), one engine process and its endpoint."""
    with contextlib.ExitStack() as stack:
        logs: list[Path] = []
        bootstrap = args.kafka
        if not bootstrap:
            kafka = LocalKafka(workdir=workdir / "kafka")
            stack.callback(kafka.stop)
            progress(f"logstrate: starting Kafka in {kafka.workdir}")
            bootstrap = kafka.start()
            logs.append(kafka.log_file)
        endpoint = _start_endpoint(stack, workdir)
        logs.append(endpoint.log_path)
        data_dir = workdir / "engine" / "data"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        engine = EngineProcess(
            bootstrap_servers=bootstrap,
            topic_prefix=f"bench-{uuid.uuid4().hex[:8]}",
            data_dir=data_dir,
            partitions=args.partitions,
        )
        logs.insert(0, engine.log_path)
        stack.callback(_stop_engine, engine)
        progress(f"logstrate: starting the engine ({args.partitions} partitions, log {engine.log_path})")
        engine.start_and_wait(timeout=args.startup_timeout)
        register_and_wait("logstrate", engine.admin_url, engine.ingress_url, endpoint, args.startup_timeout)
        yield Target("logstrate", engine.ingress_url, logs)


@contextlib.contextmanager
def restate_system(workdir: Path, args: argparse.Namespace) -> Iterator[Target]:
    """The pinned restate-server (single node, defaults) and its endpoint."""
    with contextlib.ExitStack() as stack:
        server = RestateServer(workdir / "restate")
        stack.callback(_stop_restate, server)
        progress(f"restate: starting restate-server {_restate_version()} in {server.base_dir}")
        server.start(timeout=args.startup_timeout)
        endpoint = _start_endpoint(stack, workdir)
        register_and_wait("restate", server.admin_url, server.ingress_url, endpoint, args.startup_timeout)
        yield Target("restate", server.ingress_url, [server.base_dir / "server.log", endpoint.log_path])


SYSTEM_RUNNERS = {"logstrate": logstrate_system, "restate": restate_system}


def _tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def bench_system(system: str, workdir: Path, phases: list[Phase], args: argparse.Namespace) -> dict[str, Summary]:
    """Start one system, run every phase against it, stop it; on failure show its log tail."""
    folder = workdir / system
    folder.mkdir(parents=True, exist_ok=True)
    logs: list[Path] = []
    try:
        with SYSTEM_RUNNERS[system](folder, args) as target:
            logs = target.logs
            return {phase.key: asyncio.run(run_phase(target.ingress_url, phase, system, args.request_timeout)) for phase in phases}
    except Exception:
        for log in logs or sorted(folder.rglob("*.log")):
            progress(f"{system}: last lines of {log}:\n{_tail(log)}")
        raise


# -- report ----------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}x"


def _restate_version() -> str:
    try:
        return str(json.loads(RESTATE_PACKAGE_JSON.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}+dirty" if dirty else rev


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    from engine.version import __version__ as engine_version

    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "logstrate": f"{engine_version} ({_git_revision()})",
        "restate_server": _restate_version(),
        "restate_sdk": metadata.version("restate-sdk"),
        "hypercorn": metadata.version("hypercorn"),
        "aiohttp": metadata.version("aiohttp"),
    }


def render_report(info: dict[str, Any], phases: list[Phase], results: dict[str, dict[str, Summary]], args: argparse.Namespace) -> str:
    ours, theirs = results.get("logstrate", {}), results.get("restate", {})
    lines = [
        f"logstrate {info['logstrate']} vs restate-server {info['restate_server']}: the same endpoint code "
        f"(restate-sdk {info['restate_sdk']}, hypercorn {info['hypercorn']}, HTTP/1.1, request/response), one endpoint process per system",
        f"machine: {info['cpus']} CPUs ({info['cpu_model']}); broker, engine/restate-server, endpoint and load generator "
        "all share these cores",
        f"1/5/15-min load average: {info['load_average_at_start']} at start, {info['load_average_at_end']} at end "
        "(anything else running on the machine skews the numbers)",
        f"logstrate: {args.partitions} WAL partitions, "
        + (f"external Kafka {args.kafka}" if args.kafka else "local single-node Kafka")
        + "; restate-server: single node, default settings",
        "latency = client wall time per request (ms); ratio = logstrate / restate-server "
        "(latency: above 1 is slower; req/s: below 1 is fewer)",
        "",
    ]
    header = ("workload", "metric", "logstrate", "restate-server", "ratio")
    rows: list[tuple[str, str, str, str, str]] = []
    for phase in phases:
        a, b = ours.get(phase.key), theirs.get(phase.key)
        metrics: list[tuple[str, str, int]] = []
        if phase.concurrent:
            metrics.append(("req/s", "throughput_rps", 1))
        metrics += [("p50 ms", "p50_ms", 2), ("p99 ms", "p99_ms", 2)]
        for i, (metric, attr, digits) in enumerate(metrics):
            va = getattr(a, attr) if a else None
            vb = getattr(b, attr) if b else None
            rows.append((phase.title if i == 0 else "", metric, _fmt(va, digits), _fmt(vb, digits), _ratio(va, vb)))
        rows.append(("", "ok / errors", _count(a), _count(b), ""))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)).rstrip()

    lines.append(line(header))
    lines.append("  ".join("-" * w for w in widths))
    lines += [line(row) for row in rows]
    return "\n".join(lines)


def _count(summary: Summary | None) -> str:
    return "-" if summary is None else f"{summary.ok} / {summary.errors}"


# -- command line ----------------------------------------------------------------------


def _csv(choices: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in choices]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)} (comma-separated), got {text!r}")
        return items

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.durable_core",
        description="Benchmark logstrate against restate-server with the same official-SDK endpoint.",
    )
    parser.add_argument("--requests", type=int, default=300, help="measured requests of each 1-connection phase (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up requests of each 1-connection phase (default 30)")
    parser.add_argument("--connections", type=int, default=32, help="connections of the concurrent noop phase (default 32)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds the concurrent phase measures (default 15)")
    parser.add_argument("--concurrent-requests", type=int, default=0, help="measure this many requests in the concurrent phase instead of --duration")
    parser.add_argument("--concurrent-warmup", type=float, default=3.0, help="warm-up seconds of the concurrent phase (default 3)")
    parser.add_argument("--phases", type=_csv(PHASE_KEYS), default=list(PHASE_KEYS), help=f"comma-separated subset of {','.join(PHASE_KEYS)}")
    parser.add_argument("--systems", type=_csv(SYSTEMS), default=list(SYSTEMS), help="comma-separated, in run order (default logstrate,restate)")
    parser.add_argument("--partitions", type=int, default=4, help="logstrate WAL partitions (default 4)")
    parser.add_argument("--kafka", default="", help="bootstrap servers of an existing Kafka instead of a local broker")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds before one request counts as failed (default 30)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for each system to start and serve (default 120)")
    parser.add_argument("--json", type=Path, help="also write the full results as JSON to this path")
    parser.add_argument("--keep-workdir", action="store_true", help="keep /tmp/bench-* (logs, data) even when the run succeeds")
    args = parser.parse_args(argv)
    for name in ("requests", "connections"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.concurrent_requests <= 0 and args.duration <= 0:
        parser.error("give --duration > 0 or --concurrent-requests > 0")
    return args


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    phases = build_phases(args)
    info = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
    progress(f"work folder {workdir}; {info['cpus']} CPUs shared by every process of the run")
    results: dict[str, dict[str, Summary]] = {}
    failures: dict[str, str] = {}
    try:
        for system in args.systems:
            try:
                results[system] = bench_system(system, workdir, phases, args)
            except Exception as exc:  # noqa: BLE001 - reported, and the other system still runs
                failures[system] = f"{type(exc).__name__}: {exc}"
                progress(f"{system}: FAILED: {failures[system]}")
    except KeyboardInterrupt:
        progress(f"interrupted; every process this run started is stopped; logs kept in {workdir}")
        return 130
    if failures or args.keep_workdir:
        progress(f"logs and data kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(render_report(info, phases, results, args))
    for system, failure in failures.items():
        print(f"{SYSTEM_LABELS[system]} did not complete: {failure}")
    if args.json:
        document = {
            "benchmark": "durable_core",
            "machine": info,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "phases": [
                {"key": p.key, "title": p.title, "path": p.workload.path, "connections": p.connections,
                 "requests": p.requests, "duration_s": p.duration_s, "warmup_requests": p.warmup_requests, "warmup_s": p.warmup_s}
                for p in phases
            ],
            "results": {system: {key: asdict(s) for key, s in by_phase.items()} for system, by_phase in results.items()},
            "failures": failures,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        progress(f"results written to {args.json}")
    failed = sum(s.errors for by_phase in results.values() for s in by_phase.values())
    if failed:
        progress(f"{failed} requests failed (see the error lines above and the ok / errors rows)")
    return 1 if failed or failures else 0


if __name__ == "__main__":
    sys.exit(main())
