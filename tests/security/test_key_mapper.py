"""``key.mapper`` names a mapper; an API caller can never make the engine import code.

Real engine processes, a real broker: a subscription naming a module path (``builtins:eval``,
a test module that leaves a mark when imported) is refused with 400 listing the valid
names, and the engine never imported it; a mapper the operator registered in the engine's
config routes real records end to end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import SUBSCRIPTION_APP, add_cluster, object_state, start_engine, subscribe


def test_module_paths_are_refused_and_operator_mappers_work(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str, tmp_path: Path,
) -> None:
    mark = tmp_path / "imported"
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP), env={
        "LOGSTRATE_SUBSCRIPTION_KEY_MAPPERS": json.dumps({"tenant": "tests.fixtures.key_mappers:tenant_key"}),
        "LOGSTRATE_TEST_IMPORT_SENTINEL": str(mark),
    })
    topic = f"{topic_prefix}.tenants"
    create_topic(kafka.bootstrap_servers, topic, 1)
    add_cluster(engine, kafka)

    for spec in ("builtins:eval", "os:system", "tests.fixtures.import_sentinel:boom", "tests.fixtures.import_sentinel"):
        status, body = http("POST", f"{engine.admin_url}/subscriptions", {
            "source": f"kafka://local/{topic}", "sink": "service://SeqLog/append",
            "options": {"key.mapper": spec},
        })
        assert status == 400, (spec, body)
        assert f"key.mapper '{spec}' is not a known key mapper" in body["message"], body
        assert "valid names: string, hex, base64, json, tenant" in body["message"], body
    assert not mark.exists(), "the engine imported a module an API request named"
    assert http("GET", f"{engine.admin_url}/subscriptions")[1]["subscriptions"] == []

    subscribe(engine, topic, "service://SeqLog/append", {"key.mapper": "tenant", "payload.format": "json"})
    publish(kafka.bootstrap_servers, topic, [(b"acme/1", {"seq": 0}), (b"acme/2", {"seq": 1}), (b"globex/1", {"seq": 0})])
    wait_until(lambda: object_state(engine, "SeqLog", "acme").get("seqs") == [0, 1], 60, "acme's two events")
    wait_until(lambda: object_state(engine, "SeqLog", "globex").get("seqs") == [0], 60, "globex's event")
    assert not mark.exists()


def test_an_operator_mapper_that_does_not_import_stops_the_start(
    engine_factory: Callable[..., EngineProcess],
) -> None:
    engine = engine_factory(env={"LOGSTRATE_SUBSCRIPTION_KEY_MAPPERS": json.dumps({"t": "tests.fixtures.nope:f"})})
    engine.start()
    assert engine.proc is not None
    assert engine.proc.wait(60) == 1
    assert "subscription_key_mappers.t = 'tests.fixtures.nope:f': cannot import module" in engine.output()
