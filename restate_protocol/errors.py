"""Errors raised by the service protocol codec."""


class ProtocolError(Exception):
    """A peer sent bytes that are not a valid Restate service protocol stream.

    Raised for unknown message type ids, frames longer than the configured limit,
    bodies that do not parse as the protobuf message their type id names, streams that
    end in the middle of a frame, and unsupported or malformed protocol content types.
    The invoker treats it as a failed attempt of the invocation (the endpoint or the
    connection is at fault, not the user's handler), so the message says which peer
    behaviour was wrong rather than how to fix user code.
    """


class UnsupportedProtocolVersion(ProtocolError):
    """No service protocol version is acceptable to both logstrate and an endpoint.

    Raised when negotiating against an endpoint's advertised version range, or when a
    content type names a protocol version logstrate does not speak. Registering such a
    deployment must fail with this message, since no invocation could ever succeed.
    """
