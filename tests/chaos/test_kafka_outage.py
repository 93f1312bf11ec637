"""Kafka down under load: the broker is SIGKILLed for a while, then restarted.

The test owns everything it breaks: its own single-node broker (``compose/kafka_local.py``
on free ports; the session's shared broker is never touched), an engine process, the
official-SDK endpoint ``Counting/count_to`` (``tests/fixtures/counting_steps.py``: a few
``ctx.run`` steps, each POSTing to an external HTTP counter this test runs) and a load
of calls and sends, each with its own idempotency key. The broker is killed for
``LOGSTRATE_OUTAGE_S`` seconds (10 in the suite, 60 in ``make chaos-kafka-outage``) while
the load goes on, then started again on the same ports and files.

Asserted:

* every acknowledged invocation completes: every 200 is the handler's result, every
  202 (send) reaches the handler's end at the counter; a 503 whose outcome is unknown
  (``x-logstrate-accepted: unknown``) is retried with its idempotency key after the
  outage and must then be answered;
* no journaled side effect runs twice: a step whose result was journaled is never run
  again, which the counter sees as order — once step k+1 of an invocation ran, step k
  never runs again. (A step that ran but whose result never reached the WAL is run again
  by the retry; those re-runs are counted and reported, they are at-least-once by design.)
* while Kafka is down the ingress answers 503 within the bound (``ingress_kafka_timeout_s``,
  5 s by default) plus a small margin, with ``Retry-After``;
* the engine's RSS returns close to its level before the outage.

The figures are printed (``-s``) as one line starting with ``kafka-outage:``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compose.kafka_local import LocalKafka
from engine.ids import InvocationUuid
from engine.wal.partitioning import invocation_id_for
from tests.chaos.counter_server import CounterServer
from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import unique_prefix
from tests.fixtures.ports import free_port, wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints

COUNTING_APP = "tests.fixtures.counting_steps:app"
OUTAGE_S = float(os.environ.get("LOGSTRATE_OUTAGE_S", "10"))
BOUND_S = 5.0  # the default ingress_kafka_timeout_s
MARGIN_S = 1.0
STEPS = 3
WORKERS = 6
CLIENT_TIMEOUT_S = OUTAGE_S + 120


@dataclass
class Outcome:
    kind: str  # "call" | "send"
    key: str
    started: float
    elapsed: float
    status: int
    body: Any
    headers: dict[str, str]


def _post(url: str, body: Any, key: str) -> tuple[int, Any, dict[str, str]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", "idempotency-key": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT_S) as resp:
            payload, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        payload, status, headers = err.read(), err.code, dict(err.headers)
    try:
        decoded: Any = json.loads(payload) if payload else None
    except ValueError:
        decoded = payload.decode(errors="replace")
    return status, decoded, {k.lower(): v for k, v in headers.items()}


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class Load:
    """Worker threads sending calls and sends until stopped."""

    def __init__(self, ingress_url: str, counter_url: str) -> None:
        self._ingress = ingress_url
        self._counter = counter_url
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self.outcomes: list[Outcome] = []
        # Half the workers call (and wait for the result: during the outage they wait for
        # it), half send (answered once the Invoke is durable, or 503 at once).
        self._threads = [
            threading.Thread(target=self._work, args=("send" if i % 2 else "call",), daemon=True)
            for i in range(WORKERS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_S + 10)

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def _work(self, kind: str) -> None:
        while not self._stop.is_set():
            with self._lock:
                n = self._next
                self._next += 1
            self.outcomes_append(self.request(kind, f"load-{n}"))

    def outcomes_append(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def request(self, kind: str, key: str) -> Outcome:
        url = f"{self._ingress}/Counting/count_to" + ("/send" if kind == "send" else "")
        started = time.monotonic()
        status, body, headers = _post(url, {"url": self._counter, "steps": STEPS}, key)
        return Outcome(kind, key, started, time.monotonic() - started, status, body, headers)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test alone, on free ports (killed and restarted by the test)."""
    broker = LocalKafka(workdir=tmp_path / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


def test_kafka_outage_under_load(
    own_broker: LocalKafka, service_endpoints: ServiceEndpoints, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    engine = EngineProcess(
        bootstrap_servers=own_broker.bootstrap_servers, topic_prefix=unique_prefix(request),
        data_dir=tmp_path / "engine-data", partitions=4,
    )
    try:
        engine.start_and_wait(120)
        engine.wait_leading_all()
        register(engine, service_endpoints.get(COUNTING_APP))
        assert engine.proc is not None
        pid = engine.proc.pid
        figures = _run_outage(engine, own_broker, pid)
    finally:
        engine.kill()
    print("kafka-outage: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def _run_outage(engine: EngineProcess, broker: LocalKafka, pid: int) -> dict[str, Any]:
    with CounterServer() as counter, Load(engine.ingress_url, counter.url) as load:
        wait_until(lambda: load.count() >= 60, 60, "60 answered requests before the outage")
        rss_before = _rss_kib(pid)
        killed_at = time.monotonic()
        broker.kill()
        rss_samples = [rss_before]

        def outage_over() -> bool:
            # The broker stays down for OUTAGE_S while the load goes on; meanwhile the
            # engine must stay up, and its RSS is sampled.
            assert engine.proc is not None and engine.proc.poll() is None, engine.output()[-5000:]
            rss_samples.append(_rss_kib(pid))
            return time.monotonic() - killed_at >= OUTAGE_S

        wait_until(outage_over, OUTAGE_S + 30, f"the {OUTAGE_S:g}s outage", interval=0.2)
        rss_during = max(rss_samples)
        restarted_at = time.monotonic()
        broker.start()
        after_restart = load.count()
        wait_until(lambda: load.count() >= after_restart + 60, 120, "60 answered requests after the restart")
        load.stop()
        assert engine.proc is not None and engine.proc.poll() is None, engine.output()[-5000:]

        outcomes = list(load.outcomes)
        unknown = [o for o in outcomes if o.status == 503 and o.headers.get("x-logstrate-accepted") == "unknown"]
        # After the outage the client does what the 503 says: retry with the idempotency key.
        retried = [load.request(o.kind, o.key) for o in unknown]
        for o in retried:
            assert o.status in (200, 202), (o.status, o.body)

        final = [o for o in outcomes if o not in unknown] + retried
        acked_calls = [o for o in final if o.kind == "call" and o.status == 200]
        acked_sends = [o for o in final if o.kind == "send" and o.status == 202]
        refused = [o for o in outcomes if o.status == 503]
        others = [o for o in final if o.status not in (200, 202, 503)]
        assert not others, [(o.status, o.body) for o in others[:5]]
        for o in acked_calls:
            assert isinstance(o.body, int) and o.body >= STEPS, o.body  # the counter's distinct keys then
        # Every 503 came within the bound; those of requests started while Kafka was down
        # (the probe's and the late acknowledgement's included).
        during = [o for o in refused if killed_at <= o.started <= restarted_at]
        assert during, "no request was answered 503 while Kafka was down"
        max_503_s = max(o.elapsed for o in refused)
        assert max_503_s <= BOUND_S + MARGIN_S, sorted(o.elapsed for o in refused)[-5:]
        assert all(o.headers.get("retry-after") for o in refused)

        send_ids = {str(o.body["invocationId"]) for o in acked_sends}
        # "Not accepted" means it: none of those invocations ran a step.
        not_accepted = {_invocation_id(o.key) for o in refused if o.headers.get("x-logstrate-accepted") == "false"}

        def sends_finished() -> bool:
            with counter._lock:
                finished = {str(f["key"]) for f in counter.finished}
            return send_ids <= finished

        wait_until(sends_finished, 180, "every acknowledged send to reach the handler's end")
        with counter._lock:
            order = list(counter.order)
            hits = dict(counter.hits)
        journaled_reruns = _journaled_reruns(order)
        assert journaled_reruns == [], journaled_reruns[:10]
        ran = {key.rpartition(":")[0] for key in order}
        assert not (ran & not_accepted), sorted(ran & not_accepted)[:5]
        reruns = sum(h - 1 for h in hits.values())

        def settled() -> bool:
            return _rss_kib(pid) <= rss_before * 1.3 + 30 * 1024

        rss_after_ok = True
        try:
            wait_until(settled, 60, "the engine's RSS to return near its level before the outage", interval=1)
        except AssertionError:
            rss_after_ok = False
        rss_after = _rss_kib(pid)
        figures = {
            "outage_s": OUTAGE_S,
            "requests": len(outcomes),
            "acked": len(acked_calls) + len(acked_sends),
            "acked_after_retry": sum(1 for o in retried if o.status in (200, 202)),
            "503": len(refused),
            "503_unknown": len(unknown),
            "503_while_down": len(during),
            "503_not_accepted": len(not_accepted),
            "max_time_to_503_s": round(max_503_s, 2),
            "lost": len(send_ids - {str(f["key"]) for f in counter.finished}),
            "journaled_duplicates": len(journaled_reruns),
            "unjournaled_reruns": reruns,
            "rss_before_mib": round(rss_before / 1024, 1),
            "rss_during_max_mib": round(rss_during / 1024, 1),
            "rss_after_mib": round(rss_after / 1024, 1),
        }
        assert rss_after_ok, figures
        return figures


def _invocation_id(idempotency_key: str) -> str:
    uuid = InvocationUuid.for_idempotent_request("Counting", None, "count_to", idempotency_key)
    return str(invocation_id_for("Counting", None, uuid))


def _journaled_reruns(order: list[str]) -> list[str]:
    """Keys ``<invocation>:<step>`` hit again after a later step of the same invocation ran:
    the later step ran on a journal holding this one's result, so this re-run was of a
    journaled side effect."""
    highest: dict[str, int] = {}
    bad: list[str] = []
    for key in order:
        invocation, _, step_text = key.rpartition(":")
        step = int(step_text)
        if step < highest.get(invocation, -1):
            bad.append(key)
        highest[invocation] = max(highest.get(invocation, -1), step)
    return bad
