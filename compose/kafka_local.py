#!/usr/bin/env python3
"""Provision and run a real single-node Apache Kafka (KRaft) without Docker.

The broker's jars come from Maven Central through Maven (``compose/kafka/pom.xml``), are
cached in ``.cache/kafka/<version>/libs`` (git-ignored) so only the first start downloads,
and run in combined broker+controller mode with single-node replication settings, so
idempotent producers and transactions work.

Command line (stdlib only, so it runs before the project's venv exists)::

    python compose/kafka_local.py fetch                 # download the jars, with progress
    python compose/kafka_local.py start [--port 9092]   # start in the background, wait until ready
    python compose/kafka_local.py run   [--port 9092]   # in the foreground (Ctrl-C or SIGTERM stops it)
    python compose/kafka_local.py status
    python compose/kafka_local.py stop                  # SIGTERM, then SIGKILL after a deadline
    python compose/kafka_local.py kill                  # SIGKILL at once (fault tests)

The same operations are the :class:`LocalKafka` API that the test suite's session fixture
uses.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# Run as a script (python compose/<name>.py) or imported as compose.<name>: either way
# the project root must be importable for the shared helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from compose.processes import (  # noqa: E402
    StopRequested,
    live_pid,
    port_taken,
    send_signal,
    stop_pid,
    stop_signals_raise,
    wait_gone,
)

# Bump together with <kafka.version> in compose/kafka/pom.xml.
KAFKA_VERSION = "4.1.1"

REPO_ROOT = Path(__file__).resolve().parent.parent
POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "kafka"
DEFAULT_WORKDIR = DEFAULT_CACHE / "run"


class KafkaLocalError(RuntimeError):
    """The local broker could not be provisioned, started or stopped; the message says why."""


def _say(message: str) -> None:
    # Progress goes to stderr so `start` can print only the bootstrap address on stdout.
    print(f"[kafka] {message}", file=sys.stderr, flush=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_jars(version: str = KAFKA_VERSION, cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Return the folder with the broker's classpath, downloading it on first use."""
    libs = cache_dir / version / "libs"
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLocalError("Maven ('mvn') is not on PATH; install Maven 3 to fetch the Kafka broker")
    if shutil.which("java") is None:
        raise KafkaLocalError("Java ('java') is not on PATH; install Java 17+ to run the Kafka broker")
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    _say(f"fetching Apache Kafka {version} from Maven Central (first run only) ...")
    cmd = [
        mvn, "-B", "-f", str(POM), f"-Dkafka.version={version}",
        "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    downloaded = 0
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-40:]
        if line.startswith("Downloaded from"):
            downloaded += 1
            name = line.rsplit("/", 1)[-1].split(" ", 1)[0]
            if name.endswith(".jar"):
                _say(f"  downloaded {name} ({downloaded} files so far)")
    if proc.wait() != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaLocalError("Maven could not fetch the Kafka broker:\n" + "\n".join(tail))
    jars = sorted(p.name for p in staging.glob("*.jar"))
    if not any(j.startswith(f"kafka_2.13-{version}") for j in jars):
        raise KafkaLocalError(f"Maven finished but kafka_2.13-{version}.jar is missing from {staging}")
    (staging / ".complete").write_text("\n".join(jars) + "\n")
    if libs.exists():
        shutil.rmtree(libs)
    staging.rename(libs)
    _say(f"cached {len(jars)} jars in {libs} ({time.monotonic() - started:.1f}s)")
    return libs


def _kafka_uuid() -> str:
    # Kafka's textual Uuid: 16 random bytes, URL-safe base64 without padding. It may start
    # with "-", so pass it as --cluster-id=<id> (argparse would take it for an option).
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def broker_ready(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the broker answers a Metadata request listing at least one live broker.

    Spoken with the raw Kafka protocol (Metadata v0) so this works without any client
    library; a KRaft broker lists itself only once it is registered and unfenced.
    """
    correlation = 7
    client_id = b"kafka-local-probe"
    body = struct.pack(">hhih", 3, 0, correlation, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 4)
            (size,) = struct.unpack(">i", header)
            payload = _recv_exact(sock, size)
    except OSError:
        return False
    if len(payload) < 8:
        return False
    got_correlation, broker_count = struct.unpack(">ii", payload[:8])
    return bool(got_correlation == correlation and broker_count >= 1)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise OSError("connection closed by broker")
        chunks.extend(chunk)
    return bytes(chunks)


@dataclass
class LocalKafka:
    """One single-node KRaft broker whose files live in ``workdir``.

    ``port``/``controller_port`` default to free ports chosen at first start and remembered
    in ``workdir/ports.json`` so a restarted broker keeps its address.
    """

    workdir: Path = DEFAULT_WORKDIR
    port: int | None = None
    controller_port: int | None = None
    host: str = "127.0.0.1"
    version: str = KAFKA_VERSION
    cache_dir: Path = DEFAULT_CACHE
    heap: str = "768m"

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            self._load_ports()
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / "logs" / "server.log"

    # -- lifecycle -------------------------------------------------------------------

    def start(self, wait_seconds: float = 120.0) -> str:
        """Start the broker in the background and wait until it serves metadata."""
        self._load_ports()
        assert self.port is not None
        if self.pid() is not None and broker_ready(self.host, self.port):
            _say(f"already running at {self.bootstrap_servers} (pid {self.pid()})")
            return self.bootstrap_servers
        proc = self.spawn()
        self.wait_ready(proc, wait_seconds)
        return self.bootstrap_servers

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the broker in the background without waiting for it (see :meth:`wait_ready`):
        a supervisor starting the broker and the engine at once overlaps their start-ups."""
        return self._spawn(foreground=False)

    def wait_ready(self, proc: subprocess.Popen[bytes], wait_seconds: float = 120.0) -> None:
        """Wait until the broker ``proc`` (from :meth:`spawn`) serves metadata."""
        self._wait_ready(proc, wait_seconds)

    def run_foreground(self, stop_timeout: float = 30.0) -> int:
        """Run the broker attached to this terminal until it exits (its exit code), or
        until Ctrl-C, SIGTERM or SIGHUP stop it (0): gracefully, SIGKILL after
        ``stop_timeout`` seconds."""
        with stop_signals_raise("kafka"):
            try:
                proc = self._spawn(foreground=True)
                self._wait_ready(proc, 120.0)
                _say(f"ready at {self.bootstrap_servers}; Ctrl-C or SIGTERM stops it")
                return proc.wait()
            except (KeyboardInterrupt, StopRequested) as exc:
                _say(f"stopping the broker ({exc or 'interrupted'})")
                self.stop(stop_timeout)
                return 0

    def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully (SIGTERM, controlled shutdown), SIGKILL after ``timeout``."""
        stop_pid(self.pid_file, "kafka", timeout)

    def kill(self) -> None:
        """SIGKILL the broker at once, as a crash would."""
        pid = self.pid()
        if pid is None:
            return
        send_signal(pid, signal.SIGKILL)
        wait_gone(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)

    def pid(self) -> int | None:
        """The broker's pid if it is alive, else None."""
        return live_pid(self.pid_file)

    # -- internals -------------------------------------------------------------------

    def _load_ports(self) -> None:
        ports_file = self.workdir / "ports.json"
        saved: dict[str, int] = {}
        if ports_file.exists():
            saved = json.loads(ports_file.read_text())
        if self.port is None:
            self.port = saved.get("port") or free_port(self.host)
        if self.controller_port is None:
            self.controller_port = saved.get("controller_port") or free_port(self.host)
            while self.controller_port == self.port:
                self.controller_port = free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports_file.write_text(json.dumps({"port": self.port, "controller_port": self.controller_port}))

    def _spawn(self, foreground: bool) -> subprocess.Popen[bytes]:
        libs = ensure_jars(self.version, self.cache_dir)
        self._load_ports()
        for port in (self.port, self.controller_port):
            assert port is not None
            if port_taken(self.host, port):
                raise KafkaLocalError(
                    f"port {self.host}:{port} is in use; pass --port/--controller-port or stop what holds it"
                )
        props = self._write_config()
        self._format(libs, props)
        java = [
            # One dev broker on a small machine: the serial collector (no GC threads to
            # schedule) and C1-only JIT (a fraction of C2's compile CPU in the first
            # minutes, which is all a test or a benchmark round lives). Measured against
            # G1 + tiered C2 with 500 single-record produces/s and a consumer: broker CPU
            # per record 0.73-0.79 ms vs 0.81-0.96 ms warmed up (about 2 ms before), idle
            # 2.7-3.4% vs 4.3-5.6% of a core, start-up 4-6 s vs 5-10 s (docs/PERFORMANCE.md).
            "java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            "-cp", str(libs / "*"), "kafka.Kafka", str(props),
        ]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        out = None if foreground else open(self.workdir / "logs" / "stdout.log", "ab")
        _say(f"starting Kafka {self.version} on {self.bootstrap_servers} (files in {self.workdir})")
        # A new session keeps Ctrl-C in a parent shell from reaching the background broker.
        proc = subprocess.Popen(
            java, stdout=out, stderr=subprocess.STDOUT if out else None,
            start_new_session=not foreground,
        )
        if out is not None:
            out.close()
        self.pid_file.write_text(str(proc.pid))
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], wait_seconds: float) -> None:
        deadline = time.monotonic() + wait_seconds
        assert self.port is not None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise KafkaLocalError(
                    f"Kafka exited with code {proc.returncode} during start-up; last log lines:\n{self._log_tail()}"
                )
            if broker_ready(self.host, self.port, timeout=1.0):
                _say(f"ready at {self.bootstrap_servers} (pid {proc.pid})")
                return
            time.sleep(0.2)
        self.kill()
        raise KafkaLocalError(f"Kafka did not become ready within {wait_seconds:.0f}s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        text = ""
        for f in (self.workdir / "logs" / "stdout.log", self.log_file):
            if f.exists():
                text += "\n".join(f.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text or "(no log output)"

    def _write_config(self) -> Path:
        data = self.workdir / "data"
        props = self.workdir / "server.properties"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            # One node: every internal topic must accept replication factor 1, or
            # idempotent producers, transactions and consumer groups never become available.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "default.replication.factor": "1",
            "num.partitions": "1",
            # Tests create consumer groups constantly; don't make each one wait 3s.
            "group.initial.rebalance.delay.ms": "0",
            # The engine creates the topics it needs; a typo must not silently make a topic.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
            # The active controller appends a no-op record to the metadata log this often
            # (default 500 ms, each one appended, flushed and replayed by the broker) so
            # that observers can tell a live controller from a stalled one. One node has
            # no one to tell; at 5 s the idle broker uses ~0.6% of a core less.
            "metadata.max.idle.interval.ms": "5000",
            # After a kill -9 the restarted broker cannot register until the controller
            # has fenced its previous incarnation, which waits out that incarnation's
            # session (default 9 s, then retries every 2 s): most of a restart's time.
            # Broker and controller share this JVM, so a short session risks nothing
            # but a fencing under a multi-second stall. Measured restart after kill -9:
            # 13-15 s -> ~7 s.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "1000",
            # Thread pools sized for one node on a few cores (defaults: 3 network threads
            # per listener, 8 request handlers, 10 background threads): fewer threads to
            # wake and switch between per request, measured together with the JVM flags.
            "num.network.threads": "1",
            "num.io.threads": "2",
            "background.threads": "2",
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (self.workdir / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.file.type = RollingFile\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {self.log_file}\n"
            f"appender.file.filePattern = {self.log_file}.%i\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "appender.file.policies.type = Policies\n"
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy\n"
            "appender.file.policies.size.size = 50MB\n"
            "appender.file.strategy.type = DefaultRolloverStrategy\n"
            "appender.file.strategy.max = 3\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
        )
        return props

    def _cluster_id(self) -> str:
        """The id its storage is formatted with (a cluster's nodes share one)."""
        return _kafka_uuid()

    def _format(self, libs: Path, props: Path) -> None:
        if (self.workdir / "data" / "meta.properties").exists():
            return
        cmd = [
            "java", "-cp", str(libs / "*"),
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "kafka.tools.StorageTool", "format", f"--cluster-id={self._cluster_id()}", "--config", str(props),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise KafkaLocalError(f"formatting the Kafka storage in {self.workdir} failed:\n{result.stdout}{result.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=["fetch", "start", "run", "status", "stop", "kill"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_WORKDIR, help="broker files (default: %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="client port (default: remembered, else free)")
    parser.add_argument("--controller-port", type=int, default=None)
    parser.add_argument("--version", default=KAFKA_VERSION, help="Kafka version (default: %(default)s)")
    parser.add_argument(
        "--stop-timeout", type=float, default=30.0,
        help="run/stop: seconds a graceful stop may take before SIGKILL (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    kafka = LocalKafka(workdir=args.dir, port=args.port, controller_port=args.controller_port, version=args.version)
    try:
        if args.command == "fetch":
            ensure_jars(args.version)
        elif args.command == "start":
            print(kafka.start())
        elif args.command == "run":
            return kafka.run_foreground(args.stop_timeout)
        elif args.command == "status":
            pid = kafka.pid()
            if pid is None:
                print("stopped")
                return 1
            print(f"running pid={pid} bootstrap={kafka.bootstrap_servers}")
        elif args.command == "stop":
            kafka.stop(args.stop_timeout)
        elif args.command == "kill":
            kafka.kill()
    except KafkaLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
