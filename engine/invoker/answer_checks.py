"""Checks of what an endpoint sends that the protocol's framing cannot catch.

Each one stops a broken or hostile endpoint from making the engine do something useless
forever: a suspension that would loop, a run proposal nobody asked for, a retry delay
past any timestamp (times in commands: :mod:`engine.journal.limits`). Found by fuzzing
with hostile answers (``tests/fuzz/``, docs/SECURITY.md "Fuzzing"). They run only on the
messages concerned (a suspension, a run proposal, an error), never per frame.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from google.protobuf.message import DecodeError

from engine.wal.records import CompletionId, NotificationId, SignalIndex, SignalName
from restate_protocol import JournalEntry, MessageType, pb
from restate_protocol.messages import CUSTOM_RANGE_START, NOTIFICATION_RANGE_START

__all__ = ["MAX_RETRY_DELAY_MS", "all_in_journal", "run_completion_ids"]

#: Longest retry delay an endpoint's ErrorMessage may ask for (a year); a uint64 of
#: milliseconds reaches past any timestamp the WAL can hold.
MAX_RETRY_DELAY_MS = 365 * 24 * 3600 * 1000


def all_in_journal(journal: Sequence[JournalEntry], waiting: tuple[NotificationId, ...]) -> bool:
    """Whether every notification in ``waiting`` is among the journal's notifications:
    an endpoint suspending on those would get the same journal again when resumed."""
    missing = set(waiting)
    for entry in journal:
        if not NOTIFICATION_RANGE_START <= entry.message_type < CUSTOM_RANGE_START:
            continue
        try:
            note = pb.NotificationTemplate.FromString(entry.message)
        except DecodeError:
            continue
        kind = note.WhichOneof("id")
        if kind == "completion_id":
            missing.discard(CompletionId(note.completion_id))
        elif kind == "signal_id":
            missing.discard(SignalIndex(note.signal_id))
        elif kind == "signal_name":
            missing.discard(SignalName(note.signal_name))
        if not missing:
            return True
    return False


def run_completion_ids(journal: Sequence[JournalEntry]) -> set[int]:
    """The completion ids the journal's Run commands allocated."""
    ids: set[int] = set()
    for entry in journal:
        if entry.message_type == MessageType.RUN_COMMAND:
            with contextlib.suppress(DecodeError):
                ids.add(pb.RunCommandMessage.FromString(entry.message).result_completion_id)
    return ids
