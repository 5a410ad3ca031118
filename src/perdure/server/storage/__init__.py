"""Durable storage of the engine: SQLite in WAL mode behind a narrow interface (``Store``)."""

from perdure.server.storage.schema import SCHEMA_VERSION, SchemaError, migrate
from perdure.server.storage.sqlite import Store

__all__ = ["SCHEMA_VERSION", "SchemaError", "Store", "migrate"]
