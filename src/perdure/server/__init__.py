"""The server: ingress and admin HTTP APIs, the engine, the invoker and storage.

Not built yet (issue: "Server: the durable engine"); perdure.protocol is its base.
"""
