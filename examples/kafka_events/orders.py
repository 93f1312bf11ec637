"""A Kafka-event handler: order events for one customer, applied in order, exactly once.

Nobody writes a Kafka consumer here. The engine subscribes ``CustomerOrders/on_event``
to the topic, uses each record's key as the customer (the object key) and invokes the
handler once per event, one at a time per customer, in publish order::

    hypercorn examples.kafka_events.orders:app --bind 127.0.0.1:9080
    curl -X POST localhost:9070/deployments -H 'content-type: application/json' \\
      -d '{"uri": "http://127.0.0.1:9080"}'
    curl -X POST localhost:9070/kafka-clusters -H 'content-type: application/json' \\
      -d '{"name": "local", "properties": {"bootstrap.servers": "127.0.0.1:9092"}}'
    curl -X POST localhost:9070/subscriptions -H 'content-type: application/json' -d '{
      "source": "kafka://local/orders", "sink": "service://CustomerOrders/on_event",
      "options": {"auto.offset.reset": "earliest", "payload.format": "json"}}'

Then publish ``{"type": "placed", "order": "o-1", "amount": 30}`` (and ``"cancelled"``)
with the customer id as the record key, and read ``CustomerOrders/<customer>/summary``.
"""

from __future__ import annotations

from typing import Any

import sdk

orders = sdk.VirtualObject("CustomerOrders")


@orders.handler()
async def on_event(ctx: sdk.ObjectContext, event: dict[str, Any]) -> None:
    """Apply one order event to the customer's open orders and running total."""
    open_orders: dict[str, int] = await ctx.get("open", type_hint=dict[str, int]) or {}
    if event["type"] == "placed":
        open_orders[event["order"]] = int(event["amount"])
    elif event["type"] == "cancelled":
        open_orders.pop(event["order"], None)
    ctx.set("open", open_orders)
    # Which partition/offset this came from, for the curious (the engine adds these headers).
    ctx.set("last_offset", int(ctx.request().headers.get("kafka.offset", "-1")))


@orders.handler(kind="shared")
async def summary(ctx: sdk.ObjectSharedContext) -> dict[str, Any]:
    """Open orders and their total."""
    open_orders: dict[str, int] = await ctx.get("open", type_hint=dict[str, int]) or {}
    return {"open": sorted(open_orders), "total": sum(open_orders.values())}


app = sdk.app([orders])
