"""A fresh partition (real LMDB files in tmp_path) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.partition.harness import Partition


@pytest.fixture
def part(tmp_path: Path) -> Iterator[Partition]:
    """Partition 0 of 1, empty."""
    p = Partition(tmp_path / "data")
    try:
        yield p
    finally:
        p.close()
