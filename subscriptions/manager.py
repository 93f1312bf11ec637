"""Keeps this process's subscription consumers in line with the cluster metadata.

Subscriptions live in the metadata topic, so creating, pausing, resuming or deleting
one anywhere shows up in every process's view; the manager notices the new view and
starts or stops consumers, without a restart. A consumer whose subscription, cluster
or options changed is restarted; one whose thread died is restarted with backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from engine.ids import SubscriptionId
from engine.logs import get_logger
from engine.metadata.kafka import KafkaCluster, Subscription
from engine.metadata.store import MetadataStore
from engine.metadata.view import MetadataView
from engine.metadata.targets import handler_kind, service_kind
from engine.metadata.errors import NotFoundError
from subscriptions.consumer import Backpressure, ConsumerStatus, SubscriptionConsumer, WalPort
from subscriptions.errors import SubscriptionError
from subscriptions.ingest import SinkTarget

__all__ = ["SubscriptionManager", "resolve_sink"]

log = get_logger(__name__)

_RESTART_BACKOFF_S: Final = 2.0
_RECHECK_S: Final = 30.0
"""Longest sleep between two looks at the view and the consumers; changes and consumer
exits wake the manager at once, so this is only a safety net."""


def resolve_sink(store: MetadataStore, subscription: Subscription) -> SinkTarget:
    """The sink handler's kinds in the latest registration; ``LookupError`` if gone."""
    try:
        resolved = store.view.resolve(subscription.service, subscription.handler)
    except NotFoundError as exc:
        raise LookupError(str(exc)) from None
    return SinkTarget(subscription.service, subscription.handler, service_kind(resolved.service.ty), handler_kind(resolved))


@dataclass
class _Running:
    consumer: SubscriptionConsumer
    started_at: float


class SubscriptionManager:
    """Starts and stops :class:`SubscriptionConsumer` threads as the metadata changes."""

    def __init__(
        self,
        store: MetadataStore,
        wal: WalPort,
        *,
        node_name: str,
        member_id: str | None = None,
        backpressure: Backpressure = Backpressure(),
    ) -> None:
        self._store = store
        self._wal = wal
        self._node_name = node_name
        # Static group membership of every consumer (see SubscriptionConsumer).
        self._member_id = member_id
        # One WAL producer per process, so every consumer pauses at the same queue levels.
        self._backpressure = backpressure
        self._running: dict[SubscriptionId, _Running] = {}
        self._broken: dict[SubscriptionId, tuple[Subscription, KafkaCluster, str]] = {}
        self._task: asyncio.Task[None] | None = None
        # Set (from a consumer thread) when a consumer ends, so a dead one is restarted
        # without polling; see _watch.
        self._exited = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._watch(), name="subscription-manager")

    async def stop(self) -> None:
        """Stop every consumer: each commits what it durably appended and leaves its group."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        running, self._running = self._running, {}
        await asyncio.gather(*(asyncio.to_thread(r.consumer.stop) for r in running.values()))

    def status(self, subscription_id: SubscriptionId) -> ConsumerStatus | None:
        """This process's consumer status of a subscription, if it runs one."""
        running = self._running.get(subscription_id)
        if running is not None:
            return running.consumer.status
        broken = self._broken.get(subscription_id)
        return None if broken is None else ConsumerStatus(last_error=broken[2])

    async def _watch(self) -> None:
        # Event-driven, so an idle engine does not wake up for it: the metadata store
        # wakes it when a new view is published, a consumer thread when it ends.
        seen: MetadataView | None = None
        while True:
            self._exited.clear()
            view = self._store.view
            dead = [sid for sid, r in self._running.items() if not r.consumer.alive]
            if view is not seen or dead:
                seen = view
                try:
                    await self._reconcile(dead)
                except Exception:  # noqa: BLE001 - keep watching; the next change retries
                    log.exception("subscription reconciliation failed")
            await self._wait(seen, self._next_check_s())

    def _next_check_s(self) -> float:
        """Until a dead consumer's restart backoff ends, else the safety-net interval."""
        now = time.monotonic()
        due = [
            r.started_at + _RESTART_BACKOFF_S - now for r in self._running.values() if not r.consumer.alive
        ]
        return max(0.2, min(due)) if due else _RECHECK_S

    async def _wait(self, seen: MetadataView | None, timeout_s: float) -> None:
        """Until the metadata view is not ``seen``, a consumer exits, or ``timeout_s`` passed."""
        if self._exited.is_set():
            return
        changed = asyncio.ensure_future(self._store.wait_changed(seen, timeout_s))
        exited = asyncio.ensure_future(self._exited.wait())
        try:
            await asyncio.wait((changed, exited), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (changed, exited):
                task.cancel()

    def _consumer_exited(self) -> None:
        # On the consumer's thread, as its last action.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._exited.set)

    async def _reconcile(self, dead: list[SubscriptionId]) -> None:
        view = self._store.view
        wanted: dict[SubscriptionId, tuple[Subscription, KafkaCluster]] = {}
        for sub in view.list_subscriptions():
            cluster = view.kafka_clusters.get(sub.cluster)
            if sub.paused or cluster is None:
                continue
            wanted[sub.id] = (sub, cluster)
        stale = [
            sid for sid, r in self._running.items()
            if sid not in wanted or wanted[sid] != (r.consumer.subscription, r.consumer.cluster)
        ]
        now = time.monotonic()
        for sid in dead:
            running = self._running.get(sid)
            if running is not None and now - running.started_at < _RESTART_BACKOFF_S:
                continue  # a consumer that keeps dying restarts at most every couple of seconds
            if sid not in stale:
                stale.append(sid)
        for sid in stale:
            running = self._running.pop(sid)
            await asyncio.to_thread(running.consumer.stop)
            log.info("subscription consumer stopped by reconciliation", subscription=str(sid))
        self._broken = {sid: b for sid, b in self._broken.items() if sid in wanted and wanted[sid] == b[:2]}
        for sid, (sub, cluster) in wanted.items():
            if sid in self._running or sid in self._broken:
                continue
            self._start(sub, cluster)

    def _start(self, sub: Subscription, cluster: KafkaCluster) -> None:
        store = self._store
        resolver: Callable[[], SinkTarget] = lambda: resolve_sink(store, sub)  # noqa: E731
        try:
            consumer = SubscriptionConsumer(
                sub, cluster, resolve_sink=resolver, wal=self._wal, node_name=self._node_name,
                member_id=self._member_id, backpressure=self._backpressure, on_exit=self._consumer_exited,
            )
        except (SubscriptionError, ValueError) as exc:
            # Options were validated on creation; this is a record written by a newer
            # engine or by hand. Report it, and do not retry until it changes.
            self._broken[sub.id] = (sub, cluster, str(exc))
            log.error("subscription cannot run", subscription=str(sub.id), error=str(exc))
            return
        consumer.start()
        self._running[sub.id] = _Running(consumer, time.monotonic())
