"""The Invoker: per-deployment concurrency limits over a shared HTTP client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from engine.invoker.client import HttpClientConfig, Invoker
from restate_protocol import encode_frames, pb
from engine.wal.records import Record
from tests.engine.invoker.driver import new_task
from tests.engine.invoker.raw_endpoint import Reply, http_response, raw_endpoint

DONE = encode_frames(pb.OutputCommandMessage(value=pb.Value(content=b'"ok"')), pb.EndMessage())


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


def test_attempts_per_deployment_are_limited_and_deployments_are_independent() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        records: list[Record] = []

        async def emit(record: Record) -> None:
            records.append(record)

        held = Reply(http_response(DONE), gate=gate)
        free = Reply(http_response(DONE))
        config = HttpClientConfig(concurrency_per_deployment=2)
        async with (
            raw_endpoint(lambda path, body: held) as (busy_url, busy),
            raw_endpoint(lambda path, body: free) as (other_url, _),
            Invoker.open(emit, config) as invoker,
        ):
            pending = [
                asyncio.create_task(invoker.invoke(new_task(busy_url, "Svc", "run", i)))
                for i in range(5)
            ]
            await wait_for(lambda: len(busy.requests) == 2)
            assert invoker.in_flight(busy_url) == 2
            assert invoker.in_flight(busy_url + "/") == 2

            # Another deployment is not held up by the busy one's limit.
            outcome = await invoker.invoke(new_task(other_url, "Svc", "run", "x"))
            assert outcome.ended
            assert len(busy.requests) == 2

            gate.set()
            outcomes = await asyncio.gather(*pending)
            assert all(o.ended for o in outcomes)
            assert busy.max_active == 2
            assert len(busy.requests) == 5
            assert invoker.in_flight(busy_url) == 0
        # Output + End for each of the six invocations.
        assert len(records) == 12

    asyncio.run(main())


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        HttpClientConfig(concurrency_per_deployment=0)
