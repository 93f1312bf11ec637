"""Which queries get the caller columns filled (the others skip the callers' reads)."""

from __future__ import annotations

import pytest

from engine.query.callers import needs_callers


@pytest.mark.parametrize(("sql", "needed"), [
    ("SELECT * FROM sys_invocation", True),
    ("SELECT i.* FROM sys_invocation i", True),
    ("SELECT inv.invoked_by_target FROM sys_invocation inv", True),
    ("SELECT INVOKED_BY_ID FROM sys_invocation", True),
    ("SELECT count(*) FROM sys_invocation", False),
    ("SELECT id, status FROM sys_invocation WHERE target_service_name = 'X'", False),
])
def test_needs_callers(sql: str, needed: bool) -> None:
    assert needs_callers(sql) is needed
