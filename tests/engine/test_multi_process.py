"""Two engine processes on one Kafka cluster: any process answers any request.

The WAL partitions are split between the two; a request accepted by one process for an
invocation whose partition the other leads gets its answer back through the responses
topic (engine/ingress/response_channel.py), and so does a repeated ``/send`` with an
idempotency key (``PreviouslyAccepted``). Admin lookups and management of an invocation
or object in the other process's partitions are forwarded to its leader
(engine/admin/forwarding.py); when that leader dies, lookups say it does not answer
until its partitions move, then are answered by the new leader. Both processes run on
this host with the same node name, so this also checks that each process names itself
uniquely.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint
from tests.fixtures.systems import http

from engine.ids import InvocationUuid
from engine.wal.partitioning import invocation_id_for, partition_for, partition_key_for_key

PARTITIONS = 4


def _partition_of_key(key: str) -> int:
    return partition_for(partition_key_for_key("Counter", key), PARTITIONS)


def test_requests_are_answered_whichever_process_leads_the_partition(
    engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint,
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

    # Keys on both sides of the split, each called through both processes' ingress.
    keys = [f"key-{i}" for i in range(24)]
    assert {_partition_of_key(k) for k in keys} & led_by_second, "some keys should land on the second process"
    assert {_partition_of_key(k) for k in keys} & led_by_first
    for engine in (first, second):
        for key in keys:
            status, body = wait_until(
                lambda: (r := http("POST", f"{engine.ingress_url}/Counter/{key}/add", 1, timeout=20))[0] != 404 and r,
                30, "the deployment to be visible", interval=0.2,
            )
            assert status == 200, (key, body)
    for key in keys:
        status, body = http("GET", f"{first.ingress_url}/Counter/{key}/get", timeout=20)
        assert (status, body) == (200, 2), key

    # A send accepted by one process and attached to through the other.
    remote_key = next(k for k in keys if _partition_of_key(k) in led_by_second)
    status, sent = http("POST", f"{first.ingress_url}/Counter/{remote_key}/add/send", 5,
                        headers={"idempotency-key": "once"})
    assert (status, sent["status"]) == (202, "Accepted"), sent
    # The same send again, through either process: the leader tells the submitter.
    for engine in (first, second):
        status, again = http("POST", f"{engine.ingress_url}/Counter/{remote_key}/add/send", 5,
                             headers={"idempotency-key": "once"})
        assert (status, again) == (202, {"invocationId": sent["invocationId"], "status": "PreviouslyAccepted"})
    status, body = http("GET", f"{first.ingress_url}/restate/invocation/{sent['invocationId']}/attach", timeout=20)
    assert (status, body) == (200, 7)
    status, body = http("GET", f"{first.ingress_url}/restate/invocation/{sent['invocationId']}/output", timeout=20)
    assert (status, body) == (200, 7)

    # Admin lookups of the other process's partition, asked of both processes.
    invocation_id = sent["invocationId"]
    for engine in (first, second):
        status, found = wait_until(
            lambda: (r := http("GET", f"{engine.admin_url}/invocations/{invocation_id}", timeout=20))[0] == 200 and r,
            30, "the partition's leader to be advertised", interval=0.2,
        )
        assert (found["id"], found["status"], found["completion_value"]) == (invocation_id, "completed", {"utf8": "7"})
        status, state = http("GET", f"{engine.admin_url}/services/Counter/state/{remote_key}", timeout=20)
        assert (status, state["state"]) == (200, {"count": {"utf8": "7"}}), state
        # Management is decided by the leader, which has the status: completed, so 409.
        status, body = http("PATCH", f"{engine.admin_url}/invocations/{invocation_id}/kill", timeout=20)
        assert status == 409 and "already completed" in body["message"], (status, body)
        unknown = invocation_id_for("Counter", remote_key, InvocationUuid.generate())
        status, body = http("GET", f"{engine.admin_url}/invocations/{unknown}", timeout=20)
        assert status == 404 and "not found" in body["message"], (status, body)

        # The listing covers every partition: each key's two adds and get, plus the send.
        status, listing = http("GET", f"{engine.admin_url}/invocations?service=Counter&limit=1000", timeout=20)
        assert status == 200 and listing["not_local_partitions"] == [], listing
        assert len(listing["invocations"]) == 3 * len(keys) + 1 and not listing["truncated"]
        assert {row["target_service_key"] for row in listing["invocations"]} == set(keys)
        created = [row["created_at"] for row in listing["invocations"]]
        assert created == sorted(created, reverse=True)
        status, page = http("GET", f"{engine.admin_url}/invocations?service=Counter&limit=5", timeout=20)
        assert (status, page["truncated"], len(page["invocations"])) == (200, True, 5)
        assert page["invocations"] == listing["invocations"][:5]
        status, by_key = http("GET", f"{engine.admin_url}/invocations?service=Counter&key={remote_key}", timeout=20)
        assert status == 200 and invocation_id in {row["id"] for row in by_key["invocations"]}, by_key

    # Filters travel with the listing; a deployment is deleted without force once every
    # process's partitions were checked for invocations still running on it.
    deployment_id = registered["id"]
    status, pinned = http(
        "GET", f"{first.admin_url}/invocations?deployment={deployment_id}&status=completed,invoked&limit=1000",
        timeout=20,
    )
    assert status == 200 and len(pinned["invocations"]) == 3 * len(keys) + 1, pinned
    status, body = http("DELETE", f"{first.admin_url}/deployments/{deployment_id}", timeout=30)
    assert status == 202, body


def test_admin_lookups_follow_the_partition_when_its_leader_dies(
    engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint,
) -> None:
    first = engine_factory(partitions=PARTITIONS)
    first.start_and_wait()
    second = engine_factory(partitions=PARTITIONS)
    second.start_and_wait()
    status, registered = http("POST", f"{first.admin_url}/deployments", {"uri": greeter_endpoint.url})
    assert status == 201, registered
    led_by_second = wait_until(
        lambda: (b := second.led_partitions()) and b | first.led_partitions() == set(range(PARTITIONS)) and b,
        90, "the second process to lead some WAL partitions", interval=0.5,
    )
    key = next(f"key-{i}" for i in range(100) if _partition_of_key(f"key-{i}") in led_by_second)
    status, sent = wait_until(
        lambda: (r := http("POST", f"{first.ingress_url}/Counter/{key}/add/send", 3, timeout=20))[0] == 202 and r,
        30, "the deployment to be visible", interval=0.2,
    )
    path = f"{first.admin_url}/invocations/{sent['invocationId']}?journal=false"
    wait_until(lambda: http("GET", path, timeout=20)[1].get("status") == "completed", 30, "the send to complete",
               interval=0.2)

    # Killed: its advert stays behind, and its partitions stay with it for the group
    # session (10 s, static membership). Meanwhile a lookup is forwarded to a dead
    # address and says so; once the first process leads the partition, it answers from
    # its own tables.
    second.kill()
    status, body = http("GET", path, timeout=20)
    assert status == 503 and "did not answer" in body["message"], (status, body)
    wait_until(lambda: first.led_partitions() == set(range(PARTITIONS)), 60, "the first process to take over")
    status, found = http("GET", path, timeout=20)
    assert (status, found["status"], found["completion_value"]) == (200, "completed", {"utf8": "3"}), found
    status, listing = http("GET", f"{first.admin_url}/invocations?service=Counter", timeout=20)
    assert status == 200 and listing["not_local_partitions"] == [], listing
