"""Deployments live in the metadata topic: they survive restarts and every engine process sees them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.engine.admin.admin_client import call
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import GREETER_APP, ServiceEndpoint, ServiceEndpoints


def _deployment_ids(engine: EngineProcess) -> list[str]:
    return [d["id"] for d in call("GET", f"{engine.admin_url}/deployments").json["deployments"]]


def test_a_restarted_engine_still_lists_the_deployment(
    engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint, tmp_path: Path
) -> None:
    first = engine_factory()
    first.start_and_wait()
    registered = call("POST", f"{first.admin_url}/deployments", {"uri": greeter_endpoint.url}).json
    assert first.terminate() == 0

    # A fresh data dir: what comes back can only have come from the metadata topic.
    second = engine_factory(data_dir=tmp_path / "fresh")
    second.start_and_wait()
    assert _deployment_ids(second) == [registered["id"]]
    greeter = call("GET", f"{second.admin_url}/services/Greeter").json
    assert (greeter["revision"], greeter["deployment_id"]) == (1, registered["id"])
    assert call("GET", f"{second.admin_url}/deployments/{registered['id']}").json["services"] == registered["services"]


def test_engines_on_one_topic_prefix_share_their_metadata(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints
) -> None:
    one, two = engine_factory(), engine_factory()
    one.start()
    two.start()
    one.wait_healthy()
    two.wait_healthy()
    first, second = service_endpoints.start_all([(GREETER_APP, "default"), (GREETER_APP, "second")])

    via_one = call("POST", f"{one.admin_url}/deployments", {"uri": first.url}).json
    wait_until(lambda: _deployment_ids(two) == [via_one["id"]], 10, "engine two to see engine one's deployment")
    # A registration through the other engine builds on what the first one wrote.
    via_two = call("POST", f"{two.admin_url}/deployments", {"uri": second.url}).json
    assert via_two["services"][0]["revision"] == 2
    wait_until(lambda: call("GET", f"{one.admin_url}/services/Greeter").json["revision"] == 2, 10, "revision 2 on engine one")

    assert call("DELETE", f"{two.admin_url}/deployments/{via_one['id']}?force=true").status == 202
    wait_until(lambda: _deployment_ids(one) == [via_two["id"]], 10, "the deletion on engine one")
