#!/usr/bin/env python3
"""``make dev``: a local Kafka, the engine in the foreground and the example service.

Starts (or reuses) the local broker from compose/kafka_local.py, serves the example
greeter (official ``restate-sdk`` under hypercorn), runs ``logstrate serve`` attached to
this terminal, registers the example with the admin API and prints curl lines to try.
Ctrl-C stops the engine, the example service and (unless ``--keep-kafka``) the broker.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compose.kafka_local import DEFAULT_WORKDIR, KafkaLocalError, LocalKafka, free_port  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _port_or_free(preferred: int) -> int:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dev: {what} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers HTTP, that is all we wait for
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"dev: {what} did not answer {url} within {timeout:.0f}s")


def _register(admin_url: str, service_url: str) -> str:
    body = json.dumps({"uri": service_url, "force": True}).encode()
    request = urllib.request.Request(
        f"{admin_url}/deployments", data=body, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            answer = json.loads(resp.read() or b"{}")
            return f"registered {service_url} as deployment {answer.get('id', '?')}"
    except urllib.error.HTTPError as exc:
        return f"registration of {service_url} answered HTTP {exc.code}: {exc.read().decode(errors='replace')[:200]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keep-kafka", action="store_true", help="leave the broker running on exit")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".cache" / "dev" / "data")
    args = parser.parse_args()

    kafka = LocalKafka(workdir=DEFAULT_WORKDIR)
    if kafka.pid() is None and not (DEFAULT_WORKDIR / "ports.json").exists():
        kafka.port = _port_or_free(9092)
    try:
        bootstrap = kafka.start()
    except KafkaLocalError as exc:
        print(f"dev: {exc}", file=sys.stderr)
        return 1

    ingress_port, admin_port, service_port = _port_or_free(8080), _port_or_free(9070), _port_or_free(9080)
    service = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "examples.greeter.official_sdk_greeter:app",
         "--bind", f"127.0.0.1:{service_port}"],
        cwd=REPO,
    )
    engine = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--kafka-bootstrap-servers", bootstrap,
         "--data-dir", str(args.data_dir), "--ingress-bind", f"127.0.0.1:{ingress_port}",
         "--admin-bind", f"127.0.0.1:{admin_port}", "--log-format", "console"],
        cwd=REPO,
    )
    admin, ingress = f"http://127.0.0.1:{admin_port}", f"http://127.0.0.1:{ingress_port}"
    try:
        _wait_http(f"{admin}/health", engine, "the engine")
        _wait_http(f"http://127.0.0.1:{service_port}/discover", service, "the example service")
        print(f"\ndev: {_register(admin, f'http://127.0.0.1:{service_port}')}")
        print(
            "\nTry it:\n"
            f"  curl {ingress}/Greeter/greet --json '\"Sam\"'\n"
            f"  curl {ingress}/Counter/alice/add --json '5'\n"
            f"  curl {ingress}/Counter/alice/get\n"
            f"  curl {ingress}/Greeter/greet/send --json '\"Ada\"'\n"
            f"  curl {admin}/deployments\n"
            f"  curl {admin}/health\n"
            f"Kafka: {bootstrap} (WAL topic logstrate.wal). Ctrl-C stops everything.\n",
            flush=True,
        )
        return engine.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (engine, service):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if not args.keep_kafka:
            kafka.stop()


if __name__ == "__main__":
    sys.exit(main())
