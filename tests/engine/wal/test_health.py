"""WalHealth: down on a failure, one probe per interval while down, up on a success (pure)."""

from __future__ import annotations

from engine.wal.health import WalHealth


def test_down_admits_one_probe_per_interval_and_a_success_brings_it_back() -> None:
    now = [100.0]
    health = WalHealth(clock=lambda: now[0], probe_interval_s=1.0)
    assert health.up and health.admit() and health.admit()
    health.failed("all brokers down")
    assert not health.up and health.reason == "all brokers down"
    assert not health.admit()  # known down: refused at once
    now[0] += 0.5
    assert not health.admit()
    assert health.down_for_s() == 0.5
    now[0] += 0.6
    assert health.admit()  # the probe of this interval
    assert not health.admit()
    health.failed("timed out")  # still the first reason: down since the first failure
    assert health.reason == "all brokers down"
    health.succeeded()
    assert health.up and health.admit() and health.down_for_s() == 0.0
