"""Admin API versions: which one a request speaks, and what differs between them.

Like restate-server, the admin API answers both unversioned paths (``/deployments``) and
paths under a version prefix (``/v2/deployments``, ``/v3/deployments``). The ``restate``
CLI reads ``GET /version`` and then uses the highest prefix both sides support.

The one behaviour that differs is registering an endpoint whose URI is already
registered:

* v3 and unversioned: ``force`` defaults to false; an unchanged re-registration answers
  200 with the existing deployment, a forced one 200 with the re-discovered one;
* v2: ``force`` defaults to true; an unforced re-registration of a registered URI is a
  409 conflict, a forced one answers 201.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from aiohttp import web

__all__ = [
    "MAX_ADMIN_API_VERSION",
    "MIN_ADMIN_API_VERSION",
    "VERSION_PREFIXES",
    "AdminApiVersion",
    "api_version",
]


class AdminApiVersion(IntEnum):
    """The admin API version of a request; ``UNKNOWN`` for unversioned paths (latest behaviour)."""

    UNKNOWN = 0
    V2 = 2
    V3 = 3

    @property
    def legacy_registration(self) -> bool:
        """True where ``force`` defaults to true and re-registering without it is a 409."""
        return self is AdminApiVersion.V2


MIN_ADMIN_API_VERSION: Final = AdminApiVersion.V2
MAX_ADMIN_API_VERSION: Final = AdminApiVersion.V3

VERSION_PREFIXES: Final = {"": AdminApiVersion.UNKNOWN, "/v2": AdminApiVersion.V2, "/v3": AdminApiVersion.V3}
"""Path prefix of each served version."""


def api_version(request: web.Request) -> AdminApiVersion:
    """The admin API version the request's path speaks."""
    for prefix, version in VERSION_PREFIXES.items():
        if prefix and (request.path == prefix or request.path.startswith(prefix + "/")):
            return version
    return AdminApiVersion.UNKNOWN
