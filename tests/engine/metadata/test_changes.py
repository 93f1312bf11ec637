"""The rules for registering deployments and changing services (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.ids import DeploymentId
from engine.metadata.changes import RegistrationOutcome, ServicePatch, patch_service, plan_registration
from engine.metadata.discovery import DiscoveredEndpoint, normalize_endpoint_uri
from engine.metadata.errors import InvalidRequest, RegistrationConflict, ServiceNotFound
from engine.metadata.manifest import parse_manifest
from engine.metadata.model import ServiceType
from engine.metadata.view import MetadataView

NOW = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _endpoint(uri: str, *services: dict[str, Any]) -> DiscoveredEndpoint:
    document = {"protocolMode": "REQUEST_RESPONSE", "minProtocolVersion": 5, "maxProtocolVersion": 7, "services": list(services)}
    return DiscoveredEndpoint(uri=normalize_endpoint_uri(uri), manifest=parse_manifest(4, document), sdk_version="sdk/1")


def _svc(name: str, ty: str = "SERVICE", handlers: tuple[str, ...] = ("greet",)) -> dict[str, Any]:
    return {"name": name, "ty": ty, "handlers": [{"name": h} for h in handlers]}


def _register(view: MetadataView, endpoint: DiscoveredEndpoint, *, force: bool = False, breaking: bool = False, now: datetime = NOW) -> tuple[MetadataView, Any]:
    plan = plan_registration(
        view, endpoint, new_id=DeploymentId.generate(), now=now, additional_headers={"X-Key": "v"},
        metadata={}, use_http_11=True, force=force, breaking=breaking,
    )
    if not plan.needs_write:
        return view, plan
    deployments = dict(view.deployments)
    deployments[plan.deployment.id] = plan.deployment
    return MetadataView(deployments, view.applied_offset + 1), plan


def test_first_registration_creates_revision_one() -> None:
    view, plan = _register(MetadataView(), _endpoint("http://a:9080", _svc("Greeter"), _svc("Counter", "VIRTUAL_OBJECT")))
    assert plan.outcome is RegistrationOutcome.CREATED
    deployment = plan.deployment
    assert deployment.uri == "http://a:9080/"
    assert [(s.name, s.revision) for s in deployment.services] == [("Counter", 1), ("Greeter", 1)]
    assert all(s.deployment_id == deployment.id for s in deployment.services)
    assert deployment.additional_headers == {"x-key": "v"}
    assert deployment.created_at == NOW.replace(microsecond=123000)
    assert view.get_service("Greeter").deployment_id == deployment.id


def test_same_uri_without_force_is_unchanged_and_with_force_overwritten() -> None:
    view, first = _register(MetadataView(), _endpoint("http://a:9080/", _svc("Greeter")))
    again_view, again = _register(view, _endpoint("http://a:9080", _svc("Greeter", handlers=("greet", "wave"))))
    assert again.outcome is RegistrationOutcome.UNCHANGED
    assert again.deployment == first.deployment and again_view is view
    view, forced = _register(view, _endpoint("http://a:9080", _svc("Other")), force=True)
    assert forced.outcome is RegistrationOutcome.OVERWRITTEN
    assert forced.deployment.id == first.deployment.id
    # Greeter is no longer served by anyone; Other is new.
    assert [s.name for s in view.list_services()] == ["Other"]


def test_new_endpoint_bumps_revisions_and_old_deployment_stays_readable() -> None:
    view, v1 = _register(MetadataView(), _endpoint("http://a:1", _svc("Greeter")))
    view, v2 = _register(view, _endpoint("http://b:1", _svc("Greeter", handlers=("greet", "wave"))), now=NOW + timedelta(seconds=1))
    latest = view.get_service("Greeter")
    assert (latest.revision, latest.deployment_id) == (2, v2.deployment.id)
    assert view.resolve("Greeter", "wave").deployment.uri == "http://b:1/"
    assert view.get_deployment(v1.deployment.id).services[0].revision == 1
    # Deleting the newest deployment makes the older revision the latest again.
    view = MetadataView({v1.deployment.id: v1.deployment})
    assert view.get_service("Greeter").revision == 1


def test_service_type_change_conflicts_unless_breaking_or_force() -> None:
    view, _ = _register(MetadataView(), _endpoint("http://a:1", _svc("Greeter")))
    changed = _endpoint("http://b:1", _svc("Greeter", "VIRTUAL_OBJECT"))
    with pytest.raises(RegistrationConflict, match="changing the service type from Service to VirtualObject") as caught:
        _register(view, changed)
    assert caught.value.restate_code == "META0006"
    assert _register(view, changed, breaking=True)[0].get_service("Greeter").ty is ServiceType.VIRTUAL_OBJECT
    assert _register(view, changed, force=True)[1].deployment.services[0].revision == 2


def test_removing_handlers_conflicts_unless_breaking() -> None:
    view, _ = _register(MetadataView(), _endpoint("http://a:1", _svc("Greeter", handlers=("greet", "wave"))))
    with pytest.raises(RegistrationConflict, match=r"removing the handlers \['wave'\]"):
        _register(view, _endpoint("http://b:1", _svc("Greeter")))
    assert _register(view, _endpoint("http://b:1", _svc("Greeter")), breaking=True)[1].outcome is RegistrationOutcome.CREATED


def test_patch_changes_the_latest_revision_only() -> None:
    view, plan = _register(MetadataView(), _endpoint("http://a:1", _svc("Greeter"), _svc("Other")))
    deployment, updated = patch_service(view, "Greeter", ServicePatch(public=False, journal_retention=timedelta(hours=2)))
    assert updated.public is False and updated.options.journal_retention == timedelta(hours=2)
    assert deployment.id == plan.deployment.id
    assert deployment.service("Other") == plan.deployment.service("Other")
    with pytest.raises(InvalidRequest, match="workflows only"):
        patch_service(view, "Greeter", ServicePatch(workflow_completion_retention=timedelta(days=1)))
    with pytest.raises(ServiceNotFound, match="'Nope' does not exist"):
        patch_service(view, "Nope", ServicePatch(public=True))
