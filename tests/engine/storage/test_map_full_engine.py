"""An engine whose LMDB map reaches its configured maximum halts the partitions that
write, stays up for the admin API, and goes on after a restart with a larger maximum.

A real engine process with a 16 MiB map allowed to grow to 32 MiB, filled with
400 KB state values (official-SDK ``Store``). On the code before growth existed the
apply raised ``MapFullError`` and the process exited, and exited again on restart.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable

from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http

APP = "tests.fixtures.official_sdk_store:app"
VALUE = "x" * 400_000
SENDS = 100  # 40 MB of state, and as much again in the status rows' arguments


def _metrics(engine: EngineProcess) -> str:
    with urllib.request.urlopen(f"{engine.admin_url}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def _gauge(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, name
    return float(found.group(1))


def test_map_full_halts_without_a_crash_and_a_larger_max_goes_on(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints
) -> None:
    small = {"LOGSTRATE_LMDB_MAP_SIZE_MB": "16", "LOGSTRATE_LMDB_MAX_MAP_SIZE_MB": "32"}
    engine = engine_factory(partitions=2, env=small)
    engine.start_and_wait()
    engine.wait_leading_all()
    url = service_endpoints.get(APP, "map-full").url
    assert http("POST", f"{engine.admin_url}/deployments", {"uri": url, "use_http_11": True, "force": True})[0] in (
        200, 201)
    sent = []
    for n in range(SENDS):
        status, body = http("POST", f"{engine.ingress_url}/Store/k{n}/put/send", VALUE)
        assert status == 202, body
        sent.append(body["invocationId"])

    def halted() -> set[str]:
        return set(re.findall(r'logstrate_partition_halted\{partition="(\d+)",reason="storage_full"\} 1\.0',
                              _metrics(engine)))

    wait_until(halted, 120, "a partition to halt on the full map")
    metrics = _metrics(engine)
    assert _gauge(metrics, "logstrate_lmdb_map_size_bytes") == 32 * 1024 * 1024
    assert 0 < _gauge(metrics, "logstrate_lmdb_map_used_bytes") <= 32 * 1024 * 1024
    assert _gauge(metrics, "logstrate_lmdb_map_growths_total") >= 1
    assert "lmdb_max_map_size_mb" in engine.output()
    # Still up: the admin API answers, nothing restarted.
    assert http("GET", f"{engine.admin_url}/health")[0] == 200
    assert engine.proc is not None and engine.proc.poll() is None
    assert engine.terminate() == 0

    bigger = EngineProcess(
        bootstrap_servers=engine.bootstrap_servers, topic_prefix=engine.topic_prefix, data_dir=engine.data_dir,
        partitions=2, env={"LOGSTRATE_LMDB_MAP_SIZE_MB": "16", "LOGSTRATE_LMDB_MAX_MAP_SIZE_MB": "1024"},
    )
    try:
        bigger.start_and_wait()
        bigger.wait_leading_all()

        def all_done() -> bool:
            for iid in sent[-5:]:
                status, body = http("GET", f"{bigger.admin_url}/invocations/{iid}?journal=false")
                if status != 200 or body["status"] != "completed":
                    return False
            return True

        wait_until(all_done, 120, "every send to complete")
        assert http("POST", f"{bigger.ingress_url}/Store/k{SENDS - 1}/size") == (200, len(VALUE))
        assert "logstrate_partition_halted{" not in _metrics(bigger).replace("# HELP logstrate_partition_halted", "")
    finally:
        bigger.kill()
