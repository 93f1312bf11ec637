"""Hypothesis-generated requests against the ingress of a real engine.

Paths of every ingress route (``/Service/handler``, ``/Object/key/handler``, ``/send``,
``/restate/invocation/...``, ``/restate/workflow/...``, ``/restate/awakeables/...``),
with registered and unknown names, odd keys and ids, any method, odd ``delay`` values,
``idempotency-key`` and ``content-type`` headers, and bodies from empty to over the size
limit, binary or JSON.

A failure is a 5xx (the ingress's own 503 when Kafka is unavailable aside, which this
healthy engine never has reason to give), a 4xx with an empty body, no answer at all on
a route that never waits, or an engine that exits or logs an error. A call to a
registered handler that is still running when the client gives up is not a failure: a
call waits for its result, and an SDK refusing a hostile argument retries it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import requests
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import WAL_LIMIT_HANDLED, FuzzEngine, counts, fuzz_settings

EXAMPLES = 150
"""Requests in the normal suite (x LOGSTRATE_FUZZ_SCALE)."""

_SERVICES = ["Greeter", "Counter", "Hostile", "Nope", "restate", ""]
_HANDLERS = ["greet", "add", "get", "run", "send", "nope", "attach"]
_ID_PREFIXES = ["inv_1", "inv_", "sign_1", "prom_1", "sign_", "", "inv_1" + "A" * 40]
_CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "text/plain", "application/octet-stream",
    "application/*", "*/*", "", "application/json;;;", "\u00e9/\u00e8",
]
_DELAYS = ["10s", "PT1S", "0ms", "-5s", "P", "PT", "1h 30m", "99999999999999d", "P99999999999999D",
           "1e400s", "PT1e309S", "nan", "10 parsecs", "\u0661s"]


def _segment() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(["fuzz", "k", "a b", "%2F", "..", "key/with/slash"]), st.text(max_size=30))


def _quoted(text: str) -> str:
    return quote(text, safe="")


@st.composite
def paths(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["service", "object", "invocation", "idempotent", "workflow", "awakeable", "raw"]))
    service = draw(st.one_of(st.sampled_from(_SERVICES), st.text(max_size=20)))
    handler = draw(st.one_of(st.sampled_from(_HANDLERS), st.text(max_size=20)))
    send = "/send" if draw(st.booleans()) else ""
    op = draw(st.sampled_from(["attach", "output"]))
    ident = draw(st.sampled_from(_ID_PREFIXES)) + draw(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-", max_size=40))
    if kind == "service":
        return f"/{_quoted(service)}/{_quoted(handler)}{send}"
    if kind == "object":
        return f"/{_quoted(service)}/{_quoted(draw(_segment()))}/{_quoted(handler)}{send}"
    if kind == "invocation":
        return f"/restate/invocation/{_quoted(ident)}/{op}"
    if kind == "idempotent":
        return f"/restate/invocation/{_quoted(service)}/{_quoted(draw(_segment()))}/{_quoted(handler)}/{_quoted(draw(_segment()))}/{op}"
    if kind == "workflow":
        return f"/restate/workflow/{_quoted(service)}/{_quoted(draw(_segment()))}/{op}"
    if kind == "awakeable":
        return f"/restate/awakeables/{_quoted(ident)}/{draw(st.sampled_from(['resolve', 'reject']))}"
    return "/" + "/".join(_quoted(s) for s in draw(st.lists(_segment(), max_size=6)))


def _header_text() -> st.SearchStrategy[str]:
    # What an HTTP client can put in a header: latin-1, no line breaks.
    return st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
    ).map(str.strip)


@st.composite
def requests_(draw: st.DrawFn) -> dict[str, Any]:
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["content-type"] = draw(st.one_of(st.sampled_from(_CONTENT_TYPES), _header_text()))
    if draw(st.booleans()):
        headers["idempotency-key"] = draw(st.one_of(_header_text(), st.just("k" * 4000)))
    for name in draw(st.lists(st.sampled_from(["x-custom", "authorization", "cookie", "x-restate-id", "traceparent"]), max_size=2)):
        headers[name] = draw(_header_text())
    kinds = ["none", "json", "text", "binary", "too_big"] + (["big"] if WAL_LIMIT_HANDLED else [])
    body_kind = draw(st.sampled_from(kinds))
    body: bytes | None = {
        "none": None,
        "json": json.dumps(draw(st.one_of(st.text(max_size=20), st.integers(), st.none(), st.lists(st.integers(), max_size=3)))).encode(),
        "text": draw(st.text(max_size=50)).encode(),
        "binary": draw(st.binary(max_size=64)),
        "big": b'"' + b"x" * (1024 * 1024) + b'"',
        "too_big": b"x" * (10 * 1024 * 1024 + 1),
    }[body_kind]
    params = {"delay": draw(st.one_of(st.sampled_from(_DELAYS), st.text(max_size=15)))} if draw(st.booleans()) else {}
    method = draw(st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    return {"method": method, "path": draw(paths()), "headers": headers, "data": body, "params": params}


def _may_wait(path: str, method: str) -> bool:
    """A call to a registered handler, or an attach: waits for a result that may take long."""
    parts = path.strip("/").split("/")
    registered = parts[0] in ("Greeter", "Counter", "Hostile")
    return (registered and not path.endswith("/send") and method in ("POST", "GET", "PUT")) or path.endswith("/attach")


def test_ingress_answers_every_request_without_a_server_error(fuzz_engine: FuzzEngine) -> None:
    tally = counts("ingress (hypothesis requests)")
    base = fuzz_engine.process.ingress_url
    pending = 0
    with requests.Session() as session:

        @fuzz_settings(EXAMPLES)
        @given(request=requests_())
        def run(request: dict[str, Any]) -> None:
            nonlocal pending
            tally.tried += 1
            label = f"{request['method']} {request['path'][:80]} {sorted(request['headers'])} delay={request['params'].get('delay')!r}"
            try:
                response = session.request(
                    request["method"], base + request["path"], headers=request["headers"],
                    data=request["data"], params=request["params"], timeout=5,
                )
            except requests.Timeout:
                if _may_wait(request["path"], request["method"]):
                    pending += 1
                else:
                    tally.found(f"no answer within 5s to {label}")
                return
            except requests.ConnectionError as exc:
                # A body over the limit may be refused before it is all sent.
                if request["data"] is not None and len(request["data"]) > 10 * 1024 * 1024:
                    return
                tally.found(f"connection broken on {label}: {exc}")
                return
            if response.status_code >= 500:
                tally.found(f"{response.status_code} on {label}: {response.content[:200]!r}")
            elif response.status_code >= 400 and request["method"] != "HEAD" and not response.content.strip():
                tally.found(f"{response.status_code} without a message on {label}")

        run()
    fuzz_engine.greet("after the ingress fuzz")
    for line in fuzz_engine.new_error_lines():
        tally.found(f"engine logged an error: {line}")
    assert fuzz_engine.alive(), fuzz_engine.process.output()[-3000:]
    assert tally.tried >= EXAMPLES // 2, tally.tried
    assert not tally.findings, "\n".join(tally.distinct()[:40])
