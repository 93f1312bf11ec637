"""The examples in ``examples/`` on our engine (one engine process for the module), and
the aiohttp server helper on restate-server.

The greeter, the payment workflow and the saga are served by hypercorn; the shopping
cart by ``python -m sdk examples.shopping_cart.cart:app``, the SDK's command line.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import sdk
from sdk.cli import UsageError, load_services
from sdk.server import RunningServer, start
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import free_port, wait_until
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import PROJECT_ROOT, ServiceEndpoint, ServiceEndpoints, wait_ready
from tests.fixtures.systems import System, http, module_engine

GREETER_APP = "examples.greeter.sdk_greeter:app"
PAYMENT_APP = "examples.payment.workflow:app"
SAGA_APP = "examples.saga.trip:app"
CART_APP = "examples.shopping_cart.cart:app"


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    yield from module_engine(kafka, tmp_path_factory, "sdk-examples")


@pytest.fixture(scope="module")
def system(our_engine: EngineProcess) -> System:
    return System("logstrate", our_engine.admin_url, our_engine.ingress_url)


def test_sdk_greeter_example_on_our_engine(system: System, service_endpoints: ServiceEndpoints) -> None:
    system.register(service_endpoints.get(GREETER_APP).url)
    assert system.ok("/Greeter/greet", "Sam") == "Hello Sam! (greeting #1)"
    key = uuid.uuid4().hex[:8]
    assert system.ok(f"/Counter/{key}/add", 5) == 5
    assert system.ok(f"/Counter/{key}/add", 5) == 10
    assert system.ok(f"/Counter/{key}/get") == 10


# -- the shopping cart, served by `python -m sdk` ----------------------------------------


@pytest.fixture(scope="module")
def cart_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoint]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("cart") / "cart.log"
    endpoint = ServiceEndpoint(app=CART_APP, port=port, log_path=log_path)
    with log_path.open("wb") as log:
        endpoint.process = subprocess.Popen(
            [sys.executable, "-m", "sdk", CART_APP, "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    yield wait_ready(endpoint)
    endpoint.stop()


def test_shopping_cart_object_served_by_python_m_sdk(system: System, cart_endpoint: ServiceEndpoint) -> None:
    system.register(cart_endpoint.url)
    cart = f"/ShoppingCart/{uuid.uuid4().hex[:8]}"
    tea = {"sku": "tea", "quantity": 1, "unit_price_cents": 250}
    # Exclusive handlers run one at a time per cart: 8 concurrent adds lose nothing.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: system.ok(f"{cart}/add_item", tea), range(8)))
    system.ok(f"{cart}/add_item", {"sku": "cup", "quantity": 1, "unit_price_cents": 800})
    assert system.ok(f"{cart}/remove_item", "cup") == [{**tea, "quantity": 8}]
    assert system.ok(f"{cart}/get_cart") == [{**tea, "quantity": 8}]
    receipt = system.ok(f"{cart}/checkout")
    assert receipt["items"] == 8 and receipt["total_cents"] == 2000
    assert receipt["payment_id"].startswith("pay-")
    status, body = system.invoke(f"{cart}/checkout")
    assert status == 400 and "is empty" in body["message"]
    assert "serving ShoppingCart on 127.0.0.1" in cart_endpoint.log()


def test_python_m_sdk_refuses_what_it_cannot_serve() -> None:
    assert set(load_services(CART_APP).services) == {"ShoppingCart"}
    assert set(load_services("examples.saga.trip").services) == {"TripBooking", "Reservations"}
    for bad in ("examples.saga.trip:CARS", "examples.nope:app", "examples.saga.trip:missing"):
        with pytest.raises(UsageError):
            load_services(bad)
    done = subprocess.run([sys.executable, "-m", "sdk", "examples.saga.trip:CARS"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "expected sdk.app" in done.stderr


# -- payment workflow with an approval promise ---------------------------------------------


def test_payment_workflow_waits_for_approval(system: System, service_endpoints: ServiceEndpoints) -> None:
    system.register(service_endpoints.get(PAYMENT_APP).url)
    approved, rejected = f"p-{uuid.uuid4().hex[:8]}", f"p-{uuid.uuid4().hex[:8]}"
    for payment in (approved, rejected):
        status, body = system.invoke(f"/Payment/{payment}/run/send", {"amount_cents": 4200, "payee": "acme"})
        assert status == 202, body
    for payment in (approved, rejected):
        wait_until(lambda: system.ok(f"/Payment/{payment}/status") == "awaiting approval", timeout=30,
                   what=f"payment {payment} to wait for its approval")
    system.ok(f"/Payment/{approved}/approve", "maria")
    system.ok(f"/Payment/{rejected}/reject", {"approved": False, "by": "lee", "reason": "unknown payee"})
    status, receipt = http("GET", f"{system.ingress_url}/restate/workflow/Payment/{approved}/attach")
    assert (status, receipt) == (200, f"charge-{approved}-4200")
    assert system.ok(f"/Payment/{approved}/status") == f"paid (charge-{approved}-4200)"
    status, failure = http("GET", f"{system.ingress_url}/restate/workflow/Payment/{rejected}/attach")
    assert status == 403 and "rejected by lee: unknown payee" in failure["message"]


# -- saga with compensations ----------------------------------------------------------------


def test_saga_compensates_in_reverse_order(system: System, service_endpoints: ServiceEndpoints) -> None:
    system.register(service_endpoints.get(SAGA_APP).url)
    good, bad = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    assert system.ok("/TripBooking/book", {"trip_id": good, "car": "van"}) == {
        "flight": f"flight-{good}", "hotel": f"hotel-{good}", "car": f"car-{good}",
    }
    assert system.ok(f"/Reservations/{good}/history") == ["reserved flight", "reserved hotel"]
    status, body = system.invoke("/TripBooking/book", {"trip_id": bad, "car": "spaceship"})
    assert status == 409, body
    assert body["message"] == f"trip {bad} not booked (no spaceship available); undid 2 reservations"
    assert system.ok(f"/Reservations/{bad}/history") == [
        "reserved flight", "reserved hotel", "cancelled hotel", "cancelled flight",
    ]


# -- the aiohttp server helper on restate-server -----------------------------------------


aio = sdk.Service("SdkAiohttp")


@aio.handler()
async def echo(ctx: sdk.Context, text: str) -> str:
    stored: str = await ctx.run("echo", lambda: text.upper())
    return stored


@pytest.fixture
def aiohttp_server() -> Iterator[RunningServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(start([aio]), loop).result(timeout=10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def test_aiohttp_server_on_restate_server(restate_server: RestateServer, aiohttp_server: RunningServer) -> None:
    system = System("restate-server", restate_server.admin_url, restate_server.ingress_url)
    system.register(aiohttp_server.url)
    assert system.ok("/SdkAiohttp/echo", "quiet") == "QUIET"

