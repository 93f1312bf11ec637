"""Handler logging that stays quiet while an invocation replays.

Use ``ctx.logger`` inside handlers, or a module-level logger from :func:`getLogger`:
both drop records emitted while the journal is being replayed, so a line logged
before a suspension is not logged again on every resumption.
"""

from __future__ import annotations

import logging as _logging

from sdk.invocation import current_invocation

__all__ = ["ReplayFilter", "getLogger"]


class ReplayFilter(_logging.Filter):
    """A logging filter that rejects records while the current invocation replays."""

    def filter(self, record: _logging.LogRecord) -> bool:
        invocation = current_invocation.get()
        return invocation is None or not invocation.machine.replaying


def getLogger(name: str | None = None) -> _logging.Logger:  # noqa: N802 - logging's name
    """A stdlib logger carrying a :class:`ReplayFilter`."""
    logger = _logging.getLogger(name)
    if not any(isinstance(f, ReplayFilter) for f in logger.filters):
        logger.addFilter(ReplayFilter())
    return logger
