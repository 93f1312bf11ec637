"""The root of every exception the engine raises on purpose.

Catch :class:`EngineError` to handle anything the engine reports; subclasses say what
went wrong and their messages say what to do about it.
"""


class EngineError(Exception):
    """Root exception of the ``engine`` package."""


class ConfigError(EngineError):
    """The configuration is invalid (bad value, unreadable file, unknown key)."""


class StartupError(EngineError):
    """The engine cannot start: Kafka unreachable, data dir unwritable, port in use."""


class LeadershipLost(EngineError):
    """A write for a partition this process (or this leader) no longer leads was refused.

    Raised to an invocation attempt that outlived its leader: it must stop without
    writing anything, since the partition's new leader runs the invocation from what
    is in the WAL. Not a failure of the invocation (no retry is recorded)."""
