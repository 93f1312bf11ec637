"""Ingress and attempts at the WAL's limits, against a real engine, broker and SDK endpoint.

* A body between the WAL's record limit (the producer's ``message.max.bytes``, 1,000,000
  bytes) and the ingress limit (10 MiB) gets 413 naming the limit (it was a 500 from
  Kafka's ``produce``).
* An attempt whose ``ctx.run`` result is too large for one WAL record is failed and
  retried by the retry policy, then failed with a clear error; its caller gets that error
  (it stayed "invoked" for good and its caller hung).
* A caller that disconnects drops its pending entry (``logstrate_ingress_pending_requests``
  goes back to 0); it used to stay until the invocation ended.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from collections.abc import Callable

import pytest

from tests.engine.test_invocations import call, register
from tests.fixtures.engine import INVOKER_TRANSPORTS, EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints

pytestmark = pytest.mark.kafka

OUTAGE_APP = "tests.fixtures.outage_services:app"
FAIL_FAST = {
    "LOGSTRATE_DEFAULT_RETRY_POLICY_MAX_ATTEMPTS": "2",
    "LOGSTRATE_DEFAULT_RETRY_POLICY_ON_MAX_ATTEMPTS": "kill",
    "LOGSTRATE_DEFAULT_RETRY_POLICY_INITIAL_INTERVAL": "100ms",
}


def _engine(engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints,
            transport: str = "h2") -> EngineProcess:
    engine = engine_factory(partitions=2, extra_args=INVOKER_TRANSPORTS[transport], env=FAIL_FAST)
    engine.start_and_wait()
    engine.wait_leading_all()
    register(engine, service_endpoints.get(OUTAGE_APP))
    return engine


def _pending(engine: EngineProcess) -> float:
    with urllib.request.urlopen(f"{engine.admin_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(r"^logstrate_ingress_pending_requests (\S+)$", text, re.MULTILINE)
    assert found is not None, "logstrate_ingress_pending_requests missing from /metrics"
    return float(found.group(1))


def test_a_body_over_the_wal_record_limit_gets_413_naming_the_limit(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints,
) -> None:
    engine = _engine(engine_factory, service_endpoints)
    body = json.dumps("x" * 1_500_000).encode()  # under 10 MiB, over 1,000,000 bytes
    status, answer, _ = call(f"{engine.ingress_url}/Outage/nap", raw=body)
    assert status == 413, answer
    assert "1000000" in answer["message"] and "message.max.bytes" in answer["message"], answer
    # Just under the limit in body, over it once encoded with the headers: 413 too, not 500.
    padded = json.dumps("x" * 999_990).encode()
    status, answer, _ = call(f"{engine.ingress_url}/Outage/nap", raw=padded,
                             headers={"x-pad": "p" * 2000})
    assert status == 413, answer
    assert "too large for the WAL" in answer["message"], answer


@pytest.mark.parametrize("transport", sorted(INVOKER_TRANSPORTS))
def test_an_attempt_too_large_for_the_wal_is_failed_and_its_caller_answered(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, transport: str,
) -> None:
    engine = _engine(engine_factory, service_endpoints, transport)
    status, answer, _ = call(f"{engine.ingress_url}/Outage/big_run", 2_000_000, timeout=60)
    assert status == 500, answer
    assert "too large for the WAL" in answer["message"], answer
    # The engine carries on: a small one completes.
    status, answer, _ = call(f"{engine.ingress_url}/Outage/big_run", 1000, timeout=30)
    assert (status, answer) == (200, 1000)


def test_a_caller_that_disconnects_drops_its_pending_entry(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints,
) -> None:
    engine = _engine(engine_factory, service_endpoints)
    assert _pending(engine) == 0
    body = b"600"
    with socket.create_connection(("127.0.0.1", engine.ingress_port), timeout=10) as sock:
        sock.sendall(
            b"POST /Outage/nap HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode() + body
        )
        wait_until(lambda: _pending(engine) == 1, 30, "the call to wait for its answer")
    wait_until(lambda: _pending(engine) == 0, 10, "the disconnected caller's pending entry to go")
