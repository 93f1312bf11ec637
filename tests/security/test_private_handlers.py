"""Private handlers are closed on every ingress route, not only on calls.

A real engine; the official SDK's Greeter (a service, called with an idempotency key) and
the ``Signup`` workflow, each made private with ``PATCH /services/{name}`` after one
invocation completed: attach and output, by idempotency key, by workflow key and by the
invocation id (derived ids can be computed from the key), all answer 400; made public
again, the same routes answer the result.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import http


def _invocation_id(engine: EngineProcess, service: str) -> str:
    status, body = http("GET", f"{engine.admin_url}/invocations?service={service}")
    assert status == 200 and len(body["invocations"]) == 1, body
    return str(body["invocations"][0]["id"])


def _set_public(engine: EngineProcess, service: str, public: bool) -> None:
    status, body = http("PATCH", f"{engine.admin_url}/services/{service}", {"public": public})
    assert status == 200, body


def test_attach_and_output_refuse_private_handlers(
    engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint,
    service_endpoints: ServiceEndpoints,
) -> None:
    engine = engine_factory()
    engine.start_and_wait()
    register(engine, greeter_endpoint)
    register(engine, service_endpoints.get("tests.fixtures.endpoint_apps:tuned_app"))
    ingress = engine.ingress_url
    status, greeting = http("POST", f"{ingress}/Greeter/greet", "Ada", headers={"idempotency-key": "k1"})
    assert status == 200, greeting
    status, signed = http("POST", f"{ingress}/Signup/u1/signup_run", {"name": "Ada"})
    assert status == 200, signed
    greeter_id, signup_id = _invocation_id(engine, "Greeter"), _invocation_id(engine, "Signup")
    routes = {
        "Greeter": [f"/restate/invocation/Greeter/greet/k1/{op}" for op in ("output", "attach")]
        + [f"/restate/invocation/{greeter_id}/{op}" for op in ("output", "attach")],
        "Signup": [f"/restate/workflow/Signup/u1/{op}" for op in ("output", "attach")]
        + [f"/restate/invocation/{signup_id}/{op}" for op in ("output", "attach")],
    }
    results = {"Greeter": greeting, "Signup": signed}
    for service, paths in routes.items():
        for path in paths:
            assert http("GET", f"{ingress}{path}") == (200, results[service]), path
        _set_public(engine, service, False)
        for path in paths:
            status, body = http("GET", f"{ingress}{path}")
            assert status == 400 and "is private" in body["message"], (path, body)
            assert service in body["message"]
        _set_public(engine, service, True)
        for path in paths:
            assert http("GET", f"{ingress}{path}") == (200, results[service]), path

    # The call routes were closed already; still are.
    _set_public(engine, "Greeter", False)
    status, body = http("POST", f"{ingress}/Greeter/greet", "Bob")
    assert status == 400 and "is private" in body["message"], body
