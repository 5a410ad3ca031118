"""Durable storage of the engine: the ``Storage`` Protocols (api.py) and their SQLite
implementation (``Store``). The only package that speaks SQL."""

from perdure.server.storage.api import Storage
from perdure.server.storage.query import QueryError
from perdure.server.storage.schema import SCHEMA_VERSION, SchemaError, migrate
from perdure.server.storage.sqlite import Store

__all__ = ["SCHEMA_VERSION", "QueryError", "SchemaError", "Storage", "Store", "migrate"]
