"""``/services/{name}/state``: read and replace the K/V state of a virtual object or workflow.

``POST /services/{name}/state`` is Restate's ``modify_service_state``: the body is a
``ModifyServiceStateRequest`` (``object_key``, ``new_state`` as ``{key: [byte, ...]}``,
optional ``version``); it appends a ``PatchState`` record that replaces the instance's
whole state and answers 202 once the record is durable (and, when this process leads
the partition, applied). With ``version``, the current version is compared first when
this process leads the partition (409 on a mismatch); the record carries the version
too, so a change that slips in between the check and the apply makes the state machine
drop the patch (that case cannot be reported to the caller).

``GET /services/{name}/state/{key}`` is a logstrate addition::

    {"service": "Account", "key": "alice", "version": "<base64url>",
     "state": {"balance": {"utf8": "42"}, "blob": {"base64": "AAE="}}}

``version`` is the value ``POST`` takes for its optimistic check; state keys that are
not UTF-8 appear as ``"base64:<...>"``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.admin.errors import AdminError, optional_string, read_json_object
from engine.admin.invocation_render import bytes_json, state_key_text
from engine.admin.state import METADATA, access_of, forward_if_remote
from engine.logs import get_logger
from engine.metadata.model import ServiceType
from engine.storage.state import state_version
from engine.storage.tables import PartitionTables
from engine.wal.records import PatchState, StateEntry

__all__ = ["add_routes"]

log = get_logger(__name__)


def add_routes(router: web.UrlDispatcher, prefix: str = "") -> None:
    """Register the state routes under ``prefix``."""
    router.add_post(f"{prefix}/services/{{service}}/state", modify_state)
    router.add_get(f"{prefix}/services/{{service}}/state/{{key:.+}}", get_state)


def _keyed_service(request: web.Request) -> str:
    """The service name of the request; 404 if unknown, 400 if it has no keyed state."""
    name = request.match_info["service"]
    service = request.app[METADATA].view.get_service(name)
    if service.ty is ServiceType.SERVICE:
        raise AdminError(
            400, f"service {name!r} is a plain service without state; only virtual objects and workflows have state"
        )
    return name


async def get_state(request: web.Request) -> web.Response:
    """The whole state of one object or workflow instance, and its version."""
    access = access_of(request)
    service = _keyed_service(request)
    key = request.match_info["key"]
    partition = access.partition_of_object(service, key)
    if (forwarded := await forward_if_remote(request, partition)) is not None:
        return forwarded

    def read(tables: PartitionTables) -> list[StateEntry]:
        return list(tables.state.scan(service, key))

    entries = sorted(access.read(partition, read, f"the state of {service}/{key}"), key=lambda e: e.key)
    return web.json_response(
        {
            "service": service,
            "key": key,
            "version": state_version(entries),
            "state": {state_key_text(e.key): bytes_json(e.value) for e in entries},
        }
    )


async def modify_state(request: web.Request) -> web.Response:
    """Replace an instance's state (``ModifyServiceStateRequest``); 202 once durable."""
    access = access_of(request)
    service = _keyed_service(request)
    body = await read_json_object(request)
    key = optional_string(body, "object_key")
    if key is None:
        raise AdminError(422, "the request field 'object_key' is missing; name the object key whose state to replace")
    version = optional_string(body, "version")
    if optional_string(body, "scope") is not None:
        raise AdminError(400, "the request field 'scope' is not supported by this engine (scoped objects)")
    new_state = _new_state(body)
    partition = access.partition_of_object(service, key)
    if version is not None and (forwarded := await forward_if_remote(request, partition)) is not None:
        return forwarded  # the version is compared where the state is
    local = access.is_local(partition)
    if version is not None and local:
        matches, current = access.read_any(
            partition, lambda t: (t.state.version_matches(service, key, version), t.state.version(service, key))
        )
        if not matches:
            raise AdminError(
                409,
                f"the state of {service}/{key} changed since it was read: its version is {current}, "
                f"the request expected {version}",
            )
    record = PatchState(service, key, new_state, expected_version=version)
    offset = await access.append(partition, record)
    applied = local and await access.wait_applied(partition, offset)
    log.info(
        "object state replace requested", service=service, key=key, entries=len(new_state), partition=partition,
        offset=offset, applied=applied, version_checked=version is not None,
    )
    return web.Response(status=202)


def _new_state(body: dict[str, Any]) -> tuple[StateEntry, ...]:
    value = body.get("new_state")
    if not isinstance(value, dict):
        raise AdminError(
            422, "the request field 'new_state' must be an object of byte arrays, e.g. {\"balance\": [52, 50]}"
        )
    entries = []
    for state_key, raw in sorted(value.items()):
        if not isinstance(raw, list) or not all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in raw
        ):
            raise AdminError(
                422, f"the value of state key {state_key!r} in 'new_state' must be an array of bytes (integers 0-255)"
            )
        entries.append(StateEntry(state_key.encode("utf-8"), bytes(raw)))
    return tuple(entries)
