"""Errors of the logstrate SDK.

Two families, on purpose:

* :class:`SdkError` (an ``Exception``) is the root of every error a handler may see and
  handle: :class:`TerminalError` (a failure that must not be retried, with an HTTP-like
  status code), :class:`JournalMismatch` (non-determinism), :class:`ProtocolViolation`
  and the definition errors raised when services are declared wrongly.
* :class:`InvocationAbort` (a ``BaseException``) is internal control flow: it unwinds a
  handler when the invocation suspends or its attempt has already failed. A user's
  ``except Exception`` cannot swallow it, and even if a bare ``except:`` does, the state
  machine has already latched its outcome, so the attempt still ends correctly.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "InvocationAbort",
    "InvocationSuspended",
    "AttemptFailed",
    "HandlerDefinitionError",
    "JournalMismatch",
    "ProtocolViolation",
    "SdkError",
    "TerminalError",
    "JOURNAL_MISMATCH",
    "PROTOCOL_VIOLATION",
]

#: ``ErrorMessage.code`` for a replay that does not match the journal.
JOURNAL_MISMATCH = 570
#: ``ErrorMessage.code`` for a message the SDK did not expect.
PROTOCOL_VIOLATION = 571


class SdkError(Exception):
    """Root of the SDK's user-visible errors."""


class TerminalError(SdkError):
    """A failure that is final: the invocation (or ``ctx.run`` step) is not retried.

    Raised by a handler, it becomes the invocation's result, and callers receive it with
    the same ``status_code`` and message. Any other exception is retried.

    Args:
        message: Human-readable reason, shown to the caller.
        status_code: HTTP-like code (400-599); 500 by default.
        metadata: Optional string key/values carried with the failure (protocol v6+).
    """

    def __init__(
        self, message: str, status_code: int = 500, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.metadata: dict[str, str] = dict(metadata or {})

    def __repr__(self) -> str:
        return f"TerminalError({self.message!r}, status_code={self.status_code})"


class HandlerDefinitionError(SdkError):
    """A service or handler is declared in a way the SDK cannot serve."""


class JournalMismatch(SdkError):
    """The handler did not replay the journal deterministically (protocol code 570).

    Attributes:
        command_index: Index of the command that differed (0 is the input).
        expected: Description of the journaled command.
        actual: Description of what the handler did instead.
    """

    def __init__(self, message: str, *, command_index: int, expected: str, actual: str) -> None:
        super().__init__(message)
        self.command_index = command_index
        self.expected = expected
        self.actual = actual


class ProtocolViolation(SdkError):
    """The runtime sent something the SDK cannot accept (protocol code 571)."""


class InvocationAbort(BaseException):  # noqa: N818 - control flow, not an error
    """Internal: unwinds a handler whose attempt is over. Never raise or catch it."""


class InvocationSuspended(InvocationAbort):
    """Internal: the handler awaits something the runtime has not delivered yet."""


class AttemptFailed(InvocationAbort):
    """Internal: the attempt already ended with an ``ErrorMessage`` (retry, mismatch)."""
