"""The SDK greeter example on our engine, and the aiohttp server helper on restate-server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest

import sdk
from sdk.server import RunningServer, start
from tests.fixtures.engine import EngineProcess
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import System

GREETER_APP = "examples.greeter.sdk_greeter:app"


def test_sdk_greeter_example_on_our_engine(engine: EngineProcess, service_endpoints: ServiceEndpoints) -> None:
    endpoint = service_endpoints.get(GREETER_APP)
    system = System("logstrate", engine.admin_url, engine.ingress_url)
    system.register(endpoint.url)
    assert system.ok("/Greeter/greet", "Sam") == "Hello Sam! (greeting #1)"
    key = uuid.uuid4().hex[:8]
    assert system.ok(f"/Counter/{key}/add", 5) == 5
    assert system.ok(f"/Counter/{key}/add", 5) == 10
    assert system.ok(f"/Counter/{key}/get") == 10


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
