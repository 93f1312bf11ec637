"""Replay determinism of handlers written with our SDK, on our engine with real processes.

1. A ten-step handler is cut in the middle of a step by ``kill -9`` of the *endpoint*
   process serving it; the endpoint is restarted on the same address, the engine retries
   the invocation, the new process replays the journal: finished steps are not run
   again, the interrupted one is, and the result is the one an uninterrupted run gives
   (same ``ctx.random()`` seed, every step's journaled value).
2. A deliberately non-deterministic handler gets a journal mismatch error naming the
   handler, the command index and what differed, visible in the invocation's status on
   the admin API (``GET /invocations/{id}``), while its journal keeps what really happened.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import free_port, wait_until
from tests.fixtures.service_endpoint import PROJECT_ROOT, ServiceEndpoint, wait_ready
from tests.fixtures.systems import System, http, module_engine
from tests.sdk.replay_services import STEPS

APP = "tests.sdk.replay_services:app"


class StepServer:
    """The steps' outside world: counts every call, hands out fresh values, and can hold
    the first call of one step until the test releases it."""

    def __init__(self, hold_step: int) -> None:
        self.hold_step = hold_step
        self.calls: list[dict[str, Any]] = []
        self.answered: dict[int, str] = {}
        self.entered = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                payload = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
                step = int(payload["step"])
                with server._lock:
                    server.calls.append(payload)
                    first_of_held = step == server.hold_step and not server.entered.is_set()
                if first_of_held:
                    server.entered.set()
                    server.release.wait(120)
                value = uuid.uuid4().hex
                with server._lock:
                    # The held call answers an endpoint killed meanwhile; its value can
                    # never be journaled. Recording it could overwrite the answer the
                    # restarted endpoint got if that retry was quicker than the release.
                    if not first_of_held:
                        server.answered[step] = value
                body = json.dumps({"value": value}).encode()
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the caller was killed while this step was held

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def calls_of(self, step: int) -> int:
        with self._lock:
            return sum(1 for c in self.calls if int(c["step"]) == step)

    def __enter__(self) -> StepServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def serve_on(port: int, log_dir: Path, name: str) -> ServiceEndpoint:
    """The replay services under hypercorn on a fixed port (so a restart keeps the address),
    in one process (``--workers 0``), so a SIGKILL really stops the handler mid-step."""
    endpoint = ServiceEndpoint(app=APP, port=port, log_path=log_dir / f"{name}.log")
    with endpoint.log_path.open("wb") as log:
        endpoint.process = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", APP, "--bind", f"127.0.0.1:{port}", "--workers", "0"],
            cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    return wait_ready(endpoint)


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    yield from module_engine(kafka, tmp_path_factory, "sdk-replay")


@pytest.fixture
def endpoint_port() -> int:
    return free_port()


def test_endpoint_kill_between_steps_resumes_with_identical_results(
    our_engine: EngineProcess, tmp_path: Path, endpoint_port: int
) -> None:
    system = System("logstrate", our_engine.admin_url, our_engine.ingress_url)
    held = 4
    first = serve_on(endpoint_port, tmp_path, "first")
    second: ServiceEndpoint | None = None
    try:
        system.register(first.url)
        with StepServer(hold_step=held) as steps:
            token = uuid.uuid4().hex[:12]
            status, body = system.invoke("/SdkReplay/steps/send", {"url": steps.url, "token": token})
            assert status == 202, body
            invocation_id = body["invocationId"]
            assert steps.entered.wait(60), f"step {held} never started:\n{first.log()[-3000:]}"
            first.stop()  # SIGKILL in the middle of step `held`
            second = serve_on(endpoint_port, tmp_path, "second")
            steps.release.set()

            def output() -> Any:
                code, result = http("GET", f"{system.ingress_url}/restate/invocation/{invocation_id}/output")
                return result if code == 200 else None

            result = wait_until(output, 90, f"the invocation to finish on the restarted endpoint")
            for step in range(STEPS):
                expected = 2 if step == held else 1
                assert steps.calls_of(step) == expected, (step, steps.calls)
            # Identical results: every journaled value, and the seed drawn before the
            # crash (sent along with the first steps) is the one the replay drew again.
            assert result["values"] == [steps.answered[s] for s in range(STEPS)]
            assert {c["seed"] for c in steps.calls} == {result["seed"]}
            assert "Journal mismatch" not in second.log()
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_non_deterministic_handler_gets_a_clear_mismatch_error_in_its_status(
    our_engine: EngineProcess, tmp_path: Path, endpoint_port: int
) -> None:
    system = System("logstrate", our_engine.admin_url, our_engine.ingress_url)
    endpoint = serve_on(endpoint_port, tmp_path, "nondeterministic")
    try:
        system.register(endpoint.url)
        token = uuid.uuid4().hex[:12]
        status, body = system.invoke("/SdkReplay/nondeterministic/send", token)
        assert status == 202, body
        invocation_id = body["invocationId"]

        def failed_with_mismatch() -> dict[str, Any] | None:
            code, info = http("GET", f"{system.admin_url}/invocations/{invocation_id}")
            failure = info.get("last_failure") if code == 200 else None
            return info if failure and failure["code"] == 570 else None

        info = wait_until(failed_with_mismatch, 60, "the journal mismatch in the invocation's status")
        message = info["last_failure"]["message"]
        assert "Journal mismatch in handler SdkReplay/nondeterministic at command index 1" in message
        assert f"expected RunCommand(name='charge-{token}-1')" in message
        assert re.search(rf"issued RunCommand\(name='charge-{token}-\d+'\)", message), message
        assert re.search(rf"name: journal has charge-{token}-1, handler now gives charge-{token}-\d+", message)
        # Nothing was corrupted: the invocation is not completed, and its journal still
        # holds the first attempt's step and result, not the differing one.
        assert info["status"] != "completed"
        runs = [e for e in info["journal"] if e["type"] == "RunCommand"]
        assert [e.get("name") for e in runs] == [f"charge-{token}-1"], info["journal"]
        code, _ = http("PATCH", f"{system.admin_url}/invocations/{invocation_id}/kill")
        assert code == 200
    finally:
        endpoint.stop()
