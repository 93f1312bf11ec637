"""Engine-process adverts in the metadata topic: record format and who leads a partition (pure)."""

from __future__ import annotations

import json

from engine.metadata import codec
from engine.metadata.nodes import NodeAdvert, leader_of, node_key
from engine.metadata.view import MetadataView


def test_advert_round_trips_and_a_tombstone_deletes() -> None:
    advert = NodeAdvert("host.1a2b", "http://10.0.0.5:9070", {0: 3, 2: 7})
    value = codec.encode_node(advert)
    assert json.loads(value) == {
        "schema_version": 1, "node": {"admin_url": "http://10.0.0.5:9070", "leading": {"0": 3, "2": 7}},
    }
    assert codec.decode_record(node_key("host.1a2b"), value) == codec.NodePut(advert)
    assert codec.decode_record(node_key("host.1a2b"), None) == codec.NodeDeleted("host.1a2b")


def test_the_highest_epoch_claim_leads() -> None:
    # "old" died leading partition 1 at epoch 4; "new" took it over at epoch 5.
    old = NodeAdvert("old", "http://a:1", {0: 2, 1: 4})
    new = NodeAdvert("new", "http://b:1", {1: 5})
    nodes = {"old": old, "new": new}
    assert leader_of(nodes, 0) is old
    assert leader_of(nodes, 1) is new
    assert leader_of(nodes, 3) is None
    assert MetadataView(nodes=nodes).partition_leader(1) is new
