"""The leadership adverts behind admin forwarding, against the real broker: what one
process advertises (coalesced while a write is in flight) every process sees, the
highest epoch leads, and a clean stop withdraws the advert."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from engine.admin.forwarding import Advertiser, Forwarder
from engine.config import KafkaConfig
from engine.metadata.store import MetadataStore
from tests.engine.metadata.test_store import eventually, kafka_config, run_with_stores

__all__ = ["kafka_config"]  # the fixture, used by name


def test_adverts_reach_every_process_and_a_clean_stop_withdraws_them(kafka_config: KafkaConfig) -> None:
    async def body(started: Callable[[str], Awaitable[MetadataStore]]) -> None:
        a, b = await started("a"), await started("b")
        first = Advertiser(a, "a.1", "http://127.0.0.1:1111")
        second = Advertiser(b, "b.1", "http://127.0.0.1:2222")
        first.update({0: 1, 1: 1})  # before start: only remembered
        first.start()
        second.start()
        # Changes while a write is in flight are coalesced; the last one is what stays.
        first.update({0: 1, 1: 1, 2: 1})
        first.update({0: 1, 1: 1, 2: 1, 3: 1})

        def leaders(store: MetadataStore) -> list[str | None]:
            return [None if (n := store.view.partition_leader(p)) is None else n.instance for p in range(4)]

        for store in (a, b):
            await eventually(lambda s=store: leaders(s) == ["a.1"] * 4, "the first process's advert")
        # The second process takes partition 2 over at a higher epoch before the first
        # has written its loss: the higher epoch leads.
        second.update({2: 2})
        await eventually(lambda: leaders(a) == ["a.1", "a.1", "b.1", "a.1"], "the takeover")
        assert Forwarder(a, "a.1").leader(2) is not None and Forwarder(a, "a.1").leader(0) is None
        node = Forwarder(b, "b.1").leader(0)
        assert node is not None and node.admin_url == "http://127.0.0.1:1111"

        await first.stop()
        await eventually(lambda: leaders(b) == [None, None, "b.1", None], "the withdrawn advert")
        assert "a.1" not in b.view.nodes
        await second.stop()

    run_with_stores(kafka_config, body)
