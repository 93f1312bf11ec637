"""Structured logging for the engine process.

Engine code logs through structlog with bound context (``invocation_id``, ``partition``,
``service``, ...). Libraries that log through the standard library (aiohttp, librdkafka
via confluent-kafka) are routed through the same processors, so one process prints one
format: human-readable on a terminal, one JSON object per line otherwise.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Install the renderer for ``fmt`` (auto, console or json) on structlog and stdlib logging."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        # Tracebacks without local variables: rich's default shows them, and a frame that
        # built a Kafka client holds its credentials in clear.
        formatter: Any = (
            structlog.dev.RichTracebackFormatter(show_locals=False)
            if importlib.util.find_spec("rich") is not None else structlog.dev.plain_traceback
        )
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty(), exception_formatter=formatter)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # A logger class fixed to the level: a debug line on the hot path is then a call
        # to a method that returns at once (0.1 us), not a trip through the processors
        # that the stdlib handler would throw away at the end (2 us, measured).
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    # aiohttp's per-request access log is noise at info level for an engine.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str, **context: Any) -> FilteringBoundLogger:
    """A logger named ``name`` with ``context`` bound to every event it logs."""
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger.bind(**context) if context else logger
