"""The ``logstrate`` command line (also ``python -m engine``)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
import uvloop

from engine.config import load_config
from engine.errors import EngineError
from engine.logs import configure_logging, get_logger
from engine.node import EngineNode
from engine.version import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="logstrate: a Kafka-native durable execution engine, compatible with Restate.",
)


@app.command()
def serve(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file (env: LOGSTRATE_CONFIG).")] = None,
    kafka_bootstrap_servers: Annotated[Optional[str], typer.Option(help="Kafka bootstrap servers, host:port[,host:port].")] = None,
    topic_prefix: Annotated[Optional[str], typer.Option(help="Prefix of the engine's topics (<prefix>.wal, <prefix>.metadata).")] = None,
    partitions: Annotated[Optional[int], typer.Option(help="WAL partitions (fixed at topic creation).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder for the LMDB state.")] = None,
    ingress_bind: Annotated[Optional[str], typer.Option(help="host:port of the ingress API.")] = None,
    admin_bind: Annotated[Optional[str], typer.Option(help="host:port of the admin API (default 127.0.0.1:9070).")] = None,
    admin_token: Annotated[Optional[str], typer.Option(
        help="Bearer token the admin API requires (prefer env LOGSTRATE_ADMIN_TOKEN: flags show in ps).")] = None,
    admin_allow_unauthenticated: Annotated[Optional[bool], typer.Option(
        "--admin-allow-unauthenticated", help="Serve the admin API on a non-loopback admin_bind without a token "
        "(protected mode off; only behind a firewall or an authenticating proxy).")] = None,
    ingress_token: Annotated[Optional[str], typer.Option(
        help="Bearer token the ingress requires (prefer env LOGSTRATE_INGRESS_TOKEN).")] = None,
    secrets_key_file: Annotated[Optional[Path], typer.Option(
        help="File holding the key (base64 of 32 bytes) that seals Kafka credentials in the metadata topic.")] = None,
    node_name: Annotated[Optional[str], typer.Option(help="This process's name in the cluster.")] = None,
    log_format: Annotated[Optional[str], typer.Option(help="auto, console or json.")] = None,
    log_level: Annotated[Optional[str], typer.Option(help="debug, info, warning or error.")] = None,
    subscription_pause_at_queued: Annotated[Optional[int], typer.Option(
        help="Kafka subscriptions pause while this many WAL records await Kafka's acknowledgement.")] = None,
    subscription_resume_at_queued: Annotated[Optional[int], typer.Option(
        help="...and resume once that queue is down to this many.")] = None,
    request_identity_private_key_pem_file: Annotated[Optional[Path], typer.Option(
        help="PKCS#8 PEM ed25519 private key that signs every request to a deployment (request identity).")] = None,
    invoker_tls_ca_file: Annotated[Optional[Path], typer.Option(
        help="PEM CA bundle trusted (besides the system's CAs) for https:// deployments.")] = None,
    invoker_http2: Annotated[Optional[bool], typer.Option(
        "--invoker-http2/--no-invoker-http2",
        help="Discover over HTTP/2 and drive BIDI_STREAM deployments as HTTP/2 streams (default on; "
        "--no-invoker-http2 calls every deployment over HTTP/1.1 request/response).")] = None,
    tracing_endpoint: Annotated[Optional[str], typer.Option(
        help="OTLP/HTTP endpoint of an OpenTelemetry collector (http://host:4318); traces are off without it.")] = None,
) -> None:
    """Run an engine process until SIGTERM or Ctrl-C.

    Settings come from flags, then LOGSTRATE_* environment variables, then the TOML file,
    then defaults.
    """
    try:
        cfg = load_config(
            config_file=config,
            overrides={
                "kafka.bootstrap_servers": kafka_bootstrap_servers,
                "kafka.topic_prefix": topic_prefix,
                "kafka.partitions": partitions,
                "data_dir": data_dir,
                "ingress_bind": ingress_bind,
                "admin_bind": admin_bind,
                "admin_token": admin_token,
                "admin_allow_unauthenticated": admin_allow_unauthenticated,
                "ingress_token": ingress_token,
                "secrets_key_file": secrets_key_file,
                "node_name": node_name,
                "log_format": log_format,
                "log_level": log_level,
                "subscription_pause_at_queued": subscription_pause_at_queued,
                "subscription_resume_at_queued": subscription_resume_at_queued,
                "request_identity_private_key_pem_file": request_identity_private_key_pem_file,
                "invoker_tls_ca_file": invoker_tls_ca_file,
                "invoker_http2": invoker_http2,
                "tracing_endpoint": tracing_endpoint,
            },
        )
    except EngineError as exc:
        _fail(f"invalid configuration: {exc}")
    configure_logging(cfg.log_format, cfg.log_level)
    try:
        # uvloop: the engine's hot path is socket I/O (ingress, endpoint calls) on one
        # event loop; libuv's loop costs a fraction of the pure-Python selector loop.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run(EngineNode(cfg)))
    except EngineError as exc:
        get_logger("engine").error("engine failed to start", error=str(exc))
        _fail(str(exc))


async def _run(node: EngineNode) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.request_stop)
    await node.run()


def _fail(message: str) -> typer.Exit:
    # One plain line on stderr, whatever the log format, so scripts and humans see why.
    print(f"logstrate: error: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print the engine's version."""
    typer.echo(__version__)


def main() -> None:
    app()
