"""Fixtures of the invoker tests: a real official-SDK endpoint serving the feature services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.official_sdk_server import SdkEndpoint, run_sdk_endpoint


@pytest.fixture(scope="session")
def features_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdkEndpoint]:
    """``tests.fixtures.official_sdk_features`` served by hypercorn (HTTP/1.1)."""
    yield from run_sdk_endpoint("tests.fixtures.official_sdk_features", tmp_path_factory.mktemp("sdk"))
