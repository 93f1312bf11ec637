"""Which partitions a query reads: constraints read off DataFusion's optimized plan (pure)."""

from __future__ import annotations

from engine.ids import InvocationId, InvocationUuid
from engine.query.engine import plan
from engine.wal.partitioning import partition_for, partition_key_for_key

P = 24


def test_an_id_lookup_reads_one_partition() -> None:
    inv = InvocationId(partition_key_for_key("S", "k"), InvocationUuid.generate())
    scans = {s.table: s for s in plan(f"SELECT * FROM sys_invocation WHERE id = '{inv}'")}
    assert scans["sys_invocation"].partitions(P) == [partition_for(inv.partition_key, P)]
    joined = plan("SELECT inv.id FROM sys_invocation inv LEFT JOIN sys_deployment dp ON dp.id = inv.pinned_deployment_id "
                  f"WHERE inv.id IN ('{inv}', 'inv_bad', 'x', 'y', 'z')")
    assert [s.partitions(P) for s in joined] == [[partition_for(inv.partition_key, P)]]
    journal = plan(f"SELECT index FROM sys_journal sj WHERE sj.id = '{inv}' ORDER BY index DESC LIMIT 10")
    assert [s.partitions(P) for s in journal] == [[partition_for(inv.partition_key, P)]]


def test_an_object_key_reads_its_partition_and_a_service_name_all() -> None:
    [state] = plan("SELECT * FROM state WHERE service_name = 'C' AND service_key = 'alice'")
    assert state.partitions(P) == [partition_for(partition_key_for_key("C", "alice"), P)]
    [by_service] = plan("SELECT * FROM state WHERE service_name = 'C'")
    assert by_service.partitions(P) == list(range(P)) and by_service.constraints.strings("service_name") == {"C"}


def test_scans_without_a_usable_constraint_read_everything() -> None:
    [scan] = plan("SELECT * FROM sys_invocation WHERE id LIKE 'inv_1%' OR target_service_name = 'x'")
    assert scan.partitions(P) == list(range(P)) and not scan.constraints.values
    # Two scans of one table are read once, with what both allow.
    [both] = plan("SELECT a.id FROM sys_journal a JOIN sys_journal b ON a.id = b.id WHERE a.partition_key = 1")
    assert both.partitions(P) == list(range(P))
