#!/usr/bin/env python3
"""A local multi-broker Apache Kafka cluster (KRaft) for fault tests, without Docker.

N nodes (default 3), each a combined broker+controller JVM from the same Maven-Central
jars as the single broker (``compose/kafka_local.py``), with its own directory
(``<dir>/node-<i>``) and its own free ports, remembered in ``<dir>/cluster.json`` so a
killed node restarts on the same address. The controllers form one static quorum
(``controller.quorum.voters``), so the cluster keeps a controller majority when one
node of three dies. Internal topics (consumer offsets, transaction state) are
replicated ``min(3, N)`` times with ``min.insync.replicas`` ``RF-1`` (at least 1), the
same rule the engine applies to its own topics (``engine/wal/topics.py``), so groups
and transactions survive the loss of one node.

Command line (stdlib only, like ``kafka_local.py``)::

    python compose/kafka_cluster.py --dir /tmp/kc start            # all nodes, wait until all are in
    python compose/kafka_cluster.py --dir /tmp/kc status
    python compose/kafka_cluster.py --dir /tmp/kc kill --node 1    # SIGKILL one node (0-based index)
    python compose/kafka_cluster.py --dir /tmp/kc start --node 1   # restart it, wait until it is back
    python compose/kafka_cluster.py --dir /tmp/kc stop             # every node (SIGTERM, then SIGKILL)

The same operations are the :class:`LocalKafkaCluster` API the fault tests use.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from compose.processes import send_signal, wait_gone  # noqa: E402
from compose.kafka_local import (  # noqa: E402
    DEFAULT_CACHE,
    KAFKA_VERSION,
    KafkaLocalError,
    LocalKafka,
    _kafka_uuid,
    _recv_exact,
    _say,
    ensure_jars,
    free_port,
)

DEFAULT_CLUSTER_DIR = DEFAULT_CACHE / "cluster"


def live_brokers(host: str, port: int, timeout: float = 2.0) -> set[int]:
    """The node ids of the brokers the broker at ``host:port`` lists as live (Metadata v0,
    raw protocol, like :func:`compose.kafka_local.broker_ready`); empty when it does not answer."""
    correlation = 11
    client_id = b"kafka-cluster-probe"
    body = struct.pack(">hhih", 3, 0, correlation, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            payload = _recv_exact(sock, size)
    except OSError:
        return set()
    got_correlation, count = struct.unpack(">ii", payload[:8])
    if got_correlation != correlation:
        return set()
    ids, at = set(), 8
    for _ in range(count):  # node_id int32, host string (int16 length), port int32
        (node_id, host_len) = struct.unpack(">ih", payload[at:at + 6])
        at += 6 + host_len + 4
        ids.add(int(node_id))
    return ids


@dataclass
class ClusterNode(LocalKafka):
    """One node of a :class:`LocalKafkaCluster`: a :class:`LocalKafka` whose settings name
    the whole quorum and replicate internal topics across the cluster."""

    node_id: int = 1
    voters: str = ""
    cluster_id: str = ""
    replication: int = 1

    def _write_config(self) -> Path:
        props = super()._write_config()
        settings = dict(
            line.split("=", 1) for line in props.read_text().splitlines() if line and not line.startswith("#")
        )
        min_isr = str(max(1, self.replication - 1))
        settings.update({
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "offsets.topic.replication.factor": str(self.replication),
            "transaction.state.log.replication.factor": str(self.replication),
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": str(self.replication),
            "share.coordinator.state.topic.min.isr": min_isr,
            "default.replication.factor": str(self.replication),
            "min.insync.replicas": min_isr,
            "unclean.leader.election.enable": "false",
            # Replicas are fetched by the other nodes over the PLAINTEXT listener; a
            # follower that misses this long is dropped from the ISR (default 30 s): short,
            # so a killed node leaves the ISR quickly and acks=all appends go on without it.
            "replica.lag.time.max.ms": "10000",
        })
        props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return props

    def _cluster_id(self) -> str:
        return self.cluster_id


@dataclass
class LocalKafkaCluster:
    """``brokers`` KRaft nodes whose files live under ``workdir``; nodes are addressed by
    0-based index (node id = index + 1)."""

    workdir: Path = DEFAULT_CLUSTER_DIR
    brokers: int = 3
    host: str = "127.0.0.1"
    version: str = KAFKA_VERSION
    cache_dir: Path = DEFAULT_CACHE
    heap: str = "384m"
    nodes: list[ClusterNode] = field(init=False)

    def __post_init__(self) -> None:
        if self.brokers < 1:
            raise KafkaLocalError("a cluster needs at least one broker")
        layout = self._layout()
        voters = ",".join(f"{i + 1}@{self.host}:{n['controller_port']}" for i, n in enumerate(layout["nodes"]))
        self.nodes = [
            ClusterNode(
                workdir=self.workdir / f"node-{i}", port=n["port"], controller_port=n["controller_port"],
                host=self.host, version=self.version, cache_dir=self.cache_dir, heap=self.heap,
                node_id=i + 1, voters=voters, cluster_id=layout["cluster_id"],
                replication=min(3, self.brokers),
            )
            for i, n in enumerate(layout["nodes"])
        ]

    @property
    def bootstrap_servers(self) -> str:
        """Every node's address: clients find the cluster through whichever is up."""
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def node(self, index: int) -> ClusterNode:
        if not 0 <= index < len(self.nodes):
            raise KafkaLocalError(f"no node {index}: the cluster has nodes 0..{len(self.nodes) - 1}")
        return self.nodes[index]

    # -- lifecycle -------------------------------------------------------------------

    def start(self, wait_seconds: float = 180.0) -> str:
        """Start every node that is not running and wait until each lists all brokers."""
        ensure_jars(self.version, self.cache_dir)
        spawned = [(node, node.spawn()) for node in self.nodes if node.pid() is None]
        # A node answers metadata only once the controller quorum has formed, which needs
        # a majority of the nodes up: spawn all first, then wait for each.
        for node, proc in spawned:
            node.wait_ready(proc, wait_seconds)
        self.wait_all_live(wait_seconds)
        return self.bootstrap_servers

    def start_node(self, index: int, wait_seconds: float = 180.0) -> None:
        """(Re)start one node on its old ports and data, and wait until the cluster lists it again."""
        node = self.node(index)
        if node.pid() is None:
            node.wait_ready(node.spawn(), wait_seconds)
        self.wait_all_live(wait_seconds)

    def stop_node(self, index: int, timeout: float = 30.0) -> None:
        """Stop one node gracefully (controlled shutdown moves its leaderships first)."""
        self.node(index).stop(timeout)

    def kill_node(self, index: int) -> None:
        """SIGKILL one node at once, as a crash would."""
        self.node(index).kill()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node: SIGTERM to all at once (one by one, the last nodes lose their
        controller majority and cannot finish a controlled shutdown), SIGKILL after ``timeout``."""
        pids = [(node, pid) for node in self.nodes if (pid := node.pid()) is not None]
        for _, pid in pids:
            send_signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node, pid in pids:
            if not wait_gone(pid, max(0.0, deadline - time.monotonic())):
                _say(f"node {node.node_id} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; killing it")
                send_signal(pid, signal.SIGKILL)
                wait_gone(pid, 10.0)
            node.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def running(self) -> list[int]:
        """Indexes of the nodes whose process is alive."""
        return [i for i, node in enumerate(self.nodes) if node.pid() is not None]

    def live_node_ids(self) -> set[int]:
        """The node ids the first answering node lists as live brokers (empty if none answers)."""
        for node in self.nodes:
            if node.pid() is not None:
                assert node.port is not None
                ids = live_brokers(self.host, node.port, timeout=1.0)
                if ids:
                    return ids
        return set()

    def wait_all_live(self, wait_seconds: float = 180.0) -> None:
        """Wait until every running node is listed live by every running node."""
        deadline = time.monotonic() + wait_seconds
        wanted: set[int] = set()
        while time.monotonic() < deadline:
            wanted = {self.nodes[i].node_id for i in self.running()}
            views = []
            for i in self.running():
                port = self.nodes[i].port
                assert port is not None
                views.append(live_brokers(self.host, port, timeout=1.0))
            if views and all(view == wanted for view in views):
                _say(f"cluster ready: brokers {sorted(wanted)} at {self.bootstrap_servers}")
                return
            time.sleep(0.2)
        raise KafkaLocalError(
            f"the cluster did not list brokers {sorted(wanted)} within {wait_seconds:.0f}s; see the logs "
            f"under {self.workdir}/node-*/logs"
        )

    # -- internals -------------------------------------------------------------------

    def _layout(self) -> dict[str, Any]:
        """Ports and cluster id, chosen once and kept in ``cluster.json``."""
        path = self.workdir / "cluster.json"
        if path.exists():
            layout: dict[str, Any] = json.loads(path.read_text())
            nodes = layout["nodes"]
            if len(nodes) != self.brokers:
                raise KafkaLocalError(
                    f"{path} describes {len(nodes)} brokers, not {self.brokers}; pass --brokers {len(nodes)} "
                    "or use another --dir"
                )
            return layout
        taken: set[int] = set()

        def port() -> int:
            while (p := free_port(self.host)) in taken:
                pass
            taken.add(p)
            return p

        layout = {
            "cluster_id": _kafka_uuid(),
            "nodes": [{"port": port(), "controller_port": port()} for _ in range(self.brokers)],
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(layout, indent=1))
        return layout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=["start", "status", "stop", "kill"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_CLUSTER_DIR, help="cluster files (default: %(default)s)")
    parser.add_argument("--brokers", type=int, default=3, help="nodes in the cluster (default: %(default)s)")
    parser.add_argument("--node", type=int, default=None, help="only this node (0-based index)")
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    try:
        cluster = LocalKafkaCluster(workdir=args.dir, brokers=args.brokers)
        if args.command == "start":
            if args.node is None:
                print(cluster.start())
            else:
                cluster.start_node(args.node)
        elif args.command == "status":
            running = cluster.running()
            for i, node in enumerate(cluster.nodes):
                state = f"running pid={node.pid()}" if i in running else "stopped"
                print(f"node {i} (id {node.node_id}) {node.bootstrap_servers}: {state}")
            print(f"live brokers: {sorted(cluster.live_node_ids())}")
            return 0 if running else 1
        elif args.command == "stop":
            if args.node is None:
                cluster.stop(args.stop_timeout)
            else:
                cluster.stop_node(args.node, args.stop_timeout)
        elif args.command == "kill":
            if args.node is None:
                cluster.kill()
            else:
                cluster.kill_node(args.node)
    except KafkaLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
