"""``PATCH /invocations/{id}/restart-as-new?from=&deployment=``: run a completed
invocation again under a new id (Restate 1.6+'s admin API; the state machine side is
:mod:`engine.partition.state_machine.restart`).

``from`` (default 0) is a journal entry index: the new invocation starts with the old
journal's entries ``0..from``, plus the completions of the commands among them, so
those steps are not run again; 0 keeps only the input. ``deployment`` (``Keep``,
``Latest`` (the default) or a deployment id) replaces the pinned deployment the new
invocation inherits (:mod:`engine.admin.deployment_choice`). The answer is
``{"new_invocation_id": "inv_..."}`` once the new invocation exists (200; 202 with the
id when its creation could not be seen applied in time).

Refused, with restate-server's codes and messages: 400 bad id, ``from`` or
``deployment``; 404 unknown; 425 not started yet (scheduled, inboxed); 409 still
running (invoked, suspended, paused: only completed invocations restart); 422 a
workflow's invocation, or a prefix of an invocation on protocol v5 (``ctx.rand`` seeds
changed in v6); 410 a prefix of an invocation whose journal was not retained; 400 a
``from`` beyond the stored journal, or a prefix with a command whose completion is not
in the journal. logstrate difference: restarting from 0 needs no retained journal (the
status keeps the input), where restate-server answers 410.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from engine.admin.deployment_choice import LATEST, parse_deployment_choice, resolve_deployment
from engine.admin.errors import AdminError
from engine.admin.partitions import not_local_message, parse_invocation_id
from engine.admin.state import METADATA, access_of, forward_if_remote
from engine.ids import DeploymentId, InvocationId, InvocationUuid
from engine.journal.notifications import completion_types
from restate_protocol import ProtocolError, is_notification
from engine.logs import get_logger
from engine.storage.invocation_status import InvocationStatus, StatusKind
from engine.storage.tables import PartitionTables
from engine.wal.records import CompletionId, RestartAsNewInvocation, ServiceKind

__all__ = ["add_routes"]

log = get_logger(__name__)

_MAX_ENTRY_INDEX: Final = 2**32 - 1
_PREFIX_MIN_PROTOCOL: Final = 6


def add_routes(router: web.UrlDispatcher, prefix: str = "") -> None:
    """Register the route under ``prefix``."""
    router.add_patch(f"{prefix}/invocations/{{invocation_id}}/restart-as-new", restart_as_new)


async def restart_as_new(request: web.Request) -> web.Response:
    """See the module docstring."""
    access = access_of(request)
    invocation_id = parse_invocation_id(request.match_info["invocation_id"])
    last = _query_from(request)
    choice = parse_deployment_choice(request.query.get("deployment"), default=LATEST)
    partition = access.partition_of(invocation_id)
    if (forwarded := await forward_if_remote(request, partition)) is not None:
        return forwarded
    if not access.is_local(partition):
        raise AdminError(503, not_local_message(f"invocation {invocation_id}", partition))

    def read(tables: PartitionTables) -> tuple[InvocationStatus | None, bool]:
        status = tables.status.get(invocation_id)
        complete = status is not None and _prefix_complete(tables, invocation_id, last)
        return status, complete

    status, prefix_complete = access.read_any(partition, read)
    if status is None and await access.catch_up(partition):
        status, prefix_complete = access.read_any(partition, read)
    if status is None:
        raise AdminError(404, f"The requested invocation '{invocation_id}' does not exist")
    _check(invocation_id, status, last, prefix_complete)
    deployment_id: DeploymentId | None = None
    if not choice.keep:
        view = request.app[METADATA].view
        deployment_id = resolve_deployment(choice, view, invocation_id, status, "restart as new").id
    new_id = InvocationId(invocation_id.partition_key, InvocationUuid.generate())
    offset = await access.append(partition, RestartAsNewInvocation(invocation_id, new_id, last, deployment_id))
    applied = await access.wait_applied(partition, offset)
    created = applied and access.read_any(partition, lambda t: t.status.get(new_id)) is not None
    log.info(
        "invocation restart as new requested", invocation_id=str(invocation_id), new_invocation_id=str(new_id),
        copy_prefix_up_to_index=last, deployment=str(deployment_id), applied=applied, created=created,
    )
    if applied and not created:
        raise AdminError(
            409, f"The invocation '{invocation_id}' changed before it could be restarted (purged, or its journal "
            "dropped); nothing was created",
        )
    return web.json_response({"new_invocation_id": str(new_id)}, status=200 if applied else 202)


def _query_from(request: web.Request) -> int:
    text = request.query.get("from")
    if text is None or text == "":
        return 0
    if not text.isdigit() or int(text) > _MAX_ENTRY_INDEX:
        raise AdminError(
            400, f"The query parameter 'from' is invalid: it must be a journal entry index (0 or more), got {text!r}"
        )
    return int(text)


def _check(invocation_id: InvocationId, status: InvocationStatus, last: int, prefix_complete: bool) -> None:
    """The refusals of the module docstring, in restate-server's order."""
    if status.kind in (StatusKind.SCHEDULED, StatusKind.INBOXED):
        raise AdminError(425, f"The invocation '{invocation_id}' cannot be restarted because it's not running yet.")
    if status.kind is not StatusKind.COMPLETED:
        raise AdminError(409, f"The invocation '{invocation_id}' is still running.")
    if status.journal_length == 0 and last > 0:
        raise AdminError(
            410,
            f"The invocation '{invocation_id}' cannot be restarted because the input is not available. This "
            "indicates that the journal was already purged, or not retained at all.",
        )
    unsupported = (
        f"Restarting the invocation '{invocation_id}' is not supported. Restarting workflows is not supported, "
        "and restarting invocations created using the old service protocol."
    )
    if status.target.service_kind is ServiceKind.WORKFLOW:
        raise AdminError(422, unsupported)
    if last > 0 and (status.protocol_version is None or status.protocol_version < _PREFIX_MIN_PROTOCOL):
        raise AdminError(422, unsupported)
    if last > 0 and last >= status.journal_length:
        raise AdminError(
            400,
            f"The given index is out of range of currently stored journal for invocation '{invocation_id}' "
            f"({status.journal_length} entries, the last one is {status.journal_length - 1}).",
        )
    if not prefix_complete:
        raise AdminError(
            400,
            f"The prefix of the journal '{invocation_id}' up to 'from' (included) contains some Commands without "
            "respective Completions.",
        )


def _prefix_complete(tables: PartitionTables, invocation_id: InvocationId, last: int) -> bool:
    """Whether every command in entries ``1..last`` has its completions in the journal
    (in the prefix or after it): a copied command without its result would make the new
    invocation wait for a completion that never comes."""
    journal = tables.journal
    for index in range(1, last + 1):
        entry = journal.get(invocation_id, index)
        if entry is None:
            return False
        if is_notification(entry.message_type):
            continue
        try:
            expected = completion_types(entry.message_type, entry.message)
        except ProtocolError:
            continue
        if any(not journal.has_notification(invocation_id, CompletionId(c)) for c in expected):
            return False
    return True
