"""What can go wrong with cluster metadata, as exception types the admin API maps to statuses.

Every error carries a message that says what to do, and ``restate_code`` when Restate has
an error code for the same situation (the admin API returns it as ``restate_code``).
"""

from __future__ import annotations

from engine.errors import EngineError

__all__ = [
    "BadDiscoveryResponse",
    "DeploymentNotFound",
    "DiscoveryError",
    "DiscoveryTimeout",
    "EndpointUnreachable",
    "HandlerNotFound",
    "IncompatibleEndpoint",
    "InvalidManifest",
    "InvalidRequest",
    "MetadataError",
    "MetadataUnavailable",
    "NotFoundError",
    "RegistrationConflict",
    "ServiceNotFound",
]


class MetadataError(EngineError):
    """Root of the metadata errors."""

    restate_code: str | None = None

    def __init__(self, message: str, *, restate_code: str | None = None) -> None:
        super().__init__(message)
        if restate_code is not None:
            self.restate_code = restate_code


class NotFoundError(MetadataError):
    """A deployment, service or handler is not registered."""


class DeploymentNotFound(NotFoundError):
    def __init__(self, deployment_id: object) -> None:
        super().__init__(f"The requested deployment '{deployment_id}' does not exist")


class ServiceNotFound(NotFoundError):
    def __init__(self, service: str) -> None:
        super().__init__(f"The requested service '{service}' does not exist")
        self.service = service


class HandlerNotFound(NotFoundError):
    def __init__(self, service: str, handler: str) -> None:
        super().__init__(f"The requested handler '{handler}' on service '{service}' does not exist")
        self.service = service
        self.handler = handler


class RegistrationConflict(MetadataError):
    """A registration would break an existing service revision (type change, removed handlers)."""

    restate_code = "META0006"


class InvalidRequest(MetadataError):
    """A request names something invalid (a relative URI, workflow retention on a plain service)."""


class MetadataUnavailable(MetadataError):
    """The metadata topic cannot be written or read right now; the change was not applied."""


class DiscoveryError(MetadataError):
    """Discovery of a service endpoint failed; nothing was registered."""


class EndpointUnreachable(DiscoveryError):
    """No HTTP answer from the endpoint (connection refused, DNS, TLS, reset)."""

    restate_code = "META0003"


class DiscoveryTimeout(DiscoveryError):
    """The endpoint did not answer the discovery request in time."""

    restate_code = "META0003"


class BadDiscoveryResponse(DiscoveryError):
    """The endpoint answered, but not with a manifest (error status, wrong content type, not JSON)."""

    restate_code = "META0003"


class InvalidManifest(DiscoveryError):
    """The manifest breaks the endpoint manifest schema or its rules (names, handler types)."""


class IncompatibleEndpoint(DiscoveryError):
    """A valid manifest this engine cannot serve (protocol versions, protocol mode)."""
