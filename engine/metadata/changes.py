"""The rules for changing cluster metadata, as pure functions of the current view.

The admin API discovers an endpoint, then asks these functions what the change means;
only then is anything written. Nothing here does I/O, so the rules are unit-tested
without Kafka or HTTP.

Registering an endpoint (Restate's semantics):

* An endpoint URI that is already registered, without ``force``: nothing changes and the
  existing deployment is the answer (``UNCHANGED``; discovery is not even run).
* With ``force``: the existing deployment keeps its id and is replaced by what discovery
  found (``OVERWRITTEN``); services it no longer serves fall back to older revisions.
* Otherwise a new deployment (``CREATED``).
* Each service in it becomes revision ``latest + 1`` (or 1). A revision may not change the
  service type or drop handlers of the latest one (409, ``META0006``) unless ``breaking``
  (or ``force``, which implies it) is set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from engine.ids import DeploymentId
from engine.metadata.discovery import DiscoveredEndpoint
from engine.metadata.errors import InvalidRequest, RegistrationConflict
from engine.metadata.model import Deployment, ServiceDefinition, ServiceMetadata, ServiceType
from engine.metadata.view import MetadataView

__all__ = [
    "RegistrationOutcome",
    "RegistrationPlan",
    "ServicePatch",
    "patch_service",
    "plan_registration",
    "unchanged_registration",
]


class RegistrationOutcome(Enum):
    """What a registration did (or, in a dry run, would do)."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    OVERWRITTEN = "overwritten"


@dataclass(frozen=True)
class RegistrationPlan:
    """The deployment a registration results in, and whether it must be written."""

    outcome: RegistrationOutcome
    deployment: Deployment

    @property
    def needs_write(self) -> bool:
        return self.outcome is not RegistrationOutcome.UNCHANGED


def unchanged_registration(view: MetadataView, uri: str) -> RegistrationPlan | None:
    """The answer to a registration without ``force`` of an already registered URI, if it is one."""
    existing = view.find_deployment_by_uri(uri)
    return None if existing is None else RegistrationPlan(RegistrationOutcome.UNCHANGED, existing)


def plan_registration(
    view: MetadataView,
    discovered: DiscoveredEndpoint,
    *,
    new_id: DeploymentId,
    now: datetime,
    additional_headers: Mapping[str, str],
    metadata: Mapping[str, str],
    use_http_11: bool,
    force: bool,
    breaking: bool,
) -> RegistrationPlan:
    """Turn a discovered endpoint into the deployment to write.

    ``new_id`` is used when the URI is not registered yet; ``now`` becomes ``created_at``.

    Raises:
        RegistrationConflict: a service would change type or lose handlers, and neither
            ``breaking`` nor ``force`` allows it.
    """
    if not force:
        unchanged = unchanged_registration(view, discovered.uri)
        if unchanged is not None:
            return unchanged
    existing = view.find_deployment_by_uri(discovered.uri)
    deployment_id = existing.id if existing is not None else new_id
    services = []
    for definition in discovered.manifest.services:
        latest = view.find_service(definition.name)
        if latest is not None and not (force or breaking):
            _check_compatible(latest, definition)
        revision = 1 if latest is None else latest.revision + 1
        services.append(ServiceMetadata(definition=definition, revision=revision, deployment_id=deployment_id))
    manifest = discovered.manifest
    deployment = Deployment(
        id=deployment_id,
        uri=discovered.uri,
        protocol_type=manifest.protocol_type,
        min_protocol_version=manifest.min_protocol_version,
        max_protocol_version=manifest.max_protocol_version,
        # Millisecond precision: the metadata topic stores milliseconds.
        created_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
        services=tuple(sorted(services, key=lambda s: s.name)),
        http_version=discovered.http_version,
        use_http_11=use_http_11,
        additional_headers={k.lower(): v for k, v in additional_headers.items()},
        metadata=dict(metadata),
        sdk_version=discovered.sdk_version,
    )
    outcome = RegistrationOutcome.CREATED if existing is None else RegistrationOutcome.OVERWRITTEN
    return RegistrationPlan(outcome, deployment)


def _check_compatible(latest: ServiceMetadata, new: ServiceDefinition) -> None:
    advice = 'register with "breaking": true (or "force": true) to accept it, or give the service a new name'
    if latest.ty is not new.ty:
        raise RegistrationConflict(
            f"detected a new service revision for '{new.name}' changing the service type from "
            f"{latest.ty.api_name} to {new.ty.api_name}; the service type cannot change across revisions. "
            f"If in-flight invocations and state of the old type may break, {advice}"
        )
    removed = sorted(h.name for h in latest.handlers if new.handler(h.name) is None)
    if removed:
        raise RegistrationConflict(
            f"detected a new service revision for '{new.name}' removing the handlers {removed} of revision "
            f"{latest.revision}; handlers cannot be removed across revisions. If calls to them may fail, {advice}"
        )


@dataclass(frozen=True)
class ServicePatch:
    """A change of service-level options (``PATCH /services/{name}``); ``None`` = leave as is."""

    public: bool | None = None
    idempotency_retention: timedelta | None = None
    workflow_completion_retention: timedelta | None = None
    journal_retention: timedelta | None = None
    inactivity_timeout: timedelta | None = None
    abort_timeout: timedelta | None = None


def patch_service(view: MetadataView, name: str, patch: ServicePatch) -> tuple[Deployment, ServiceMetadata]:
    """The deployment record that carries ``patch`` applied to the latest revision of ``name``.

    The change belongs to that revision: registering a new revision starts again from what
    the endpoint declares.

    Raises:
        ServiceNotFound: no such service.
        InvalidRequest: ``workflow_completion_retention`` for a service that is not a workflow.
    """
    service = view.get_service(name)
    if patch.workflow_completion_retention is not None and service.ty is not ServiceType.WORKFLOW:
        raise InvalidRequest(
            f"workflow_completion_retention applies to workflows only, and '{name}' is a {service.ty.api_name}"
        )
    o = service.options
    options = dataclasses.replace(
        o,
        idempotency_retention=_or(patch.idempotency_retention, o.idempotency_retention),
        workflow_completion_retention=_or(patch.workflow_completion_retention, o.workflow_completion_retention),
        journal_retention=_or(patch.journal_retention, o.journal_retention),
        inactivity_timeout=_or(patch.inactivity_timeout, o.inactivity_timeout),
        abort_timeout=_or(patch.abort_timeout, o.abort_timeout),
    )
    if patch.public is not None:
        options = dataclasses.replace(options, ingress_private=not patch.public)
    updated = service.with_options(options)
    deployment = view.deployment_of(service)
    services = tuple(updated if s.name == name else s for s in deployment.services)
    return dataclasses.replace(deployment, services=services), updated


def _or(new: timedelta | None, old: timedelta | None) -> timedelta | None:
    return old if new is None else new
