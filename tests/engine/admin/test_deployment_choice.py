"""``?deployment=`` of resume and restart-as-new: parsing and resolution (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.admin.deployment_choice import (
    KEEP,
    LATEST,
    DeploymentChoice,
    parse_deployment_choice,
    resolve_for_resume,
)
from engine.admin.errors import AdminError
from engine.ids import DeploymentId, InvocationId
from engine.metadata.model import (
    Deployment,
    HandlerMetadata,
    ProtocolType,
    ServiceDefinition,
    ServiceMetadata,
    ServiceType,
)
from engine.metadata.view import MetadataView
from engine.storage.invocation_status import InvocationStatus, StatusKind
from engine.wal import records as r

IID = InvocationId.parse("inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz")
TARGET = r.InvocationTarget("Greeter", "greet", None, r.ServiceKind.SERVICE)


def _deployment(revision: int, services: tuple[str, ...] = ("Greeter",), versions: tuple[int, int] = (5, 7)) -> Deployment:
    dp = DeploymentId.generate()
    return Deployment(
        id=dp, uri=f"http://svc-{revision}:9080", protocol_type=ProtocolType.REQUEST_RESPONSE,
        min_protocol_version=versions[0], max_protocol_version=versions[1],
        created_at=datetime(2026, 5, 1, tzinfo=UTC),
        services=tuple(
            ServiceMetadata(ServiceDefinition(name, ServiceType.SERVICE, (HandlerMetadata("greet", None),)), revision, dp)
            for name in services
        ),
    )


V1, V2 = _deployment(1), _deployment(2)
OTHER = _deployment(1, services=("Other",))
OLD_PROTOCOL = _deployment(1, versions=(1, 4))
VIEW = MetadataView({d.id: d for d in (V1, V2, OTHER, OLD_PROTOCOL)})


def _status(kind: StatusKind, pinned: DeploymentId | None = V1.id) -> InvocationStatus:
    return InvocationStatus(
        kind=kind, target=TARGET, argument=b"", deployment_id=pinned, protocol_version=6 if pinned else None
    )


def test_parsing_follows_restate_spellings() -> None:
    assert parse_deployment_choice(None) == KEEP
    assert parse_deployment_choice(None, default=LATEST) == LATEST
    assert parse_deployment_choice("Keep") == parse_deployment_choice("keep") == KEEP
    assert parse_deployment_choice("Latest") == parse_deployment_choice("latest") == LATEST
    assert parse_deployment_choice(str(V2.id)) == DeploymentChoice(deployment_id=V2.id)
    for bad in ("KEEP", "newest", "dp_"):
        with pytest.raises(AdminError) as info:
            parse_deployment_choice(bad)
        assert info.value.status == 400
        assert info.value.message.startswith("The query parameter 'deployment' is invalid. Reason: bad format")


@pytest.mark.parametrize("kind", [StatusKind.PAUSED, StatusKind.SUSPENDED])
def test_a_paused_or_suspended_invocation_moves_to_latest_or_a_given_deployment(kind: StatusKind) -> None:
    status = _status(kind)
    assert resolve_for_resume(KEEP, VIEW, IID, status) is None
    assert resolve_for_resume(LATEST, VIEW, IID, status) == V2.id
    assert resolve_for_resume(DeploymentChoice(deployment_id=V1.id), VIEW, IID, status) == V1.id


def _refusal(choice: DeploymentChoice, status: InvocationStatus) -> tuple[int, str]:
    with pytest.raises(AdminError) as info:
        resolve_for_resume(choice, VIEW, IID, status)
    return info.value.status, info.value.message


def test_what_cannot_move() -> None:
    cannot = f"The invocation '{IID}' is still running or the deployment id is not pinned yet, deployment id cannot be changed."
    # Running (or backing off): 409, unless the deployment is kept.
    assert _refusal(LATEST, _status(StatusKind.INVOKED)) == (409, cannot)
    assert resolve_for_resume(KEEP, VIEW, IID, _status(StatusKind.INVOKED)) is None
    # Nothing pinned yet: Latest is no change, a given deployment is a 409.
    assert resolve_for_resume(LATEST, VIEW, IID, _status(StatusKind.PAUSED, pinned=None)) is None
    assert _refusal(DeploymentChoice(deployment_id=V2.id), _status(StatusKind.PAUSED, pinned=None)) == (409, cannot)
    # Unknown deployment, one without the protocol version the journal was written in,
    # one that does not serve the invocation's handler: 400.
    unknown = DeploymentId.generate()
    assert _refusal(DeploymentChoice(deployment_id=unknown), _status(StatusKind.PAUSED)) == (
        400, f"The given deployment was not found when trying to resume the invocation '{IID}'.",
    )
    assert _refusal(DeploymentChoice(deployment_id=OLD_PROTOCOL.id), _status(StatusKind.PAUSED)) == (
        400,
        f"The invocation '{IID}' is running on protocol version '6', while the chosen deployment "
        f"'{OLD_PROTOCOL.id}' supports the range 1..=4.",
    )
    code, message = _refusal(DeploymentChoice(deployment_id=OTHER.id), _status(StatusKind.PAUSED))
    assert code == 400 and "does not serve Greeter/greet" in message
