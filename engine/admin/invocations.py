"""``/invocations``: cancel, kill, purge, pause, resume (Restate's admin API), status,
journal and listing.

Management calls (``PATCH /invocations/{id}/cancel|kill|purge|pause|resume`` and the
deprecated ``DELETE /invocations/{id}?mode=``) append ``CancelInvocation`` /
``KillInvocation`` / ``PurgeInvocation`` / ``PauseInvocation`` / ``ResumeInvocation`` to
the invocation's WAL partition and answer once the record is durable. When this process
leads that partition it first reads the invocation's status (404 unknown, after making
sure every record the partition held at that moment is applied; 409 nothing to do:
kill/cancel of a completed invocation, purge of one that is not completed, pause of one
that is not running, resume of a completed one; 425 resume of one that has not started,
as restate-server answers) and, after the append, waits (up to
:data:`~engine.admin.partitions.APPLY_WAIT_S`) until the record is applied, so a
``GET`` right after the answer sees the effect. Status codes: kill, purge and resume 200
once applied, cancel 200 when the invocation is completed by it (it had not started yet)
and 202 when the handler still has to react to the cancellation, pause 202 (200 when it
was paused already, without an append); 202 when the record could not be seen applied
(another process leads the partition); ``DELETE`` always 202. ``resume?deployment=``
``Latest`` or a deployment id moves a paused or suspended invocation to that deployment
(:mod:`engine.admin.deployment_choice`: 409 for a running invocation or one without a
pinned deployment, 400 for an unknown or incompatible deployment); ``Keep``, the
default, leaves it where it is.

``GET /invocations/{id}`` and ``GET /invocations?...`` (:mod:`engine.admin.invocation_list`)
are logstrate additions (restate-server answers these with SQL on ``/query``); their
shapes are in :mod:`engine.admin.invocation_render`. Requests about a partition another
process leads are answered by that process (:mod:`engine.admin.forwarding`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from engine.admin.deployment_choice import parse_deployment_choice, resolve_for_resume
from engine.admin.errors import AdminError
from engine.admin.invocation_render import invocation_json, journal_json
from engine.admin.partitions import parse_invocation_id
from engine.admin.invocation_list import list_invocations
from engine.admin.state import METADATA, access_of, forward_if_remote
from engine.ids import InvocationId
from engine.logs import get_logger
from engine.storage.invocation_status import InvocationStatus, StatusKind
from engine.storage.tables import PartitionTables
from engine.wal.records import (
    CancelInvocation,
    KillInvocation,
    PauseInvocation,
    PurgeInvocation,
    Record,
    ResumeInvocation,
)

__all__ = ["add_routes"]

log = get_logger(__name__)

_ALREADY_COMPLETED: Final = (
    "The invocation {id} was already completed, so it cannot be cancelled nor killed. "
    "You can instead purge the invocation, in order for restate to forget it."
)
_NOT_COMPLETED: Final = (
    "The invocation {id} is not yet completed (status: {status}). An invocation can be purged "
    "only when completed; cancel or kill it first."
)
_NOT_RUNNING: Final = "The invocation '{id}' is not running, cannot be paused."
_COMPLETED_NOT_RESUMABLE: Final = "The invocation '{id}' is completed, cannot be resumed."
_NOT_STARTED: Final = (
    "The invocation '{id}' is {status}: it has not started yet, so it cannot be resumed. An invocation "
    "can be resumed when running, paused or suspended."
)

_Refusal = tuple[int, str]
"""An HTTP status and a message template (``{id}``, ``{status}``)."""


@dataclass(frozen=True, slots=True)
class _Operation:
    """One management operation: its record, and what it refuses to act on."""

    name: str
    record: Callable[[InvocationId], Record]
    refuses: Callable[[InvocationStatus], _Refusal | None]
    """The answer for a status the operation cannot act on, else ``None``."""
    done_already: Callable[[InvocationStatus], bool] = lambda status: False
    """Whether the status shows the operation done already (answered without an append)."""


def _refuse_completed(status: InvocationStatus) -> _Refusal | None:
    return (409, _ALREADY_COMPLETED) if status.kind is StatusKind.COMPLETED else None


def _refuse_not_completed(status: InvocationStatus) -> _Refusal | None:
    return None if status.kind is StatusKind.COMPLETED else (409, _NOT_COMPLETED)


def _refuse_not_running(status: InvocationStatus) -> _Refusal | None:
    return None if status.kind in (StatusKind.INVOKED, StatusKind.PAUSED) else (409, _NOT_RUNNING)


def _refuse_not_resumable(status: InvocationStatus) -> _Refusal | None:
    if status.kind is StatusKind.COMPLETED:
        return 409, _COMPLETED_NOT_RESUMABLE
    if status.kind in (StatusKind.SCHEDULED, StatusKind.INBOXED):
        return 425, _NOT_STARTED
    return None


_OPERATIONS: Final = {
    "cancel": _Operation("cancel", CancelInvocation, _refuse_completed),
    "kill": _Operation("kill", KillInvocation, _refuse_completed),
    "purge": _Operation("purge", PurgeInvocation, _refuse_not_completed),
    "pause": _Operation(
        "pause", PauseInvocation, _refuse_not_running, lambda status: status.kind is StatusKind.PAUSED
    ),
    "resume": _Operation("resume", ResumeInvocation, _refuse_not_resumable),
}


def add_routes(router: web.UrlDispatcher, prefix: str = "") -> None:
    """Register the invocation routes under ``prefix``."""
    router.add_get(f"{prefix}/invocations", list_invocations)
    router.add_get(f"{prefix}/invocations/{{invocation_id}}", get_invocation)
    router.add_delete(f"{prefix}/invocations/{{invocation_id}}", delete_invocation)
    for name in _OPERATIONS:
        router.add_patch(f"{prefix}/invocations/{{invocation_id}}/{name}", _patch_handler(name))


@dataclass(frozen=True, slots=True)
class _Outcome:
    applied: bool
    status: InvocationStatus | None
    """The status after the record was applied (``None``: purged, unknown, or not local)."""
    appended: bool = True
    """False when the operation was done already and nothing was written."""


RecordFor = Callable[[InvocationId, InvocationStatus | None], Record]
"""The record of an operation, from the invocation's local status (``None``: not local)."""


async def _manage(request: web.Request, operation: _Operation, record_for: RecordFor | None = None) -> _Outcome:
    access = access_of(request)
    invocation_id = parse_invocation_id(request.match_info["invocation_id"])
    partition = access.partition_of(invocation_id)
    local = access.is_local(partition)
    status: InvocationStatus | None = None
    if local:
        status = access.read_any(partition, lambda t: t.status.get(invocation_id))
        if status is None and await access.catch_up(partition):
            status = access.read_any(partition, lambda t: t.status.get(invocation_id))
        if status is None:
            raise AdminError(404, f"invocation {invocation_id} not found (never created, or purged after it completed)")
        refusal = operation.refuses(status)
        if refusal is not None:
            code, message = refusal
            raise AdminError(code, message.format(id=invocation_id, status=status.kind.value))
        if operation.done_already(status):
            return _Outcome(True, status, appended=False)
    record = operation.record(invocation_id) if record_for is None else record_for(invocation_id, status)
    offset = await access.append(partition, record)
    applied = local and await access.wait_applied(partition, offset)
    after = access.read_any(partition, lambda t: t.status.get(invocation_id)) if applied else None
    log.info(
        "invocation management requested", operation=operation.name, invocation_id=str(invocation_id),
        partition=partition,
        offset=offset, applied=applied, local=local,
    )
    return _Outcome(applied, after)


def _patch_handler(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    operation = _OPERATIONS[name]

    async def handle(request: web.Request) -> web.Response:
        if (forwarded := await _forward(request)) is not None:
            return forwarded
        record_for = _resume_record(request) if name == "resume" else None
        outcome = await _manage(request, operation, record_for)
        if name == "pause":
            return web.Response(status=202 if outcome.appended else 200)
        if not outcome.applied:
            return web.Response(status=202)
        if name == "cancel" and (outcome.status is None or outcome.status.kind is not StatusKind.COMPLETED):
            return web.Response(status=202)  # the handler sees the cancellation and finishes on its own
        return web.Response(status=200)

    handle.__name__ = f"{name}_invocation"
    handle.__doc__ = f"``PATCH /invocations/{{id}}/{name}`` (see the module docstring)."
    return handle


def _resume_record(request: web.Request) -> RecordFor:
    """The ``ResumeInvocation`` of a resume, with the deployment ``?deployment=`` chose."""
    choice = parse_deployment_choice(request.query.get("deployment"))

    def record(invocation_id: InvocationId, status: InvocationStatus | None) -> Record:
        if choice.keep:
            return ResumeInvocation(invocation_id)
        if status is None:
            raise AdminError(
                503, f"cannot resume {invocation_id} on another deployment here: its WAL partition is led by another "
                "engine process, which knows its pinned deployment, and it could not be reached",
            )
        view = request.app[METADATA].view
        return ResumeInvocation(invocation_id, resolve_for_resume(choice, view, invocation_id, status))

    return record


async def _forward(request: web.Request) -> web.Response | None:
    """The leader's answer when another process leads the invocation's partition."""
    invocation_id = parse_invocation_id(request.match_info["invocation_id"])
    return await forward_if_remote(request, access_of(request).partition_of(invocation_id))


async def delete_invocation(request: web.Request) -> web.Response:
    """Deprecated ``DELETE /invocations/{id}?mode=cancel|kill|purge`` (default cancel): 202."""
    mode = request.query.get("mode", "cancel").lower()
    operation = _OPERATIONS.get(mode) if mode in ("cancel", "kill", "purge") else None
    if operation is None:
        raise AdminError(400, f"unknown mode {request.query['mode']!r}; use one of Cancel, Kill, Purge")
    if (forwarded := await _forward(request)) is not None:
        return forwarded
    await _manage(request, operation)
    return web.Response(status=202)


async def get_invocation(request: web.Request) -> web.Response:
    """Status and journal of one invocation (``?journal=false`` leaves the journal out)."""
    access = access_of(request)
    invocation_id = parse_invocation_id(request.match_info["invocation_id"])
    with_journal = _query_bool(request, "journal", True)
    partition = access.partition_of(invocation_id)
    if (forwarded := await forward_if_remote(request, partition)) is not None:
        return forwarded

    def read(tables: PartitionTables) -> dict[str, Any] | None:
        status = tables.status.get(invocation_id)
        if status is None:
            return None
        out = invocation_json(invocation_id, status)
        if with_journal:
            out["journal"] = journal_json(tables.journal.entries(invocation_id))
        return out

    body = access.read(partition, read, f"invocation {invocation_id}")
    if body is None and await access.catch_up(partition):
        body = access.read(partition, read, f"invocation {invocation_id}")
    if body is None:
        raise AdminError(404, f"invocation {invocation_id} not found (never created, or purged after it completed)")
    return web.json_response(body)


def _query_bool(request: web.Request, name: str, default: bool) -> bool:
    text = request.query.get(name)
    if text is None:
        return default
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise AdminError(400, f"the query parameter {name!r} must be true or false, got {text!r}")
