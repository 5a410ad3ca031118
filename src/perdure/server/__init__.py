"""The server: ingress and admin HTTP APIs, the engine, the invoker and storage.

``perdure server`` runs ``serve(ServerConfig(...))``. Inside: ``storage`` (SQLite, WAL, group
commit), ``engine`` (deterministic transitions + the driver that commits and releases effects),
``invoker`` (HTTP/2 bidi and HTTP/1.1 attempts, discovery), ``api`` (ingress and admin).
"""

from perdure.server.app import ServerConfig, serve

__all__ = ["ServerConfig", "serve"]
