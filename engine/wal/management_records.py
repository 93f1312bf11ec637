"""The WAL records of invocation management (the admin API's ``/invocations/{id}/...``):
cancel, kill, purge, pause, resume, restart as new.

Part of :mod:`engine.wal.records`, which re-exports them (import them from there); kept
apart to keep that module readable. The same rules hold: frozen, compared by value,
field names are the Avro field names of :mod:`engine.wal.schema`.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.ids import DeploymentId, InvocationId

__all__ = [
    "CancelInvocation",
    "KillInvocation",
    "PauseInvocation",
    "PurgeInvocation",
    "RestartAsNewInvocation",
    "ResumeInvocation",
]


@dataclass(frozen=True, slots=True)
class CancelInvocation:
    """Cancel gracefully: deliver the CANCEL signal so the handler can compensate."""

    invocation_id: InvocationId


@dataclass(frozen=True, slots=True)
class KillInvocation:
    """Stop immediately, without running the handler again; callers get a failure."""

    invocation_id: InvocationId


@dataclass(frozen=True, slots=True)
class PurgeInvocation:
    """Delete a completed invocation's retained status, output and journal."""

    invocation_id: InvocationId


@dataclass(frozen=True, slots=True)
class PauseInvocation:
    """Stop running the invocation until it is resumed (admin ``/pause``, schema v3)."""

    invocation_id: InvocationId


@dataclass(frozen=True, slots=True)
class ResumeInvocation:
    """Run a paused or suspended invocation again now, or a backing-off one without
    waiting out its retry delay (admin ``/resume``, schema v3).

    ``deployment_id`` (schema v7): pin a paused or suspended invocation to this
    deployment before it resumes (``?deployment=Latest|<id>``, resolved by the admin API
    when it wrote the record); ``None`` keeps the pinned one. Ignored for an invocation
    that is running by the time the record is applied or that has no pinned deployment.
    """

    invocation_id: InvocationId
    deployment_id: DeploymentId | None = None


@dataclass(frozen=True, slots=True)
class RestartAsNewInvocation:
    """Run a completed invocation again as ``new_invocation_id`` (admin
    ``/restart-as-new``, schema v9): same target, input and headers, same retention.

    The new invocation starts with the old journal's entries ``0..copy_prefix_up_to_index``
    (0: the input only) plus the completions of the commands among them found later in the
    journal, so those steps replay instead of running again; with a prefix it also keeps
    the old invocation's random seed. ``deployment_id`` replaces the pinned deployment the
    new invocation inherits (resolved by the admin API; ``None`` keeps it). The admin API
    checked the request against the status it read and chose the new id (same partition
    key, fresh uuid); applying re-checks what may have changed meanwhile.
    """

    invocation_id: InvocationId
    new_invocation_id: InvocationId
    copy_prefix_up_to_index: int
    deployment_id: DeploymentId | None = None
