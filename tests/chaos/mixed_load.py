"""Mixed load against engine processes that are being killed, and the check of its outcome.

:class:`MixedLoad` runs client threads that submit, round-robin, the five kinds of
invocation of ``tests/fixtures/chaos_services.py`` through the ingresses it is given:

* ``call``   ``POST /Effects/apply`` (request/response: the answer is the result)
* ``send``   ``POST /Effects/apply/send`` (one-way: 202 and the invocation id)
* ``timer``  ``POST /Effects/sleep_then_apply/send`` (concurrent durable sleeps first)
* ``object`` ``POST /Ledger/acct-<n>/add`` (object state, one writer per key)
* ``chain``  ``POST /Chain/fan`` (a service call and a one-way send inside the handler)

and a publisher thread that appends events to a Kafka topic a subscription feeds to
``Ledger/event`` (object key = record key ``feed-<n>``).

Every request carries an idempotency key (the side effect's key), so a client whose
engine dies under it sends the same request to the other engine (or to the same one
once it is back) until it is acknowledged (200 or 202): a retry is the same invocation,
never a second one. :meth:`MixedLoad.verify` then checks the log's outcome:

* **lost**: an acknowledged invocation that is not ``completed`` in the log (or whose
  answer differs from the log's result), an acknowledged object add or a published event
  missing from the object's state, or listed there more than once;
* **duplicates**: a side effect the counter saw more often than the count its journaled
  run recorded (the step ran again after its result was durable);
* **retried before journaling**: a step the counter saw again *before* its result was
  journaled (the process died between the effect and its journal entry); the provider's
  idempotency key makes it count once, which is the contract of ``ctx.run``.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from confluent_kafka import Producer

from engine.ids import InvocationUuid
from engine.wal.partitioning import invocation_id_for
from tests.chaos.counter_server import CounterServer
from tests.engine.test_invocations import call
from tests.fixtures.ports import wait_until
from tests.fixtures.systems import http

CHAOS_APP = "tests.fixtures.chaos_services:app"
KINDS = ("call", "send", "timer", "object", "chain")
OBJECTS = 4


def say(message: str) -> None:
    """Progress of a long run (shown with ``pytest -s``, as ``make chaos`` runs it)."""
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Op:
    """One invocation the load submitted; ``key`` is its idempotency and side-effect key."""

    index: int
    kind: str
    key: str
    service: str
    object_key: str | None
    handler: str
    path: str
    body: dict[str, Any]
    acked: bool = False
    answer: int | None = None  # the result a request/response call answered with

    @property
    def one_way(self) -> bool:
        return self.path.endswith("/send")

    @property
    def invocation_id(self) -> str:
        uuid = InvocationUuid.for_idempotent_request(self.service, self.object_key, self.handler, self.key)
        return str(invocation_id_for(self.service, self.object_key, uuid))


def make_op(index: int, url: str, tag: str) -> Op:
    kind = KINDS[index % len(KINDS)]
    key = f"{tag}{kind}-{index}"
    body: dict[str, Any] = {"url": url, "key": key}
    if kind == "call":
        return Op(index, kind, key, "Effects", None, "apply", "/Effects/apply", body)
    if kind == "send":
        return Op(index, kind, key, "Effects", None, "apply", "/Effects/apply/send", body)
    if kind == "timer":
        body["sleeps_ms"] = [50 + 70 * ((index + j) % 6) for j in range(3)]
        return Op(index, kind, key, "Effects", None, "sleep_then_apply", "/Effects/sleep_then_apply/send", body)
    if kind == "object":
        account = f"acct-{index % OBJECTS}"
        return Op(index, kind, key, "Ledger", account, "add", f"/Ledger/{account}/add", body)
    return Op(index, kind, key, "Chain", None, "fan", "/Chain/fan", body)


def probe_op(n: int, url: str) -> Op:
    """A request/response call with its own key: does this ingress serve invocations now?"""
    key = f"probe-{n}"
    return Op(-1, "probe", key, "Effects", None, "apply", "/Effects/apply", {"url": url, "key": key})


@dataclass
class Report:
    """The figures of one run."""

    requests: int = 0  # submitted by the clients (calls, sends, ... and probes)
    acked: int = 0  # of those, acknowledged (200 with the result, or 202)
    children: int = 0  # calls and sends made by handlers (Chain/fan)
    events: int = 0  # published to the subscription's topic (acknowledged by Kafka)
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    retried_before_journal: int = 0
    effects: int = 0
    unacked: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "invocations": self.requests + self.children + self.events, "requests": self.requests,
            "acked": self.acked, "children": self.children, "events": self.events,
            "side_effects": self.effects, "lost": len(self.lost), "duplicates": len(self.duplicates),
            "retried_before_journal": self.retried_before_journal, "unacked": self.unacked,
        }


class MixedLoad:
    """Client threads plus an event publisher; :meth:`start`, :meth:`stop`, :meth:`verify`."""

    def __init__(self, ingress_urls: Sequence[str], admin_urls: Sequence[str], counter: CounterServer,
                 bootstrap_servers: str | None = None, events_topic: str | None = None,
                 clients: int = 4, ops_per_second: float = 20.0, events_per_second: float = 4.0) -> None:
        self.ingress_urls = list(ingress_urls)
        self.admin_urls = list(admin_urls)
        self.counter = counter
        self.bootstrap_servers = bootstrap_servers
        self.events_topic = events_topic
        self.clients = clients
        self.interval = clients / ops_per_second
        self.event_interval = 1.0 / events_per_second
        self.ops: list[Op] = []
        self.events: dict[str, list[str]] = {}  # object key -> event keys, in publish order
        self.unacked: list[Op] = []
        self.slowest: tuple[float, str, int] = (0.0, "", 0)  # the longest single request: (s, key, status)
        self._lock = threading.Lock()
        self._indexes = itertools.count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    # -- running ---------------------------------------------------------------------

    def start(self) -> None:
        for n in range(self.clients):
            self._threads.append(threading.Thread(target=self._guard(self._client), name=f"client-{n}", daemon=True))
        if self.events_topic is not None:
            self._threads.append(threading.Thread(target=self._guard(self._publisher), name="events", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 300.0) -> None:
        """Stop submitting; wait until every submitted request is acknowledged (or given up)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "load threads did not finish"
        assert not self.errors, f"load threads failed: {self.errors!r}"

    def acked(self) -> int:
        with self._lock:
            return sum(1 for op in self.ops if op.acked)

    def submit(self, op: Op, deadline_s: float = 300.0, via: int | None = None) -> Op:
        """Send ``op`` until acknowledged, moving to the next ingress after each failure."""
        start = op.index if via is None else via
        deadline = time.monotonic() + deadline_s
        for attempt in itertools.count():
            if time.monotonic() > deadline:
                with self._lock:
                    self.unacked.append(op)
                return op
            url = self.ingress_urls[(start + attempt) % len(self.ingress_urls)]
            sent = time.monotonic()
            try:
                status, body, _ = call(f"{url}{op.path}", op.body, timeout=120, headers={"idempotency-key": op.key})
            except OSError:
                status, body = 0, None
            took = time.monotonic() - sent
            with self._lock:
                self.slowest = max(self.slowest, (round(took, 1), op.key, status))
            if status == 202 and op.one_way:
                op.acked = True
                return op
            if status == 200 and not op.one_way:
                op.answer, op.acked = int(body), True
                return op
            if 400 <= status < 500 and status not in (404, 408, 409, 429):
                raise AssertionError(f"{op.path} refused: {status} {body}")
            # A dead process (connection refused/reset), or 5xx while partitions move: retry.
            time.sleep(min(0.05 * (attempt + 1), 1.0))  # a client's back-off, not a wait for a condition
        raise AssertionError("unreachable")

    def track(self, op: Op) -> Op:
        with self._lock:
            self.ops.append(op)
        return op

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                self.errors.append(exc)
        return run

    def _client(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.submit(self.track(make_op(next(self._indexes), self.counter.url, "")))
            # Pace the load (a rate, not a wait for a condition): the machine has two cores.
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def _publisher(self) -> None:
        assert self.bootstrap_servers is not None and self.events_topic is not None
        producer = Producer({"bootstrap.servers": self.bootstrap_servers, "enable.idempotence": True,
                             "linger.ms": 5, "message.timeout.ms": 120_000})
        failed: list[str] = []
        for n in itertools.count():
            if self._stop.is_set():
                break
            obj = f"feed-{n % OBJECTS}"
            key = f"ev-{n}"
            value = json.dumps({"url": self.counter.url, "key": key}).encode()
            producer.produce(self.events_topic, key=obj.encode(), value=value,
                             on_delivery=lambda err, _m: failed.append(str(err)) if err else None)
            if producer.flush(120) != 0 or failed:
                raise AssertionError(f"event {key} not delivered: {failed}")
            self.events.setdefault(obj, []).append(key)  # published (acknowledged by Kafka)
            self._stop.wait(self.event_interval)

    # -- checking --------------------------------------------------------------------

    def verify(self, timeout: float = 300.0) -> Report:
        """Wait until the log shows every acknowledged invocation completed and every event
        applied, then count what was lost and what ran twice (module docstring)."""
        report = Report(events=sum(map(len, self.events.values())), unacked=len(self.unacked))
        acked = [op for op in self.ops if op.acked]
        report.acked = len(acked)
        children = [child for op in acked if op.kind == "chain" for child in chain_children(op)]
        journaled: dict[str, int] = {}
        with ThreadPoolExecutor(8) as pool:
            for op, shown in zip(acked + children, pool.map(lambda o: self._completed(o, timeout), acked + children)):
                if shown is None:
                    report.lost.append(f"{op.kind} {op.key} ({op.invocation_id}) not completed")
                    continue
                if op.kind != "object":  # an object add's count is checked in the state below
                    journaled[op.key] = shown
                if op.answer is not None and op.answer != shown:
                    report.lost.append(f"{op.kind} {op.key}: answered {op.answer}, the log says {shown}")
        report.requests, report.children = len(self.ops), len(children)
        wanted_adds: dict[str, list[str]] = {}
        for op in acked:
            if op.kind == "object":
                assert op.object_key is not None
                wanted_adds.setdefault(op.object_key, []).append(op.key)
        for obj, keys in wanted_adds.items():
            self._check_state(report, journaled, obj, "adds", keys, ordered=False, timeout=timeout)
        for obj, keys in self.events.items():
            self._check_state(report, journaled, obj, "events", keys, ordered=True, timeout=timeout)
        for key, count in journaled.items():
            hits = self.counter.hits[key]
            if hits > count:
                sent = "; ".join(f"#{n} by {who} at {when:.3f}" for n, (who, when) in
                                 enumerate(self.counter.sent_by.get(key, []), start=1))
                report.duplicates.append(f"{key}: journaled run saw count {count}, the counter ended at {hits} "
                                         f"(attempt pid:tag:start, sent at: {sent})")
            report.retried_before_journal += max(0, count - 1)
        report.effects = len(journaled)
        stray = set(self.counter.hits) - set(journaled) - {op.key for op in self.unacked}
        for key in sorted(stray):
            report.lost.append(f"side effect {key} ran but no acknowledged invocation or event journaled it")
        return report

    def _completed(self, op: Op, timeout: float) -> int | None:
        """The journaled result of ``op`` once the log shows it completed (None at the deadline)."""
        found: list[int] = []

        def completed() -> bool:
            for admin in self.admin_urls:
                try:
                    status, body = http("GET", f"{admin}/invocations/{op.invocation_id}", timeout=20)
                except OSError:
                    continue
                if status == 200 and body.get("status") == "completed":
                    found.append(int(body["completion_value"]["utf8"]))
                    return True
            return False

        try:
            wait_until(completed, timeout, f"{op.kind} {op.key} to complete", interval=0.2)
        except TimeoutError:
            return None
        return found[0]

    def _check_state(self, report: Report, journaled: dict[str, int], obj: str, state_key: str,
                     wanted: list[str], *, ordered: bool, timeout: float) -> None:
        """The object's ``state_key`` list names each wanted key exactly once (in order for events)."""
        entries: list[list[Any]] = []

        def complete() -> bool:
            entries[:] = object_state(self.admin_urls, "Ledger", obj).get(state_key, [])
            return len(entries) >= len(wanted)

        try:
            wait_until(complete, timeout, f"{obj}.{state_key} to list {len(wanted)} keys", interval=0.5)
        except TimeoutError:
            pass
        listed = [str(k) for k, _ in entries]
        for key, count in entries:
            if str(key) in journaled:
                report.lost.append(f"{obj}.{state_key} lists {key} more than once")
            journaled[str(key)] = int(count)
        missing = set(wanted) - set(listed)
        report.lost.extend(f"{obj}.{state_key} lacks {key}" for key in sorted(missing))
        unknown = set(listed) - set(wanted)
        report.lost.extend(f"{obj}.{state_key} lists {key}, which was never acknowledged" for key in sorted(unknown))
        if ordered and [k for k in listed if k in set(wanted)] != [k for k in wanted if k in set(listed)]:
            report.lost.append(f"{obj}.{state_key} out of publish order")


def chain_children(op: Op) -> list[Op]:
    """The call and the one-way send ``Chain/fan`` makes, as ops with their own ids."""
    return [
        Op(op.index, f"chain-{suffix}", f"{op.key}/{suffix}", "Effects", None, "apply", "", {}, acked=True)
        for suffix in ("call", "send")
    ]


def object_state(admin_urls: Sequence[str], service: str, key: str) -> dict[str, Any]:
    """The object's state (JSON values), from whichever process answers."""
    answers = []
    for admin in admin_urls:
        try:
            status, body = http("GET", f"{admin}/services/{service}/state/{quote(key, safe='')}", timeout=20)
        except OSError as exc:
            answers.append(str(exc))
            continue
        if status == 200:
            return {k: json.loads(v["utf8"]) for k, v in body["state"].items() if "utf8" in v}
        answers.append((status, body))
    raise AssertionError(f"no engine answered for {service}/{key}: {answers}")
