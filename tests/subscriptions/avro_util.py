"""Helpers to produce Avro records the way Kafka producers write them."""

from __future__ import annotations

import io
import json
from typing import Any

from fastavro import parse_schema, schemaless_writer


def avro_bytes(schema: dict[str, Any] | list[Any] | str, datum: Any) -> bytes:
    """``datum`` in plain Avro binary (no framing) under ``schema``."""
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), datum)
    return out.getvalue()


def schema_option(schema: dict[str, Any] | list[Any] | str) -> str:
    """``schema`` as the JSON text a subscription option carries."""
    return json.dumps(schema)
