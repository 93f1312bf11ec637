"""SQL introspection (``POST /query``): Restate's system tables over the LMDB tables.

Apache DataFusion runs the SQL; the rows come from the partition tables of this process
and, for partitions other engine processes lead, from those processes. See
docs/ARCHITECTURE.md, "SQL introspection".
"""

from engine.query.errors import QueryError, QuerySyntaxError

__all__ = ["QueryError", "QuerySyntaxError"]
