"""Fixtures of the fuzz tests: one real engine for all of them, watched for crashes.

Budget: the normal suite runs a bounded, deterministic number of examples (derandomized
Hypothesis, no example database); ``make fuzz`` sets ``LOGSTRATE_FUZZ_SCALE`` (a
multiplier, e.g. 20) for the long run. Each test adds its counts (cases tried, failures
found) to :data:`COUNTS`, printed at the end of the session and written as JSON to
``LOGSTRATE_FUZZ_REPORT`` when set.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.fixtures.engine import EngineProcess
from tests.fixtures.hostile_endpoint import HostileEndpoint
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.service_endpoint import GREETER_APP, ServiceEndpoints
from tests.fuzz.frames import WAL_LIMIT_HANDLED as WAL_LIMIT_HANDLED

SCALE = max(1, int(os.environ.get("LOGSTRATE_FUZZ_SCALE", "1")))
"""Multiplies every example budget; 1 in the normal suite."""


def fuzz_settings(examples: int) -> settings:
    """Deterministic Hypothesis settings for ``examples`` x :data:`SCALE` examples."""
    return settings(
        max_examples=examples * SCALE,
        derandomize=SCALE == 1,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        # Failures are collected and counted, not shrunk one at a time.
        phases=[p for p in settings.default.phases if p.name != "shrink"],
    )


@dataclass
class TargetCounts:
    """What one fuzz target tried and found."""

    target: str
    tried: int = 0
    findings: list[str] = field(default_factory=list)

    def found(self, what: str) -> None:
        # The same defect tends to show many times: count cases, keep a few distinct texts.
        self.findings.append(what)

    def distinct(self) -> list[str]:
        return sorted(set(self.findings))


COUNTS: list[TargetCounts] = []


def counts(target: str) -> TargetCounts:
    entry = TargetCounts(target)
    COUNTS.append(entry)
    return entry


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not COUNTS:
        return
    terminalreporter.section("fuzz counts")
    for entry in COUNTS:
        terminalreporter.write_line(
            f"{entry.target}: {entry.tried} cases tried, {len(entry.findings)} failing "
            f"({len(entry.distinct())} distinct)"
        )
    report = os.environ.get("LOGSTRATE_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(
            [{"target": e.target, "tried": e.tried, "failing": len(e.findings), "distinct": e.distinct()[:50]}
             for e in COUNTS], indent=2,
        ))


def http_json(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    """One request; the status and the JSON answer (or the text when it is not JSON)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


EXPECTED_ERROR_EVENTS = frozenset({
    "invocation failed for good",
    "invocation paused after failures; resume it with PATCH /invocations/{id}/resume",
})
"""Error-level lines that are the designed outcome, not a defect: the retry policy (two
attempts, then kill) ended a hostile invocation, or its ErrorMessage asked for a pause."""


@dataclass
class FuzzEngine:
    """A running engine with the greeter and the hostile endpoint registered."""

    process: EngineProcess
    hostile: HostileEndpoint
    log_offset: int = 0

    def alive(self) -> bool:
        return self.process.proc is not None and self.process.proc.poll() is None

    def new_error_lines(self) -> list[str]:
        """Log lines at error level or above since the last call (the engine's own
        complaints: unexpected exceptions, crashed requests, failed partitions)."""
        text = self.process.output()
        fresh, self.log_offset = text[self.log_offset:], len(text)
        found = []
        for line in fresh.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                if "Traceback" in line:
                    found.append(line[:300])
                continue
            if not isinstance(record, dict):
                continue
            if record.get("event") in EXPECTED_ERROR_EVENTS:
                continue
            if isinstance(record, dict) and record.get("level") in ("error", "critical", "exception"):
                exception = str(record.get("exception") or "").strip().splitlines()
                last = f" ({exception[-1]})" if exception else ""
                found.append(f"{record.get('logger')}: {record.get('event')}{last}"[:400])
        return found

    def greet(self, name: str) -> str:
        """Call Greeter/greet through the ingress: the engine still serves other invocations."""
        status, body = http_json("POST", f"{self.process.ingress_url}/Greeter/greet", name, timeout=30)
        assert status == 200, (status, body)
        return str(body)


@pytest.fixture(scope="session")
def fuzz_engine(
    kafka: KafkaBroker, service_endpoints: ServiceEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzEngine]:
    data_dir = tmp_path_factory.mktemp("fuzz-engine") / "engine"
    process = EngineProcess(
        bootstrap_servers=kafka.bootstrap_servers,
        topic_prefix=f"t-fuzz-{uuid.uuid4().hex[:8]}",
        data_dir=data_dir,
        partitions=2,
    )
    hostile = HostileEndpoint()
    hostile.start()
    try:
        process.start_and_wait()
        process.wait_leading_all()
        greeter = service_endpoints.get(GREETER_APP)
        for uri in (greeter.url, hostile.url):
            status, body = http_json(
                "POST", f"{process.admin_url}/deployments", {"uri": uri, "use_http_11": True}, timeout=30
            )
            assert status == 201, (status, body)
        engine = FuzzEngine(process, hostile)
        engine.new_error_lines()
        yield engine
    finally:
        process.kill()
        hostile.stop()
