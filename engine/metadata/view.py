"""An immutable snapshot of the cluster metadata and the queries the engine asks of it.

The latest revision of a service is the highest revision any registered deployment
serves; deleting the deployment of the latest revision makes the next lower one latest
again (as in Restate). If two deployments ever carry the same revision of a name (two
engine processes registering at the same instant), the newer deployment wins, so every
process resolves the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from engine.ids import DeploymentId, SubscriptionId
from engine.metadata.errors import DeploymentNotFound, HandlerNotFound, NotFoundError, ServiceNotFound
from engine.metadata.kafka import KafkaCluster, Subscription
from engine.metadata.nodes import NodeAdvert, leader_of
from engine.metadata.model import Deployment, HandlerMetadata, ResolvedHandler, ServiceMetadata

__all__ = ["MetadataView"]


@dataclass(frozen=True)
class MetadataView:
    """The metadata as of ``applied_offset`` (the last applied record of the metadata topic)."""

    deployments: Mapping[DeploymentId, Deployment] = field(default_factory=dict)
    applied_offset: int = -1
    """Offset of the last record folded into this view; -1 before the first."""
    kafka_clusters: Mapping[str, KafkaCluster] = field(default_factory=dict)
    """Clusters by name: those declared in the engine config, then those written through the API."""
    subscriptions: Mapping[SubscriptionId, Subscription] = field(default_factory=dict)
    nodes: Mapping[str, NodeAdvert] = field(default_factory=dict)
    """Engine processes by instance name, as they advertised themselves."""
    _latest: Mapping[str, tuple[ServiceMetadata, Deployment]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        latest: dict[str, tuple[ServiceMetadata, Deployment]] = {}
        for deployment in self.deployments.values():
            for service in deployment.services:
                current = latest.get(service.name)
                if current is None or _rank(service, deployment) > _rank(*current):
                    latest[service.name] = (service, deployment)
        object.__setattr__(self, "_latest", latest)

    def partition_leader(self, partition: int) -> NodeAdvert | None:
        """The engine process that leads WAL ``partition`` (:func:`engine.metadata.nodes.leader_of`)."""
        return leader_of(self.nodes, partition)

    # --- deployments -------------------------------------------------------------------

    def list_deployments(self) -> list[Deployment]:
        """All deployments, newest first."""
        return sorted(self.deployments.values(), key=lambda d: (d.created_at, d.id), reverse=True)

    def find_deployment(self, deployment_id: DeploymentId) -> Deployment | None:
        return self.deployments.get(deployment_id)

    def get_deployment(self, deployment_id: DeploymentId) -> Deployment:
        """The deployment with this id; raises :class:`DeploymentNotFound`."""
        deployment = self.deployments.get(deployment_id)
        if deployment is None:
            raise DeploymentNotFound(deployment_id)
        return deployment

    def find_deployment_by_uri(self, uri: str) -> Deployment | None:
        """The newest deployment registered with this (normalized) URI, if any."""
        matches = [d for d in self.deployments.values() if d.uri == uri]
        return max(matches, key=lambda d: (d.created_at, d.id), default=None)

    # --- Kafka clusters and subscriptions ----------------------------------------------

    def list_kafka_clusters(self) -> list[KafkaCluster]:
        """All clusters, by name."""
        return [self.kafka_clusters[name] for name in sorted(self.kafka_clusters)]

    def get_kafka_cluster(self, name: str) -> KafkaCluster:
        """Raises :class:`NotFoundError` naming the cluster."""
        cluster = self.kafka_clusters.get(name)
        if cluster is None:
            raise NotFoundError(f"The Kafka cluster '{name}' does not exist; create it with POST /kafka-clusters")
        return cluster

    def list_subscriptions(self) -> list[Subscription]:
        """All subscriptions, oldest first."""
        return sorted(self.subscriptions.values(), key=lambda s: (s.created_at, s.id))

    def get_subscription(self, subscription_id: SubscriptionId) -> Subscription:
        """Raises :class:`NotFoundError` naming the subscription."""
        found = self.subscriptions.get(subscription_id)
        if found is None:
            raise NotFoundError(f"The subscription '{subscription_id}' does not exist")
        return found

    # --- services ----------------------------------------------------------------------

    def list_services(self) -> list[ServiceMetadata]:
        """The latest revision of every service, by name."""
        return [self._latest[name][0] for name in sorted(self._latest)]

    def find_service(self, name: str) -> ServiceMetadata | None:
        entry = self._latest.get(name)
        return None if entry is None else entry[0]

    def get_service(self, name: str) -> ServiceMetadata:
        """The latest revision of service ``name``; raises :class:`ServiceNotFound`."""
        entry = self._latest.get(name)
        if entry is None:
            raise ServiceNotFound(name)
        return entry[0]

    def get_handler(self, service: str, handler: str) -> HandlerMetadata:
        """A handler of the latest revision; raises :class:`ServiceNotFound` / :class:`HandlerNotFound`."""
        found = self.get_service(service).handler(handler)
        if found is None:
            raise HandlerNotFound(service, handler)
        return found

    def resolve(self, service: str, handler: str) -> ResolvedHandler:
        """Where a new invocation of ``service/handler`` goes.

        Raises:
            ServiceNotFound, HandlerNotFound: nothing registered under that name.
        """
        entry = self._latest.get(service)
        if entry is None:
            raise ServiceNotFound(service)
        revision, deployment = entry
        found = revision.handler(handler)
        if found is None:
            raise HandlerNotFound(service, handler)
        return ResolvedHandler(deployment=deployment, service=revision, handler=found)

    def deployment_of(self, service: ServiceMetadata) -> Deployment:
        """The deployment serving this service revision."""
        return self.get_deployment(service.deployment_id)


def _rank(service: ServiceMetadata, deployment: Deployment) -> tuple[int, datetime, DeploymentId]:
    return (service.revision, deployment.created_at, deployment.id)
