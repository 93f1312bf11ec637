"""A shopping cart as a virtual object: one cart per key, its items in durable state.

Exclusive handlers (``add_item``, ``remove_item``, ``checkout``) run one at a time per
cart, so two concurrent adds never lose an item; ``get_cart`` is shared and reads the
cart without waiting for them. ``checkout`` charges through a journaled step and empties
the cart; an empty cart is refused with a terminal 400 (not retried).

Serve it and register http://127.0.0.1:9080 with the admin API::

    python -m sdk examples.shopping_cart.cart:app --port 9080

then::

    curl localhost:8080/ShoppingCart/alice/add_item --json '{"sku": "tea", "quantity": 2, "unit_price_cents": 250}'
    curl -X POST localhost:8080/ShoppingCart/alice/get_cart
    curl -X POST localhost:8080/ShoppingCart/alice/checkout
"""

from __future__ import annotations

from dataclasses import dataclass

import sdk


@dataclass
class CartItem:
    """A line of the cart."""

    sku: str
    quantity: int
    unit_price_cents: int


@dataclass
class Receipt:
    """What ``checkout`` answers."""

    cart: str
    items: int
    total_cents: int
    payment_id: str


cart = sdk.VirtualObject("ShoppingCart")


async def _items(ctx: sdk.ObjectSharedContext) -> list[CartItem]:
    items: list[CartItem] | None = await ctx.get("items", type_hint=list[CartItem])
    return items or []


@cart.handler()
async def add_item(ctx: sdk.ObjectContext, item: CartItem) -> list[CartItem]:
    """Add ``item`` (quantities of the same sku add up); the cart afterwards."""
    if item.quantity <= 0:
        raise sdk.TerminalError(f"quantity must be positive, got {item.quantity}", 400)
    items = await _items(ctx)
    for line in items:
        if line.sku == item.sku:
            line.quantity += item.quantity
            break
    else:
        items.append(item)
    ctx.set("items", items)
    return items


@cart.handler()
async def remove_item(ctx: sdk.ObjectContext, sku: str) -> list[CartItem]:
    """Remove every unit of ``sku``; the cart afterwards."""
    items = [line for line in await _items(ctx) if line.sku != sku]
    ctx.set("items", items)
    return items


@cart.handler(kind="shared")
async def get_cart(ctx: sdk.ObjectSharedContext) -> list[CartItem]:
    """The cart's items (shared: does not wait for running exclusive handlers)."""
    return await _items(ctx)


def _charge(cart_key: str, total_cents: int) -> str:
    # Stands for a payment provider call; as a journaled step it runs once even if the
    # handler is retried after this point.
    return f"pay-{cart_key}-{total_cents}"


@cart.handler()
async def checkout(ctx: sdk.ObjectContext) -> Receipt:
    """Charge the cart's total and empty it."""
    items = await _items(ctx)
    if not items:
        raise sdk.TerminalError(f"cart {ctx.key()} is empty", 400)
    total = sum(line.quantity * line.unit_price_cents for line in items)
    payment_id = await ctx.run_typed("charge", _charge, sdk.RunOptions(), ctx.key(), total)
    ctx.clear("items")
    return Receipt(cart=ctx.key(), items=sum(line.quantity for line in items),
                   total_cents=total, payment_id=payment_id)


app = sdk.app([cart])

if __name__ == "__main__":
    sdk.serve([cart])
