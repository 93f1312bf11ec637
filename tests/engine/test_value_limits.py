"""Times the engine cannot store are refused where they enter, never written to the WAL.

A handler (official ``restate-sdk``) that sleeps or delays a send by 999,999,999 days
asks for a time past 9999-12-31: the invoker fails the attempt with a message naming
the command (retried by the retry policy like any failure); the invocation never
suspends on a timer it could not store. A ``?delay=`` that long is a 400 at the
ingress. On the code before these checks the sleep was accepted (a timer in the year
2.7 million), and an overlong ``?delay=`` answered 500 or 202.
"""

from __future__ import annotations

from typing import Any

from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http

APP = "tests.fixtures.official_sdk_far_future:app"


def _register(engine: EngineProcess, service_endpoints: ServiceEndpoints) -> None:
    url = service_endpoints.get(APP).url
    status, body = http("POST", f"{engine.admin_url}/deployments", {"uri": url, "use_http_11": True, "force": True})
    assert status in (200, 201), body


def _failure_of(engine: EngineProcess, invocation_id: str) -> dict[str, Any]:
    def failed() -> dict[str, Any] | None:
        status, body = http("GET", f"{engine.admin_url}/invocations/{invocation_id}?journal=false")
        if status != 200 or not isinstance(body, dict):
            return None
        assert body["status"] != "suspended", body  # the timer was refused, not stored
        return body if body.get("last_failure") else None

    found: dict[str, Any] = wait_until(failed, 60, "the attempt to fail")
    return found


def test_a_sleep_past_9999_fails_the_attempt_with_a_clear_message(
    engine: EngineProcess, service_endpoints: ServiceEndpoints
) -> None:
    _register(engine, service_endpoints)
    status, sent = http("POST", f"{engine.ingress_url}/FarFuture/sleep/send")
    assert status == 202, sent
    body = _failure_of(engine, sent["invocationId"])
    failure = body["last_failure"]
    assert failure["code"] == 400
    assert "SleepCommand wake_up_time" in failure["message"] and "9999-12-31" in failure["message"]
    assert body["last_failure_related_command_type"] is not None


def test_a_one_way_call_delayed_past_9999_fails_the_attempt(
    engine: EngineProcess, service_endpoints: ServiceEndpoints
) -> None:
    _register(engine, service_endpoints)
    status, sent = http("POST", f"{engine.ingress_url}/FarFuture/send/send")
    assert status == 202, sent
    failure = _failure_of(engine, sent["invocationId"])["last_failure"]
    assert failure["code"] == 400 and "OneWayCallCommand invoke_time" in failure["message"]


def test_an_ingress_delay_past_9999_is_a_400(engine: EngineProcess, service_endpoints: ServiceEndpoints) -> None:
    _register(engine, service_endpoints)
    for delay in ("999999999d", "PT9999999999999999H", "1000000000000000000000ms"):
        status, body = http("POST", f"{engine.ingress_url}/FarFuture/ok/send?delay={delay}", "x")
        assert status == 400, (delay, status, body)
        assert "too long" in body["message"] and "9999-12-31" in body["message"]
    # Within range it is accepted, and the engine serves calls as before.
    assert http("POST", f"{engine.ingress_url}/FarFuture/ok/send?delay=1000d", "x")[0] == 202
    assert http("POST", f"{engine.ingress_url}/FarFuture/ok", "now") == (200, "now")
