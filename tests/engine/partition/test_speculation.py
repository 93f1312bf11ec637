"""Speculative first attempts of object calls (``engine/partition/leader/speculation.py``),
against a real broker, real LMDB and the official Python SDK over HTTP/1.1.

An object call whose key is free in the leader's view runs its first attempt with the
state the leader read, and its ``Invoke`` leaves with the attempt's records in ONE WAL
record; applying it accepts the attempt only if the key's state is still what the
attempt saw. These tests count the WAL records, force each way out (a state change in
between, a slow handler, a failing first attempt) and check that every call's token is
in the object's state exactly once.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from engine.ids import InvocationId
from tests.engine.test_invocations import call, register
from tests.engine.test_wal_cost import PARTITIONS, wal_records_of
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints

TALLY_APP = "tests.fixtures.official_sdk_tally:app"


@pytest.fixture
def tally(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(TALLY_APP)


def _engine(engine_factory: Callable[..., EngineProcess], tally: ServiceEndpoint, **env: str) -> EngineProcess:
    engine = engine_factory(partitions=PARTITIONS, env=env)
    engine.start_and_wait()
    register(engine, tally, use_http_11=True)
    engine.wait_leading_all()
    return engine


def speculations(engine: EngineProcess, outcome: str) -> float:
    """``logstrate_object_speculations_total{outcome=...}`` summed over the partitions."""
    with urllib.request.urlopen(f"{engine.admin_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    pattern = rf'^logstrate_object_speculations_total{{[^}}]*outcome="{outcome}"[^}}]*}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def tokens_of(engine: EngineProcess, key: str) -> list[str]:
    status, body, _ = call(f"{engine.ingress_url}/Tally/{key}/tokens")
    assert status == 200, body
    return list(body)


def add(engine: EngineProcess, key: str, token: str, handler: str = "add", arg: Any = None) -> tuple[int, Any, str]:
    status, body, headers = call(f"{engine.ingress_url}/Tally/{key}/{handler}", token if arg is None else arg)
    return status, body, headers.get("x-restate-id", "")


def test_an_object_call_costs_one_wal_record(
    kafka: KafkaBroker, engine_factory: Callable[..., EngineProcess], tally: ServiceEndpoint
) -> None:
    engine = _engine(engine_factory, tally)
    key = f"k-{uuid.uuid4().hex[:8]}"
    assert add(engine, key, "warm-up")[:2] == (200, 1)  # the first call may outlast the hold
    status, body, invocation = add(engine, key, "t1")
    assert (status, body) == (200, 2)

    records = wal_records_of(kafka, engine, InvocationId.parse(invocation))
    # The Invoke, the pin, the state write, the output and the end: one Kafka record.
    assert len(records) == 1, records
    assert records[0][:2] == ["Invoke", "DeploymentPinned"] and records[0][-1] == "InvocationEnded", records
    assert speculations(engine, "started") >= 1
    assert speculations(engine, "rejected") == 0
    assert tokens_of(engine, key) == ["warm-up", "t1"]


def test_a_state_change_before_the_invoke_is_applied_runs_the_call_anew(
    kafka: KafkaBroker, engine_factory: Callable[..., EngineProcess], tally: ServiceEndpoint
) -> None:
    # A long hold, so the attempt below speculates while the test changes the state.
    engine = _engine(engine_factory, tally, LOGSTRATE_INVOKE_HOLD_MS="8000")
    key, token = f"k-{uuid.uuid4().hex[:8]}", f"slow-{uuid.uuid4().hex[:8]}"
    assert add(engine, key, "a")[:2] == (200, 1)
    answer: list[tuple[int, Any, str]] = []
    caller = threading.Thread(target=lambda: answer.append(
        add(engine, key, token, "add_after", {"token": token, "delay_s": 1.5})))
    caller.start()
    wait_until(lambda: call(f"{engine.ingress_url}/Probe/runs", token)[1] == 1, 30, "the speculative attempt to run")
    # The attempt runs with ["a"]; the operator replaces the state meanwhile (the key is
    # free: the call's Invoke is still held).
    new_state = {"object_key": key, "new_state": {"tokens": list(json.dumps(["x"]).encode())}}
    status, body, _ = call(f"{engine.admin_url}/services/Tally/state", new_state)
    assert status == 202, body
    caller.join(60)

    assert answer and answer[0][:2] == (200, 2), answer  # ["x", token]: run anew on the new state
    assert tokens_of(engine, key) == ["x", token]
    assert speculations(engine, "rejected") == 1
    assert call(f"{engine.ingress_url}/Probe/runs", token)[1] == 2  # thrown away once, never journaled
    records = wal_records_of(kafka, engine, InvocationId.parse(answer[0][2]))
    # The refused batch (its records dropped when applied), then the attempt run anew.
    assert records[0][0] == "Invoke" and records[0][-1] == "InvocationEnded", records
    assert records[-1][-1] == "InvocationEnded" and len(records) == 2, records


def test_a_slow_object_handler_is_stopped_and_run_anew_then_not_speculated_on(
    kafka: KafkaBroker, engine_factory: Callable[..., EngineProcess], tally: ServiceEndpoint
) -> None:
    engine = _engine(engine_factory, tally)
    key = f"k-{uuid.uuid4().hex[:8]}"
    status, body, invocation = add(engine, key, "s1", "add_after", {"token": "s1", "delay_s": 0.5})
    assert (status, body) == (200, 1)
    assert speculations(engine, "abandoned") == 1
    records = wal_records_of(kafka, engine, InvocationId.parse(invocation))
    assert records[0] == ["Invoke"], records  # left alone, plain, when the hold ran out
    started = speculations(engine, "started")
    assert add(engine, key, "s2", "add_after", {"token": "s2", "delay_s": 0.5})[:2] == (200, 2)
    assert speculations(engine, "started") == started  # slow for a while: run the normal way
    assert tokens_of(engine, key) == ["s1", "s2"]


def test_a_failing_speculative_attempt_writes_nothing(
    kafka: KafkaBroker, engine_factory: Callable[..., EngineProcess], tally: ServiceEndpoint
) -> None:
    engine = _engine(engine_factory, tally)
    key, token = f"k-{uuid.uuid4().hex[:8]}", f"f-{uuid.uuid4().hex[:8]}"
    status, body, invocation = add(engine, key, token, "add_failing_once")
    assert (status, body) == (200, 1)
    records = wal_records_of(kafka, engine, InvocationId.parse(invocation))
    # No failed attempt is recorded for it: its Invoke left alone and the call ran anew.
    assert records[0] == ["Invoke"], records
    assert not any("InvocationFailedAttempt" in r for r in records), records
    assert tokens_of(engine, key) == [token]


def test_concurrent_calls_through_two_processes_keep_every_token_once(
    engine_factory: Callable[..., EngineProcess], tally: ServiceEndpoint
) -> None:
    # Two processes share the partitions: calls that reach the one not leading their
    # partition are appended plain and race the leader's speculations on the same keys.
    first = _engine(engine_factory, tally)
    second = engine_factory(partitions=PARTITIONS)
    second.start_and_wait()
    wait_until(lambda: second.led_partitions() and first.led_partitions() | second.led_partitions()
               == set(range(PARTITIONS)), 90, "both processes to lead a share of the partitions")
    engines, keys = (first, second), [f"k{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    sent = [(keys[i % len(keys)], f"t{i}") for i in range(240)]

    def one(i: int) -> tuple[int, Any]:
        key, token = sent[i]
        return add(engines[i % 2], key, token)[:2]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(len(sent))))
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:5]
    for key in keys:
        tokens = tokens_of(first, key)
        assert sorted(tokens) == sorted(t for k, t in sent if k == key), key
        # Each answer is the token's place in the state: what the log holds.
        for index, token in enumerate(tokens):
            assert answers[int(token[1:])] == (200, index + 1), (key, token)
    assert speculations(first, "started") + speculations(second, "started") > 0
