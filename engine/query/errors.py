"""The exceptions of the query package (root: :class:`QueryError`)."""

from __future__ import annotations

from engine.errors import EngineError

__all__ = ["QueryError", "QuerySyntaxError", "RemoteScanError"]


class QueryError(EngineError):
    """Root exception of :mod:`engine.query`."""


class QuerySyntaxError(QueryError):
    """DataFusion refused the SQL (parse, planning or schema error): the client's to fix."""


class RemoteScanError(QueryError):
    """Another engine process could not deliver the rows of the partitions it leads."""
