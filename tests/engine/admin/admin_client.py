"""Talking to an engine's admin API in tests, and checking answers against Restate's OpenAPI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPENAPI_PATH = Path(__file__).resolve().parents[3] / "engine" / "admin" / "openapi.json"
OPENAPI: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def call(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    content_type: str | None = "application/json",
    timeout: float = 30.0,
) -> Answer:
    """One HTTP request; error statuses are answers too, not exceptions."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None and content_type is not None:
        request.add_header("content-type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def assert_error(answer: Answer, status: int, fragment: str, restate_code: str | None = None) -> None:
    """An ``ErrorDescriptionResponse`` with this status whose message contains ``fragment``."""
    assert answer.status == status, (answer.status, answer.body)
    assert answer.headers["content-type"].startswith("application/json")
    assert_schema(answer.json, "ErrorDescriptionResponse")
    assert fragment in answer.json["message"], answer.json
    assert answer.json["restate_code"] == restate_code, answer.json


def assert_schema(value: Any, schema_name: str) -> None:
    """``value`` fits the named schema of Restate's admin OpenAPI document.

    Checked: JSON types, required properties, and that no property outside the schema
    appears; ``oneOf`` picks the variant whose required properties are all present.
    """
    _check(value, {"$ref": f"#/components/schemas/{schema_name}"}, schema_name)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = OPENAPI["components"]["schemas"][name]
    return schema


_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def _check(value: Any, schema: dict[str, Any], path: str) -> None:
    schema = _resolve(schema)
    if "oneOf" in schema:
        variants = [_resolve(v) for v in schema["oneOf"]]
        fitting = [
            v for v in variants
            if (v.get("type") == "null" and value is None)
            or (isinstance(value, dict) and set(v.get("required", ())) <= set(value) and v.get("type") != "null")
            or (v.get("type") not in ("object", "null", None) and not isinstance(value, dict) and value is not None)
        ]
        assert fitting, f"{path}: {value!r} fits no variant of {schema['oneOf']}"
        _check(value, fitting[0], path)
        return
    declared = schema.get("type")
    if declared is not None:
        allowed = declared if isinstance(declared, list) else [declared]
        if not any(isinstance(value, _TYPES[t]) and not (t in ("integer", "number") and isinstance(value, bool)) for t in allowed):
            raise AssertionError(f"{path}: {value!r} is not of type {declared}")
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} is not one of {schema['enum']}"
    if isinstance(value, dict) and "properties" in schema:
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{path}: missing required {sorted(missing)}"
        extra = set(value) - set(schema["properties"])
        assert not extra, f"{path}: properties not in the schema: {sorted(extra)}"
        for key, item in value.items():
            _check(item, schema["properties"][key], f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]")
