"""Test handlers against the real thing: a logstrate engine, Kafka and your services.

:func:`harness` starts what a test needs and tears it down afterwards:

1. **Kafka**: the broker you name (``kafka="host:port"``, or ``LOGSTRATE_TEST_KAFKA``);
   else the local development broker if it is running (``make dev``,
   ``compose/kafka_local.py start``); else a private single-node broker started with
   ``compose/kafka_local.py`` for the harness's lifetime (source checkouts only).
2. **Engine**: a real ``python -m engine serve`` process on free loopback ports, with
   its own data directory and topic prefix, so harnesses never share state.
3. **Your services**: served in this process by the SDK's aiohttp server (a background
   thread with its own event loop) on a free port, registered with the engine's admin
   API like any deployment.
4. **A client**: :class:`IngressClient`, synchronous, calling handlers through the
   engine's ingress with the handlers' own serdes.

With pytest, one harness per module keeps tests fast (the engine starts once)::

    import pytest
    from sdk.testing import harness
    from examples.greeter.sdk_greeter import counter, greeter, greet, add

    @pytest.fixture(scope="module")
    def env():
        with harness([greeter, counter]) as env:
            yield env

    def test_greet(env):
        assert env.client.service_call(greet, "Sam") == "Hello Sam! (greeting #1)"
        assert env.client.object_call(add, "alice", 5) == 5

A failed call raises :class:`IngressError`, a :class:`~sdk.errors.TerminalError`
carrying the HTTP status, so ``pytest.raises(TerminalError)`` works as in handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sdk.endpoint import AsgiApp, Endpoint
from sdk.errors import SdkError, TerminalError
from sdk.server import RunningServer, start
from sdk.service import HandlerDef, ServiceDef, handler_def_of

__all__ = ["Harness", "HarnessError", "IngressClient", "IngressError", "harness"]

log = logging.getLogger("sdk.testing")

#: Environment variable naming an existing broker (the project's test suite uses it too).
KAFKA_ENV = "LOGSTRATE_TEST_KAFKA"


class HarnessError(SdkError):
    """The harness could not start something; the message says what and shows its log."""


class IngressError(TerminalError):
    """A call through the ingress answered an error status (the handler's terminal
    error, or the engine's: 400 bad input, 404 unknown handler, ...)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if condition():
                return
        time.sleep(0.05)
    raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}")


def _request(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")


# -- the client ----------------------------------------------------------------------


class IngressClient:
    """Calls handlers through the engine's ingress (blocking; use it from test code).

    Typed methods take the handler function itself (as ``ctx.service_call`` does) and
    use its serdes for the input and the result. ``call`` is the raw form.
    """

    def __init__(self, ingress_url: str, timeout: float = 60.0) -> None:
        self.ingress_url = ingress_url.rstrip("/")
        self.timeout = timeout

    def call(
        self, path: str, body: bytes = b"", *, content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """POST ``body`` to ``path`` (``/Service/handler``, ``/Object/key/handler``);
        the answer's raw body. Raises :class:`IngressError` on an error status."""
        all_headers = dict(headers or {})
        if body and content_type:
            all_headers.setdefault("content-type", content_type)
        status, _, answer = _request("POST", f"{self.ingress_url}{path}", body or None,
                                     all_headers, self.timeout)
        if status >= 300:
            raise IngressError(_error_message(answer), status)
        return answer

    def _path(self, target: HandlerDef, key: str | None) -> str:
        parts = [target.service_name] + ([key] if key is not None else []) + [target.name]
        return "/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)

    def _invoke(self, handler: Callable[..., Any], key: str | None, arg: Any,
                idempotency_key: str | None, headers: dict[str, str] | None) -> Any:
        target = handler_def_of(handler)
        body = target.input_serde.serialize(arg) if target.has_input else b""
        extra = dict(headers or {})
        if idempotency_key:
            extra["idempotency-key"] = idempotency_key
        answer = self.call(self._path(target, key), body,
                           content_type=target.input_serde.content_type, headers=extra)
        return target.output_serde.deserialize(answer)

    def _send(self, handler: Callable[..., Any], key: str | None, arg: Any,
              delay: timedelta | None, idempotency_key: str | None) -> str:
        target = handler_def_of(handler)
        body = target.input_serde.serialize(arg) if target.has_input else b""
        path = self._path(target, key) + "/send"
        if delay is not None:
            path += f"?delay={int(delay / timedelta(milliseconds=1))}ms"
        extra = {"idempotency-key": idempotency_key} if idempotency_key else {}
        answer = self.call(path, body, content_type=target.input_serde.content_type, headers=extra)
        return str(json.loads(answer)["invocationId"])

    def service_call(self, handler: Callable[..., Any], arg: Any = None, *,
                     idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        """Call a service handler and wait for its result."""
        return self._invoke(handler, None, arg, idempotency_key, headers)

    def object_call(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                    idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        """Call a virtual object's handler for ``key`` and wait for its result."""
        return self._invoke(handler, key, arg, idempotency_key, headers)

    def workflow_call(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                      idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        """Call a workflow handler (``run`` starts the workflow ``key``) and wait."""
        return self._invoke(handler, key, arg, idempotency_key, headers)

    def service_send(self, handler: Callable[..., Any], arg: Any = None, *,
                     delay: timedelta | None = None, idempotency_key: str | None = None) -> str:
        """Send to a service handler; its invocation id."""
        return self._send(handler, None, arg, delay, idempotency_key)

    def object_send(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                    delay: timedelta | None = None, idempotency_key: str | None = None) -> str:
        """Send to a virtual object's handler; its invocation id."""
        return self._send(handler, key, arg, delay, idempotency_key)

    def workflow_send(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                      delay: timedelta | None = None) -> str:
        """Start a workflow (or send to one of its handlers) without waiting; the id."""
        return self._send(handler, key, arg, delay, None)

    def attach(self, invocation_id: str, handler: Callable[..., Any] | None = None) -> Any:
        """Wait for an invocation's result (decoded with ``handler``'s output serde,
        else returned as raw bytes)."""
        status, _, answer = _request(
            "GET", f"{self.ingress_url}/restate/invocation/{invocation_id}/attach",
            timeout=self.timeout)
        if status >= 300:
            raise IngressError(_error_message(answer), status)
        return answer if handler is None else handler_def_of(handler).output_serde.deserialize(answer)


# -- the engine process ----------------------------------------------------------------


@dataclass
class _Engine:
    bootstrap_servers: str
    data_dir: Path
    partitions: int
    ingress_port: int
    admin_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "engine.log"

    def start(self, timeout: float) -> None:
        command = [
            sys.executable, "-m", "engine", "serve",
            "--kafka-bootstrap-servers", self.bootstrap_servers,
            "--topic-prefix", f"harness-{uuid.uuid4().hex[:10]}",
            "--partitions", str(self.partitions),
            "--data-dir", str(self.data_dir),
            "--ingress-bind", f"127.0.0.1:{self.ingress_port}",
            "--admin-bind", f"127.0.0.1:{self.admin_port}",
            "--log-format", "json",
        ]
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise HarnessError(f"the engine exited with {self.process.returncode}:\n{self.log_tail()}")
            return _request("GET", f"http://127.0.0.1:{self.admin_port}/health", timeout=2)[0] == 200

        try:
            _wait_until(healthy, timeout, "the engine's /health")
        except HarnessError as exc:
            raise HarnessError(f"{exc}\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no engine log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the services, in this process -------------------------------------------------------


class _InProcessEndpoint:
    """The SDK's aiohttp server on its own event loop in a daemon thread."""

    def __init__(self, services: Iterable[ServiceDef] | Endpoint | AsgiApp) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sdk-harness-endpoint",
                                        daemon=True)
        self._thread.start()
        self.server: RunningServer = asyncio.run_coroutine_threadsafe(
            start(services), self._loop).result(timeout=30)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)
        if not self._thread.is_alive():
            self._loop.close()


# -- Kafka -----------------------------------------------------------------------------------


def _local_kafka_module() -> Any:
    try:
        return importlib.import_module("compose.kafka_local")
    except ImportError as exc:
        raise HarnessError(
            "no Kafka broker: pass harness(..., kafka='host:port') or set "
            f"{KAFKA_ENV}; starting a local one needs compose/kafka_local.py from a "
            "logstrate source checkout"
        ) from exc


@contextlib.contextmanager
def _kafka(explicit: str | None, workdir: Path) -> Iterator[str]:
    chosen = explicit or os.environ.get(KAFKA_ENV)
    if chosen:
        yield chosen
        return
    module = _local_kafka_module()
    dev = module.LocalKafka(workdir=module.DEFAULT_WORKDIR)
    if (module.DEFAULT_WORKDIR / "ports.json").exists() and dev.pid() is not None:
        host, port = dev.bootstrap_servers.rsplit(":", 1)
        if module.broker_ready(host, int(port)):
            log.info("reusing the running local broker at %s", dev.bootstrap_servers)
            yield dev.bootstrap_servers
            return
    private = module.LocalKafka(workdir=workdir / "kafka")
    log.info("starting a private Kafka broker in %s", private.workdir)
    try:
        yield str(private.start())
    finally:
        private.stop()


# -- the harness -------------------------------------------------------------------------------


@dataclass
class Harness:
    """A running engine with the services registered; see :func:`harness`."""

    client: IngressClient
    ingress_url: str
    admin_url: str
    endpoint_url: str
    kafka_bootstrap_servers: str
    workdir: Path
    _engine: _Engine

    def engine_log(self) -> str:
        """The engine's log so far (JSON lines)."""
        return self._engine.log_path.read_text(errors="replace") if self._engine.log_path.exists() else ""

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One admin API request (JSON in and out): ``env.admin("GET", f"/invocations/{id}")``."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        status, _, answer = _request(method, f"{self.admin_url}{path}", data, headers)
        try:
            return status, json.loads(answer) if answer else None
        except ValueError:
            return status, answer.decode(errors="replace")


@contextlib.contextmanager
def harness(
    services: Iterable[ServiceDef] | Endpoint | AsgiApp,
    *,
    kafka: str | None = None,
    partitions: int = 2,
    workdir: Path | None = None,
    startup_timeout: float = 120.0,
) -> Iterator[Harness]:
    """Start Kafka (unless one is given or running), an engine and ``services``;
    register them; yield a :class:`Harness`; stop everything it started.

    Args:
        services: The services to test (``[svc, obj]``), or an ``sdk.app(...)``.
        kafka: Bootstrap servers of a broker to use (default: ``LOGSTRATE_TEST_KAFKA``,
            then the running local development broker, then a private one).
        partitions: WAL partitions of the engine.
        workdir: Where the engine's data and log go (default: a temporary directory,
            removed afterwards).
        startup_timeout: Seconds to wait for the broker, the engine and registration.

    Raises:
        HarnessError: something did not start; the message carries its log's tail.
    """
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sdk-harness-")))
        root.mkdir(parents=True, exist_ok=True)
        bootstrap = stack.enter_context(_kafka(kafka, root))
        endpoint = _InProcessEndpoint(services)
        stack.callback(endpoint.stop)
        engine = _Engine(bootstrap, root / "engine" / "data", partitions, _free_port(), _free_port())
        engine.data_dir.parent.mkdir(parents=True, exist_ok=True)
        stack.callback(engine.stop)
        engine.start(startup_timeout)
        admin_url = f"http://127.0.0.1:{engine.admin_port}"
        ingress_url = f"http://127.0.0.1:{engine.ingress_port}"
        registration = json.dumps({"uri": endpoint.server.url, "use_http_11": True, "force": True})
        status, _, answer = _request("POST", f"{admin_url}/deployments", registration.encode(),
                                     {"content-type": "application/json"}, startup_timeout)
        if status not in (200, 201):
            raise HarnessError(f"registering {endpoint.server.url} answered {status}: "
                               f"{answer.decode(errors='replace')}\n{engine.log_tail()}")
        log.info("harness ready: ingress %s, admin %s, services at %s",
                 ingress_url, admin_url, endpoint.server.url)
        yield Harness(
            client=IngressClient(ingress_url),
            ingress_url=ingress_url,
            admin_url=admin_url,
            endpoint_url=endpoint.server.url,
            kafka_bootstrap_servers=bootstrap,
            workdir=root,
            _engine=engine,
        )
