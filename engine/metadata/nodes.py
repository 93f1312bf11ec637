"""Which engine process leads which WAL partition, and where its admin API answers.

A process only has current tables for the partitions it leads, so an admin lookup of
anything else is forwarded to the leader (:mod:`engine.admin.forwarding`). Every process
advertises itself in the metadata topic under its own key::

    key    node/<instance>                       (UTF-8; the instance is unique per process)
    value  {"schema_version": 1, "node": {"admin_url": "http://host:9070",
                                           "leading": {"<partition>": <epoch>, ...}}}
           or a tombstone: the process stopped cleanly

Only the process itself writes its key, so its records are in the order it wrote them.
Records of processes that died without a tombstone stay behind, and two records can
claim one partition for a moment (the old leader has not written its loss yet): the
claim with the higher epoch wins, as epochs of a partition only grow
(:meth:`engine.partition.processor.PartitionProcessors`), so the leader a process picks
is the latest that announced itself. A claim that is wrong for a moment costs one
forwarded request answered "not led here".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["NODE_KEY_PREFIX", "NodeAdvert", "decode_node", "encode_node", "leader_of", "node_key"]

NODE_KEY_PREFIX: Final = "node/"


@dataclass(frozen=True)
class NodeAdvert:
    """Engine process ``instance``: its admin URL and the partitions it leads (epoch each)."""

    instance: str
    admin_url: str
    leading: Mapping[int, int] = field(default_factory=dict)


def node_key(instance: str) -> bytes:
    """The record key of engine process ``instance``."""
    return f"{NODE_KEY_PREFIX}{instance}".encode()


def encode_node(node: NodeAdvert, schema_version: int) -> bytes:
    """The record value of ``node``."""
    document = {
        "schema_version": schema_version,
        "node": {"admin_url": node.admin_url, "leading": {str(p): e for p, e in sorted(node.leading.items())}},
    }
    return json.dumps(document, separators=(",", ":")).encode()


def decode_node(instance: str, document: Mapping[str, Any]) -> NodeAdvert:
    """The advert in a record's ``node`` document.

    Raises:
        KeyError, TypeError, ValueError: the document is malformed.
    """
    admin_url = document["admin_url"]
    if not isinstance(admin_url, str):
        raise TypeError("admin_url must be a string")
    leading = {int(p): int(e) for p, e in dict(document.get("leading", {})).items()}
    return NodeAdvert(instance, admin_url, leading)


def leader_of(nodes: Mapping[str, NodeAdvert], partition: int) -> NodeAdvert | None:
    """The process that announced the highest epoch for ``partition``, if any did."""
    best: NodeAdvert | None = None
    for node in nodes.values():
        epoch = node.leading.get(partition)
        if epoch is not None and (best is None or epoch > best.leading[partition]):
            best = node
    return best
