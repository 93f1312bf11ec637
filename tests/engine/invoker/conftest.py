"""Fixtures of the invoker tests: a real official-SDK endpoint serving the feature services."""

from __future__ import annotations

import pytest

from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints

FEATURES_APP = "tests.fixtures.official_sdk_features:app"


@pytest.fixture(scope="session")
def features_endpoint(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    """``tests.fixtures.official_sdk_features`` served by hypercorn (HTTP/1.1)."""
    return service_endpoints.get(FEATURES_APP)
