"""One journal entry as the service protocol carries it: a message type id and its body.

The engine stores journals as these (``engine.storage.journal``), hands them to the
invoker, which replays them to endpoints verbatim, and builds notifications as these
(``engine.journal.notifications``); the SDK reads and writes the same frames. Commands
(``0x04xx``), notifications (``0x8000``-``0xFBFF``) and custom entries (``0xFC00``+) all
look alike here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["JournalEntry"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal entry exactly as it travels on the wire: type id and protobuf body."""

    message_type: int
    message: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.message_type <= 0xFFFF:
            raise ValueError(f"message type id {self.message_type!r} does not fit in 16 bits")
