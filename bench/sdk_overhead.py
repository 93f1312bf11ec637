"""SDK overhead benchmark: logstrate's SDK against the official Restate Python SDK.

Run from the project root::

    .venv/bin/python -m bench.sdk_overhead [--json results.json] [options]

The same two handlers, written once with each SDK, run on the same engine (logstrate):

- ``noop``: returns its input (``Bench/noop`` official, ``SdkBench/noop`` ours);
- ``ten_steps``: ten sequential ``ctx.run_typed`` steps (``Bench/ten_steps``,
  ``SdkBench/ten_steps``); in request/response mode each step is a journal entry and a
  suspension + re-invocation round trip, so this is where per-attempt SDK cost adds up.

Each SDK's endpoint is its own hypercorn process (HTTP/1.1, request/response): the
official app is ``bench.services:app``, ours ``bench.sdk_services:app``. One engine
process on a local single-node Kafka (or ``--kafka``) serves both. Every phase runs once
per SDK, back to back, alternating which SDK goes first from one phase to the next so
that slow drift of the machine does not always favour the same side. Phases:

``<workload>_seq``
    1 connection, sequential requests (``--requests`` measured after ``--warmup``).
``<workload>_concurrent``
    ``--connections`` closed-loop connections for ``--duration`` seconds.

Reported per phase and SDK: req/s, p50 and p99 latency (client wall time, answer fully
read), with the ratio logstrate SDK / official SDK. The load generator, the helpers and
the report style are ``bench/durable_core.py``'s; its caveat applies: everything shares
this machine's cores, so the ratios matter, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.durable_core import _interrupt_on_sigterm, machine_info
from bench.durable_core import csv_choice as _csv
from bench.durable_core import tail as _tail
from bench.load import Phase, Summary, Workload, progress, run_phase
from bench.load import fmt as _fmt
from bench.load import post_json as _post_json
from bench.load import ratio as _ratio
from bench.systems import stop_engine as _stop_engine
from compose.kafka_local import LocalKafka
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, spawn_service_endpoint, wait_ready

SDKS = ("official", "logstrate")
SDK_LABELS = {"official": "official SDK", "logstrate": "logstrate SDK"}
APPS = {"official": "bench.services:app", "logstrate": "bench.sdk_services:app"}
SERVICES = {"official": "Bench", "logstrate": "SdkBench"}
WORKLOADS = {"noop": (b'"hello"', b'"hello"'), "ten_steps": (b'"hello"', b'"hello:10"')}
PHASE_KEYS = ("noop_seq", "noop_concurrent", "ten_steps_seq", "ten_steps_concurrent")


def workload(sdk: str, name: str) -> Workload:
    """The request of workload ``name`` against the endpoint of ``sdk``."""
    body, expect = WORKLOADS[name]
    return Workload(name, f"/{SERVICES[sdk]}/{name}", body, expect)


def build_phases(args: argparse.Namespace, sdk: str) -> list[Phase]:
    """The selected phases, aimed at ``sdk``'s service."""
    phases: list[Phase] = []
    for key in args.phases:
        name, _, mode = key.rpartition("_")
        if mode == "seq":
            phases.append(Phase(key, f"{name}, 1 conn", workload(sdk, name), 1,
                                args.requests, 0.0, args.warmup, 0.0))
        else:
            phases.append(Phase(key, f"{name}, {args.connections} conns", workload(sdk, name),
                                args.connections, 0, args.duration, 0, args.concurrent_warmup))
    return phases


@dataclass(frozen=True)
class Setup:
    """The running engine and the two endpoints."""

    ingress_url: str
    logs: list[Path]


def _register(admin_url: str, ingress_url: str, endpoint: ServiceEndpoint, sdk: str, timeout: float) -> None:
    status, body = _post_json(f"{admin_url}/deployments", {"uri": endpoint.url, "use_http_11": True})
    if status not in (200, 201):
        raise RuntimeError(f"registering the {sdk} endpoint answered {status}: {body.decode(errors='replace')}")
    noop = workload(sdk, "noop")
    wait_until(lambda: _post_json(f"{ingress_url}{noop.path}", noop.body, 5.0)[0] == 200,
               timeout, f"the ingress to serve {noop.path}")
    for name in WORKLOADS:
        check = workload(sdk, name)
        status, body = _post_json(f"{ingress_url}{check.path}", check.body)
        if status != 200 or body != check.expect:
            raise RuntimeError(f"{check.path} answered {status}: {body.decode(errors='replace')}")


@contextlib.contextmanager
def setup(workdir: Path, args: argparse.Namespace) -> Iterator[Setup]:
    """Kafka (local unless ``--kafka``), one engine, both endpoints registered."""
    with contextlib.ExitStack() as stack:
        logs: list[Path] = []
        bootstrap = args.kafka
        if not bootstrap:
            kafka = LocalKafka(workdir=workdir / "kafka")
            stack.callback(kafka.stop)
            progress(f"starting Kafka in {kafka.workdir}")
            bootstrap = kafka.start()
            logs.append(kafka.log_file)
        endpoints: dict[str, ServiceEndpoint] = {}
        for sdk in SDKS:
            endpoint = spawn_service_endpoint(APPS[sdk], workdir)
            stack.callback(endpoint.stop)
            endpoints[sdk] = endpoint
            logs.append(endpoint.log_path)
        data_dir = workdir / "engine" / "data"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        engine = EngineProcess(bootstrap_servers=bootstrap, topic_prefix=f"bench-sdk-{uuid.uuid4().hex[:8]}",
                               data_dir=data_dir, partitions=args.partitions)
        logs.insert(0, engine.log_path)
        stack.callback(_stop_engine, engine)
        progress(f"starting the engine ({args.partitions} partitions, log {engine.log_path})")
        engine.start_and_wait(timeout=args.startup_timeout)
        for sdk, endpoint in endpoints.items():
            wait_ready(endpoint)
            _register(engine.admin_url, engine.ingress_url, endpoint, sdk, args.startup_timeout)
        yield Setup(engine.ingress_url, logs)


def render_report(info: dict[str, Any], args: argparse.Namespace, titles: dict[str, str],
                  results: dict[str, dict[str, Summary]]) -> str:
    """The side-by-side table (ratio = logstrate SDK / official SDK)."""
    lines = [
        f"logstrate SDK vs official restate-sdk {info['restate_sdk']}: same handlers, each SDK's endpoint its own "
        f"hypercorn {info['hypercorn']} process (HTTP/1.1, request/response), one logstrate engine "
        f"{info['logstrate']} ({args.partitions} WAL partitions, "
        + (f"Kafka {args.kafka})" if args.kafka else "local single-node Kafka)"),
        f"machine: {info['cpus']} CPUs ({info['cpu_model']}); Kafka, engine, both endpoints and the load generator "
        "share these cores",
        f"1/5/15-min load average: {info['load_average_at_start']} at start, {info['load_average_at_end']} at end",
        "latency = client wall time per request (ms); ratio = logstrate SDK / official SDK "
        "(req/s: above 1 is faster; latency: below 1 is faster)",
        "",
    ]
    header = ("workload", "metric", "official SDK", "logstrate SDK", "ratio")
    rows: list[tuple[str, str, str, str, str]] = []
    ours, theirs = results.get("logstrate", {}), results.get("official", {})
    for key in args.phases:
        a, b = ours.get(key), theirs.get(key)
        for i, (metric, attr, digits) in enumerate((("req/s", "throughput_rps", 1), ("p50 ms", "p50_ms", 2),
                                                    ("p99 ms", "p99_ms", 2))):
            va = getattr(a, attr) if a else None
            vb = getattr(b, attr) if b else None
            rows.append((titles[key] if i == 0 else "", metric, _fmt(vb, digits), _fmt(va, digits), _ratio(va, vb)))
        rows.append(("", "ok / errors", _count(b), _count(a), ""))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(row)).rstrip()

    lines += [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]
    return "\n".join(lines)


def _count(summary: Summary | None) -> str:
    return "-" if summary is None else f"{summary.ok} / {summary.errors}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sdk_overhead",
        description="Benchmark logstrate's SDK against the official restate-sdk on one logstrate engine.",
    )
    parser.add_argument("--requests", type=int, default=300, help="measured requests of each 1-connection phase (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up requests of each 1-connection phase (default 30)")
    parser.add_argument("--connections", type=int, default=16, help="connections of the concurrent phases (default 16)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds each concurrent phase measures (default 10)")
    parser.add_argument("--concurrent-warmup", type=float, default=2.0, help="warm-up seconds of each concurrent phase (default 2)")
    parser.add_argument("--phases", type=_csv(PHASE_KEYS), default=list(PHASE_KEYS), help=f"comma-separated subset of {','.join(PHASE_KEYS)}")
    parser.add_argument("--partitions", type=int, default=4, help="WAL partitions (default 4)")
    parser.add_argument("--kafka", default="", help="bootstrap servers of an existing Kafka instead of a local broker")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds before one request counts as failed (default 30)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for Kafka, the engine and the endpoints (default 120)")
    parser.add_argument("--json", type=Path, help="also write the full results as JSON to this path")
    parser.add_argument("--keep-workdir", action="store_true", help="keep /tmp/bench-sdk-* (logs, data) even when the run succeeds")
    args = parser.parse_args(argv)
    for name in ("requests", "connections"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.duration <= 0:
        parser.error("--duration must be positive")
    return args


def run(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, dict[str, Summary]], dict[str, str]]:
    """Every phase for both SDKs, alternating which goes first; (results, phase titles)."""
    phases = {sdk: {p.key: p for p in build_phases(args, sdk)} for sdk in SDKS}
    results: dict[str, dict[str, Summary]] = {sdk: {} for sdk in SDKS}
    logs: list[Path] = []
    try:
        with setup(workdir, args) as ready:
            logs = ready.logs
            for index, key in enumerate(args.phases):
                order = SDKS if index % 2 == 0 else tuple(reversed(SDKS))
                for sdk in order:
                    summary = asyncio.run(run_phase(ready.ingress_url, phases[sdk][key], SDK_LABELS[sdk],
                                                    args.request_timeout))
                    results[sdk][key] = summary
    except Exception:
        for log in logs or sorted(workdir.rglob("*.log")):
            progress(f"last lines of {log}:\n{_tail(log)}")
        raise
    return results, {key: phase.title for key, phase in phases["official"].items()}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    info = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="bench-sdk-", dir="/tmp"))
    progress(f"work folder {workdir}; {info['cpus']} CPUs shared by every process of the run")
    try:
        results, titles = run(args, workdir)
    except KeyboardInterrupt:
        progress(f"interrupted; every process this run started is stopped; logs kept in {workdir}")
        return 130
    except Exception as exc:  # noqa: BLE001 - reported with the logs' tails above
        progress(f"FAILED: {type(exc).__name__}: {exc}; logs kept in {workdir}")
        return 1
    if args.keep_workdir:
        progress(f"logs and data kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(render_report(info, args, titles, results))
    if args.json:
        document = {
            "benchmark": "sdk_overhead",
            "machine": info,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "results": {sdk: {key: asdict(s) for key, s in by_phase.items()} for sdk, by_phase in results.items()},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        progress(f"results written to {args.json}")
    failed = sum(s.errors for by_phase in results.values() for s in by_phase.values())
    if failed:
        progress(f"{failed} requests failed (see the ok / errors rows)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
