"""Service protocol version negotiation and the content types that carry the version.

An endpoint advertises ``minProtocolVersion`` / ``maxProtocolVersion`` in its discovery
manifest. logstrate speaks versions 5 to 7 and uses the highest version both sides
support. The chosen version travels with every invocation as the request's
``content-type`` (and ``accept``): ``application/vnd.restate.invocation.v{N}``; the
endpoint answers with the same content type.

What changes between the versions we speak (see service_protocol.proto for the fields):

* v5: the immutable journal of commands and notifications.
* v6: ``StartMessage.random_seed`` and ``Failure.metadata``.
* v7: ``SuspensionMessage.awaiting_on`` replaces the flat waiting lists,
  ``AwaitingOnMessage``, ``ProposeRunCompletionAckMessage`` (requested with the
  REQUESTED_ACK flag on ``ProposeRunCompletion``), scope / limit-key fields and
  ``ErrorMessage.behavior``.
"""

from __future__ import annotations

import enum

from restate_protocol.errors import ProtocolError, UnsupportedProtocolVersion


class ProtocolVersion(enum.IntEnum):
    """The service protocol versions logstrate implements."""

    V5 = 5
    V6 = 6
    V7 = 7

    @property
    def content_type(self) -> str:
        """The invocation content type of this version."""
        return content_type(self)


MIN_PROTOCOL_VERSION = ProtocolVersion.V5
MAX_PROTOCOL_VERSION = ProtocolVersion.V7

CONTENT_TYPE_PREFIX = "application/vnd.restate.invocation.v"


def content_type(version: int) -> str:
    """``application/vnd.restate.invocation.v{version}`` for a version we speak.

    Raises:
        UnsupportedProtocolVersion: ``version`` is outside 5..7.
    """
    return f"{CONTENT_TYPE_PREFIX}{_supported(version, 'requested').value}"


def parse_content_type(value: str) -> ProtocolVersion:
    """The protocol version named by an invocation ``content-type`` header value.

    Media-type parameters (``; charset=...``), surrounding whitespace and letter case
    of the media type are ignored.

    Raises:
        ProtocolError: the value is not a Restate invocation content type at all (e.g. an
            endpoint that answered ``text/plain`` with an error page), or its version
            part is not a number.
        UnsupportedProtocolVersion: it is one, but for a version outside 5..7.
    """
    media_type = value.split(";", 1)[0].strip().lower()
    if not media_type.startswith(CONTENT_TYPE_PREFIX):
        raise ProtocolError(
            f"content type {value!r} is not a Restate service protocol content type "
            f"(expected {CONTENT_TYPE_PREFIX}N); is the URL pointing at a Restate "
            "service endpoint?"
        )
    suffix = media_type[len(CONTENT_TYPE_PREFIX) :]
    if not suffix.isascii() or not suffix.isdigit():
        raise ProtocolError(
            f"content type {value!r} has a malformed protocol version {suffix!r}"
        )
    return _supported(int(suffix), f"content type {value!r} names")


def negotiate_version(
    endpoint_min: int,
    endpoint_max: int,
    *,
    ours_min: int = MIN_PROTOCOL_VERSION,
    ours_max: int = MAX_PROTOCOL_VERSION,
) -> ProtocolVersion:
    """Pick the protocol version to use with an endpoint: the highest one both support.

    Args:
        endpoint_min: The endpoint's ``minProtocolVersion`` from its discovery manifest.
        endpoint_max: The endpoint's ``maxProtocolVersion``.
        ours_min: Lowest version we are willing to use (default 5). Narrowing our
            range is useful to pin a version in tests or during a rollout.
        ours_max: Highest version we are willing to use (default 7).

    Raises:
        ProtocolError: a range is empty (min above max).
        UnsupportedProtocolVersion: the ranges do not overlap, or ours is not
            within 5..7.
    """
    if endpoint_min > endpoint_max:
        raise ProtocolError(
            f"endpoint advertises an empty protocol version range "
            f"[{endpoint_min}, {endpoint_max}] (min is above max)"
        )
    if ours_min > ours_max:
        raise ProtocolError(f"empty local protocol version range [{ours_min}, {ours_max}]")
    _supported(ours_min, "local minimum")
    _supported(ours_max, "local maximum")
    low = max(endpoint_min, ours_min)
    high = min(endpoint_max, ours_max)
    if low > high:
        hint = (
            "upgrade the endpoint's SDK"
            if endpoint_max < ours_min
            else "the endpoint's SDK is newer than logstrate supports; upgrade logstrate"
        )
        raise UnsupportedProtocolVersion(
            f"endpoint supports service protocol versions [{endpoint_min}, {endpoint_max}], "
            f"logstrate supports [{ours_min}, {ours_max}]: no common version ({hint})"
        )
    return ProtocolVersion(high)


def _supported(version: int, what: str) -> ProtocolVersion:
    try:
        return ProtocolVersion(version)
    except ValueError:
        raise UnsupportedProtocolVersion(
            f"{what} service protocol version {version}, but logstrate supports only "
            f"versions {MIN_PROTOCOL_VERSION.value} to {MAX_PROTOCOL_VERSION.value}"
        ) from None
