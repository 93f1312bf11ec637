"""Arrow record batches as Restate's JSON rows (arrow-rs's JSON writer): nulls left out,
timestamps RFC 3339 with milliseconds and ``Z``, durations ISO 8601 (``PT86400S``),
binary as lowercase hex, lists as arrays."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

__all__ = ["rows_json"]


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        ms = round(value.total_seconds() * 1000)
        seconds, millis = divmod(ms, 1000)
        return f"PT{seconds}S" if millis == 0 else f"PT{seconds}.{millis:03d}".rstrip("0") + "S"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items() if v is not None}
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def rows_json(batches: Iterable[pa.RecordBatch]) -> bytes:
    """``{"rows": [...]}``."""
    rows = [
        {k: _value(v) for k, v in row.items() if v is not None}
        for batch in batches
        for row in batch.to_pylist()
    ]
    return json.dumps({"rows": rows}, separators=(",", ":"), default=str).encode("utf-8")
