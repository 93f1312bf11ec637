"""The SDK's features, end to end, on our engine and on the real restate-server.

Every test runs once per system with the same endpoint (``tests/fixtures/sdk_features.py``,
written with our SDK, served by hypercorn over HTTP/1.1) and the same requests.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.sdk_features import AVRO_ORDER, AVRO_QUOTE
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import SYSTEMS, System, http, module_engine, system_under_test

FEATURES_APP = "tests.fixtures.sdk_features:app"


@pytest.fixture(scope="module")
def features_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(FEATURES_APP)


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    yield from module_engine(kafka, tmp_path_factory, "sdk-features")


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request: pytest.FixtureRequest, features_endpoint: ServiceEndpoint) -> System:
    return system_under_test(request, features_endpoint.url)


def token() -> str:
    """A value unique to this run, so both systems and reruns never share keys."""
    return uuid.uuid4().hex[:12]


def test_run_sync_in_thread_and_async(system: System) -> None:
    t = token()
    assert system.ok("/SdkSteps/runs", t) == {"sync_in_thread": True, "async": 42, "token": t}


def test_run_retries_until_success(system: System) -> None:
    assert system.ok("/SdkSteps/flaky_step", {"token": token(), "fail_times": 2}) == 2


def test_run_retry_policy_exhausted_is_terminal(system: System) -> None:
    assert system.ok("/SdkSteps/exhausted_step", token()) == "gave up after 2: 500"


def test_terminal_error_reaches_the_caller_with_its_code(system: System) -> None:
    status, body = system.invoke("/SdkSteps/refuse", 409)
    assert status == 409, body
    assert "refused with 409" in body["message"]


def test_durable_sleep(system: System) -> None:
    assert system.ok("/SdkSteps/nap", 200) == "awake"


def test_random_uuid_and_time_are_deterministic(system: System) -> None:
    assert system.ok("/SdkSteps/deterministic") == {
        "random_stable": True, "uuid_stable": True, "time_plausible": True,
    }


def test_request_id_and_headers(system: System) -> None:
    info = system.ok("/SdkSteps/request_info", headers={"x-test-header": "hello"})
    assert info["id"].startswith("inv_")
    assert info["header"] == "hello"


def test_gather_and_select(system: System) -> None:
    assert system.ok("/SdkSteps/combinators") == {"gather": [1, 2], "select": "fast"}


def test_dataclass_in_pydantic_out(system: System) -> None:
    assert system.ok("/SdkSteps/typed", {"item": "tea", "quantity": 4}) == {"item": "tea", "total": 12}


def test_bad_input_is_a_400(system: System) -> None:
    status, _ = system.invoke("/SdkSteps/typed", {"item": "tea"})
    assert status == 400


def test_object_state_set_get_clear_clear_all_keys(system: System) -> None:
    key = token()
    system.ok(f"/SdkStore/{key}/put", {"name": "x", "value": 1})
    system.ok(f"/SdkStore/{key}/put", {"name": "y", "value": {"nested": [1, 2]}})
    assert system.ok(f"/SdkStore/{key}/snapshot") == {"x": 1, "y": {"nested": [1, 2]}}
    system.ok(f"/SdkStore/{key}/remove", "x")
    assert system.ok(f"/SdkStore/{key}/snapshot") == {"y": {"nested": [1, 2]}}
    system.ok(f"/SdkStore/{key}/wipe")
    assert system.ok(f"/SdkStore/{key}/snapshot") == {}


def test_calls_generic_calls_sends_and_delayed_sends(system: System) -> None:
    key = token()
    result = system.ok("/SdkSteps/calls", key)
    assert result["after_call"] == '{"a":1}'
    assert result["sent_id"].startswith("inv_")
    wait_until(lambda: system.ok(f"/SdkStore/{key}/snapshot") == {"a": 1, "b": 2, "c": 3},
               timeout=30, what=f"{system.name}: the sent and delayed puts applied")


def test_idempotency_key_on_calls(system: System) -> None:
    assert system.ok("/SdkSteps/idempotent_calls", token()) == [1, 1]


def test_workflow_promise_resolve_peek_and_state(system: System) -> None:
    wf = token()
    status, body = system.invoke(f"/SdkApproval/{wf}/run/send", 100)
    assert status == 202, body
    wait_until(lambda: system.ok(f"/SdkApproval/{wf}/status") == "waiting", timeout=30,
               what=f"{system.name}: the workflow waits on its promise")
    assert system.ok(f"/SdkApproval/{wf}/decide", "approved") == "approved"
    status, body = system.invoke(f"/SdkApproval/{wf}/decide", "rejected")
    assert status != 200, "a promise resolves once"
    wait_until(lambda: system.ok(f"/SdkApproval/{wf}/status") == "approved", timeout=30,
               what=f"{system.name}: the workflow finished")


def test_awakeable_resolved_by_another_invocation(system: System) -> None:
    assert system.ok("/SdkAwake/wait_for_awakeable", "ping") == "got ping"


def test_non_determinism_is_a_clear_journal_mismatch(system: System, features_endpoint: ServiceEndpoint) -> None:
    t = token()
    # The second attempt journals a different step; the SDK refuses it (code 570) and
    # the runtime retries; the third attempt is deterministic again and completes.
    assert system.ok("/SdkSteps/nondeterministic", t) == "recovered"
    log = features_endpoint.log()
    lines = [line for line in log.splitlines() if t in line and "Journal mismatch" in line]
    assert lines, f"no journal mismatch logged for {t}:\n{log[-3000:]}"
    assert "handler SdkSteps/nondeterministic at command index 1" in lines[0]
    assert f"expected RunCommand(name='first-{t}')" in lines[0]
    assert f"issued RunCommand(name='second-{t}')" in lines[0]


def test_logs_are_not_repeated_on_replay(system: System, features_endpoint: ServiceEndpoint) -> None:
    t = token()
    assert system.ok("/SdkSteps/replay_logging", t) == "logged"
    log = features_endpoint.log()
    assert log.count(f"replay-log {t} before") == 1, log[-2000:]
    assert log.count(f"replay-log {t} after") == 1, log[-2000:]


def test_run_typed_and_run_options_as_in_the_official_sdk(system: System) -> None:
    t = token()
    assert system.ok("/SdkSteps/typed_runs", t) == {
        "total": 42, "loud": f"{t.upper()}?", "legacy": 3, "gave_up": "500 after 2",
    }


@pytest.mark.parametrize("via", ["handle", "ctx"])
def test_cancelled_callee_gets_409_while_suspended_and_compensates(system: System, via: str) -> None:
    key = token()
    outcome = system.ok("/SdkCancel/cancel_sleeper", {"token": key, "via": via})
    assert outcome == {"code": 409, "message": "cancelled; compensated after 409"}
    # The compensation's durable call went through after the cancellation.
    assert system.ok(f"/SdkStore/{key}/snapshot") == {"compensation": "compensated after 409"}


def test_attach_invocation_from_a_handler(system: System) -> None:
    text = token()
    status, body = http("POST", f"{system.ingress_url}/SdkCancel/attach_to_send", text, timeout=15)
    assert status == 200, body
    assert body["attached"] == f"echo {text}"
    assert body["target"].startswith("inv_")


def test_get_invocation_output_from_a_handler(system: System) -> None:
    text = token()
    assert system.ok("/SdkCancel/output_of_send", text) == {
        "early": None, "attached": f"slow {text}", "late": f"slow {text}",
    }


def _avro(schema: dict[str, Any], value: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return out.getvalue()


def _post_bytes(url: str, data: bytes | None, content_type: str | None) -> tuple[int, str, bytes]:
    headers = {"content-type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type", ""), err.read()


def test_avro_records_in_out_in_steps_and_in_state(system: System) -> None:
    order = {"id": f"o-{token()}", "lines": [{"sku": "tea", "quantity": 2}, {"sku": "cup", "quantity": 1}]}
    status, content_type, body = _post_bytes(
        f"{system.ingress_url}/SdkAvro/quote", _avro(AVRO_ORDER, order), "avro/binary")
    assert status == 200, body
    assert content_type.startswith("avro/binary")
    quote = fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(AVRO_QUOTE), None)
    assert quote == {"order_id": order["id"], "total_cents": 1300, "lines": 2}
    status, _, body = _post_bytes(f"{system.ingress_url}/SdkAvroOrders/{order['id']}/recall", None, None)
    assert status == 200, body
    assert fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(AVRO_ORDER), None) == order
    # Bytes that are not an Order are the caller's mistake: 400, not a retry loop.
    status, _, body = _post_bytes(f"{system.ingress_url}/SdkAvro/quote", b"\x07", "avro/binary")
    assert status == 400, body
