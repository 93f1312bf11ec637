"""A saga: book a trip in steps, and undo the finished steps if a later one fails.

``TripBooking/book`` reserves a flight and a hotel (calls to the ``Reservations``
object of the trip) and then rents a car (a journaled step that talks to a rental
company). Before each step it registers the step's compensation; when a step fails
terminally, it runs the compensations registered so far in reverse order, then fails
the booking with a terminal error saying what was undone. Every step and compensation
is journaled, so a crash in the middle of undoing resumes the undoing, not the booking.

Only terminal errors trigger compensation: any other exception is retried by the
runtime (that is what durable execution is for), so a flaky provider does not cancel
the trip.

::

    python -m sdk examples.saga.trip:app --port 9080     # then register it

    curl localhost:8080/TripBooking/book --json '{"trip_id": "t1", "car": "compact"}'
    curl localhost:8080/TripBooking/book --json '{"trip_id": "t2", "car": "spaceship"}'   # -> 409
    curl -X POST localhost:8080/Reservations/t2/history    # reserved..., cancelled... (reverse order)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sdk

#: Cars the (pretend) rental company has.
CARS = frozenset({"compact", "van"})


@dataclass
class Trip:
    """A trip to book."""

    trip_id: str
    car: str


reservations = sdk.VirtualObject("Reservations")
booking = sdk.Service("TripBooking")


async def _history(ctx: sdk.ObjectSharedContext) -> list[str]:
    events: list[str] | None = await ctx.get("history", type_hint=list[str])
    return events or []


@reservations.handler()
async def reserve(ctx: sdk.ObjectContext, what: str) -> str:
    """Reserve ``what`` for the trip (the key); the reservation id."""
    ctx.set("history", [*await _history(ctx), f"reserved {what}"])
    return f"{what}-{ctx.key()}"


@reservations.handler()
async def cancel(ctx: sdk.ObjectContext, what: str) -> None:
    """Cancel the trip's reservation of ``what`` (the compensation of :func:`reserve`)."""
    ctx.set("history", [*await _history(ctx), f"cancelled {what}"])


@reservations.handler(kind="shared")
async def history(ctx: sdk.ObjectSharedContext) -> list[str]:
    """Everything reserved and cancelled for the trip, in order."""
    return await _history(ctx)


def _rent_car(trip: Trip) -> str:
    if trip.car not in CARS:
        # The provider's final "no": terminal, so the saga compensates instead of retrying.
        raise sdk.TerminalError(f"no {trip.car} available", 409)
    return f"car-{trip.trip_id}"


@booking.handler()
async def book(ctx: sdk.Context, trip: Trip) -> dict[str, str]:
    """Book flight, hotel and car; on a terminal failure undo what was booked."""
    compensations: list[Callable[[], Awaitable[None]]] = []
    try:
        compensations.append(lambda: ctx.object_call(cancel, trip.trip_id, "flight"))
        flight: str = await ctx.object_call(reserve, trip.trip_id, "flight")
        compensations.append(lambda: ctx.object_call(cancel, trip.trip_id, "hotel"))
        hotel: str = await ctx.object_call(reserve, trip.trip_id, "hotel")
        car = await ctx.run_typed("rent car", _rent_car, sdk.RunOptions(), trip)
    except sdk.TerminalError as failure:
        for compensate in reversed(compensations):
            await compensate()
        raise sdk.TerminalError(
            f"trip {trip.trip_id} not booked ({failure.message}); "
            f"undid {len(compensations)} reservations", failure.status_code,
        ) from failure
    return {"flight": flight, "hotel": hotel, "car": car}


app = sdk.app([booking, reservations])

if __name__ == "__main__":
    sdk.serve([booking, reservations])
