"""Introspection (``POST /query``): how stored journal entries show in Restate's system tables.

The SQL views and the read-only connection live in ``perdure.server.storage.query``; the engine
runs a query for the admin API (``Engine.query``).
"""
