"""One engine process: start-up checks, the servers it runs, and clean shutdown.

Start-up order is chosen so that cheap local problems (data dir, ports) fail in
milliseconds and only then does the engine wait for Kafka, with a bounded timeout.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import gc
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import REGISTRY

from engine.admin.app import create_admin_app
from engine.admin.forwarding import Advertiser, Forwarder
from engine.auth import check_protected_mode
from engine.config import EngineConfig, Secret
from engine.egress import reserve_engine_topics
from engine.errors import LeadershipLost, StartupError
from engine.ids import InvocationId
from engine.ingress.app import create_ingress_app
from engine.ingress import metrics as ingress_metrics
from engine.ingress.deps import IngressDeps, StartedEarly
from engine.ingress.pending import PendingResponses
from engine.ingress.response_channel import ResponseChannel
from engine.ingress.resolver import MetadataResolver
from engine.invoker.client import Invoker, create_http_session
from engine.invoker.http1 import Http1Client
from engine.invoker.http2 import Http2Client
from engine.invoker.identity import RequestIdentity
from engine.invoker.liveness import StallWatch
from engine.invoker.tls import TlsTrust
from engine.logs import get_logger
from engine.metadata.address_policy import AddressPolicy, GuardedResolver
from engine.metadata.discovery import DiscoveryClient
from engine.metadata.kafka import KafkaCluster
from engine.metadata.sealing import configure_secrets_key, parse_secrets_key
from engine.metadata.store import MetadataStore
from engine.metadata.targets import resolve_call_target
from engine.observability.partitions import PartitionCollector, PartitionSource
from engine.partition.consumer import WalConsumer
from engine.sensitive_headers import configure_sensitive_headers
from engine.partition.leader.egress import EgressProducers
from engine.partition.actions import RespondToIngress
from engine.partition.leader.leader import PartitionLeader
from engine.partition.processor import PartitionProcessors
from engine.storage.environment import StorageEnvironment
from engine.storage.invocation_status import InvocationStatus
from engine.storage.reader import next_wal_offsets
from engine.storage.tables import TableHandles
from engine.version import __version__
from engine.wal.appender import WalAppender
from engine.wal.records import CallTarget, DedupId, InvokerEffect, Invoke, Notify, Record
from engine.wal.topics import ensure_topics
from subscriptions.consumer import Backpressure
from subscriptions.keys import KeyMapperConfigError, register_key_mappers
from subscriptions.manager import SubscriptionManager

if TYPE_CHECKING:
    from engine.observability.tracing import Tracing

log = get_logger(__name__)


class EngineNode:
    """Runs the engine until :meth:`request_stop` (SIGTERM/SIGINT) is called."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._stop = asyncio.Event()
        self._runners: list[web.AppRunner] = []
        self._storage: StorageEnvironment | None = None
        self._metadata: MetadataStore | None = None
        self._appender: WalAppender | None = None
        self._consumer: WalConsumer | None = None
        self._processors: PartitionProcessors | None = None
        self._http: Http1Client | None = None
        self._http2: Http2Client | None = None
        self._liveness: StallWatch | None = None
        self._fatal: BaseException | None = None
        self._subscriptions: SubscriptionManager | None = None
        self._responses: ResponseChannel | None = None
        self._advertiser: Advertiser | None = None
        self._collector: PartitionCollector | None = None
        self._tracing: Tracing | None = None  # engine.observability.tracing, when configured
        # Several processes may share a node name (one host): leadership records and
        # ingress response sinks name this process by a name no other process has.
        self.instance = f"{config.node_name}.{secrets.token_hex(4)}"

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Start everything, serve until asked to stop, then shut down in reverse order."""
        cfg = self.config
        log.info("engine starting", version=__version__, node=cfg.node_name, data_dir=str(cfg.data_dir))
        identity = None
        if cfg.request_identity_private_key_pem_file is not None:
            path = cfg.request_identity_private_key_pem_file
            identity = RequestIdentity.from_pem_file(path)
            log.info(
                "request identity key loaded: every request to a deployment is signed; configure SDK "
                "endpoints with identity_keys=[public_key]",
                public_key=identity.public_key,
                path=str(path),
            )
        if cfg.tracing_endpoint is not None:
            # Imported only now: an engine without tracing never loads the OpenTelemetry SDK.
            from engine.observability.tracing import Tracing

            self._tracing = Tracing(cfg.tracing_endpoint, instance=self.instance)
            log.info("tracing on: spans of invocations and attempts are exported over OTLP/HTTP",
                     endpoint=cfg.tracing_endpoint)
        tls = TlsTrust(cfg.invoker_tls_ca_file)
        if cfg.invoker_tls_ca_file is not None:
            log.info("https deployments are verified with the system CAs and a CA bundle",
                     ca_file=str(cfg.invoker_tls_ca_file))
        check_protected_mode(cfg)
        configure_secrets_key(_secrets_key(cfg))
        configure_sensitive_headers(cfg.ingress_sensitive_headers)
        if cfg.admin_token is None:
            log.info("the admin API has no token: anyone who reaches it manages the engine", admin=cfg.admin_bind)
        try:
            try:
                mappers = register_key_mappers(cfg.subscription_key_mappers)
            except KeyMapperConfigError as exc:
                raise StartupError(str(exc)) from None
            if mappers:
                log.info("custom key mappers registered", key_mappers=mappers)
            reserve_engine_topics(cfg.kafka.topic_prefix)
            self._storage = StorageEnvironment(
                cfg.data_dir, cfg.lmdb_map_size_mb, max_map_size_mb=cfg.lmdb_max_map_size_mb
            )
            for name, address in (("ingress_bind", cfg.ingress_address), ("admin_bind", cfg.admin_address)):
                _check_port_free(name, *address)
            next_offsets = next_wal_offsets(self._storage.env, cfg.kafka.partitions)
            await asyncio.to_thread(ensure_topics, cfg.kafka, next_offsets)
            # Read all cluster metadata before serving, so no request sees a partial view.
            self._metadata = MetadataStore(
                cfg.kafka, node_name=cfg.node_name, declared_clusters=_declared_clusters(cfg)
            )
            await self._metadata.start()
            # Other processes forward admin lookups of the partitions this one leads here.
            admin_host, admin_port = cfg.admin_address
            advertised_admin = socket.getfqdn() if admin_host in ("0.0.0.0", "::") else admin_host
            self._advertiser = Advertiser(self._metadata, self.instance, f"http://{advertised_admin}:{admin_port}")
            pending = PendingResponses()
            ingress_metrics.PENDING.set_function(lambda: len(pending))
            self._responses = ResponseChannel(cfg.kafka, self.instance, pending)
            await self._responses.start()
            self._start_partitions(self._storage, self._metadata, pending, self._responses, identity, tls)
            assert self._appender is not None
            health = self._appender.health
            ingress_metrics.WAL_UP.set_function(lambda: 1.0 if health.up else 0.0)
            resolver = MetadataResolver(self._metadata)
            ingress = IngressDeps(
                node_name=self.instance,
                appender=self._appender,
                pending=pending,
                resolve=resolver.resolve,
                service_kind=resolver.service_kind,
                service_names=resolver.service_names,
                read_status=self._read_status,
                max_body_bytes=cfg.ingress_max_body_bytes,
                workflow_handler=resolver.workflow_handler,
                start_early=self._start_early,
                kafka_timeout_s=cfg.ingress_kafka_timeout_s,
            )
            ingress_host, ingress_port = cfg.ingress_address
            advertised = "localhost" if ingress_host in ("0.0.0.0", "::") else ingress_host
            # A caller that disconnects cancels its handler, which drops its pending entry
            # (the invocation goes on); aiohttp does not cancel handlers by default.
            await self._serve("ingress", create_ingress_app(ingress, cfg.ingress_token), cfg.ingress_address,
                              cancel_on_disconnect=True)
            self._subscriptions = SubscriptionManager(
                self._metadata, _BlockingWal(self._appender, asyncio.get_running_loop()), node_name=cfg.node_name,
                member_id=f"{cfg.node_name}-{self._storage.member_id()}",
                backpressure=Backpressure(cfg.subscription_pause_at_queued, cfg.subscription_resume_at_queued),
            )
            self._subscriptions.start()
            admin_app = create_admin_app(
                ingress_url=f"http://{advertised}:{ingress_port}/", metadata=self._metadata,
                appender=self._appender, processors=self._processors, kafka=cfg.kafka,
                subscription_manager=self._subscriptions,
                discovery=DiscoveryClient(
                    identity=identity, http2=cfg.invoker_http2, policy=self._address_policy(), tls=tls
                ),
                default_retry_policy=cfg.default_retry_policy.effective(),
                forwarder=Forwarder(self._metadata, self.instance, cfg.admin_token),
                token=cfg.admin_token,
            )
            await self._serve("admin", admin_app, cfg.admin_address)
            self._advertiser.start()
            _settle_garbage_collector()
            log.info(
                "engine ready",
                ingress=cfg.ingress_bind,
                admin=cfg.admin_bind,
                kafka=cfg.kafka.bootstrap_servers,
                wal_topic=cfg.kafka.wal_topic,
                partitions=cfg.kafka.partitions,
            )
            await self._stop.wait()
            log.info("engine stopping")
        finally:
            await self._shutdown()
        if self._fatal is not None:
            raise StartupError(f"a WAL client failed: {self._fatal}")
        log.info("engine stopped")

    def _address_policy(self) -> AddressPolicy:
        cfg = self.config
        return AddressPolicy.from_settings(cfg.deployment_deny_networks, cfg.deployment_allow_networks)

    def _start_early(self, partition: int, record: Invoke) -> StartedEarly | None:
        """The ingress's early first attempt (:class:`engine.ingress.deps.EarlyStart`)."""
        leader = self._processors.leader_of(partition) if self._processors is not None else None
        if leader is None:
            return None
        appended = leader.start_early(record, int(time.time() * 1000))
        if appended is None:
            return None
        return StartedEarly(appended, functools.partial(leader.abort_early, record.invocation_id))

    def _read_status(self, invocation_id: InvocationId) -> InvocationStatus | None:
        """The invocation's status in this process's copy of its partition; ``None`` when
        this process does not lead the partition (its copy may be stale: another process
        applies it), so the caller asks the partition through the WAL instead."""
        processors, appender = self._processors, self._appender
        if processors is None or appender is None:
            return None
        partition = appender.partition_of(invocation_id)
        if processors.leader_of(partition) is None:
            return None
        return processors.reader.read(partition, lambda tables: tables.status.get(invocation_id))

    def _advertise(self, leading: dict[int, int]) -> None:
        if self._advertiser is not None:
            self._advertiser.update(leading)

    def _start_partitions(
        self, storage: StorageEnvironment, metadata: MetadataStore, pending: PendingResponses,
        responses: ResponseChannel, identity: RequestIdentity | None = None, tls: TlsTrust | None = None,
    ) -> None:
        """WAL appender, partition processors (consumer thread) and their leaders' invoker."""
        cfg = self.config
        loop = asyncio.get_running_loop()

        def on_fatal(exc: BaseException) -> None:
            def fail() -> None:
                self._fatal = exc
                self._stop.set()

            loop.call_soon_threadsafe(fail)

        appender = self._appender = WalAppender(cfg.kafka, on_fatal=on_fatal)
        handles = TableHandles.open(storage.env)
        tls = tls or TlsTrust()
        http = self._http = create_http_session(
            resolver=GuardedResolver(self._address_policy()), ssl_context=tls.http11()
        )
        # Kafka egress: a transactional producer per partition, fenced in before leading it.
        egress = EgressProducers(cfg.kafka)

        def emit(record: InvokerEffect | Notify) -> asyncio.Future[int]:
            # An attempt's records go to its invocation's partition, stamped with the
            # epoch of this process's leadership; no leadership, no write.
            leader = processors.leader_of(appender.partition_of(record.invocation_id))
            if leader is None:
                raise LeadershipLost("partition leadership lost during the attempt")
            return leader.submit_own(record)

        def resolve_call(service: str, handler: str) -> CallTarget:
            return resolve_call_target(metadata.view, service, handler)

        # Its own resolver under the same policy: every HTTP/2 connection is checked too.
        http2 = self._http2 = (
            Http2Client(resolver=GuardedResolver(self._address_policy()), ssl_context=tls.http2())
            if cfg.invoker_http2 else None
        )
        # A process that thaws after being replaced sends no attempt it had been about to send.
        liveness = self._liveness = StallWatch()
        liveness.start()
        invoker = Invoker(http, emit, resolve_call=resolve_call, identity=identity, http2=http2, liveness=liveness)

        def respond(action: RespondToIngress) -> None:
            if action.node_id == self.instance:
                pending.resolve(action.request_id, action.invocation_id, action.result)
            else:
                responses.send(action.node_id, action.request_id, action.invocation_id, action.result)

        default_retry = cfg.default_retry_policy.effective()

        def make_leader(partition: int, epoch: int) -> PartitionLeader:
            return PartitionLeader(
                partition=partition, epoch=epoch, node_name=self.instance, appender=appender, invoker=invoker,
                metadata=metadata, reader=processors.reader, egress=egress,
                wait_applied=processors.wait_applied, default_retry_policy=default_retry,
                tracing=self._tracing, invoke_hold_s=cfg.invoke_hold_ms / 1000,
            )

        processors = self._processors = PartitionProcessors(
            env=storage.env, handles=handles, partition_count=cfg.kafka.partitions, node_name=self.instance,
            appender=appender, loop=loop, leader_factory=make_leader, before_announce=egress.fence,
            respond=respond, on_leading_changed=self._advertise, growth=storage.growth,
        )

        # A static member of the processors' group: a restart on this data dir takes its
        # partitions back at once (a dead process's session would otherwise hold them
        # for session.timeout.ms).
        self._consumer = WalConsumer(
            cfg.kafka, processors, on_fatal=on_fatal, group_instance_id=f"{cfg.node_name}-{storage.member_id()}"
        )
        self._consumer.start()
        # Apply lag, inbox depth and pending timers, computed when /metrics is scraped.
        self._collector = PartitionCollector(PartitionSource(
            storage.env, handles, processors.assigned_partitions, self._consumer.high_watermark,
            processors.last_applied_ms, reading=storage.growth.reading,
        ))
        REGISTRY.register(self._collector)

    async def _serve(
        self, name: str, app: web.Application, address: tuple[str, int], *, cancel_on_disconnect: bool = False
    ) -> None:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=cancel_on_disconnect)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, address[0], address[1], shutdown_timeout=self.config.shutdown_timeout_s)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(_bind_error(f"{name}_bind", address, exc)) from None

    async def _shutdown(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._advertiser is not None:
            await self._advertiser.stop()
            self._advertiser = None
        if self._subscriptions is not None:
            # Before the appender closes: consumers commit only what the WAL acknowledged.
            await self._subscriptions.stop()
            self._subscriptions = None
        if self._collector is not None:
            REGISTRY.unregister(self._collector)
            self._collector = None
        if self._consumer is not None:
            await asyncio.to_thread(self._consumer.stop)
            self._consumer = None
        if self._processors is not None:
            await self._processors.stop()
            self._processors = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._http2 is not None:
            await self._http2.close()
            self._http2 = None
        if self._liveness is not None:
            await self._liveness.stop()
            self._liveness = None
        if self._appender is not None:
            await asyncio.to_thread(self._appender.close)
            self._appender = None
        if self._tracing is not None:
            # The spans of the last invocations leave before the process does.
            await asyncio.to_thread(self._tracing.shutdown)
            self._tracing = None
        # The two tail threads notice a stop within a poll timeout (engine.tailing):
        # stop them together, so shutdown waits for one timeout, not the sum.
        tails = [tail.stop() for tail in (self._responses, self._metadata) if tail is not None]
        await asyncio.gather(*tails)
        self._responses = None
        self._metadata = None
        if self._storage is not None:
            self._storage.close()
            self._storage = None


class _BlockingWal:
    """The WAL appender as subscription consumer threads use it: blocking calls."""

    def __init__(self, appender: WalAppender, loop: asyncio.AbstractEventLoop) -> None:
        self._appender = appender
        self._loop = loop

    def partition_of(self, invocation_id: InvocationId) -> int:
        return self._appender.partition_of(invocation_id)

    def append_many(self, items: Sequence[tuple[int, Record, DedupId | None]]) -> None:
        asyncio.run_coroutine_threadsafe(self._appender.append_many(items), self._loop).result(timeout=120)

    def queued(self) -> int:
        return self._appender.queued()


def _declared_clusters(cfg: EngineConfig) -> dict[str, KafkaCluster]:
    return {
        name: KafkaCluster(
            name=name,
            properties={k: v.get_secret_value() if isinstance(v, Secret) else v for k, v in props.items()},
            declared_in_config=True,
        )
        for name, props in cfg.kafka_clusters.items()
    }


def _secrets_key(cfg: EngineConfig) -> bytes | None:
    """The configured secrets key (:mod:`engine.metadata.sealing`), or ``None``."""
    if cfg.secrets_key_file is not None:
        try:
            text = cfg.secrets_key_file.read_text()
        except OSError as exc:
            raise StartupError(f"cannot read secrets_key_file {cfg.secrets_key_file}: {exc.strerror}") from None
        source = f"secrets_key_file {cfg.secrets_key_file}"
    elif cfg.secrets_key is not None:
        text, source = cfg.secrets_key.get_secret_value(), "secrets_key"
    else:
        return None
    try:
        return parse_secrets_key(text)
    except ValueError as exc:
        raise StartupError(f"{source}: {exc}") from None


def _check_port_free(setting: str, host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Match what the HTTP server will do, so TIME_WAIT leftovers are not "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StartupError(_bind_error(setting, (host, port), exc)) from None


def _bind_error(setting: str, address: tuple[str, int], exc: OSError) -> str:
    where = f"{address[0]}:{address[1]}"
    if exc.errno == errno.EADDRINUSE:
        return f"{setting} address {where} is already in use; stop what holds it or pass --{setting.replace('_', '-')}"
    return f"cannot listen on {where} ({setting}): {exc.strerror}"


# Young-generation collections every 700 net allocations cost the hot path little each,
# but every tenth runs a middle one and every hundredth of those a full one that walks
# every object the engine holds (metadata, modules, pools): a pause of several ms in the
# middle of a request. What exists at start-up lives for the whole run, so it is moved
# out of the collector's sight (gc.freeze) and collections run ten times less often;
# cycles still get collected, the hot path creates few of them.
_GC_THRESHOLDS = (7_000, 20, 20)


def _settle_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
