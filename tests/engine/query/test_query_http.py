"""``POST /query`` against a real engine (real Kafka, LMDB, official-SDK endpoint) and the
real ``restate`` CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest

from tests.engine.admin.test_restate_cli import restate_cli
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints

QUERY_APP = "tests.fixtures.official_sdk_query:app"


@pytest.fixture
def query_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(QUERY_APP)


def post(url: str, body: object, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"content-type": "application/json"}
    if accept is not None:
        headers["accept"] = accept
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def sql_rows(engine: EngineProcess, sql: str) -> list[dict[str, object]]:
    status, headers, body = post(f"{engine.admin_url}/query", {"query": sql}, "application/json")
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    rows: list[dict[str, object]] = json.loads(body)["rows"]
    return rows


def test_query_tables_json_arrow_and_cli(engine: EngineProcess, query_endpoint: ServiceEndpoint, tmp_path: Path) -> None:
    status, _, body = post(f"{engine.admin_url}/deployments", {"uri": query_endpoint.url})
    assert status in (200, 201), body
    status, _, body = post(f"{engine.ingress_url}/QCounter/alice/add", 5)
    assert status == 200 and body == b"5", body
    status, _, body = post(f"{engine.ingress_url}/QCaller/call", "bob")
    assert status == 200, body
    status, _, body = post(f"{engine.ingress_url}/QHolder/k1/hold/send", 600000)
    assert status == 202, body
    held = json.loads(body)["invocationId"]
    status, _, body = post(f"{engine.ingress_url}/QHolder/k1/hold/send", 1000)
    waiting = json.loads(body)["invocationId"]

    wait_until(lambda: len(sql_rows(engine, "SELECT id FROM sys_inbox")) == 1, 30, "the second hold inboxed")
    state = sql_rows(engine, "SELECT service_name, service_key, key, value_utf8, value FROM state "
                             "WHERE service_name = 'QCounter' ORDER BY service_key, key")
    assert state == [
        {"service_name": "QCounter", "service_key": "alice", "key": "count", "value_utf8": "5", "value": "35"},
        {"service_name": "QCounter", "service_key": "alice", "key": "last", "value_utf8": '"added 5"',
         "value": b'"added 5"'.hex()},
        {"service_name": "QCounter", "service_key": "bob", "key": "count", "value_utf8": "1", "value": "31"},
        {"service_name": "QCounter", "service_key": "bob", "key": "last", "value_utf8": '"added 1"',
         "value": b'"added 1"'.hex()},
    ]
    inv = sql_rows(engine, f"SELECT id, status, target, target_service_ty FROM sys_invocation WHERE id = '{held}'")
    # Suspended once the SDK suspends the long sleep (over HTTP/2 after the inactivity timeout).
    assert len(inv) == 1 and inv[0]["status"] in ("running", "suspended"), inv
    assert inv[0]["target"] == "QHolder/k1/hold" and inv[0]["target_service_ty"] == "virtual_object", inv
    assert sql_rows(engine, f"SELECT status FROM sys_invocation WHERE id = '{waiting}'") == [{"status": "pending"}]
    assert sql_rows(engine, "SELECT service_key, invocation_id FROM sys_keyed_service_status") == [
        {"service_key": "k1", "invocation_id": held}]
    journal = sql_rows(engine, f"SELECT index, entry_type FROM sys_journal WHERE id = '{held}' ORDER BY index")
    assert journal == [{"index": 0, "entry_type": "Command: Input"}, {"index": 1, "entry_type": "Command: Sleep"}]
    services = sql_rows(engine, "SELECT name, ty FROM sys_service ORDER BY name")
    assert {"name": "QFlow", "ty": "workflow"} in services

    # Arrow IPC when JSON is not asked for exactly.
    status, headers, body = post(f"{engine.admin_url}/query", {"query": "SELECT count(*) AS n FROM sys_invocation"})
    assert status == 200 and headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(body).read_all()
    assert table.column("n").to_pylist()[0] >= 4

    # Bad SQL: 400 with DataFusion's message.
    status, _, body = post(f"{engine.admin_url}/query", {"query": "selec 1"}, "application/json")
    assert status == 400 and "selec" in json.loads(body)["message"], body

    # The real CLI.
    out = restate_cli(engine, tmp_path, "sql", "SELECT service_key, key FROM state WHERE service_key = 'alice' ORDER BY key")
    assert "count" in out.stdout and "last" in out.stdout, out.stdout
    listed = restate_cli(engine, tmp_path, "invocations", "ls", "--service", "QHolder")
    assert held in listed.stdout and waiting in listed.stdout, listed.stdout
    described = restate_cli(engine, tmp_path, "invocations", "describe", held)
    assert "QHolder/k1/hold" in described.stdout, described.stdout
    kv = restate_cli(engine, tmp_path, "kv", "get", "QCounter", "alice")
    assert "count" in kv.stdout and "5" in kv.stdout, kv.stdout
