"""Logged tracebacks never show local variables: a frame that built a Kafka client holds
its credentials in clear, and rich's console tracebacks would print them."""

from __future__ import annotations

import io
import logging

import pytest

from engine.logs import configure_logging, get_logger

# Built at run time, so the source lines a traceback quotes do not contain it.
PASSWORD = "-".join(["pw", "in", "a", "local", "3e8a"])


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_exceptions_are_logged_without_locals(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging(fmt, "info", stream)
    try:
        def build_client() -> None:
            conf = {"bootstrap.servers": "b:9092", "sasl.password": PASSWORD}
            raise RuntimeError(f"client for {conf['bootstrap.servers']} failed")

        try:
            build_client()
        except RuntimeError:
            get_logger("test").exception("subscription consumer failed")
        text = stream.getvalue()
        assert "RuntimeError" in text and "build_client" in text, text
        assert PASSWORD not in text, text
    finally:
        logging.getLogger().handlers.clear()
        configure_logging("json", "info")
