"""Profile the engine under one benchmark workload with py-spy, and summarise the profile.

    .venv/bin/python -m bench.profile --workload noop --connections 32 --seconds 15

Starts the same logstrate system as ``bench.durable_core`` (local Kafka, one engine
process, the official-SDK endpoint), warms up, then drives the workload while
``py-spy record`` samples the engine process (every thread, idle samples dropped). Prints
the functions that hold the most samples, by *own* time (the frame on top of the stack)
and by *total* time (anywhere on the stack), per thread, and keeps the raw collapsed
stacks (``--out``) for a flame graph (``py-spy``'s format, e.g. for speedscope or
inferno). This is the "profile before optimising" step of docs/PERFORMANCE.md; it
measures nothing against restate-server.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.load import Budget, client_session, drive, progress, summarize
from bench.phases import NOOP, TEN_STEPS
from bench.systems import start_system

WORKLOADS = {"noop": NOOP, "ten_steps": TEN_STEPS}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--workload", choices=sorted(WORKLOADS), default="noop")
    add("--system", choices=("logstrate", "logstrate-h2"), default="logstrate")
    add("--connections", type=int, default=32)
    add("--seconds", type=float, default=15.0, help="profiled seconds of load (default 15)")
    add("--warmup", type=float, default=3.0, help="seconds of load before profiling (default 3)")
    add("--rate", type=int, default=250, help="py-spy samples per second (default 250)")
    add("--top", type=int, default=25, help="functions to print per table (default 25)")
    add("--out", type=Path, default=Path("engine-profile.txt"), help="collapsed stacks (default engine-profile.txt)")
    add("--partitions", type=int, default=4)
    add("--kafka", default="")
    add("--startup-timeout", type=float, default=120.0)
    return parser.parse_args(argv)


def summarise(collapsed: Path, top: int) -> str:
    """Own and total sample counts per function, from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        threads[frames[0]] += count
        own[frames[-1]] += count
        for frame in set(frames[1:]):
            total[frame] += count
    if not samples:
        return "no samples (was the engine busy?)"
    lines = [f"{samples} non-idle samples"]
    lines += ["", "per thread:"] + [f"  {100 * n / samples:5.1f}%  {t}" for t, n in threads.most_common(8)]
    lines += ["", "own time:"] + [f"  {100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "total time:"] + [f"  {100 * n / samples:5.1f}%  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines)


async def _load(ingress_url: str, args: argparse.Namespace, seconds: float, label: str) -> str:
    workload = WORKLOADS[args.workload]
    async with client_session(args.connections, 30.0) as session:
        samples, elapsed = await drive(
            session, ingress_url, workload, args.connections, Budget(None, time.perf_counter() + seconds), label
        )
    summary = summarize(samples, elapsed)
    return (f"{summary.ok} ok, {summary.errors} errors, {summary.throughput_rps:.1f} req/s, "
            f"p50 {summary.p50_ms} ms, p99 {summary.p99_ms} ms")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-", dir="/tmp"))
    with start_system(args.system, workdir, args) as running:
        engine_pid = running.pids()["engine"]
        progress(f"warming up for {args.warmup:g}s")
        asyncio.run(_load(running.ingress_url, args, args.warmup, "warm-up"))
        spy = subprocess.Popen([
            str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(engine_pid),
            "--rate", str(args.rate), "--duration", str(int(args.seconds)), "--threads",
            "--format", "raw", "--output", str(args.out), "--nonblocking",
        ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # py-spy attaches before the load starts
        result = asyncio.run(_load(running.ingress_url, args, args.seconds, "profiled"))
        _, err = spy.communicate(timeout=args.seconds + 60)
        if spy.returncode != 0:
            progress(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-2000:]}")
            return 1
    progress(f"load while profiled: {result}")
    print(summarise(args.out, args.top))
    progress(f"collapsed stacks in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
