"""``POST /query`` over every partition with two engine processes: each applies only the
WAL partitions it leads, so the process asked reads its own and asks the other leader
for the rest (engine/query/fanout.py). Both processes give the same complete answer,
with no ``x-logstrate-missing-partitions``; the real CLI sees every invocation and the
state of an object the other process holds."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.engine.admin.test_restate_cli import restate_cli
from tests.engine.query.test_query_http import post, sql_rows
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint
from tests.fixtures.systems import http

from engine.query.http import MISSING_HEADER
from engine.wal.partitioning import partition_for, partition_key_for_key

PARTITIONS = 4


def _partition_of_key(key: str) -> int:
    return partition_for(partition_key_for_key("Counter", key), PARTITIONS)


def test_a_query_reads_the_partitions_another_process_leads(
    engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint, tmp_path: Path,
) -> None:
    first = engine_factory(partitions=PARTITIONS)
    first.start_and_wait()
    second = engine_factory(partitions=PARTITIONS)
    second.start_and_wait()
    status, registered = http("POST", f"{first.admin_url}/deployments", {"uri": greeter_endpoint.url})
    assert status == 201, registered

    def split() -> tuple[set[int], set[int]] | None:
        a, b = first.led_partitions(), second.led_partitions()
        return (a, b) if a and b and a | b == set(range(PARTITIONS)) and not a & b else None

    led_by_first, led_by_second = wait_until(split, 90, "both processes to lead some WAL partitions", interval=0.5)
    # The first queries a process gets arrive together (the CLI sends several at once):
    # all are answered, none sees the query module half imported.
    with ThreadPoolExecutor(4) as pool:
        first_answers = list(pool.map(lambda _: post(f"{second.admin_url}/query", {"query": "SELECT 1 AS one"},
                                                      "application/json")[0], range(4)))
    assert first_answers == [200] * 4, first_answers
    keys = [f"key-{i}" for i in range(16)]
    assert {_partition_of_key(k) for k in keys} & led_by_second and {_partition_of_key(k) for k in keys} & led_by_first
    ids: dict[str, str] = {}
    for key in keys:
        def sent(key: str = key) -> bool:
            status, body = http("POST", f"{first.ingress_url}/Counter/{key}/add/send", 2, timeout=20)
            if status == 202:
                ids[key] = body["invocationId"]
            return status == 202

        wait_until(sent, 30, "the deployment to be visible", interval=0.2)

    def all_state(engine: EngineProcess) -> list[dict[str, object]]:
        return sql_rows(engine, "SELECT service_key, key, value_utf8 FROM state WHERE service_name = 'Counter' "
                                "ORDER BY service_key")

    expected = [{"service_key": k, "key": "count", "value_utf8": "2"} for k in sorted(keys)]
    # The adverts may lag the split for a moment; then the answer names missing partitions.
    wait_until(lambda: all_state(first) == expected, 30, "every key's state through the first process", interval=0.3)
    for engine in (first, second):
        assert all_state(engine) == expected
        status, headers, body = post(f"{engine.admin_url}/query",
                                     {"query": "SELECT id FROM sys_invocation WHERE target_service_name = 'Counter'"},
                                     "application/json")
        assert status == 200 and MISSING_HEADER not in headers, (headers, body)
        counted = sql_rows(engine, "SELECT count(*) AS n, count(DISTINCT target_service_key) AS keys FROM sys_invocation")
        assert counted == [{"n": len(keys), "keys": len(keys)}], counted
        # A lookup by id reads the one partition holding it, wherever it is led.
        for key in keys:
            row = sql_rows(engine, f"SELECT target, status FROM sys_invocation WHERE id = '{ids[key]}'")
            assert row == [{"target": f"Counter/{key}/add", "status": "completed"}], (key, row)
        # Joins and aggregates run over the union.
        joined = sql_rows(engine, "SELECT i.target_service_key AS k, s.value_utf8 AS v FROM sys_invocation i "
                                  "JOIN state s ON s.service_key = i.target_service_key ORDER BY k")
        assert joined == [{"k": k, "v": "2"} for k in sorted(keys)], joined

    # The real CLI, asked of the first process, about keys the second one holds.
    remote_key = next(k for k in keys if _partition_of_key(k) in led_by_second)
    listed = restate_cli(first, tmp_path, "invocations", "ls", "--all", "--service", "Counter")
    assert all(ids[k] in listed.stdout for k in keys), listed.stdout
    described = restate_cli(first, tmp_path, "invocations", "describe", ids[remote_key])
    assert f"Counter/{remote_key}/add" in described.stdout, described.stdout
    kv = restate_cli(first, tmp_path, "kv", "get", "Counter", remote_key)
    assert "count" in kv.stdout and "2" in kv.stdout, kv.stdout

    # The internal scan answers only for what its process leads.
    other = sorted(led_by_second)[0]
    status, headers, body = post(f"{second.admin_url}/internal/query/scan",
                                 {"table": "state", "constraints": {}, "partitions": [other, *sorted(led_by_first)]})
    assert status == 200 and headers["x-logstrate-scanned-partitions"] == str(other), headers
    status, _, body = post(f"{second.admin_url}/internal/query/scan", {"table": "nope", "constraints": {},
                                                                         "partitions": []})
    assert status == 400 and b"not a partitioned system table" in body, body

    # A dead leader's partitions are named missing until they move.
    second.kill()
    status, headers, _ = post(f"{first.admin_url}/query", {"query": "SELECT id FROM sys_invocation"},
                              "application/json")
    assert status == 200 and headers.get(MISSING_HEADER) == ",".join(map(str, sorted(led_by_second))), headers
    wait_until(lambda: first.led_partitions() == set(range(PARTITIONS)), 60, "the first process to take over")
    assert all_state(first) == expected


def _query(url: str, sql: str, token: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{url}/query", data=json.dumps({"query": sql}).encode(), headers=headers,
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_with_an_admin_token_the_scans_carry_the_engines_token(
    engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint,
) -> None:
    token = "fan-out-token-123456"
    env = {"LOGSTRATE_ADMIN_TOKEN": token}
    first = engine_factory(partitions=PARTITIONS, env=env)
    first.start_and_wait()
    second = engine_factory(partitions=PARTITIONS, env=env)
    second.start_and_wait()
    auth = {"authorization": f"Bearer {token}"}
    status, registered = http("POST", f"{first.admin_url}/deployments", {"uri": greeter_endpoint.url}, headers=auth)
    assert status == 201, registered
    wait_until(lambda: (a := first.led_partitions()) and (b := second.led_partitions())
               and a | b == set(range(PARTITIONS)) and not a & b, 90, "both processes to lead", interval=0.5)
    keys = [f"key-{i}" for i in range(8)]
    assert len({_partition_of_key(k) for k in keys}) > 1
    for key in keys:
        wait_until(lambda: http("POST", f"{first.ingress_url}/Counter/{key}/add", 1, timeout=20)[0] == 200, 30,
                   "the deployment to be visible", interval=0.2)

    def counted() -> bool:
        status, headers, body = _query(first.admin_url, "SELECT count(*) AS n FROM state", token)
        assert status == 200, body
        return MISSING_HEADER not in headers and json.loads(body)["rows"] == [{"n": len(keys)}]

    wait_until(counted, 30, "every key's state through the first process", interval=0.3)
    # Without the token: refused, the internal scan as well.
    assert _query(first.admin_url, "SELECT 1", None)[0] == 401
    status, _, _ = post(f"{second.admin_url}/internal/query/scan", {"table": "state", "constraints": {},
                                                                    "partitions": [0]})
    assert status == 401
