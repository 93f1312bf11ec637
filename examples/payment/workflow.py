"""A payment that needs a human's approval: a workflow waiting on a durable promise.

``run`` (once per payment id) records the payment, then waits on the ``approval``
promise: the invocation suspends, holding no process or thread, for as long as the
approval takes. ``approve`` / ``reject`` are shared handlers of the same workflow
instance that resolve the promise; ``status`` reads the workflow's state meanwhile.
Approved, ``run`` charges in a journaled step; rejected, it ends with a terminal 403.

::

    python -m sdk examples.payment.workflow:app --port 9080     # then register it

    curl localhost:8080/Payment/p-1/run/send --json '{"amount_cents": 4200, "payee": "acme"}'
    curl -X POST localhost:8080/Payment/p-1/status          # -> "awaiting approval"
    curl localhost:8080/Payment/p-1/approve --json '"maria"'
    curl localhost:8080/restate/workflow/Payment/p-1/output  # -> the receipt
"""

from __future__ import annotations

from dataclasses import dataclass

import sdk


@dataclass
class PaymentRequest:
    """What to pay."""

    amount_cents: int
    payee: str


@dataclass
class Decision:
    """The approval promise's value."""

    approved: bool
    by: str
    reason: str = ""


payment = sdk.Workflow("Payment")


def _charge(payment_id: str, request: PaymentRequest) -> str:
    # Stands for the payment provider; journaled, so it runs once per approved payment.
    return f"charge-{payment_id}-{request.amount_cents}"


@payment.main()
async def run(ctx: sdk.WorkflowContext, request: PaymentRequest) -> str:
    """Wait for the approval, then charge; the payment's receipt."""
    if request.amount_cents <= 0:
        raise sdk.TerminalError("amount must be positive", 400)
    ctx.set("status", "awaiting approval")
    decision: Decision = await ctx.promise("approval", type_hint=Decision).value()
    if not decision.approved:
        ctx.set("status", f"rejected by {decision.by}")
        raise sdk.TerminalError(f"payment rejected by {decision.by}: {decision.reason}", 403)
    receipt = await ctx.run_typed("charge", _charge, sdk.RunOptions(), ctx.key(), request)
    ctx.set("status", f"paid ({receipt})")
    return receipt


@payment.handler()
async def approve(ctx: sdk.WorkflowSharedContext, approver: str) -> None:
    """Approve the payment (resolves the promise ``run`` waits on)."""
    await ctx.promise("approval", type_hint=Decision).resolve(Decision(True, approver))


@payment.handler()
async def reject(ctx: sdk.WorkflowSharedContext, decision: Decision) -> None:
    """Reject the payment with a reason."""
    await ctx.promise("approval", type_hint=Decision).resolve(
        Decision(False, decision.by, decision.reason))


@payment.handler()
async def status(ctx: sdk.WorkflowSharedContext) -> str:
    """Where the payment stands."""
    value: str | None = await ctx.get("status", type_hint=str)
    return value or "unknown"


app = sdk.app([payment])

if __name__ == "__main__":
    sdk.serve([payment])
