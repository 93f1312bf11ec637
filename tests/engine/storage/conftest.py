"""A real LMDB environment per test, with every partition table opened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.storage.environment import StorageEnvironment
from engine.storage.tables import TableHandles


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[tuple[StorageEnvironment, TableHandles]]:
    """An opened environment in ``tmp_path`` and its table handles."""
    env = StorageEnvironment(tmp_path / "data", map_size_mb=64)
    try:
        yield env, TableHandles.open(env.env)
    finally:
        env.close()
