"""logstrate SDK: write durable services that run on logstrate and on restate-server.

A pure-Python implementation of the Restate service protocol (v5-v7, request/response
mode). The API follows the official ``restate-sdk`` for Python, so moving a service
between the two is mostly a matter of changing imports::

    import sdk

    greeter = sdk.Service("Greeter")

    @greeter.handler()
    async def greet(ctx: sdk.Context, name: str) -> str:
        count = await ctx.run("count", lambda: 1)
        return f"Hello {name}! ({count})"

    app = sdk.app([greeter])            # serve with: hypercorn module:app
"""

from sdk.avro import AvroSerde
from sdk.context import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Request,
    WorkflowContext,
    WorkflowSharedContext,
)
from sdk.endpoint import Endpoint, app
from sdk.errors import SdkError, TerminalError
from sdk import kafka
from sdk.futures import (
    DurableCallFuture,
    DurableFuture,
    SendHandle,
    as_completed,
    gather,
    select,
    wait_completed,
)
from sdk.logging import getLogger
from sdk.promises import DurablePromise
from sdk.retry import RunOptions, RunRetryPolicy
from sdk.serde import BytesSerde, DataclassSerde, JsonSerde, PydanticSerde, Serde
from sdk.server import serve
from sdk.service import HandlerOptions, Service, VirtualObject, Workflow

__all__ = [
    "AvroSerde",
    "BytesSerde",
    "Context",
    "DataclassSerde",
    "DurableCallFuture",
    "DurableFuture",
    "DurablePromise",
    "Endpoint",
    "HandlerOptions",
    "JsonSerde",
    "ObjectContext",
    "ObjectSharedContext",
    "PydanticSerde",
    "Request",
    "RunOptions",
    "RunRetryPolicy",
    "SdkError",
    "SendHandle",
    "Serde",
    "Service",
    "TerminalError",
    "VirtualObject",
    "Workflow",
    "WorkflowContext",
    "WorkflowSharedContext",
    "app",
    "as_completed",
    "gather",
    "getLogger",
    "kafka",
    "select",
    "serve",
    "wait_completed",
]
