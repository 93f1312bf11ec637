"""``run`` (foreground) of the local-infrastructure scripts stops its server on SIGTERM.

A supervisor stops a foreground process with SIGTERM, not Ctrl-C. Each script runs here
as a real subprocess (``python compose/<script>.py run``) starting the real Java server;
the test waits until it serves, sends SIGTERM to the script, and checks that the script
exits with 0 after stopping the server: its process gone, its port closed, its pid file
removed. Issue 13: ``kafka_local.py run`` died on SIGTERM and left the broker running.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from compose.kafka_local import broker_ready
from compose.processes import StopRequested, alive, live_pid, send_signal, stop_signals_raise, wait_gone
from compose.schema_registry import CCOMPAT_PATH, registry_ready
from tests.fixtures.ports import free_port, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

#: The scripts' default graceful-stop deadlines are 30 s (Kafka) and 20 s (registry);
#: the script must be gone within that plus a margin for SIGKILL and the JVM's exit.
EXIT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Server:
    """How to run one script's server in the foreground and see that it serves."""

    script: str
    pid_file: str
    ports: int
    port_args: Callable[[list[int]], list[str]]
    ready: Callable[[int], bool]


SERVERS = {
    "kafka": Server(
        "kafka_local.py", "broker.pid", 2,
        lambda ports: ["--port", str(ports[0]), "--controller-port", str(ports[1])],
        lambda port: broker_ready(HOST, port, timeout=1.0),
    ),
    "schema-registry": Server(
        "schema_registry.py", "registry.pid", 1,
        lambda ports: ["--port", str(ports[0])],
        lambda port: registry_ready(f"http://{HOST}:{port}{CCOMPAT_PATH}", timeout=1.0),
    ),
}


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("name", list(SERVERS))
def test_sigterm_stops_the_server_of_a_foreground_run(tmp_path: Path, name: str) -> None:
    server = SERVERS[name]
    workdir = tmp_path / name
    ports = [free_port() for _ in range(server.ports)]
    log_path = tmp_path / f"{name}-run.log"
    with log_path.open("wb") as log:
        script = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "compose" / server.script), "run",
             "--dir", str(workdir), *server.port_args(ports)],
            cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    server_pid: int | None = None

    def output() -> str:
        return log_path.read_text(errors="replace")[-4000:]

    try:
        def serving() -> int | None:
            if script.poll() is not None:
                raise AssertionError(f"{server.script} run exited with {script.returncode}:\n{output()}")
            pid = live_pid(workdir / server.pid_file)
            return pid if pid is not None and server.ready(ports[0]) else None

        pid = server_pid = wait_until(serving, 180, f"{name} serving under `{server.script} run`")

        script.send_signal(signal.SIGTERM)
        try:
            code = script.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{server.script} run ignored SIGTERM for {EXIT_TIMEOUT_S}s:\n{output()}") from None
        assert code == 0, f"{server.script} run exited with {code} on SIGTERM:\n{output()}"
        # The script waited for the server before exiting: nothing is left to wait for,
        # but a short deadline keeps a slow kernel from failing the test.
        wait_until(lambda: not alive(pid), 10, f"the {name} process (pid {pid}) gone")
        wait_until(lambda: not any(port_open(p) for p in ports), 10, f"the {name} ports {ports} closed")
        assert not (workdir / server.pid_file).exists()
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
        if server_pid is not None and alive(server_pid):
            send_signal(server_pid, signal.SIGKILL)
            wait_gone(server_pid, 10.0)


def test_only_the_first_stop_signal_raises_and_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(StopRequested) as stop:
        with stop_signals_raise("test"):
            try:
                signal.raise_signal(signal.SIGTERM)
            except StopRequested:
                # A second signal while stopping: ignored, the stop goes on.
                signal.raise_signal(signal.SIGHUP)
                raise
    assert stop.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before
