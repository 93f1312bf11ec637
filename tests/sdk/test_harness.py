"""The user-facing test harness (``sdk.testing.harness``), used the way docs/SDK.md shows.

The harness starts a real engine process and serves the services in this process; the
``kafka`` fixture hands it the session's broker, so no extra broker is started (a user
leaves ``kafka=`` out and gets the running development broker or a private one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.shopping_cart.cart import CartItem, Receipt, add_item, cart, checkout, get_cart
from examples.saga.trip import Trip, book, booking, history, reservations
from sdk import TerminalError
from sdk.testing import Harness, harness
from tests.fixtures.kafka import KafkaBroker


@pytest.fixture(scope="module")
def env(kafka: KafkaBroker) -> Iterator[Harness]:
    with harness([cart, booking, reservations], kafka=kafka.bootstrap_servers) as env:
        yield env


def test_cart_checkout(env: Harness) -> None:
    client = env.client
    client.object_call(add_item, "alice", CartItem("tea", 2, 250))
    assert client.object_call(get_cart, "alice") == [CartItem("tea", 2, 250)]
    assert client.object_call(checkout, "alice") == Receipt("alice", 2, 500, "pay-alice-500")
    with pytest.raises(TerminalError) as refused:
        client.object_call(checkout, "alice")
    assert refused.value.status_code == 400


def test_saga_undoes_reservations(env: Harness) -> None:
    with pytest.raises(TerminalError) as failed:
        env.client.service_call(book, Trip("t-1", car="spaceship"))
    assert failed.value.status_code == 409
    assert env.client.object_call(history, "t-1") == [
        "reserved flight", "reserved hotel", "cancelled hotel", "cancelled flight",
    ]


def test_send_attach_and_admin(env: Harness, kafka: KafkaBroker) -> None:
    invocation_id = env.client.service_send(book, Trip("t-2", car="van"))
    # The admin lookup waits until the engine applied the send (the ingress attach reads
    # the engine's local state at once and may not know an id accepted a moment ago).
    assert env.admin("GET", f"/invocations/{invocation_id}")[0] == 200
    assert env.client.attach(invocation_id, book) == {
        "flight": "flight-t-2", "hotel": "hotel-t-2", "car": "car-t-2",
    }
    status, info = env.admin("GET", f"/invocations/{invocation_id}")
    assert status == 200 and info["status"] == "completed"
    assert env.kafka_bootstrap_servers == kafka.bootstrap_servers  # reused, not started


def test_a_broker_named_in_the_environment_is_used_as_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sdk.testing import KAFKA_ENV, _kafka

    monkeypatch.setenv(KAFKA_ENV, "broker-a:9092")
    with _kafka(None, tmp_path) as bootstrap:
        assert bootstrap == "broker-a:9092"
    with _kafka("broker-b:9092", tmp_path) as bootstrap:
        assert bootstrap == "broker-b:9092"
    assert list(tmp_path.iterdir()) == []  # nothing was started
