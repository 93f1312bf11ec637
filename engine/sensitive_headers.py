"""Which invocation headers are credentials, and their redaction in everything we show.

Ingress headers reach the handler and are kept in the WAL with the invocation (the
``Invoke`` record and the journal's input command): after a crash, a retry must give the
handler the same input, ``Authorization`` included. What is shown about an invocation —
admin answers (``GET /invocations/{id}`` journals), the ``/query`` tables
(``sys_journal``), the web UI built on both, and logs — replaces the value of a sensitive
header with :data:`REDACTED`. Sensitive: ``authorization``, ``cookie``,
``proxy-authorization`` and whatever the operator adds (``ingress_sensitive_headers``,
set once at start-up with :func:`configure_sensitive_headers`); names compare
case-insensitively. The same applies to headers a handler sets on calls it makes (they
are ``Header`` messages of the journal too).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "DEFAULT_SENSITIVE_HEADERS",
    "REDACTED",
    "configure_sensitive_headers",
    "is_sensitive_header",
    "sensitive_headers",
]

DEFAULT_SENSITIVE_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
REDACTED: Final = "<redacted>"

_sensitive: frozenset[str] = DEFAULT_SENSITIVE_HEADERS


def configure_sensitive_headers(extra: Iterable[str]) -> frozenset[str]:
    """Make ``extra`` sensitive too (the defaults always are); returns the whole set."""
    global _sensitive
    _sensitive = DEFAULT_SENSITIVE_HEADERS | {name.strip().lower() for name in extra if name.strip()}
    return _sensitive


def sensitive_headers() -> frozenset[str]:
    """The header names (lower case) whose values are redacted."""
    return _sensitive


def is_sensitive_header(name: str) -> bool:
    """Whether the value of header ``name`` is a credential."""
    return name.lower() in _sensitive
