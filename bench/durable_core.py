"""Durable-core benchmark: logstrate against the real restate-server, same service code.

Run from the project root::

    .venv/bin/python -m bench.durable_core [--rounds 3] [--json results.json] [options]

One command runs every phase (``--phases``, see ``bench/phases.py`` and
``bench/README.md``) on every system (``--systems``: logstrate; restate-server with the
endpoint over HTTP/1.1, request/response; restate-server over HTTP/2, bidirectional
streaming, for the 10-step phase only), ``--rounds`` times. Within a round the systems
run one after the other (logstrate, restate, restate-h2, logstrate-h2, then the next round), each
started fresh in its own work folder, so only the system under test is running while it
is measured and slow drift of the machine is shared out. The report is a ratio table of
medians over rounds with their spread, the ratio logstrate / restate and issue 12's goal.

Modules: ``bench/load.py`` (load generator), ``bench/procstats.py`` (``/proc`` CPU and
memory), ``bench/systems.py`` (starting, crashing, restarting, stopping the systems),
``bench/phases.py`` (the phases), ``bench/report.py`` (the table).
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
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from bench.load import progress
from bench.phases import H2_PHASES, PHASE_KEYS, PHASES, Completions, Outcome, PhaseContext
from bench.procstats import peak_rss_mib
from bench.report import Samples, render
from bench.systems import SYSTEMS, Running, restate_version, start_system

PROJECT_ROOT = Path(__file__).resolve().parents[1]


# -- machine ---------------------------------------------------------------------------


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
        "restate_server": restate_version(),
        "restate_sdk": metadata.version("restate-sdk"),
        "hypercorn": metadata.version("hypercorn"),
        "aiohttp": metadata.version("aiohttp"),
    }


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- one system, one round -------------------------------------------------------------


def _peak_rss(running: Running, seen: dict[str, float]) -> None:
    """Fold the processes' current ``VmHWM`` into ``seen`` (a restart resets it)."""
    for role, pid in running.pids().items():
        value = peak_rss_mib(pid)
        if value is not None:
            seen[role] = max(seen.get(role, 0.0), value)


async def run_phases(running: Running, keys: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Every phase in ``keys`` against one running system; kill_recovery (if chosen) last."""
    completions = Completions()
    await completions.start()
    ctx = PhaseContext(running, args, completions)
    outcomes: dict[str, Outcome] = {}
    rss: dict[str, float] = {}
    try:
        for key in keys:
            if key == "kill_recovery":
                _peak_rss(running, rss)
            try:
                outcomes[key] = await PHASES[key](ctx)
            except Exception as exc:  # noqa: BLE001 - reported as the phase's error; the next phase still runs
                progress(f"{running.system} {key}: FAILED: {type(exc).__name__}: {exc}")
                outcomes[key] = Outcome()
                outcomes[key].fail(f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            _peak_rss(running, rss)
    finally:
        await completions.stop()
    return {"phases": {k: asdict(o) for k, o in outcomes.items()}, "rss_mib": rss, "notes": running.notes}


def phases_for(system: str, selected: list[str]) -> list[str]:
    keys = [k for k in PHASE_KEYS if k in selected]
    return [k for k in keys if k in H2_PHASES] if system.endswith("-h2") else keys


def bench_system(system: str, round_no: int, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start one system, run its phases, stop it; on failure show its logs' tails."""
    folder = workdir / f"round{round_no}" / system
    folder.mkdir(parents=True, exist_ok=True)
    logs: list[Path] = []
    progress(f"== round {round_no}: {system} ==")
    try:
        with start_system(system, folder, args) as running:
            logs = running.logs
            result = asyncio.run(run_phases(running, phases_for(system, args.phases), args))
    except Exception as exc:
        for log in logs or sorted(folder.rglob("*.log")):
            progress(f"{system}: last lines of {log}:\n{tail(log)}")
        return {"round": round_no, "system": system, "failure": f"{type(exc).__name__}: {exc}", "phases": {}}
    if any(o["errors"] for o in result["phases"].values()):
        progress(f"{system}: errors this round; see {', '.join(str(log) for log in logs)}")
    return {"round": round_no, "system": system, **result}


def collect(runs: list[dict[str, Any]]) -> Samples:
    """Metric values per system over the rounds, from the raw runs."""
    samples: Samples = {}
    for run in runs:
        per_metric = samples.setdefault(run["system"], {})
        for key, outcome in run.get("phases", {}).items():
            for name, value in outcome["metrics"].items():
                if value is not None:
                    per_metric.setdefault(f"{key}.{name}", []).append(float(value))
        for role, value in run.get("rss_mib", {}).items():
            per_metric.setdefault(f"rss.{role}", []).append(float(value))
    return samples


# -- command line ----------------------------------------------------------------------


def csv_choice(choices: Sequence[str]) -> Any:
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
    add = parser.add_argument
    add("--rounds", type=int, default=3, help="run everything this many times, systems alternating (default 3)")
    add("--phases", type=csv_choice(PHASE_KEYS), default=list(PHASE_KEYS), help=f"comma-separated subset of {','.join(PHASE_KEYS)}")
    add("--systems", type=csv_choice(SYSTEMS), default=list(SYSTEMS), help="comma-separated, in run order (default all three)")
    add("--requests", type=int, default=300, help="measured requests of each 1-connection phase (default 300)")
    add("--warmup", type=int, default=30, help="warm-up requests of each 1-connection phase (default 30)")
    add("--connections", type=int, default=32, help="connections of the concurrent phases and of the /send submitters (default 32)")
    add("--duration", type=float, default=15.0, help="seconds each concurrent phase measures (default 15)")
    add("--concurrent-requests", type=int, default=0, help="measure this many requests in the concurrent phases instead of --duration")
    add("--concurrent-warmup", type=float, default=3.0, help="warm-up seconds of the concurrent phases (default 3)")
    add("--keys", type=int, default=100, help="object keys of counter_add (default 100)")
    add("--sends", type=int, default=5000, help="measured /send jobs of the sends phase (default 5000)")
    add("--send-warmup", type=int, default=100, help="warm-up /send jobs of the sends phase (default 100)")
    add("--timer-calls", type=int, default=50, help="concurrent Bench/timers calls, 20 sleeps each (default 50)")
    add("--kill-sends", type=int, default=200, help="jobs in flight at the kill -9 (default 200)")
    add("--kill-sleep-ms", type=int, default=2000, help="how long each of those jobs sleeps (default 2000)")
    add("--kill-deadline", type=float, default=180.0, help="seconds after the restart before a job counts as lost (default 180)")
    add("--completion-timeout", type=float, default=300.0, help="seconds to wait for /send jobs to complete (default 300)")
    add("--idle-seconds", type=float, default=10.0, help="seconds of idle CPU sampling (default 10)")
    add("--idle-settle", type=float, default=15.0,
        help="seconds between the warm-up request and idle sampling (default 15: the broker JVM is still compiling and loading for some seconds after start-up)")
    add("--partitions", type=int, default=4, help="logstrate WAL partitions (default 4)")
    add("--kafka", default="", help="bootstrap servers of an existing Kafka instead of a local broker (no kill_recovery, no broker CPU)")
    add("--request-timeout", type=float, default=30.0, help="seconds before one request counts as failed (default 30)")
    add("--startup-timeout", type=float, default=120.0, help="seconds to wait for each system to start and serve (default 120)")
    add("--json", type=Path, help="also write every round's raw results (latency samples included) to this path")
    add("--keep-workdir", action="store_true", help="keep /tmp/bench-* (logs, data) even when the run succeeds")
    args = parser.parse_args(argv)
    for name in ("rounds", "requests", "connections", "keys", "sends", "timer_calls", "kill_sends"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.concurrent_requests <= 0 and args.duration <= 0:
        parser.error("give --duration > 0 or --concurrent-requests > 0")
    return args


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    info = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
    progress(f"work folder {workdir}; {info['cpus']} CPUs shared by every process of the run")
    systems = [s for s in args.systems if phases_for(s, args.phases)]
    runs: list[dict[str, Any]] = []
    try:
        for round_no in range(1, args.rounds + 1):
            for system in systems:
                runs.append(bench_system(system, round_no, workdir, args))
    except KeyboardInterrupt:
        progress(f"interrupted; every process this run started is stopped; logs kept in {workdir}")
        return 130
    failed = sum(o["errors"] for r in runs for o in r.get("phases", {}).values())
    broken = [r for r in runs if r.get("failure")]
    if failed or broken or args.keep_workdir:
        progress(f"logs and data kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    samples = collect(runs)
    print(render(info, samples, runs, args))
    if args.json:
        document = {
            "benchmark": "durable_core",
            "machine": info,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "metrics": samples,
            "runs": runs,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=1) + "\n")
        progress(f"results written to {args.json}")
    if failed:
        progress(f"{failed} errors (see the error lines above and at the end of the report)")
    return 1 if failed or broken else 0


if __name__ == "__main__":
    sys.exit(main())
