"""SQL introspection (``POST /query``): Restate's system tables as read-only SQLite views."""

from perdure.server.introspection.query import QueryError, run_query

__all__ = ["QueryError", "run_query"]
