"""Shared steps of the subscription integration tests: engines, cluster, topic, progress."""

from __future__ import annotations

import json
from urllib.parse import quote
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.service_endpoint import ServiceEndpoint
from tests.fixtures.systems import http

SUBSCRIPTION_APP = "tests.fixtures.subscription_services:app"


def add_cluster(engine: EngineProcess, kafka: KafkaBroker, name: str = "local") -> None:
    status, body = http("POST", f"{engine.admin_url}/kafka-clusters",
                        {"name": name, "properties": {"bootstrap.servers": kafka.bootstrap_servers}})
    assert status in (201, 409), body


def subscribe(engine: EngineProcess, topic: str, sink: str, options: dict[str, str] | None = None,
              cluster: str = "local") -> str:
    status, body = http("POST", f"{engine.admin_url}/subscriptions", {
        "source": f"kafka://{cluster}/{topic}", "sink": sink,
        "options": {"auto.offset.reset": "earliest", **(options or {})},
    })
    assert status == 201, body
    return str(body["id"])


def object_state(engine: EngineProcess, service: str, key: str, *others: EngineProcess) -> dict[str, Any]:
    """The object's state, from whichever of the engines leads its partition."""
    answers = []
    for one in (engine, *others):
        status, body = http("GET", f"{one.admin_url}/services/{service}/state/{quote(key, safe='')}")
        if status == 200:
            return {k: json.loads(v["utf8"]) for k, v in body["state"].items() if "utf8" in v}
        answers.append((status, body))
    raise AssertionError(f"no engine answered for {service}/{key}: {answers}")


@dataclass
class OrderingRun:
    """``events`` JSON events ``{"seq": n}`` over ``keys`` keys, seq counting per key from 0."""

    kafka: KafkaBroker
    topic: str
    keys: int = 200
    events: int = 10_000

    def key(self, index: int) -> str:
        return f"key-{index:03d}"

    @property
    def per_key(self) -> int:
        return self.events // self.keys

    def create_topic(self, partitions: int = 4) -> None:
        create_topic(self.kafka.bootstrap_servers, self.topic, partitions)

    def publish(self, start: int = 0, stop: int | None = None) -> None:
        """Publish events ``start..stop`` of the stream (round-robin over keys)."""
        stop = self.events if stop is None else stop
        publish(self.kafka.bootstrap_servers, self.topic, (
            (self.key(i % self.keys).encode(), {"seq": i // self.keys}) for i in range(start, stop)
        ))

    def lists(self, engine: EngineProcess, *others: EngineProcess) -> dict[str, list[int]]:
        def one(index: int) -> tuple[str, list[int]]:
            key = self.key(index)
            return key, list(object_state(engine, "SeqLog", key, *others).get("seqs", []))

        with ThreadPoolExecutor(8) as pool:
            return dict(pool.map(one, range(self.keys)))

    def applied(self, engine: EngineProcess) -> int:
        return sum(len(v) for v in self.lists(engine).values())

    def assert_exact(self, engine: EngineProcess, published: int | None = None) -> None:
        """Every key's list is exactly 0..n-1 in order: no gap, no duplicate, no reordering."""
        published = self.events if published is None else published
        lists = self.lists(engine)
        for index in range(self.keys):
            expected = list(range(len(range(index, published, self.keys))))
            got = lists[self.key(index)]
            assert got == expected, f"{self.key(index)}: expected 0..{len(expected) - 1}, got {_summary(got)}"


def _summary(values: list[int]) -> str:
    dupes = len(values) - len(set(values))
    out_of_order = sum(1 for a, b in zip(values, values[1:]) if b <= a)
    return f"{len(values)} values, {dupes} duplicates, {out_of_order} out of order: {values[:60]}"


def start_engine(factory: Callable[..., EngineProcess], endpoint: ServiceEndpoint | None = None,
                 **kwargs: Any) -> EngineProcess:
    engine = factory(**kwargs)
    engine.start_and_wait()
    if endpoint is not None:
        register(engine, endpoint)
    return engine
