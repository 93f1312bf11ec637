"""schemathesis against the admin API of a real engine (real Kafka, real LMDB).

The document fuzzed is the one the engine serves at ``GET /openapi``
(``engine/admin/openapi.json``, Restate's admin API) plus the routes logstrate adds
(``admin_extra.json``). Every operation gets positive cases (valid by the schema) and
negative ones (violating it), with random path parameters and, for the read and
invocation-management routes, with names and ids that exist, so the handlers behind the
404 are reached too.

What counts as a failure:

* a 500, or any other 5xx except the documented ones: 502/504 when discovery cannot reach
  the URI (``POST /deployments``, ``PATCH /deployments/{id}``) and 501 for
  ``DELETE /deployments/{id}`` without ``force=true`` (as restate-server);
* a 4xx without a JSON ``message`` saying what to fix;
* an engine that exits, or logs at error level (an unexpected exception), during the run.
"""

from __future__ import annotations

import json
import os
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import hypothesis
import requests
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode

from tests.fuzz.conftest import FuzzEngine, TargetCounts, counts, fuzz_settings, http_json

EXAMPLES = {GenerationMode.POSITIVE: 4, GenerationMode.NEGATIVE: 3}
"""Per operation and generation mode in the normal suite (x LOGSTRATE_FUZZ_SCALE);
negative cases cost schemathesis the most CPU to generate."""

_DISCOVERING = {("POST", "/deployments"), ("PATCH", "/deployments/{deployment}")}
# Known names are not used where they would change what the rest of the run relies on.
_KEEP_RANDOM = {("DELETE", "/deployments/{deployment}"), ("PATCH", "/services/{service}")}


_UNGENERATABLE = {(GenerationMode.POSITIVE, "PATCH", "/deployments/{deployment}")}
"""schemathesis finds no body valid by this schema (Hypothesis gives up after ~20 s, every
candidate filtered out); its negative cases still run."""


def admin_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(resources.files("engine.admin").joinpath("openapi.json").read_bytes())
    extra = json.loads((Path(__file__).parent / "admin_extra.json").read_text())
    document["paths"].update(extra["paths"])
    return document


def judge(method: str, path: str, status: int, body: bytes) -> str | None:
    """Why this answer is a failure, or None."""
    if status >= 500:
        documented = (status in (502, 504) and (method, path) in _DISCOVERING) or (
            status == 501 and (method, path) == ("DELETE", "/deployments/{deployment}")
        )
        if not documented:
            return f"{status} on {method} {path}: {body[:200]!r}"
    if 400 <= status < 600 and method != "HEAD":
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if not isinstance(message, str) or not message.strip():
            return f"{status} on {method} {path} without a JSON message: {body[:200]!r}"
    return None


def _keep_discovery_local(case: Any) -> None:
    """A generated deployment ``uri`` with a host name points at loopback instead: the
    engine would otherwise look up random names in the DNS (seconds each, and traffic
    leaving the machine). Its scheme, port, path and oddities stay as generated."""
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("uri"), str):
        return
    try:
        parts = urlsplit(body["uri"])
        host = parts.hostname
        port = parts.port
    except ValueError:
        return  # not a URL at all: for the engine to refuse
    if host and not host.replace(".", "").isdigit():
        netloc = "127.0.0.1" + (f":{port}" if port is not None else "")
        body["uri"] = urlunsplit(parts._replace(netloc=netloc))


def known_values(engine: FuzzEngine) -> dict[str, str]:
    """Path parameters that exist in the running engine."""
    status, body = http_json("GET", f"{engine.process.admin_url}/deployments")
    assert status == 200, body
    status, sent = http_json("POST", f"{engine.process.ingress_url}/Greeter/greet/send", "fuzz")
    assert status in (200, 202), sent
    return {
        "service": "Counter",
        "handler": "add",
        "deployment": body["deployments"][0]["id"],
        "invocation_id": sent["invocationId"],
        "key": "fuzz",
    }


def fuzz_operation(
    operation: Any, mode: GenerationMode, base_url: str, session: requests.Session,
    tally: TargetCounts, path_parameters: dict[str, str] | None,
) -> None:
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @fuzz_settings(EXAMPLES[mode])
    @given(case=strategy)
    def run(case: Any) -> None:
        tally.tried += 1
        _keep_discovery_local(case)
        try:
            response = case.call(base_url=base_url, session=session, timeout=20)
        except requests.RequestException as exc:
            tally.found(f"no answer to {operation.method.upper()} {operation.path}: {type(exc).__name__}: {exc}")
            return
        problem = judge(operation.method.upper(), operation.path, response.status_code, response.content)
        if problem is not None:
            tally.found(problem)

    started = time.monotonic()
    try:
        run()
    except (hypothesis.errors.Unsatisfiable, hypothesis.errors.FailedHealthCheck):
        pass  # e.g. no negative case exists for an operation without parameters
    if os.environ.get("LOGSTRATE_FUZZ_TIMING"):
        print(f"{time.monotonic() - started:6.2f}s {mode.value:8} {operation.method.upper()} {operation.path}")


def test_admin_api_answers_every_case_without_a_server_error(fuzz_engine: FuzzEngine) -> None:
    schema = schemathesis.openapi.from_dict(admin_document())
    known = known_values(fuzz_engine)
    tally = counts("admin API (schemathesis, engine/admin/openapi.json + admin_extra.json)")
    base_url = fuzz_engine.process.admin_url
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            method = operation.method.upper()
            names = {p.name for p in operation.path_parameters}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if (mode, method, operation.path) in _UNGENERATABLE:
                    continue
                fuzz_operation(operation, mode, base_url, session, tally, None)
            if names and names <= known.keys() and (method, operation.path) not in _KEEP_RANDOM:
                chosen = {name: known[name] for name in names}
                # Positive only: the names are what gets past the 404; negative cases of
                # the other parameters ran above already.
                if (GenerationMode.POSITIVE, method, operation.path) not in _UNGENERATABLE:
                    fuzz_operation(operation, GenerationMode.POSITIVE, base_url, session, tally, chosen)
    for line in fuzz_engine.new_error_lines():
        tally.found(f"engine logged an error: {line}")
    assert fuzz_engine.alive(), fuzz_engine.process.output()[-3000:]
    assert tally.tried >= 100, tally.tried
    assert not tally.findings, "\n".join(tally.distinct()[:40])
