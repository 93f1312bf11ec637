#!/usr/bin/env python3
"""Provision and run a real schema registry (Apicurio Registry) without Docker.

Apicurio Registry publishes its runnable server on Maven Central
(``io.apicurio:apicurio-registry-app:<version>:all:tar.gz``, a Quarkus application with
its libraries). It serves a Confluent-compatible REST API under ``/apis/ccompat/v7``, which
is what the subscriptions' ``avro-confluent`` format speaks. Version 3.0.x runs on Java 17
(3.3.x needs Java 21). The archive is downloaded once, checked against a pinned SHA-256,
unpacked into ``.cache/schema-registry/<version>`` (git-ignored), and run with its default
in-memory storage (H2), so every start is an empty registry.

Command line (stdlib only, so it runs before the project's venv exists)::

    python compose/schema_registry.py fetch                 # download and unpack, with progress
    python compose/schema_registry.py start [--port 8081]   # start in the background, wait until ready
    python compose/schema_registry.py run   [--port 8081]   # in the foreground (Ctrl-C or SIGTERM stops it)
    python compose/schema_registry.py status
    python compose/schema_registry.py stop                  # SIGTERM, then SIGKILL after a deadline

``start`` prints the Confluent-compatible base URL to use as ``schema.registry.url``.
The same operations are the :class:`LocalSchemaRegistry` API that the test suite's
session fixture uses. ``LOGSTRATE_MAVEN_REPO`` points the download at a Maven mirror.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Run as a script (python compose/<name>.py) or imported as compose.<name>: either way
# the project root must be importable for the shared helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from compose.processes import StopRequested, live_pid, port_taken, stop_pid, stop_signals_raise  # noqa: E402

APICURIO_VERSION = "3.0.9"
# SHA-256 of apicurio-registry-app-<version>-all.tar.gz as published on Maven Central;
# pinned so a corrupted or substituted download is refused rather than run.
PINNED_SHA256 = {
    "3.0.9": "2b28181501a20cbf6efcd77f9b7153908fc01f3d3a7c32024c0bd9e1b04c8a43",
}
MAVEN_REPO = os.environ.get("LOGSTRATE_MAVEN_REPO", "https://repo1.maven.org/maven2").rstrip("/")
CCOMPAT_PATH = "/apis/ccompat/v7"

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "schema-registry"
DEFAULT_WORKDIR = DEFAULT_CACHE / "run"


class SchemaRegistryLocalError(RuntimeError):
    """The local registry could not be provisioned, started or stopped; the message says why."""


def _say(message: str) -> None:
    # Progress goes to stderr so `start` can print only the URL on stdout.
    print(f"[schema-registry] {message}", file=sys.stderr, flush=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def archive_url(version: str = APICURIO_VERSION) -> str:
    """Where Maven Central keeps the runnable server of ``version``."""
    name = f"apicurio-registry-app-{version}-all.tar.gz"
    return f"{MAVEN_REPO}/io/apicurio/apicurio-registry-app/{version}/{name}"


def ensure_registry(version: str = APICURIO_VERSION, cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Return the runner jar of ``version``, downloading and unpacking it on first use."""
    home = cache_dir / version
    runner = home / f"apicurio-registry-app-{version}-runner.jar"
    if (home / ".complete").exists() and runner.exists():
        return runner
    if shutil.which("java") is None:
        raise SchemaRegistryLocalError("Java ('java') is not on PATH; install Java 17+ to run the schema registry")
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f"{version}-", dir=cache_dir))
    try:
        archive = staging / "registry.tar.gz"
        _download(archive_url(version), archive, _expected_checksum(version))
        _say("unpacking ...")
        with tarfile.open(archive) as tar:
            # The "data" filter refuses absolute paths, links out of the folder and devices.
            tar.extractall(staging, filter="data")
        archive.unlink()
        if not (staging / runner.name).exists():
            raise SchemaRegistryLocalError(f"the archive of Apicurio Registry {version} has no {runner.name}")
        (staging / ".complete").write_text(f"{archive_url(version)}\n")
        if home.exists():
            shutil.rmtree(home)
        staging.rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _say(f"cached Apicurio Registry {version} in {home} ({time.monotonic() - started:.1f}s)")
    return runner


def _expected_checksum(version: str) -> tuple[str, str]:
    """(hash algorithm, hex digest) the archive of ``version`` must have."""
    pinned = PINNED_SHA256.get(version)
    if pinned is not None:
        return "sha256", pinned
    # An unpinned version (--version) is checked against the SHA-1 Maven Central
    # publishes next to it: that catches corruption, though not a substituted repository.
    sha1_url = archive_url(version) + ".sha1"
    try:
        with urllib.request.urlopen(sha1_url, timeout=30) as response:
            return "sha1", str(response.read().decode("ascii").split()[0])
    except (OSError, IndexError, UnicodeDecodeError) as exc:
        raise SchemaRegistryLocalError(
            f"no pinned checksum for Apicurio Registry {version} and none at {sha1_url}: {exc}"
        ) from exc


def _download(url: str, target: Path, checksum: tuple[str, str]) -> None:
    _say(f"downloading {url} (first run only) ...")
    algorithm, expected = checksum
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, next_report = 0, 0.1
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if total and done / total >= next_report:
                    _say(f"  {done >> 20} of {total >> 20} MiB")
                    next_report += 0.1
    except OSError as exc:  # URLError is an OSError
        raise SchemaRegistryLocalError(f"downloading {url} failed: {exc}") from exc
    if digest.hexdigest() != expected:
        raise SchemaRegistryLocalError(
            f"{url} has {algorithm} {digest.hexdigest()}, expected {expected}; refusing to run it"
        )


def registry_ready(base_url: str, timeout: float = 2.0) -> bool:
    """True when the Confluent-compatible API at ``base_url`` answers ``GET /subjects``."""
    try:
        with urllib.request.urlopen(f"{base_url}/subjects", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:  # URLError (refused, timeout) is an OSError
        return False


@dataclass
class LocalSchemaRegistry:
    """One Apicurio Registry process (in-memory storage) with its pid and logs in ``workdir``.

    ``port`` defaults to a free port chosen at first start and remembered in
    ``workdir/port.json`` so a restarted registry keeps its address.
    """

    workdir: Path = DEFAULT_WORKDIR
    port: int | None = None
    host: str = "127.0.0.1"
    version: str = APICURIO_VERSION
    cache_dir: Path = DEFAULT_CACHE
    heap: str = "384m"

    @property
    def url(self) -> str:
        """The Confluent-compatible base URL (the ``schema.registry.url`` option)."""
        if self.port is None:
            self._load_port()
        return f"http://{self.host}:{self.port}{CCOMPAT_PATH}"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "registry.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / "registry.log"

    def start(self, wait_seconds: float = 120.0) -> str:
        """Start the registry in the background and wait until its API answers."""
        self._load_port()
        if self.pid() is not None and registry_ready(self.url):
            _say(f"already running at {self.url} (pid {self.pid()})")
            return self.url
        proc = self._spawn(foreground=False)
        self._wait_ready(proc, wait_seconds)
        return self.url

    def run_foreground(self, stop_timeout: float = 20.0) -> int:
        """Run the registry attached to this terminal until it exits (its exit code), or
        until Ctrl-C, SIGTERM or SIGHUP stop it (0): gracefully, SIGKILL after
        ``stop_timeout`` seconds."""
        with stop_signals_raise("schema-registry"):
            try:
                proc = self._spawn(foreground=True)
                self._wait_ready(proc, 120.0)
                _say(f"ready at {self.url}; Ctrl-C or SIGTERM stops it")
                return proc.wait()
            except (KeyboardInterrupt, StopRequested) as exc:
                _say(f"stopping the registry ({exc or 'interrupted'})")
                self.stop(stop_timeout)
                return 0

    def stop(self, timeout: float = 20.0) -> None:
        """Stop gracefully (SIGTERM), SIGKILL after ``timeout``."""
        stop_pid(self.pid_file, "schema-registry", timeout)

    def pid(self) -> int | None:
        """The registry's pid if it is alive, else None."""
        return live_pid(self.pid_file)

    # -- internals -------------------------------------------------------------------

    def _load_port(self) -> None:
        port_file = self.workdir / "port.json"
        if self.port is None and port_file.exists():
            self.port = json.loads(port_file.read_text()).get("port")
        if self.port is None:
            self.port = free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_file.write_text(json.dumps({"port": self.port}))

    def _spawn(self, foreground: bool) -> subprocess.Popen[bytes]:
        runner = ensure_registry(self.version, self.cache_dir)
        self._load_port()
        assert self.port is not None
        if port_taken(self.host, self.port):
            raise SchemaRegistryLocalError(f"port {self.host}:{self.port} is in use; pass --port or stop what holds it")
        java = [
            "java", f"-Xmx{self.heap}", "-XX:+UseSerialGC",
            # Start-up speed matters more than peak throughput for a test registry.
            "-XX:TieredStopAtLevel=1",
            f"-Dquarkus.http.host={self.host}", f"-Dquarkus.http.port={self.port}",
            "-jar", str(runner),
        ]
        self.workdir.mkdir(parents=True, exist_ok=True)
        out = None if foreground else self.log_file.open("ab")
        _say(f"starting Apicurio Registry {self.version} at {self.url}")
        # A new session keeps Ctrl-C in a parent shell from reaching the background server;
        # cwd=workdir so anything it writes lands there, not in the repository.
        proc = subprocess.Popen(
            java, stdout=out, stderr=subprocess.STDOUT if out else None,
            cwd=self.workdir, start_new_session=not foreground,
        )
        if out is not None:
            out.close()
        self.pid_file.write_text(str(proc.pid))
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], wait_seconds: float) -> None:
        started = time.monotonic()
        deadline = started + wait_seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SchemaRegistryLocalError(
                    f"the registry exited with code {proc.returncode} during start-up "
                    f"(Java 17+ is required); last log lines:\n{self._log_tail()}"
                )
            if registry_ready(self.url, timeout=1.0):
                _say(f"ready at {self.url} (pid {proc.pid}, {time.monotonic() - started:.1f}s)")
                return
            time.sleep(0.1)
        self.stop(timeout=5.0)
        raise SchemaRegistryLocalError(
            f"the registry did not become ready within {wait_seconds:.0f}s:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return "(no log output)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=["fetch", "start", "run", "status", "stop"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_WORKDIR, help="pid and log files (default: %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: remembered, else free)")
    parser.add_argument("--version", default=APICURIO_VERSION, help="Apicurio Registry version (default: %(default)s)")
    args = parser.parse_args(argv)
    registry = LocalSchemaRegistry(workdir=args.dir, port=args.port, version=args.version)
    try:
        if args.command == "fetch":
            ensure_registry(args.version)
        elif args.command == "start":
            print(registry.start())
        elif args.command == "run":
            return registry.run_foreground()
        elif args.command == "status":
            pid = registry.pid()
            if pid is None:
                print("stopped")
                return 1
            print(f"running pid={pid} url={registry.url}")
        elif args.command == "stop":
            registry.stop()
    except SchemaRegistryLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
