"""The SDK: services, virtual objects, workflows, the handler context and the ASGI endpoint.

Not built yet (issue: "SDK: write durable handlers in Python"); perdure.protocol is its base.
"""
