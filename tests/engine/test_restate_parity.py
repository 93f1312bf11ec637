"""The same requests against the real restate-server and our engine give the same answers.

restate-server comes from npm (pinned in compose/restate-server/package.json); both
servers get the same official-SDK endpoint registered.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.engine.test_invocations import call, register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import ServiceEndpoint

REQUESTS: list[tuple[str, bytes, str]] = [
    ("/Greeter/greet", b'"Sam"', "application/json"),
    ("/Counter/parity/add", b"5", "application/json"),
    ("/Counter/parity/add", b"6", "application/json"),
    ("/Counter/parity/get", b"", ""),
    ("/Counter/parity/get", b"", "application/json"),  # no-input handler given a content type
    ("/Nope/greet", b'"x"', "application/json"),
    ("/Greeter/nope", b'"x"', "application/json"),
    ("/Counter/add", b"1", "application/json"),
    ("/Counter/parity/add", b"1", "application/x-www-form-urlencoded"),
]


def test_same_answers_as_restate_server(
    restate_server: RestateServer, engine_factory: Callable[..., EngineProcess], service_endpoints: object,
    greeter_endpoint: ServiceEndpoint,
) -> None:
    status, body, _ = call(f"{restate_server.admin_url}/deployments", {"uri": greeter_endpoint.url, "use_http_11": True})
    assert status in (200, 201), body
    engine = engine_factory()
    engine.start_and_wait()
    register(engine, greeter_endpoint)

    for path, payload, content_type in REQUESTS:
        raw = payload if payload or content_type else None
        theirs = call(f"{restate_server.ingress_url}{path}", raw=raw, content_type=content_type)
        ours = call(f"{engine.ingress_url}{path}", raw=raw, content_type=content_type)
        assert ours[0] == theirs[0], f"{path}: status {ours[0]} != restate-server's {theirs[0]} ({ours[1]} / {theirs[1]})"
        if isinstance(theirs[1], dict):
            assert ours[1]["code"] == theirs[1]["code"], path
            assert ours[1]["message"].split(":")[0] == theirs[1]["message"].split(":")[0], path
        elif path != "/Greeter/greet":  # the greeting counts are per server, the rest must match
            assert ours[1] == theirs[1], path
        assert ("x-restate-id" in ours[2]) == ("x-restate-id" in theirs[2]), path
