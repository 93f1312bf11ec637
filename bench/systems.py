"""Starting, crashing, restarting and stopping the systems under test.

- **logstrate**: a local single-node Kafka broker (``compose/kafka_local.py``, or
  ``--kafka`` for an existing one), one engine process (``python -m engine serve``) and its
  own service endpoint, registered with ``use_http_11``: request/response over HTTP/1.1;
- **logstrate-h2** (``logstrate (h2 bidi)``): the same engine started with
  ``--invoker-http2`` and the endpoint registered without ``use_http_11``, so it is
  discovered over HTTP/2 and driven as bidirectional streams (logstrate's default);
- **restate** (``restate (h1 req/resp)``): the pinned restate-server, single node, default
  settings, with its own endpoint registered with ``"use_http_11": true``: request/response;
- **restate-h2** (``restate (h2 bidi)``): the same, with the endpoint registered without it,
  so restate-server discovers it over HTTP/2 (h2c, prior knowledge; hypercorn serves both on
  one port) and the SDK answers in bidirectional-streaming mode. Registration checks that
  the deployment really came out as ``BidiStream`` over ``HTTP/2.0``.

The endpoint is ``bench.services:app`` (official ``restate-sdk``) under hypercorn, one
process per system. Every process of a system can be SIGKILLed at once and restarted on
the same ports and data folders (:meth:`Running.crash`, :meth:`Running.restart`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import NOOP_BODY, get_json, post_json, progress
from bench.procstats import children
from compose.kafka_local import LocalKafka
from compose.processes import port_taken, wait_gone
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import PROJECT_ROOT, ServiceEndpoint, spawn_service_endpoint, wait_ready

SERVICES_APP = "bench.services:app"
SYSTEMS = ("logstrate", "restate", "restate-h2", "logstrate-h2")
SYSTEM_LABELS = {
    "logstrate": "logstrate", "restate": "restate (h1 req/resp)", "restate-h2": "restate (h2 bidi)",
    "logstrate-h2": "logstrate (h2 bidi)",
}
RESTATE_PACKAGE_JSON = PROJECT_ROOT / "compose" / "restate-server" / "node_modules" / "@restatedev" / "restate-server" / "package.json"


def restate_version() -> str:
    try:
        return str(json.loads(RESTATE_PACKAGE_JSON.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


# -- endpoints -------------------------------------------------------------------------


def start_endpoint(stack: contextlib.ExitStack, log_dir: Path) -> ServiceEndpoint:
    """A fresh ``bench.services:app`` endpoint, stopped when ``stack`` closes."""
    endpoint = spawn_service_endpoint(SERVICES_APP, log_dir)
    stack.callback(endpoint.stop)
    return wait_ready(endpoint)


def respawn_endpoint(endpoint: ServiceEndpoint) -> None:
    """Start ``endpoint`` again on its port (its deployment is registered at that URL);
    the same command as :func:`spawn_service_endpoint`. Does not wait (see ``wait_ready``)."""
    with endpoint.log_path.open("ab") as log_file:
        endpoint.process = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", endpoint.app, "--bind", f"127.0.0.1:{endpoint.port}", "--workers", "0"],
            cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
        )


def endpoint_requests(endpoint: ServiceEndpoint) -> dict[str, int]:
    """Invocation requests the endpoint process served so far, per HTTP version."""
    return {str(k): int(v) for k, v in get_json(f"{endpoint.url}/bench/requests").items()}


def register_and_wait(
    system: str, admin_url: str, ingress_url: str, endpoint: ServiceEndpoint, timeout: float, http11: bool = True,
) -> None:
    """Register the endpoint, wait until the ingress serves it, check the workloads once."""
    payload: dict[str, object] = {"uri": endpoint.url}
    if http11:
        payload["use_http_11"] = True
    status, body = post_json(f"{admin_url}/deployments", payload)
    if status not in (200, 201):
        raise RuntimeError(f"{system}: registering {endpoint.url} answered {status}: {body.decode(errors='replace')}")

    def noop_answers() -> bool:
        return post_json(f"{ingress_url}/Bench/noop", NOOP_BODY, timeout=5.0)[0] == 200

    wait_until(noop_answers, timeout, f"{system} ingress to serve /Bench/noop")
    for path, request, expect in (
        ("/Bench/noop", NOOP_BODY, NOOP_BODY),
        ("/Bench/ten_steps", NOOP_BODY, b'"hello:10"'),
        ("/BenchCounter/warm-up/add", b"1", None),
    ):
        status, body = post_json(f"{ingress_url}{path}", request)
        if status != 200 or (expect is not None and body != expect):
            raise RuntimeError(f"{system}: {path} answered {status}: {body.decode(errors='replace')}")


def check_restate_protocol(admin_url: str, endpoint: ServiceEndpoint, http11: bool) -> str:
    """The protocol restate-server chose for the endpoint's deployment, checked against the
    wanted mode: ``RequestResponse`` over HTTP/1.1, or ``BidiStream`` over HTTP/2."""
    for deployment in get_json(f"{admin_url}/deployments")["deployments"]:
        if str(deployment.get("uri", "")).rstrip("/") == endpoint.url:
            found = f"{deployment.get('protocol_type')} over {deployment.get('http_version')}"
            wanted = ("RequestResponse", "HTTP/1.1") if http11 else ("BidiStream", "HTTP/2.0")
            if (deployment.get("protocol_type"), deployment.get("http_version")) != wanted:
                raise RuntimeError(f"restate-server registered {endpoint.url} as {found}, wanted {wanted[0]} over {wanted[1]}")
            return found
    raise RuntimeError(f"restate-server lists no deployment at {endpoint.url}")


# -- stopping --------------------------------------------------------------------------


def stop_engine(engine: EngineProcess) -> None:
    if engine.proc is None or engine.proc.poll() is not None:
        return
    try:
        engine.terminate()
    except AssertionError:
        progress(f"the engine ignored SIGTERM and was killed; see {engine.log_path}")


def stop_restate(server: RestateServer) -> None:
    """Stop the server; the npm launcher is a node process whose child is the real binary,
    so make sure that child is gone too even if the launcher had to be killed."""
    if server.proc is None:
        return
    binaries = children(server.proc.pid)
    server.stop()
    for pid in binaries:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def restate_binary_pid(server: RestateServer, timeout: float = 10.0) -> int:
    """The pid of the real restate-server binary (the npm launcher's one child)."""
    assert server.proc is not None
    launcher = server.proc.pid
    return wait_until(lambda: (children(launcher) or [0])[0], timeout, "the restate-server binary under its launcher")


def _wait_port_free(host: str, port: int, timeout: float) -> None:
    """Wait until ``port`` can be bound again: right after a SIGKILL the dead broker's
    sockets may hold it for a moment (seen once as "port in use" on the restart)."""
    if not port_taken(host, port):
        return
    started = time.perf_counter()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        held = subprocess.run(["ss", "-tan", f"( sport = :{port} )"], capture_output=True, text=True, timeout=5).stdout
        progress(f"port {port} still in use after the kill:\n{held.strip()}")
    wait_until(lambda: not port_taken(host, port), timeout, f"port {host}:{port} to be free after the kill")
    progress(f"port {port} free again after {time.perf_counter() - started:.1f}s")


def _sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- running systems -------------------------------------------------------------------


@dataclass
class Running:
    """A started system: where to reach it, its processes, and how to crash and restart it."""

    system: str
    admin_url: str
    ingress_url: str
    endpoint: ServiceEndpoint
    logs: list[Path] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return SYSTEM_LABELS[self.system]

    def pids(self) -> dict[str, int]:
        """The measured processes, role -> pid: ``engine`` and ``broker`` (logstrate, the
        broker only when it is local), or ``server`` (restate-server's binary)."""
        raise NotImplementedError

    def crash(self) -> None:
        """SIGKILL every process of the system, endpoint included, at once."""
        raise NotImplementedError

    def restart(self, timeout: float) -> None:
        """Start everything again on the same ports and data; wait until it serves."""
        raise NotImplementedError

    def _kill_endpoint_signal(self) -> None:
        if self.endpoint.process is not None:
            _sigkill(self.endpoint.process.pid)

    def _reap_endpoint(self) -> None:
        if self.endpoint.process is not None:
            self.endpoint.process.wait(timeout=10)


@dataclass
class LogstrateRunning(Running):
    engine: EngineProcess | None = None
    kafka: LocalKafka | None = None

    def pids(self) -> dict[str, int]:
        assert self.engine is not None and self.engine.proc is not None
        found = {"engine": self.engine.proc.pid}
        broker = self.kafka.pid() if self.kafka is not None else None
        if broker is not None:
            found["broker"] = broker
        return found

    def crash(self) -> None:
        if self.kafka is None:
            raise RuntimeError("crashing logstrate needs the local broker (not --kafka)")
        assert self.engine is not None and self.engine.proc is not None
        broker = self.kafka.pid()
        for pid in (self.engine.proc.pid, broker):
            if pid is not None:
                _sigkill(pid)
        self._kill_endpoint_signal()
        self.engine.proc.wait(timeout=10)
        if broker is not None:
            wait_gone(broker, 10.0)
        self.kafka.pid_file.unlink(missing_ok=True)
        self._reap_endpoint()

    def restart(self, timeout: float) -> None:
        assert self.engine is not None and self.kafka is not None
        respawn_endpoint(self.endpoint)
        for port in (self.kafka.port, self.kafka.controller_port):
            assert port is not None
            _wait_port_free(self.kafka.host, port, timeout)
        # Broker and engine start at once, as a supervisor restarting a machine would:
        # the engine waits for Kafka (kafka.connect_timeout_s) while the JVM starts.
        broker = self.kafka.spawn()
        self.engine.start()
        self.kafka.wait_ready(broker, wait_seconds=timeout)
        self.engine.wait_healthy(timeout=timeout)
        wait_ready(self.endpoint, timeout)


@dataclass
class RestateRunning(Running):
    server: RestateServer | None = None
    binary_pid: int = 0

    def pids(self) -> dict[str, int]:
        return {"server": self.binary_pid}

    def crash(self) -> None:
        assert self.server is not None and self.server.proc is not None
        _sigkill(self.binary_pid)
        _sigkill(self.server.proc.pid)
        self._kill_endpoint_signal()
        wait_gone(self.binary_pid, 10.0)
        self.server.proc.wait(timeout=10)
        self._reap_endpoint()

    def restart(self, timeout: float) -> None:
        assert self.server is not None
        respawn_endpoint(self.endpoint)
        self.server.start(timeout=timeout)
        self.binary_pid = restate_binary_pid(self.server)
        wait_ready(self.endpoint, timeout)


@contextlib.contextmanager
def logstrate_system(workdir: Path, args: argparse.Namespace, h2: bool = False) -> Iterator[Running]:
    """Kafka (local unless ``--kafka``), one engine process and its endpoint; with ``h2``
    the engine drives the endpoint as HTTP/2 bidirectional streams."""
    system = "logstrate-h2" if h2 else "logstrate"
    with contextlib.ExitStack() as stack:
        logs: list[Path] = []
        bootstrap = args.kafka
        kafka: LocalKafka | None = None
        if not bootstrap:
            kafka = LocalKafka(workdir=workdir / "kafka")
            stack.callback(kafka.stop)
            progress(f"logstrate: starting Kafka in {kafka.workdir}")
            bootstrap = kafka.start()
            logs.append(kafka.log_file)
        endpoint = start_endpoint(stack, workdir)
        logs.append(endpoint.log_path)
        data_dir = workdir / "engine" / "data"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        engine = EngineProcess(
            bootstrap_servers=bootstrap,
            topic_prefix=f"bench-{uuid.uuid4().hex[:8]}",
            data_dir=data_dir,
            partitions=args.partitions,
            extra_args=["--invoker-http2"] if h2 else [],
        )
        logs.insert(0, engine.log_path)
        stack.callback(stop_engine, engine)
        progress(f"logstrate: starting the engine ({args.partitions} partitions, log {engine.log_path})")
        engine.start_and_wait(timeout=args.startup_timeout)
        register_and_wait(system, engine.admin_url, engine.ingress_url, endpoint, args.startup_timeout, http11=not h2)
        protocol = "BidiStream over HTTP/2" if h2 else "RequestResponse over HTTP/1.1"
        yield LogstrateRunning(system, engine.admin_url, engine.ingress_url, endpoint, logs,
                               {"protocol": protocol}, engine=engine, kafka=kafka)


@contextlib.contextmanager
def restate_system(workdir: Path, args: argparse.Namespace, h2: bool = False) -> Iterator[Running]:
    """The pinned restate-server (single node, defaults) and its endpoint, registered
    over HTTP/1.1 (request/response) or, with ``h2``, HTTP/2 (bidirectional streaming)."""
    system = "restate-h2" if h2 else "restate"
    with contextlib.ExitStack() as stack:
        server = RestateServer(workdir / "restate")
        stack.callback(stop_restate, server)
        progress(f"{system}: starting restate-server {restate_version()} in {server.base_dir}")
        started = time.perf_counter()
        server.start(timeout=args.startup_timeout)
        binary = restate_binary_pid(server)
        progress(f"{system}: restate-server up in {time.perf_counter() - started:.1f}s (binary pid {binary})")
        endpoint = start_endpoint(stack, workdir)
        register_and_wait(system, server.admin_url, server.ingress_url, endpoint, args.startup_timeout, http11=not h2)
        protocol = check_restate_protocol(server.admin_url, endpoint, http11=not h2)
        progress(f"{system}: restate-server serves the endpoint as {protocol}")
        yield RestateRunning(system, server.admin_url, server.ingress_url, endpoint,
                             [server.base_dir / "server.log", endpoint.log_path], {"protocol": protocol},
                             server=server, binary_pid=binary)


def start_system(system: str, workdir: Path, args: argparse.Namespace) -> contextlib.AbstractContextManager[Running]:
    if system in ("logstrate", "logstrate-h2"):
        return logstrate_system(workdir, args, h2=system == "logstrate-h2")
    return restate_system(workdir, args, h2=system == "restate-h2")
