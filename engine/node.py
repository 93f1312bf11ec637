"""One engine process: start-up checks, the servers it runs, and clean shutdown.

Start-up order is chosen so that cheap local problems (data dir, ports) fail in
milliseconds and only then does the engine wait for Kafka, with a bounded timeout.
"""

from __future__ import annotations

import asyncio
import errno
import socket

from aiohttp import web

from engine.admin.app import create_admin_app
from engine.config import EngineConfig
from engine.errors import StartupError
from engine.ingress.app import create_ingress_app
from engine.logs import get_logger
from engine.metadata.store import MetadataStore
from engine.storage.environment import StorageEnvironment
from engine.version import __version__
from engine.wal.topics import ensure_topics

log = get_logger(__name__)


class EngineNode:
    """Runs the engine until :meth:`request_stop` (SIGTERM/SIGINT) is called."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._stop = asyncio.Event()
        self._runners: list[web.AppRunner] = []
        self._storage: StorageEnvironment | None = None
        self._metadata: MetadataStore | None = None

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Start everything, serve until asked to stop, then shut down in reverse order."""
        cfg = self.config
        log.info("engine starting", version=__version__, node=cfg.node_name, data_dir=str(cfg.data_dir))
        try:
            self._storage = StorageEnvironment(cfg.data_dir, cfg.lmdb_map_size_mb)
            for name, address in (("ingress_bind", cfg.ingress_address), ("admin_bind", cfg.admin_address)):
                _check_port_free(name, *address)
            await asyncio.to_thread(ensure_topics, cfg.kafka)
            # Read all cluster metadata before serving, so no request sees a partial view.
            self._metadata = MetadataStore(cfg.kafka, node_name=cfg.node_name)
            await self._metadata.start()
            ingress_host, ingress_port = cfg.ingress_address
            advertised = "localhost" if ingress_host in ("0.0.0.0", "::") else ingress_host
            await self._serve("ingress", create_ingress_app(), cfg.ingress_address)
            admin_app = create_admin_app(ingress_url=f"http://{advertised}:{ingress_port}/", metadata=self._metadata)
            await self._serve("admin", admin_app, cfg.admin_address)
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
        log.info("engine stopped")

    async def _serve(self, name: str, app: web.Application, address: tuple[str, int]) -> None:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
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
        if self._metadata is not None:
            await self._metadata.stop()
            self._metadata = None
        if self._storage is not None:
            self._storage.close()
            self._storage = None


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
