"""`logstrate serve` as a real process: start-up, topics, health, SIGTERM, bad configs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.admin import AdminClient, ConfigResource

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import free_port


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read()


def test_serve_creates_topics_answers_health_and_stops_on_sigterm(
    engine_factory: Callable[..., EngineProcess], kafka: KafkaBroker, topic_prefix: str
) -> None:
    engine = engine_factory(partitions=3)
    engine.start_and_wait()

    status, _ = _get(f"{engine.admin_url}/health")
    assert status == 200
    status, body = _get(f"{engine.ingress_url}/restate/health")
    assert status == 200
    status, body = _get(f"{engine.admin_url}/version")
    version = json.loads(body)
    assert version["min_admin_api_version"] <= version["max_admin_api_version"]
    assert version["ingress_endpoint"] == f"http://127.0.0.1:{engine.ingress_port}/"

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[f"{topic_prefix}.wal"].partitions) == 3
    assert len(topics[f"{topic_prefix}.metadata"].partitions) == 1
    resource = ConfigResource(ConfigResource.Type.TOPIC, f"{topic_prefix}.metadata")
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["cleanup.policy"].value == "compact"
    resource = ConfigResource(ConfigResource.Type.TOPIC, f"{topic_prefix}.wal")
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].value == "-1"

    started = time.monotonic()
    assert engine.terminate(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert "engine stopped" in engine.output()


def test_restart_reuses_existing_topics_and_data_dir(engine_factory: Callable[..., EngineProcess], tmp_path: Path) -> None:
    first = engine_factory(data_dir=tmp_path / "shared")
    first.start_and_wait()
    assert first.terminate() == 0
    second = engine_factory(data_dir=tmp_path / "shared")
    second.start_and_wait()
    assert "topic created" not in second.output().split("engine stopped")[-1]
    assert second.terminate() == 0


def _run_serve_expecting_failure(
    args: list[str], timeout: float = 30.0, env: dict[str, str] | None = None
) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "engine", "serve", "--log-format", "json", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
    return result.returncode, result.stderr, time.monotonic() - started


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("logstrate: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _ports() -> list[str]:
    return ["--ingress-bind", f"127.0.0.1:{free_port()}", "--admin-bind", f"127.0.0.1:{free_port()}"]


def test_unreachable_kafka_exits_nonzero_within_bounded_time(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens here
    code, stderr, elapsed = _run_serve_expecting_failure(
        ["--kafka-bootstrap-servers", f"127.0.0.1:{dead}", "--data-dir", str(tmp_path / "d"), *_ports()],
        env={"LOGSTRATE_KAFKA_CONNECT_TIMEOUT_S": "4"},
    )
    assert code != 0
    line = _error_line(stderr)
    assert f"cannot reach Kafka at 127.0.0.1:{dead}" in line
    assert "within 4s" in line
    # The process gives up shortly after kafka.connect_timeout_s, with no endless retry.
    assert 4 <= elapsed < 14


def test_unwritable_data_dir_is_a_clear_error(kafka: KafkaBroker, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, stderr, _ = _run_serve_expecting_failure(
        ["--kafka-bootstrap-servers", kafka.bootstrap_servers, "--data-dir", str(blocker / "data"), *_ports()],
    )
    assert code != 0
    assert "is not writable" in _error_line(stderr)


def test_port_in_use_is_a_clear_error(kafka: KafkaBroker, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, stderr, _ = _run_serve_expecting_failure(
            [
                "--kafka-bootstrap-servers", kafka.bootstrap_servers, "--data-dir", str(tmp_path / "d"),
                "--ingress-bind", f"127.0.0.1:{port}", "--admin-bind", f"127.0.0.1:{free_port()}",
            ],
        )
    assert code != 0
    line = _error_line(stderr)
    assert f"ingress_bind address 127.0.0.1:{port} is already in use" in line


def test_second_engine_on_same_data_dir_is_refused(
    engine_factory: Callable[..., EngineProcess], tmp_path: Path, kafka: KafkaBroker
) -> None:
    first = engine_factory(data_dir=tmp_path / "one")
    first.start_and_wait()
    code, stderr, _ = _run_serve_expecting_failure(
        ["--kafka-bootstrap-servers", kafka.bootstrap_servers, "--data-dir", str(tmp_path / "one"), *_ports()],
    )
    assert code != 0
    assert "is in use by another engine process" in _error_line(stderr)


def test_partition_count_mismatch_is_a_clear_error(
    engine_factory: Callable[..., EngineProcess], kafka: KafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    first = engine_factory(partitions=2)
    first.start_and_wait()
    assert first.terminate() == 0
    code, stderr, _ = _run_serve_expecting_failure(
        [
            "--kafka-bootstrap-servers", kafka.bootstrap_servers, "--topic-prefix", topic_prefix,
            "--partitions", "5", "--data-dir", str(tmp_path / "other"), *_ports(),
        ],
    )
    assert code != 0
    assert "has 2 partitions but the engine is configured for 5" in _error_line(stderr)


def test_invalid_config_value_is_a_clear_error(tmp_path: Path) -> None:
    code, stderr, _ = _run_serve_expecting_failure(["--partitions", "0", "--data-dir", str(tmp_path / "d")])
    assert code != 0
    assert "kafka.partitions must be at least 1" in _error_line(stderr)
