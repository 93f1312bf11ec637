"""``?deployment=Keep|Latest|<deployment id>`` of ``resume`` and ``restart-as-new``: which
deployment an invocation continues on, resolved as restate-server 1.7 resolves it.

The admin API resolves the choice into a concrete deployment id *before* it writes the
WAL record (the state machine must not read the changing metadata), checking what
restate-server checks, with its status codes and messages:

* the text: ``Keep``/``keep``, ``Latest``/``latest`` or a deployment id (``dp_...``),
  else 400 "The query parameter 'deployment' is invalid";
* ``Latest`` is the deployment of the latest revision of the invocation's service, an
  id must name a registered deployment: 400 "The given deployment was not found" when
  there is none;
* the deployment must support the protocol version the invocation is pinned to (its
  journal was written in it): 400 naming both;
* logstrate adds one check restate-server does not make: the deployment must serve the
  invocation's service and handler (otherwise its next attempt could only fail), 400.

Which invocations may change deployment at all differs per operation and is checked by
the callers (:func:`resolve_for_resume`, and :mod:`engine.admin.restart`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from engine.admin.errors import AdminError
from engine.ids import DeploymentId, IdParseError, InvocationId
from engine.metadata.model import Deployment
from engine.metadata.view import MetadataView
from engine.storage.invocation_status import InvocationStatus, StatusKind

__all__ = ["DeploymentChoice", "parse_deployment_choice", "resolve_deployment", "resolve_for_resume"]

_CANNOT_CHANGE: Final = (
    "The invocation '{id}' is still running or the deployment id is not pinned yet, deployment id cannot be changed."
)
_NOT_FOUND: Final = "The given deployment was not found when trying to {operation} the invocation '{id}'."


@dataclass(frozen=True, slots=True)
class DeploymentChoice:
    """``Keep`` (neither flag nor id), ``Latest``, or one deployment id."""

    latest: bool = False
    deployment_id: DeploymentId | None = None

    @property
    def keep(self) -> bool:
        return not self.latest and self.deployment_id is None


KEEP: Final = DeploymentChoice()
LATEST: Final = DeploymentChoice(latest=True)


def parse_deployment_choice(text: str | None, default: DeploymentChoice = KEEP) -> DeploymentChoice:
    """The ``deployment`` query parameter (``default`` when absent); 400 if malformed."""
    if text is None:
        return default
    if text in ("Keep", "keep"):
        return KEEP
    if text in ("Latest", "latest"):
        return LATEST
    try:
        return DeploymentChoice(deployment_id=DeploymentId.parse(text))
    except IdParseError as exc:
        raise AdminError(
            400, f"The query parameter 'deployment' is invalid. Reason: bad format ({exc}); use Keep, Latest or a "
            "deployment id (dp_...)"
        ) from None


def resolve_deployment(
    choice: DeploymentChoice,
    view: MetadataView,
    invocation_id: InvocationId,
    status: InvocationStatus,
    operation: str,
) -> Deployment:
    """The deployment ``choice`` (``Latest`` or an id) names for ``status``, checked as
    the module docstring says. ``operation`` names the request in messages
    (``resume``, ``restart as new``)."""
    target = status.target
    deployment: Deployment | None
    if choice.latest:
        latest = view.find_service(target.service)
        deployment = None if latest is None else view.find_deployment(latest.deployment_id)
    else:
        assert choice.deployment_id is not None
        deployment = view.find_deployment(choice.deployment_id)
    if deployment is None:
        raise AdminError(400, _NOT_FOUND.format(operation=operation, id=invocation_id))
    pinned = status.protocol_version
    if pinned is not None and not deployment.min_protocol_version <= pinned <= deployment.max_protocol_version:
        raise AdminError(
            400,
            f"The invocation '{invocation_id}' is running on protocol version '{pinned}', while the chosen "
            f"deployment '{deployment.id}' supports the range "
            f"{deployment.min_protocol_version}..={deployment.max_protocol_version}.",
        )
    service = deployment.service(target.service)
    if service is None or service.handler(target.handler) is None:
        raise AdminError(
            400,
            f"The chosen deployment '{deployment.id}' does not serve {target.service}/{target.handler}, which the "
            f"invocation '{invocation_id}' runs.",
        )
    return deployment


def resolve_for_resume(
    choice: DeploymentChoice, view: MetadataView, invocation_id: InvocationId, status: InvocationStatus
) -> DeploymentId | None:
    """The deployment a resume moves the invocation to (``None``: stays where it is).

    Only a paused or suspended invocation with a pinned deployment can move (409
    otherwise); ``Latest`` of one that has no pinned deployment yet is no change (its
    first attempt picks the latest anyway), as on restate-server.
    """
    if choice.keep:
        return None
    if status.kind is StatusKind.INVOKED:
        raise AdminError(409, _CANNOT_CHANGE.format(id=invocation_id))
    if status.deployment_id is None:
        if choice.latest:
            return None
        raise AdminError(409, _CANNOT_CHANGE.format(id=invocation_id))
    return resolve_deployment(choice, view, invocation_id, status, "resume").id
