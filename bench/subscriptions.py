"""Kafka-subscription benchmark: events/s end to end, logstrate against restate-server.

Run from the project root::

    .venv/bin/python -m bench.subscriptions [--events 100000] [--keys 200] [--json out.json]

For each workload (``noop``: ``BenchEvents/{key}/noop``, which does nothing; ``count``:
``BenchEvents/{key}/count``, a read-modify-write of one state entry) and each system:

1. ``--events`` JSON events are published to a fresh 4-partition topic on one shared local
   Kafka broker, round-robin over ``--keys`` record keys, then one ``{"done": true}``
   marker per key (for ``noop``, whose handler leaves no other trace);
2. the clock starts and a subscription ``kafka://bench/<topic>`` → the sink is created
   with ``auto.offset.reset=earliest`` (the cluster is registered through
   ``POST /kafka-clusters`` on both systems);
3. the clock stops when every key's ``BenchEvents/{key}/progress`` (a shared handler,
   called through the ingress) shows all its events: the marker for ``noop``, the full
   count for ``count``. Events for one key run one at a time, in order, on both systems.

events/s = events / elapsed. The two systems run one after the other on the same broker
and machine, each with its own endpoint process (``bench.services:app``, official SDK,
hypercorn over HTTP/1.1). Everything shares this machine's cores; the ratio is the point.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.durable_core import machine_info
from bench.load import progress
from bench.systems import endpoint_requests, restate_binary_pid
from bench.systems import start_endpoint as _start_endpoint
from bench.systems import stop_engine as _stop_engine
from bench.systems import stop_restate as _stop_restate
from compose.kafka_local import LocalKafka
from compose.processes import wait_gone
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import wait_until
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import ServiceEndpoint
from tests.fixtures.systems import http

WORKLOADS = ("noop", "count", "kill")
SYSTEMS = ("logstrate", "restate")


@dataclass(frozen=True)
class Running:
    system: str
    admin_url: str
    ingress_url: str
    endpoint: ServiceEndpoint
    crash: Callable[[], None]
    """SIGKILL the engine process (logstrate) or the server (restate); the broker and
    the endpoint stay up."""
    restart: Callable[[], None]
    """Start it again on the same ports and data; returns once it serves."""


@dataclass(frozen=True)
class Recovery:
    """The ``kill`` workload: latencies of a subscription's start and of its resumption."""

    system: str
    first_event_s: float
    resume_s: float
    events: int


@dataclass(frozen=True)
class Result:
    system: str
    workload: str
    events: int
    elapsed_s: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s


@contextlib.contextmanager
def running(system: str, workdir: Path, bootstrap: str, partitions: int) -> Iterator[Running]:
    """One system with its own endpoint registered (HTTP/1.1) and the broker as cluster ``bench``."""
    with contextlib.ExitStack() as stack:
        endpoint = _start_endpoint(stack, workdir)
        if system == "logstrate":
            engine = EngineProcess(bootstrap_servers=bootstrap, topic_prefix=f"bench-{uuid.uuid4().hex[:8]}",
                                   data_dir=workdir / "engine" / "data", partitions=partitions)
            engine.data_dir.parent.mkdir(parents=True, exist_ok=True)
            stack.callback(_stop_engine, engine)
            engine.start_and_wait(timeout=120)

            def crash_engine() -> None:
                assert engine.proc is not None
                engine.proc.send_signal(signal.SIGKILL)
                engine.proc.wait(timeout=30)

            target = Running(system, engine.admin_url, engine.ingress_url, endpoint, crash_engine,
                             lambda: engine.start_and_wait(timeout=120))
        else:
            server = RestateServer(workdir / "restate")
            stack.callback(_stop_restate, server)
            server.start(timeout=120)

            def crash_server() -> None:
                assert server.proc is not None
                binary = restate_binary_pid(server)
                for pid in (binary, server.proc.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                server.proc.wait(timeout=30)
                wait_gone(binary, 30.0)

            target = Running(system, server.admin_url, server.ingress_url, endpoint, crash_server,
                             lambda: server.start(timeout=120))
        status, body = http("POST", f"{target.admin_url}/deployments", {"uri": endpoint.url, "use_http_11": True})
        if status not in (200, 201):
            raise RuntimeError(f"{system}: registering the endpoint answered {status}: {body}")
        status, body = http("POST", f"{target.admin_url}/kafka-clusters",
                            {"name": "bench", "properties": {"bootstrap.servers": bootstrap}})
        if status not in (200, 201):
            raise RuntimeError(f"{system}: POST /kafka-clusters answered {status}: {body}")
        yield target


def _progress(target: Running, key: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{target.ingress_url}/BenchEvents/{key}/progress", method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


def run_workload(target: Running, workload: str, bootstrap: str, events: int, keys: int) -> Result:
    topic = f"bench-{target.system}-{workload}-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, 4)
    key_names = [f"{workload}-{i:04d}" for i in range(keys)]
    progress(f"{target.system}/{workload}: publishing {events} events over {keys} keys to {topic}")
    stream = ((key_names[i % keys].encode(), {"seq": i // keys}) for i in range(events))
    markers = ((k.encode(), {"done": True}) for k in key_names) if workload == "noop" else iter(())
    publish(bootstrap, topic, (*stream, *markers))
    per_key = {k: len(range(i, events, keys)) for i, k in enumerate(key_names)}

    started = time.monotonic()
    status, body = http("POST", f"{target.admin_url}/subscriptions", {
        "source": f"kafka://bench/{topic}", "sink": f"service://BenchEvents/{workload}",
        "options": {"auto.offset.reset": "earliest"},
    })
    if status not in (200, 201):
        raise RuntimeError(f"{target.system}: POST /subscriptions answered {status}: {body}")
    pending = set(key_names)

    def finished() -> bool:
        with ThreadPoolExecutor(8) as pool:
            answers = dict(zip(pending, pool.map(lambda k: _progress(target, k), list(pending))))
        for key, answer in answers.items():
            if (answer["done"] if workload == "noop" else answer["count"] >= per_key[key]):
                pending.discard(key)
        progress(f"{target.system}/{workload}: {keys - len(pending)}/{keys} keys done after "
                 f"{time.monotonic() - started:.1f}s")
        return not pending

    wait_until(finished, 3600, f"{target.system} to process {events} events", interval=1.0)
    elapsed = time.monotonic() - started
    if workload == "count":
        wrong = {k: c for k in key_names if (c := _progress(target, k)["count"]) != per_key[k]}
        if wrong:
            raise RuntimeError(f"{target.system}: counts differ from the events published: {list(wrong.items())[:5]}")
    result = Result(target.system, workload, events, elapsed)
    progress(f"{target.system}/{workload}: {events} events in {elapsed:.1f}s = {result.events_per_s:.0f} events/s")
    return result


def _served(target: Running) -> int:
    """Invocation requests the system's endpoint has received so far."""
    return sum(endpoint_requests(target.endpoint).values())


def _wait_served(target: Running, above: int, timeout: float, what: str) -> float:
    """Seconds until the endpoint has received more than ``above`` requests (polled every 20 ms)."""
    started = time.monotonic()
    wait_until(lambda: _served(target) > above, timeout, f"{target.system}: {what}", interval=0.02)
    return time.monotonic() - started


def run_kill(target: Running, bootstrap: str, events: int, keys: int) -> Recovery:
    """``count`` events through a new subscription with one SIGKILL + restart of the
    system in the middle: how long until the first event reaches the endpoint after
    ``POST /subscriptions``, how long until events reach it again after the restart is
    begun, and every key's count exact at the end (nothing lost, nothing twice)."""
    topic = f"bench-{target.system}-kill-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, 4)
    key_names = [f"kill-{i:04d}" for i in range(keys)]
    progress(f"{target.system}/kill: publishing {events} events over {keys} keys to {topic}")
    publish(bootstrap, topic, ((key_names[i % keys].encode(), {"seq": i // keys}) for i in range(events)))
    per_key = {k: len(range(i, events, keys)) for i, k in enumerate(key_names)}

    before = _served(target)
    started = time.monotonic()
    status, body = http("POST", f"{target.admin_url}/subscriptions", {
        "source": f"kafka://bench/{topic}", "sink": "service://BenchEvents/count",
        "options": {"auto.offset.reset": "earliest"},
    })
    if status not in (200, 201):
        raise RuntimeError(f"{target.system}: POST /subscriptions answered {status}: {body}")
    _wait_served(target, before, 120, "the first event to reach the endpoint")
    first_event = time.monotonic() - started
    progress(f"{target.system}/kill: first event at the endpoint {first_event:.2f}s after POST /subscriptions")
    # Kill once a third of the events went through, so there is work left on every key.
    wait_until(lambda: _served(target) >= before + events // 3, 600, f"{target.system}: a third of the events",
               interval=0.05)
    target.crash()
    at_kill = _served(target)
    progress(f"{target.system}/kill: SIGKILL after {at_kill - before} endpoint requests; restarting")
    restarted = time.monotonic()
    resumed: list[float] = []

    def watch() -> None:
        _wait_served(target, at_kill, 300, "events to reach the endpoint again after the restart")
        resumed.append(time.monotonic() - restarted)

    with ThreadPoolExecutor(1) as pool:
        watcher = pool.submit(watch)
        target.restart()
        watcher.result()
    progress(f"{target.system}/kill: events reach the endpoint again {resumed[0]:.2f}s after the restart began")

    def done() -> bool:
        return all(_progress(target, k)["count"] >= n for k, n in per_key.items())

    wait_until(done, 3600, f"{target.system} to count all {events} events after the restart", interval=1.0)
    wrong = {k: c for k in key_names if (c := _progress(target, k)["count"]) != per_key[k]}
    if wrong:
        raise RuntimeError(f"{target.system}: counts differ from the events published after a kill: "
                           f"{list(wrong.items())[:5]}")
    return Recovery(target.system, first_event, resumed[0], events)


def render_recovery(recoveries: list[Recovery]) -> str:
    by = {r.system: r for r in recoveries}
    ours, theirs = by.get("logstrate"), by.get("restate")
    lines = ["", "Subscription start and kill -9 recovery (the `kill` workload; goals: first event <= 3 s, resume <= 5 s)",
             "", "| metric | logstrate s | restate s | ratio |", "|---|---|---|---|"]
    for label, attr in (("first event after POST /subscriptions", "first_event_s"),
                        ("events again after kill -9 + restart", "resume_s")):
        a = getattr(ours, attr) if ours else None
        b = getattr(theirs, attr) if theirs else None
        ratio = f"{a / b:.2f}x" if a is not None and b else "n/a"
        lines.append(f"| {label} | {'n/a' if a is None else f'{a:.2f}'} | {'n/a' if b is None else f'{b:.2f}'} | {ratio} |")
    return "\n".join(lines)


def render(results: list[Result], args: argparse.Namespace) -> str:
    by = {(r.system, r.workload): r for r in results}
    lines = [
        f"Kafka subscription throughput: {args.events} events over {args.keys} keys, 4 source partitions",
        "",
        "| workload | logstrate events/s | restate events/s | ratio (logstrate / restate) |",
        "|---|---|---|---|",
    ]
    for workload in [w for w in args.workloads if w != "kill"]:
        ours, theirs = by.get(("logstrate", workload)), by.get(("restate", workload))
        ratio = f"{ours.events_per_s / theirs.events_per_s:.2f}x" if ours and theirs else "n/a"
        lines.append(f"| {workload} | {ours.events_per_s:.0f} | " if ours else f"| {workload} | n/a | ")
        lines[-1] += f"{theirs.events_per_s:.0f} | {ratio} |" if theirs else f"n/a | {ratio} |"
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events per workload and system (default 100000)")
    parser.add_argument("--keys", type=int, default=200, help="distinct record keys (default 200)")
    parser.add_argument("--partitions", type=int, default=4, help="logstrate WAL partitions (default 4)")
    parser.add_argument("--workloads", type=lambda s: s.split(","), default=list(WORKLOADS),
                        help="noop, count, kill (comma-separated; default all)")
    parser.add_argument("--kill-events", type=int, default=3000, help="events of the kill workload (default 3000)")
    parser.add_argument("--systems", type=lambda s: s.split(","), default=list(SYSTEMS))
    parser.add_argument("--kafka", help="bootstrap servers of an existing broker (default: start a local one)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(f"/tmp/bench-subscriptions-{uuid.uuid4().hex[:6]}")
    results: list[Result] = []
    recoveries: list[Recovery] = []
    with contextlib.ExitStack() as stack:
        bootstrap = args.kafka
        if not bootstrap:
            kafka = LocalKafka(workdir=workdir / "kafka")
            stack.callback(kafka.stop)
            progress(f"starting Kafka in {kafka.workdir}")
            bootstrap = kafka.start()
        for system in args.systems:
            folder = workdir / system
            folder.mkdir(parents=True, exist_ok=True)
            with running(system, folder, bootstrap, args.partitions) as target:
                for workload in args.workloads:
                    if workload == "kill":
                        recoveries.append(run_kill(target, bootstrap, args.kill_events, args.keys))
                    else:
                        results.append(run_workload(target, workload, bootstrap, args.events, args.keys))
    report = render(results, args) + (render_recovery(recoveries) if recoveries else "")
    sys.stdout.write(report + "\n")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine_info(), "events": args.events, "keys": args.keys,
            "results": [{**r.__dict__, "events_per_s": r.events_per_s} for r in results],
            "recoveries": [r.__dict__ for r in recoveries],
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
